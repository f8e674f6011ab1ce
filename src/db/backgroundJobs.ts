// Table background_jobs (spec task-server.md §5.2, §7.3–7.4): due selection, the claim that keeps
// several servers from running one job twice, and the write-back after a run.
import type { Client } from './pg';
import type { BackgroundJobRow } from './rows';

export interface NodeFilter {
  nodeId: string;
  onlyRunTasksForThisNode: boolean;
}

/** kivitendo's due condition (§7.3) over alias j; $1 = now (local wall clock), $2 = node id. */
function dueCondition(filter: NodeFilter): string {
  const node = filter.onlyRunTasksForThisNode ? 'j.node_id = $2' : `(j.node_id IS NULL OR j.node_id = '' OR j.node_id = $2)`;
  return `(
      (j.type = 'interval' AND j.active = TRUE AND j.next_run_at <= $1::timestamp)
   OR (j.type = 'once' AND j.active = TRUE AND j.last_run_at IS NULL
       AND (j.cron_spec IS NULL OR j.cron_spec = '' OR j.next_run_at IS NULL OR j.next_run_at <= $1::timestamp))
    ) AND ${node}`;
}

export async function selectDueJobs(db: Client, now: string, filter: NodeFilter): Promise<BackgroundJobRow[]> {
  const r = await db.query<BackgroundJobRow>(
    `SELECT j.* FROM background_jobs j WHERE ${dueCondition(filter)} ORDER BY j.next_run_at NULLS FIRST, j.id`,
    [now, filter.nodeId],
  );
  return r.rows;
}

export async function countDueJobs(db: Client, now: string, filter: NodeFilter): Promise<number> {
  const r = await db.query<{ n: string }>(`SELECT count(*) AS n FROM background_jobs j WHERE ${dueCondition(filter)}`, [now, filter.nodeId]);
  return Number(r.rows[0].n);
}

/** The active jobs (any node), for `check`. */
export async function activeJobs(db: Client): Promise<{ id: number; package_name: string | null; type: string | null }[]> {
  const r = await db.query<{ id: number; package_name: string | null; type: string | null }>(
    'SELECT id, package_name, type FROM background_jobs WHERE active ORDER BY id',
  );
  return r.rows;
}

/**
 * The earliest time anything may become due for this node (NULL = nothing at all when no row
 * qualifies). Lets the loop sleep until exactly then. A `once` job is due at once when it has no
 * schedule or no next_run_at (dueCondition), so it counts as '-infinity' here; a parked one
 * ('infinity', see parkJob) never comes due by itself. A job that another server holds (its claim,
 * see claimJob) is left out: it cannot be claimed now, and counting it as due would re-poll the
 * client in a loop for as long as the other server runs it. When that server is done the job is
 * no longer due; should it die instead, its claim goes with its connection and the next re-poll
 * (within a minute, or SIGALRM) finds the job.
 */
export async function earliestNextRun(db: Client, filter: NodeFilter): Promise<{ at: string | null; any: boolean }> {
  const node = filter.onlyRunTasksForThisNode ? 'j.node_id = $1' : `(j.node_id IS NULL OR j.node_id = '' OR j.node_id = $1)`;
  const r = await db.query<{ at: string | null; n: string }>(
    `SELECT min(CASE WHEN j.type = 'once' AND (j.cron_spec IS NULL OR j.cron_spec = '' OR j.next_run_at IS NULL) THEN '-infinity'::timestamp ELSE j.next_run_at END) AS at,
            count(*) AS n
       FROM background_jobs j
      WHERE j.active = TRUE AND ${node}
        AND ((j.type = 'interval' AND j.next_run_at IS NOT NULL) OR (j.type = 'once' AND j.last_run_at IS NULL))
        AND NOT EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                           AND l.classid = $2::bigint::oid AND l.objid = j.id::bigint::oid AND l.objsubid = 2)`,
    [filter.nodeId, ADVISORY_NAMESPACE],
  );
  return { at: r.rows[0].at, any: Number(r.rows[0].n) > 0 };
}

/** Namespace of the advisory locks (two-key form: namespace, job id); "KTS1" as an int. */
export const ADVISORY_NAMESPACE = 0x4b545331;

/**
 * Claims one job for this server: an advisory lock on `db` (the runner's connection, so a crashed
 * server's claim dies with its connection), then a fresh re-read under the lock. The re-read is
 * what prevents a slot from running twice: another server that ran the job committed its
 * next_run_at before it released the lock, so a claim taken after that sees the job as not due.
 * Returns the row, or undefined (taken elsewhere or no longer due; no lock is kept then).
 */
export async function claimJob(db: Client, jobId: number, now: string, filter: NodeFilter): Promise<BackgroundJobRow | undefined> {
  const lock = await db.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [ADVISORY_NAMESPACE, jobId]);
  if (!lock.rows[0].ok) return undefined;
  const r = await db.query<BackgroundJobRow>(`SELECT j.* FROM background_jobs j WHERE j.id = $3 AND ${dueCondition(filter)}`, [now, filter.nodeId, jobId]);
  if (!r.rows[0]) {
    await releaseJob(db, jobId);
    return undefined;
  }
  return r.rows[0];
}

/** --run-job: the row regardless of schedule, type and node, still under the advisory lock. */
export async function claimJobById(db: Client, jobId: number): Promise<BackgroundJobRow | 'locked' | undefined> {
  const r = await db.query<BackgroundJobRow>('SELECT * FROM background_jobs WHERE id = $1', [jobId]);
  if (!r.rows[0]) return undefined;
  const lock = await db.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [ADVISORY_NAMESPACE, jobId]);
  return lock.rows[0].ok ? r.rows[0] : 'locked';
}

export async function releaseJob(db: Client, jobId: number): Promise<void> {
  await db.query('SELECT pg_advisory_unlock($1, $2)', [ADVISORY_NAMESPACE, jobId]);
}

/**
 * After a run: last_run_at, next_run_at, and data only when the job changed it. kivitendo writes
 * back the whole row from memory, reverting edits made in the web UI meanwhile (§14.5); this does not.
 */
export async function recordRun(db: Client, jobId: number, lastRunAt: string, nextRunAt: string, data?: string | null): Promise<void> {
  if (data === undefined) {
    await db.query('UPDATE background_jobs SET last_run_at = $2, next_run_at = $3 WHERE id = $1', [jobId, lastRunAt, nextRunAt]);
  } else {
    await db.query('UPDATE background_jobs SET last_run_at = $2, next_run_at = $3, data = $4 WHERE id = $1', [jobId, lastRunAt, nextRunAt, data]);
  }
}

/**
 * A job whose cron_spec cannot be parsed is parked: not run, and not due until its schedule is
 * fixed. last_run_at is left alone because the job did not run (and a `once` job with last_run_at
 * would never run again, nor survive BackgroundJobCleanup). An `interval` job is never due with
 * next_run_at NULL; a `once` job would be due at once then, so it gets 'infinity' (kivitendo's
 * web UI loads it as a DateTime::Infinite). The web UI's save recomputes next_run_at either way.
 */
export async function parkJob(db: Client, job: Pick<BackgroundJobRow, 'id' | 'type'>): Promise<void> {
  const next = job.type === 'interval' ? null : 'infinity';
  await db.query('UPDATE background_jobs SET next_run_at = $2::timestamp WHERE id = $1', [job.id, next]);
}

export async function saveJobData(db: Client, jobId: number, data: string | null): Promise<void> {
  await db.query('UPDATE background_jobs SET data = $2 WHERE id = $1', [jobId, data]);
}

export async function loadJob(db: Client, jobId: number): Promise<BackgroundJobRow | undefined> {
  return (await db.query<BackgroundJobRow>('SELECT * FROM background_jobs WHERE id = $1', [jobId])).rows[0];
}

/** One background_jobs row with its last run's history and the package's recent failures (`list`). */
export interface ListedJobRow {
  id: number;
  type: string | null;
  package_name: string | null;
  active: boolean | null;
  cron_spec: string | null;
  node_id: string | null;
  last_run_at: string | null;
  next_run_at: string | null;
  last_status: 'success' | 'failure' | null;
  last_error: string | null;
  failures_24h: number;
}

/**
 * The jobs for `list` in one statement. kivitendo's history rows carry no job id, only the package
 * and run_at — which is the job's last_run_at for its last run (kivitendo and this server write the
 * same value into both) — so the last run is matched on those two, and the failures of the last 24 h
 * are those of the job's package in this client. Two scans of the history at most; no index needed.
 */
export async function listJobs(db: Client, now: string, all: boolean): Promise<ListedJobRow[]> {
  const r = await db.query<ListedJobRow & { failures_24h: string }>(
    `WITH jobs AS (
       SELECT j.id, j.type, j.package_name, j.active, j.cron_spec, j.node_id, j.last_run_at, j.next_run_at
         FROM background_jobs j WHERE $2::boolean OR j.active),
     last AS (
       SELECT DISTINCT ON (h.package_name, h.run_at) h.package_name, h.run_at, h.status, h.error
         FROM background_job_histories h JOIN jobs ON h.package_name = jobs.package_name AND h.run_at = jobs.last_run_at
        ORDER BY h.package_name, h.run_at, h.id DESC),
     fail AS (
       SELECT h.package_name, count(*) AS n FROM background_job_histories h
        WHERE h.status = 'failure' AND h.run_at >= $1::timestamp - interval '24 hours' GROUP BY h.package_name)
     SELECT jobs.*, last.status AS last_status, last.error AS last_error, coalesce(fail.n, 0) AS failures_24h
       FROM jobs
       LEFT JOIN last ON last.package_name = jobs.package_name AND last.run_at = jobs.last_run_at
       LEFT JOIN fail ON fail.package_name = jobs.package_name
      ORDER BY jobs.id`,
    [now, all],
  );
  return r.rows.map((row) => ({ ...row, failures_24h: Number(row.failures_24h) }));
}
