// `list`: pure part — when each job runs next, how it runs here, the table and the JSON. No I/O:
// the rows come from src/cli/list.ts, the clock is passed in.
import { formatLocalTimestamp, parseLocalTimestamp } from '../clock';
import type { ListedJobRow } from '../db/backgroundJobs';
import type { JobRoute } from '../jobs/registry';

/** How a job runs on this host: kivitendo-task-server natively, through kivitendo's Perl code, or not. */
export type RunsHow = { how: 'native' } | { how: 'perl' } | { how: 'cannot run'; reason: string; detail: string };

export interface ListedJob {
  clientId: number;
  clientName: string;
  job: ListedJobRow;
  runs: RunsHow;
  /** How long the last run took, when the running daemon ran it and still knows (its state file). */
  lastDurationMs?: number;
}

/** When a job comes due next, as `list` shows it. */
export type NextRun =
  | { kind: 'at'; at: Date }
  /** A `once` job without a schedule: due as soon as the server polls. */
  | { kind: 'now' }
  /** Will not run by itself: inactive, a `once` job that ran, parked (invalid schedule), no next_run_at. */
  | { kind: 'never'; why: 'inactive' | 'done' | 'parked' | 'unscheduled' };

export function nextRunOf(j: Pick<ListedJobRow, 'type' | 'active' | 'cron_spec' | 'last_run_at' | 'next_run_at'>): NextRun {
  if (!j.active) return { kind: 'never', why: 'inactive' };
  if (j.type === 'once') {
    if (j.last_run_at !== null) return { kind: 'never', why: 'done' };
    if (!j.cron_spec || j.next_run_at === null) return { kind: 'now' };
  }
  if (j.next_run_at === 'infinity') return { kind: 'never', why: 'parked' };
  if (j.next_run_at === null) return { kind: 'never', why: 'unscheduled' };
  if (j.next_run_at === '-infinity') return { kind: 'now' };
  return { kind: 'at', at: parseLocalTimestamp(j.next_run_at) };
}

/**
 * The one word for a route that cannot run (the whole reason is in `detail` and in `check`). Issue
 * 13's version routing may add reasons; anything unknown here is 'unavailable'.
 */
export function runsHow(route: JobRoute): RunsHow {
  if (route.kind === 'native') return { how: 'native' };
  if (route.kind === 'perl') return { how: 'perl' };
  const r = route.reason;
  const reason = /unknown job package/.test(r)
    ? 'unknown'
    : /perl = 0/.test(r)
      ? 'perl-off'
      : /does not exist|is not in /.test(r)
        ? 'no-module'
        : /not proven|release|version/i.test(r)
          ? 'version'
          : 'unavailable';
  return { how: 'cannot run', reason, detail: r };
}

/** "3 h 12 min", "5 min 3 s", "12 s", "2 d 4 h": two units at most, as systemctl list-timers. */
export function formatSpan(ms: number): string {
  let s = Math.round(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts: [number, string][] = [[d, 'd'], [h, 'h'], [m, 'min'], [s, 's']];
  const first = parts.findIndex(([n]) => n > 0);
  if (first < 0) return '0 s';
  return parts.slice(first, first + 2).filter(([n]) => n > 0).map(([n, u]) => `${n} ${u}`).join(' ');
}

/** A run time in milliseconds as "0.4 s", "12 s", "3 min 4 s". */
export function formatDuration(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : formatSpan(ms);
}

/** Ascending by next run: due now first, then by time; jobs that will not run by themselves last. */
export function sortByNextRun(jobs: ListedJob[]): ListedJob[] {
  const key = (j: ListedJob) => {
    const n = nextRunOf(j.job);
    return n.kind === 'now' ? Number.NEGATIVE_INFINITY : n.kind === 'at' ? n.at.getTime() : Number.POSITIVE_INFINITY;
  };
  return [...jobs].sort((a, b) => key(a) - key(b) || a.clientId - b.clientId || a.job.id - b.job.id);
}

export interface ListFilter {
  /** Inactive jobs too (`--all`). */
  all: boolean;
  /** Only jobs whose last run failed (`--failed`). */
  failed: boolean;
}

export function filterJobs(jobs: ListedJob[], f: ListFilter): ListedJob[] {
  return jobs.filter((j) => (f.all || j.job.active) && (!f.failed || j.job.last_status === 'failure'));
}

function nextColumns(j: ListedJob, now: Date): [string, string] {
  const n = nextRunOf(j.job);
  if (n.kind === 'now') return ['now', 'due'];
  if (n.kind === 'never') return ['-', n.why];
  const left = n.at.getTime() - now.getTime();
  return [formatLocalTimestamp(n.at), left <= 0 ? `due ${formatSpan(left)} ago` : `in ${formatSpan(left)}`];
}

function lastColumns(j: ListedJob, now: Date): [string, string, string] {
  if (!j.job.last_run_at) return ['-', '-', '-'];
  const at = parseLocalTimestamp(j.job.last_run_at);
  const ago = `${formatLocalTimestamp(at)} (${formatSpan(now.getTime() - at.getTime())} ago)`;
  return [ago, j.job.last_status ?? 'no history', j.lastDurationMs === undefined ? '-' : formatDuration(j.lastDurationMs)];
}

export function runsText(r: RunsHow): string {
  return r.how === 'native' ? 'native' : r.how === 'perl' ? 'perl' : `cannot run: ${r.reason}`;
}

const HEADER = ['NEXT', 'LEFT', 'CLIENT', 'JOB', 'PACKAGE', 'RUNS', 'SCHEDULE', 'LAST', 'STATUS', 'TOOK', 'FAILED/24H'];

/** The table: one line per job, columns aligned, as `systemctl list-timers`. */
export function formatTable(jobs: ListedJob[], now: Date): string {
  const rows = jobs.map((j) => {
    const [next, left] = nextColumns(j, now);
    const [last, status, took] = lastColumns(j, now);
    return [
      next, left, `${j.clientId} ${j.clientName}`, String(j.job.id), j.job.package_name ?? '(none)', runsText(j.runs),
      j.job.type === 'once' ? 'once' : (j.job.cron_spec ?? '-'), last, status, took, String(j.job.failures_24h),
    ];
  });
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const count = `${jobs.length} job${jobs.length === 1 ? '' : 's'} listed.`;
  return [line(HEADER), ...rows.map(line), '', count].join('\n') + '\n';
}

/** `--json`: one object per job; times as local wall clock (kivitendo's) and as ISO 8601 with offset. */
export function toJson(jobs: ListedJob[], now: Date): object[] {
  return jobs.map((j) => {
    const n = nextRunOf(j.job);
    return {
      client_id: j.clientId,
      client: j.clientName,
      job_id: j.job.id,
      package: j.job.package_name,
      active: j.job.active,
      runs: j.runs.how,
      ...(j.runs.how === 'cannot run' ? { runs_reason: j.runs.reason, runs_detail: j.runs.detail } : {}),
      type: j.job.type,
      schedule: j.job.type === 'once' ? 'once' : j.job.cron_spec,
      cron_spec: j.job.cron_spec,
      node_id: j.job.node_id || null,
      next_run: n.kind === 'at' ? n.at.toISOString() : n.kind === 'now' ? 'now' : null,
      next_run_local: n.kind === 'at' ? formatLocalTimestamp(n.at) : null,
      next_run_in_s: n.kind === 'at' ? Math.round((n.at.getTime() - now.getTime()) / 1000) : n.kind === 'now' ? 0 : null,
      not_scheduled_because: n.kind === 'never' ? n.why : null,
      last_run: j.job.last_run_at ? parseLocalTimestamp(j.job.last_run_at).toISOString() : null,
      last_run_local: j.job.last_run_at,
      last_status: j.job.last_status,
      last_error: j.job.last_error,
      last_duration_s: j.lastDurationMs === undefined ? null : j.lastDurationMs / 1000,
      failures_24h: j.job.failures_24h,
    };
  });
}
