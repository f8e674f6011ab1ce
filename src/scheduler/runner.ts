// Runs one claimed job as kivitendo's SL::DB::BackgroundJob::run does (spec task-server.md §7.4):
// history row first, then last_run_at and next_run_at from the time the job finished. Adds what the
// Perl server lacks: a wall-time limit that stops the job and rolls its transaction back, a clear
// failure for packages this server does not implement, and no write-back of unchanged columns.
import { formatLocalTimestamp, type Clock } from '../clock';
import type { Config } from '../config/config';
import { parkJob, recordRun, saveJobData } from '../db/backgroundJobs';
import { insertHistory, type HistoryRow } from '../db/backgroundJobHistories';
import { lazyJournal } from '../db/emailJournal';
import { jobApplicationName, jobBackendPids, terminateBackend } from '../db/jobBackends';
import { clientDbParams, dateStyleFor, openConnection, redact, type Client } from '../db/pg';
import { dumpJobData, parseJobData } from '../jobs/jobData';
import { readClientKivitendo, routeForClient } from '../jobs/clientRouting';
import { describeClientDatabase, kivitendoName, perlGlueNote } from '../jobs/releases';
import { isSchemaMismatch, schemaMismatchText } from '../jobs/schemaErrors';
import { runPerlAction, PerlRunError, type PerlJobResult } from '../jobs/perl/child';
import { JobError, type BackgroundJobRow, type ClientRow, type JobContext, type JobPackage, type TaskServerUser } from '../jobs/types';
import type { Logger } from '../log/logger';
import { createMailer } from '../mail/mailer';
import { CronSyntaxError, nextRunAt } from './cron';

export interface RunJobParams {
  config: Config;
  log: Logger;
  clock: Clock;
  nodeId: string;
  client: ClientRow;
  user: TaskServerUser;
  /** The runner's connection to the client DB: holds the claim, writes history and the job row. */
  control: Client;
  job: BackgroundJobRow;
  /** Aborted on shutdown: the job is stopped like at its time limit. */
  shutdown?: AbortSignal;
  /** Called with the pid of a Perl run's process once it runs (`status`). */
  onPerlPid?: (pid: number) => void;
  /** How the run goes, once the client's kivitendo decided it (status, metrics). */
  onRoute?: (kind: 'native' | 'perl' | 'unavailable') => void;
}

export interface RunOutcome {
  history: HistoryRow;
  /** null when the schedule is invalid and the job was parked (see parkJob). */
  nextRunAt: string | null;
}

class TimeLimitError extends JobError {}

export function timeLimitFor(config: Config, pkg: JobPackage | undefined, packageName: string | null): number {
  return (packageName && config.taskServer.jobTimeLimitsMs[packageName]) || pkg?.timeLimitMs || config.taskServer.jobTimeLimitMs;
}

/** Text of an error as it goes into history.error: message only, never a stack, never a password. */
function errorText(e: unknown, client: ClientRow): string {
  const msg = e instanceof Error ? e.message : String(e);
  return redact(msg, client.dbpasswd);
}

export async function runClaimedJob(p: RunJobParams): Promise<RunOutcome> {
  const { job, clock, control } = p;
  await stopOrphanedBackends(p);
  const runAt = formatLocalTimestamp(clock.now());

  // An invalid schedule would make kivitendo re-run the job every minute. Park it instead: it
  // does not run and is not due until the web UI's save (which validates the spec and recomputes
  // next_run_at) fixes it. See parkJob.
  try {
    nextRunAt(job.cron_spec, clock.now());
  } catch (e) {
    if (!(e instanceof CronSyntaxError)) throw e;
    const history = await insertHistory(control, {
      package_name: job.package_name, run_at: runAt, status: 'failure', result: null,
      error: `${e.message}; the job was not run and waits until its schedule is fixed`, data: job.data, description: null,
    });
    await parkJob(control, job);
    p.log.warn(`BackgroundJob ID ${job.id} of client ${p.client.name}: ${e.message}`);
    return { history, nextRunAt: null };
  }

  const kivi = await readClientKivitendo(p.config.kivitendoDir, control);
  const route = routeForClient(p.config, p.log, p.client, job.package_name, kivi);
  p.onRoute?.(route.kind);
  if (route.kind === 'perl') return runPerlClaimedJob(p, runAt, perlGlueNote(kivi));

  let status: 'success' | 'failure' = 'success';
  let result: string | null = null;
  let error: string | null = null;
  let ctx: JobContext | undefined;
  let original = '';
  let dataChanged = false;
  try {
    if (route.kind === 'unavailable') throw new JobError(route.reason);
    const pkg = route.pkg;
    const data = parseJobData(job.data, job.id, job.package_name);
    original = JSON.stringify(data);
    const ret = await withJobConnection(p, async (db, signal) => {
      let auth: Client | undefined;
      const jobCtx: JobContext = (ctx = {
        job,
        data,
        async saveData() {
          dataChanged = true;
          await saveJobData(control, job.id, dumpJobData(jobCtx.data));
        },
        db,
        async authDb() {
          auth ??= await openConnection(p.config.authDb, { applicationName: 'kivitendo-task-server job' });
          return auth;
        },
        client: p.client,
        user: p.user,
        config: p.config,
        kivitendoDir: p.config.kivitendoDir,
        clock,
        nodeId: p.nodeId,
        log: p.log,
        // kivitendo journals on the job's own DB handle, so a job that rolls back loses the row
        // too; the hook therefore writes through `db`, not through `control`.
        mailer: createMailer(p.config, p.user.settings.email, {
          journal: lazyJournal(db, p.user.login, () => clock.now()),
          warn: (m) => p.log.warn(m),
        }),
        signal,
      });
      try {
        return await pkg.run(jobCtx);
      } finally {
        await auth?.end().catch(() => undefined);
      }
    }, timeLimitFor(p.config, pkg, job.package_name));
    result = ret === undefined || ret === null ? null : String(ret);
  } catch (e) {
    status = 'failure';
    error = isSchemaMismatch(e) && route.kind === 'native'
      ? redact(schemaMismatchText(route.pkg.name, e, `${kivitendoName(kivi)}, ${describeClientDatabase(kivi)}`), p.client.dbpasswd)
      : errorText(e, p.client);
  }
  // Like kivitendo, history and row get the job's in-memory data; unchanged data keeps its text.
  if (ctx && (dataChanged || JSON.stringify(ctx.data) !== original)) dataChanged = true;
  const dataText = ctx && dataChanged ? dumpJobData(ctx.data) : job.data;
  return recordOutcome(p, runAt, { status, result, error, data: dataText }, dataChanged ? dataText : undefined);
}

/**
 * kivitendo's order after a run (spec §7.4): the history row, then last_run_at and the next
 * next_run_at from the time the job finished; `writeBack` is the job's data when it must be stored
 * in the row too (undefined: leave the row's data alone).
 */
async function recordOutcome(
  p: RunJobParams,
  runAt: string,
  o: { status: 'success' | 'failure'; result: string | null; error: string | null; data: string | null },
  writeBack: string | null | undefined,
): Promise<RunOutcome> {
  const { job, control } = p;
  if (o.error) p.log.warn(`BackgroundJob ID ${job.id} execution error (first three lines): ${o.error.split('\n').slice(0, 3).join('\n')}`);
  const history = await insertHistory(control, {
    package_name: job.package_name,
    run_at: runAt,
    status: o.status,
    result: o.status === 'success' ? o.result : null,
    error: o.error,
    data: o.data,
    // kivitendo leaves description NULL on failure rows (§7.4 step 4); rows stay identical.
    description: o.status === 'success' ? job.description : null,
  });
  const next = formatLocalTimestamp(nextRunAt(job.cron_spec, p.clock.now()));
  await recordRun(control, job.id, runAt, next, writeBack);
  return { history, nextRunAt: next };
}

const ORPHAN_WAIT_MS = 10_000;

/**
 * A server killed mid-job loses its claim (the advisory lock dies with its control connection), but
 * the job's backend runs on until PostgreSQL notices the client is gone — which a backend waiting
 * for a lock or busy in a long statement does not. Under our claim any backend named after the job
 * is such an orphan: terminate it and wait until it is gone, so that no job has two live backends.
 * Throws (nothing written, the claim is released by the caller) if it cannot be terminated.
 */
async function stopOrphanedBackends(p: RunJobParams): Promise<void> {
  const { control, job } = p;
  const orphans = await jobBackendPids(control, job.id);
  if (!orphans.length) return;
  p.log.problem(
    `BackgroundJob ID ${job.id} (${job.package_name}) of client ${p.client.name} still ran in database backend ${orphans.join(', ')} of a task server that is gone; terminated it before running the job again`,
  );
  for (const pid of orphans) {
    await terminateBackend(control, pid).catch((e: Error) => {
      throw new Error(`BackgroundJob ID ${job.id} still runs in database backend ${pid}, which cannot be terminated: ${e.message}`);
    });
  }
  const until = Date.now() + ORPHAN_WAIT_MS;
  for (let left = orphans; left.length; left = await jobBackendPids(control, job.id)) {
    if (Date.now() > until) throw new Error(`BackgroundJob ID ${job.id} still runs in database backend ${left.join(', ')} ${ORPHAN_WAIT_MS / 1000} s after it was terminated; not run`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Opens the job's own connection (with the user's DateStyle), runs fn, and closes it. At the time
 * limit or on shutdown the connection's backend is terminated from the control connection, which
 * rolls back whatever transaction the job had open and makes its pending queries fail.
 */
async function withJobConnection<T>(p: RunJobParams, fn: (db: Client, signal: AbortSignal) => Promise<T>, limitMs: number): Promise<T> {
  const db = await openConnection(clientDbParams(p.client), {
    dateStyle: dateStyleFor(p.user.settings.dateformat),
    applicationName: jobApplicationName(p.job.id),
  });
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onShutdown: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    const stop = (why: string) => {
      if (abort.signal.aborted) return;
      abort.abort(new TimeLimitError(why));
      p.control.query('SELECT pg_terminate_backend($1)', [(db as unknown as { processID: number }).processID]).catch(() => undefined);
      reject(abort.signal.reason);
    };
    // [task_server] job_time_limit = 0: no limit (Infinity), never a timer of 1 ms.
    if (Number.isFinite(limitMs)) {
      timer = setTimeout(
        () => stop(`job ${p.job.package_name} (ID ${p.job.id}) exceeded its time limit of ${Math.round(limitMs / 1000)} s and was stopped; its open transaction was rolled back`),
        limitMs,
      );
    }
    onShutdown = () => stop(`job ${p.job.package_name} (ID ${p.job.id}) was stopped because the task server shut down; its open transaction was rolled back`);
    p.shutdown?.addEventListener('abort', onShutdown, { once: true });
  });
  stopped.catch(() => undefined);
  try {
    return await Promise.race([fn(db, abort.signal), stopped]);
  } finally {
    clearTimeout(timer);
    if (onShutdown) p.shutdown?.removeEventListener('abort', onShutdown);
    await db.end().catch(() => undefined);
  }
}

// ---- kivitendo's own Perl packages (src/jobs/perl): one fresh perl process per run ----

/** The claimed job through kivitendo's Perl code; the history gets the job's data as the package left it. */
async function runPerlClaimedJob(p: RunJobParams, runAt: string, glueNote: string | undefined): Promise<RunOutcome> {
  const name = p.job.package_name ?? '';
  let r: PerlJobResult;
  try {
    r = (await runPerlAction({
      config: p.config, log: p.log, client: p.client, user: p.user,
      // package_name: the preloaded Perl parent loads the package for the runs after this one
      action: 'run_job', request: { job_id: p.job.id, package_name: name }, jobId: p.job.id,
      timeLimitMs: timeLimitFor(p.config, undefined, name), signal: p.shutdown, label: `job package ${name}`,
      onSpawn: p.onPerlPid,
    })) as PerlJobResult;
  } catch (e) {
    const data = e instanceof PerlRunError && e.data !== undefined ? e.data : p.job.data;
    // A failure of the glue itself (set-up, crash, no report) on a release it was not run against
    // names that; the package's own exception stays kivitendo's text.
    const glue = glueNote && e instanceof PerlRunError && ['init', 'crash', 'no-report'].includes(e.kind);
    return finishPerlRun(p, runAt, 'failure', null, errorText(e, p.client) + (glue ? ` (${glueNote})` : ''), data);
  }
  return finishPerlRun(p, runAt, 'success', r.result, null, r.data);
}

/**
 * History row and rescheduling after a Perl run. The package writes background_jobs.data itself
 * while it runs (progress the web UI polls). kivitendo's final save of the job object stores the
 * data as the package left it in memory; so does this, but only when that differs from the row now:
 * a package that saved its data itself (the usual case) gets no second write.
 */
async function finishPerlRun(
  p: RunJobParams, runAt: string, status: 'success' | 'failure', result: string | null, error: string | null, data: string | null,
): Promise<RunOutcome> {
  let writeBack: string | null | undefined;
  if (data !== p.job.data) {
    const fresh = await p.control.query<{ data: string | null }>('SELECT data FROM background_jobs WHERE id = $1', [p.job.id]);
    if (fresh.rows.length && fresh.rows[0].data !== data) writeBack = data;
  }
  return recordOutcome(p, runAt, { status, result, error, data }, writeBack);
}
