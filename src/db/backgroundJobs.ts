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
 * The earliest time anything may become due for this node (NULL = a `once` job without schedule is
 * due now, or nothing at all when no row qualifies). Lets the loop sleep until exactly then.
 */
export async function earliestNextRun(db: Client, filter: NodeFilter): Promise<{ at: string | null; any: boolean }> {
  const node = filter.onlyRunTasksForThisNode ? 'node_id = $1' : `(node_id IS NULL OR node_id = '' OR node_id = $1)`;
  const r = await db.query<{ at: string | null; n: string }>(
    `SELECT min(CASE WHEN type = 'once' AND (cron_spec IS NULL OR cron_spec = '') THEN '-infinity'::timestamp ELSE next_run_at END) AS at,
            count(*) AS n
       FROM background_jobs
      WHERE active = TRUE AND ${node}
        AND ((type = 'interval' AND next_run_at IS NOT NULL) OR (type = 'once' AND last_run_at IS NULL))`,
    [filter.nodeId],
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

export async function saveJobData(db: Client, jobId: number, data: string | null): Promise<void> {
  await db.query('UPDATE background_jobs SET data = $2 WHERE id = $1', [jobId, data]);
}

export async function loadJob(db: Client, jobId: number): Promise<BackgroundJobRow | undefined> {
  return (await db.query<BackgroundJobRow>('SELECT * FROM background_jobs WHERE id = $1', [jobId])).rows[0];
}
