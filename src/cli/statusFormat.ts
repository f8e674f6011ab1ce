// `status`: the running daemon's own account of itself, from its state file (src/daemon/stateFile.ts).
// Pure: the state and the clock come in, lines go out.
import { formatLocalTimestamp } from '../clock';
import { health } from '../daemon/health';
import type { DaemonState } from '../daemon/stateFile';
import { formatSpan } from './listFormat';

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;
const at = (ms: number) => formatLocalTimestamp(new Date(ms));

/** The state file is rewritten at least every 10 s; older means the daemon's event loop is blocked. */
export const STATE_STALE_MS = 30_000;

export function formatDaemonState(s: DaemonState, now: number): string[] {
  const out: string[] = [];
  out.push(`  Up ${formatSpan(now - s.startedAt)} (since ${at(s.startedAt)}), version ${s.version}, node ${s.nodeId}`);
  if (s.lastSweepEndedAt !== undefined) {
    out.push(`  Last poll finished ${formatSpan(now - s.lastSweepEndedAt)} ago (${s.lastSweepPolled} of ${s.clients} client${s.clients === 1 ? '' : 's'} polled, ${(s.lastSweepMs / 1000).toFixed(2)} s); ${s.jobsRun} job run${s.jobsRun === 1 ? '' : 's'} since start`);
  } else {
    out.push(`  First poll not finished yet (${s.clients} clients known)`);
  }
  const h = health(s, now, s.startedAt);
  if (!h.ok) out.push(`  Problem: ${h.reason}`);
  if (now - s.writtenAt > STATE_STALE_MS) out.push(`  Problem: this state is ${formatSpan(now - s.writtenAt)} old: the daemon does not update it (blocked?)`);
  if (s.running.length === 0) out.push('  Running now: no job');
  for (const r of s.running) {
    const how = r.how === 'perl' ? (r.perlPid ? `Perl pid ${r.perlPid}` : 'Perl, starting') : r.how;
    out.push(`  Running now: client ${r.clientId} (${r.client}) job ${r.jobId} ${r.package ?? '(no package)'} for ${formatSpan(now - r.startedAt)} (${how})`);
  }
  if (s.authOutage) out.push(`  Outage: auth database unreachable since ${at(s.authOutage.since)}: ${s.authOutage.error}`);
  for (const o of s.outages) out.push(`  Outage: client ${o.clientId} (${o.client}) unreachable since ${at(o.since)}: ${o.error}`);
  for (const p of s.perlParents) {
    const idle = p.idleSinceMs === undefined ? `${p.runs} run${p.runs === 1 ? '' : 's'} in it` : `idle for ${formatSpan(now - p.idleSinceMs)}`;
    out.push(`  Preloaded Perl parent: pid ${p.pid}, RSS ${p.rssBytes === undefined ? '?' : mib(p.rssBytes)}, ${idle}`);
  }
  out.push(`  Memory: RSS ${mib(s.rssBytes)}, JS heap ${mib(s.heapUsedBytes)} (as of ${formatSpan(now - s.writtenAt)} ago)`);
  if (s.metricsListen) out.push(`  Metrics: http://${s.metricsListen}/metrics, health: http://${s.metricsListen}/healthz`);
  return out;
}
