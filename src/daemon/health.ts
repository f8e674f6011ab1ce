// Is the scheduler loop alive and doing its work? One rule for /healthz, the systemd watchdog and
// `status`, from the scheduler's own state (no database query: a health check must not add load
// to, or hang on, the databases it reports about).
import type { SchedulerSnapshot } from '../scheduler/scheduler';

/**
 * The loop sleeps at most 30 s between sweeps; a sweep waits for its polls (10 s connect timeout
 * each, 8 at a time). Three missed sweeps mean it is stuck.
 */
export const HEALTH_STALE_MS = 90_000;

export type Health = { ok: true } | { ok: false; reason: string };

export function health(s: Pick<SchedulerSnapshot, 'lastSweepEndedAt' | 'sweepStartedAt' | 'authOutage'>, now: number, startedAt: number, staleMs = HEALTH_STALE_MS): Health {
  if (s.authOutage) return { ok: false, reason: `auth database unreachable since ${new Date(s.authOutage.since).toISOString()}: ${s.authOutage.error}` };
  const stuck = loopStuck(s, now, startedAt, staleMs);
  if (stuck) return { ok: false, reason: stuck };
  return s.lastSweepEndedAt === undefined ? { ok: false, reason: 'starting: first poll not finished yet' } : { ok: true };
}

/**
 * Why the loop is not doing its work, or undefined. An auth DB outage is not a stuck loop: it goes
 * on sweeping (and retrying), so the systemd watchdog, which restarts, only looks at this.
 */
export function loopStuck(s: Pick<SchedulerSnapshot, 'lastSweepEndedAt' | 'sweepStartedAt'>, now: number, startedAt: number, staleMs = HEALTH_STALE_MS): string | undefined {
  const last = s.lastSweepEndedAt;
  if (last === undefined) {
    return now - startedAt > staleMs ? `no poll has finished in the ${Math.round((now - startedAt) / 1000)} s since start-up` : undefined;
  }
  if (now - last <= staleMs) return undefined;
  const busy = s.sweepStartedAt !== undefined ? `; the current poll began ${Math.round((now - s.sweepStartedAt) / 1000)} s ago` : '';
  return `scheduler loop stuck: last poll finished ${Math.round((now - last) / 1000)} s ago${busy}`;
}
