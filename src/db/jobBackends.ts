// The database backends a job runs on, found by their application_name in pg_stat_activity. The
// job's own connection is named "kivitendo-task-server job <id>", the backends of a Perl run for
// the job (through PGAPPNAME) "kivitendo-task-server job <id> perl": cleaning up after a Perl run
// must not hit the native run that started it (CreatePeriodicInvoices' print/e-mail step). Job ids
// are per client database, so the names are looked up in the current database only.
import type { Client } from './pg';

export const jobApplicationName = (jobId: number): string => `kivitendo-task-server job ${jobId}`;

/** The application_name of the backends a Perl run for the job opens. */
export const perlRunApplicationName = (jobId: number): string => `${jobApplicationName(jobId)} perl`;

/**
 * Backends of this database named after the job, other than `db`'s own: all of them ('job': the
 * job's own and its Perl runs', e.g. left by a killed server) or only its Perl runs' ('perl').
 */
export async function jobBackendPids(db: Client, jobId: number, which: 'job' | 'perl' = 'job'): Promise<number[]> {
  const names = which === 'perl' ? [perlRunApplicationName(jobId)] : [jobApplicationName(jobId), perlRunApplicationName(jobId)];
  const r = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY($1) AND pid <> pg_backend_pid() ORDER BY pid`,
    [names],
  );
  return r.rows.map((row) => row.pid);
}

/** pg_terminate_backend for one backend; false when it was gone already. Throws on missing rights. */
export async function terminateBackend(db: Client, pid: number): Promise<boolean> {
  const r = await db.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
  return r.rows[0].ok;
}
