// The database backends a job runs on, found by their application_name in pg_stat_activity. The
// job's own connection (and a Perl child's, through PGAPPNAME) is named "kivitendo-task-server job
// <id>"; job ids are per client database, so the name is looked up in the current database only.
import type { Client } from './pg';

export const jobApplicationName = (jobId: number): string => `kivitendo-task-server job ${jobId}`;

/** Backends of this database named after the job, other than `db`'s own. */
export async function jobBackendPids(db: Client, jobId: number): Promise<number[]> {
  const r = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid() ORDER BY pid`,
    [jobApplicationName(jobId)],
  );
  return r.rows.map((row) => row.pid);
}

/** pg_terminate_backend for one backend; false when it was gone already. Throws on missing rights. */
export async function terminateBackend(db: Client, pid: number): Promise<boolean> {
  const r = await db.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
  return r.rows[0].ok;
}
