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
  const last = s.lastSweepEndedAt;
  if (last === undefined) {
    return now - startedAt > staleMs ? { ok: false, reason: `no poll has finished in the ${Math.round((now - startedAt) / 1000)} s since start-up` } : { ok: false, reason: 'starting: first poll not finished yet' };
  }
  if (now - last > staleMs) {
    const busy = s.sweepStartedAt !== undefined ? `; the current poll began ${Math.round((now - s.sweepStartedAt) / 1000)} s ago` : '';
    return { ok: false, reason: `scheduler loop stuck: last poll finished ${Math.round((now - last) / 1000)} s ago${busy}` };
  }
  return { ok: true };
}
