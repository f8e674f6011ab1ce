// One fresh kivitendo Perl process per run (Resque's and Minion's model): the memory kivitendo's
// modules take goes back to the OS after every run, a hung run can be killed without harming the
// daemon, and kivitendo's own packages run unchanged. The Perl side is kivitendo-child.pl (plus
// optional actions/<action>.pl), embedded into the bundle by build.ts and read from disk otherwise.
//
// Protocol: `perl -` reads the glue from stdin; one JSON request line goes to descriptor 3 and one
// JSON result line comes back on it. stdout/stderr are only logged, line by line with the job id.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import type { Config } from '../../config/config';
import { jobApplicationName } from '../../db/jobBackends';
import { clientDbParams, openConnection, redact } from '../../db/pg';
import type { Logger } from '../../log/logger';
import { JobError, type ClientRow, type TaskServerUser } from '../types';
import { forkPreloaded, type ForkedRun } from './preload';

declare const __KTS_PERL_FILES__: Record<string, string> | undefined;

/** After SIGTERM to the child's process group, SIGKILL follows after this long. */
export const KILL_GRACE_MS = 3000;

export interface PerlActionParams {
  config: Config;
  log: Logger;
  client: ClientRow;
  user: TaskServerUser;
  /** 'run_job' or the name of a file in src/jobs/perl/actions/ without .pl */
  action: string;
  /** JSON-serialisable; for run_job: { job_id } */
  request: Record<string, unknown>;
  /** the job this run belongs to (PGAPPNAME, log lines) */
  jobId: number;
  timeLimitMs: number;
  /** aborted at shutdown/time limit: TERM the child's process group, KILL after a short grace, terminate its backends */
  signal?: AbortSignal;
  /** Names the run in messages, e.g. "job package CsvImport"; default from action and job id. */
  label?: string;
  /**
   * false: a run that fails leaves the job's other backends alone (a render process of
   * CreatePeriodicInvoices beside the printing process of the same job); the time limit and
   * shutdown still terminate them. Default true.
   */
  terminateBackendsOnFailure?: boolean;
  /** Called with the child's pid once it runs (tests, benchmarks). */
  onSpawn?: (pid: number) => void;
}

/** What the glue reports for run_job. */
export interface PerlJobResult {
  result: string | null;
  /** background_jobs.data as the package left it in memory (YAML text). */
  data: string | null;
}

export type PerlFailureKind = 'no-perl' | 'missing-module' | 'compile' | 'init' | 'run' | 'crash' | 'no-report' | 'time-limit' | 'shutdown';

/** A failed Perl run. `message` is one line naming the run and the cause, except for kind 'run' of run_job (kivitendo's own exception text, as kivitendo writes it into the history). */
export class PerlRunError extends JobError {
  constructor(
    message: string,
    readonly kind: PerlFailureKind,
    /** kivitendo's exception text, in full (kinds run, compile, init, missing-module). */
    readonly perlError?: string,
    /** For run_job: the job's data after the failed run, when the package got that far. */
    readonly data?: string | null,
  ) {
    super(message);
    this.name = 'PerlRunError';
  }
}

interface Answer {
  ok: 0 | 1;
  phase?: 'init' | 'load' | 'run';
  error?: string;
  missing_module?: string;
  result?: unknown;
  data?: string | null;
}

/** The text of one of the Perl files (kivitendo-child.pl, actions/<name>.pl); undefined if absent. */
export function perlSource(name: string): string | undefined {
  if (typeof __KTS_PERL_FILES__ !== 'undefined') return __KTS_PERL_FILES__[name];
  const file = path.join(__dirname, name);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
}



/**
 * Terminates the backends a job's Perl process left behind in the client's database. Job ids are
 * per client database, and several clients' databases (and every client's auth connections) share
 * a cluster, so the name is only matched inside the client's own database: elsewhere
 * "kivitendo-task-server job 5" may be another client's job 5 running right now.
 */
export async function terminateJobBackends(client: ClientRow, jobId: number): Promise<number> {
  const params = clientDbParams(client);
  const db = await openConnection(params, { applicationName: 'kivitendo-task-server' });
  try {
    const r = await db.query(
      'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()',
      [jobApplicationName(jobId)],
    );
    return r.rows[0].n;
  } finally {
    await db.end().catch(() => undefined);
  }
}

function firstLine(text: string): string {
  return (text.split('\n').find((l) => l.trim() !== '') ?? text).trim();
}

/**
 * Process groups of the Perl children now running. Should the daemon exit while one runs (a second
 * SIGTERM, a fatal error), they are killed on the way out instead of running on as orphans.
 */
const running = new Set<number>();
let exitHookInstalled = false;
function track(pid: number) {
  running.add(pid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of running) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

/** Waits (at most ms) until pid has ended: no such process, or a zombie left to its parent to reap. */
async function untilGone(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return;
    }
    if (/\) [ZX] /.test(stat)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

function killGroup(child: { pid?: number }, signal: NodeJS.Signals) {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* the group is gone */
  }
}

/**
 * Runs one action in a fresh kivitendo Perl process. Resolves with the action's JSON result (for
 * run_job a PerlJobResult); rejects with a PerlRunError.
 */
export function runPerlAction(p: PerlActionParams): Promise<unknown> {
  const label = p.label ?? (p.action === 'run_job' ? `job ${p.jobId}` : `Perl action ${p.action}`);
  const perl = p.config.taskServer.perl;
  if (!perl) return Promise.reject(new PerlRunError(`${label} needs kivitendo's Perl code, but the Perl path is switched off ([task_server] perl = 0)`, 'no-perl'));
  const glue = perlSource('kivitendo-child.pl');
  if (!glue) return Promise.reject(new Error('kivitendo-child.pl is missing from this build'));
  let actionSource: string | undefined;
  if (p.action !== 'run_job') {
    if (!/^[a-z][a-z0-9_]*$/.test(p.action) || !(actionSource = perlSource(`actions/${p.action}.pl`))) {
      return Promise.reject(new PerlRunError(`${label}: no such Perl action '${p.action}' in this build`, 'init'));
    }
  }
  const request = {
    action: p.action,
    client_id: p.client.id,
    login: p.user.login,
    config_file: path.resolve(p.config.kivitendoDir, p.config.configPath),
    params: p.request,
    action_source: actionSource,
  };

  const started = Date.now();
  // A child of the preloaded parent when there is one (kivitendo's modules loaded already), else a cold perl.
  return forkPreloaded(p.config, p.log, glue, request, jobApplicationName(p.jobId)).then((forked) => new Promise((resolve, reject) => {
    const child: RunProcess = forked ?? spawn(perl, ['-'], {
      cwd: p.config.kivitendoDir,
      detached: true, // its own process group: TERM/KILL reach whatever it started, too
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, PGAPPNAME: jobApplicationName(p.jobId), KTS_SERVER_PID: String(process.pid) },
    });
    if (forked) p.log.debug(`BackgroundJob ID ${p.jobId}: forked by the preloaded Perl parent ${forked.parentPid} as Perl process ${forked.pid}`);
    let answerText = '';
    let stopped: { kind: 'time-limit' | 'shutdown'; message: string } | undefined;
    let lastStderr = '';
    let spawnError: NodeJS.ErrnoException | undefined;
    const timers: NodeJS.Timeout[] = [];

    const logLines = (stream: Readable | null, name: string) => {
      if (!stream) return;
      const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
      rl.on('line', (line) => {
        if (name === 'stderr' && line.trim()) lastStderr = line.trim();
        p.log.info(`BackgroundJob ID ${p.jobId} perl ${name}: ${redact(redact(line, p.client.dbpasswd), p.config.authDb.password)}`);
      });
    };
    logLines(child.stdout, 'stdout');
    logLines(child.stderr, 'stderr');
    const control = (forked ? forked.control : (child as ChildProcess).stdio[3]) as Readable & { write(s: string): boolean; end(): void };
    control.setEncoding('utf8');
    control.on('data', (d: string) => (answerText += d));
    control.on('error', () => undefined);
    if (!forked) {
      const cold = child as ChildProcess;
      cold.stdin!.on('error', () => undefined);
      cold.stdin!.end(glue);
      control.write(JSON.stringify(request) + '\n');
    }

    const stop = (kind: 'time-limit' | 'shutdown', message: string) => {
      if (stopped) return;
      stopped = { kind, message };
      p.log.warn(`BackgroundJob ID ${p.jobId}: ${message}`);
      killGroup(child, 'SIGTERM');
      timers.push(setTimeout(() => killGroup(child, 'SIGKILL'), KILL_GRACE_MS));
      terminateJobBackends(p.client, p.jobId).catch((e) => p.log.warn(`BackgroundJob ID ${p.jobId}: terminating its database backends failed: ${(e as Error).message}`));
    };
    timers.push(
      setTimeout(
        () => stop('time-limit', `${label} (ID ${p.jobId}) exceeded its time limit of ${Math.round(p.timeLimitMs / 1000)} s and was stopped; its Perl process was killed and its database backends terminated`),
        p.timeLimitMs,
      ),
    );
    const onAbort = () => stop('shutdown', `${label} (ID ${p.jobId}) was stopped because the task server shut down; its Perl process was killed and its database backends terminated`);
    if (p.signal?.aborted) onAbort();
    else p.signal?.addEventListener('abort', onAbort, { once: true });

    child.on('spawn', () => {
      track(child.pid!);
      p.onSpawn?.(child.pid!);
    });
    let finished = false;
    child.on('error', (e: NodeJS.ErrnoException) => {
      spawnError = e;
      if (child.pid === undefined) void finish(null, null);
    });
    // The glue closes stdout and stderr, then writes its answer and closes the result channel, and
    // exits: with all three at their end and an answer in hand the run is over, without waiting for
    // the kernel to tear the process down (milliseconds for a fork of the preloaded parent).
    let streamsEnded = 0;
    let answered = false;
    for (const s of [child.stdout, child.stderr, control]) {
      s?.on('end', () => {
        if (++streamsEnded === 3 && answerText.includes('\n')) void ((answered = true), finish(0, null));
      });
    }
    child.on('close', (code, signal) => void finish(code, signal));
    // 'close' waits for stdout/stderr, which something the package started may still hold: once
    // perl itself is gone, its group is killed, and the run ends shortly after in any case.
    child.on('exit', (code, signal) => {
      killGroup(child, 'SIGKILL');
      setTimeout(() => {
        for (const s of [child.stdout, child.stderr, control]) s?.destroy();
        void finish(code, signal);
      }, 2000).unref();
    });
    const finish = async (code: number | null, signal: NodeJS.Signals | null) => {
      if (finished) return;
      finished = true;
      for (const t of timers) clearTimeout(t);
      p.signal?.removeEventListener('abort', onAbort);
      // Nothing of the run may outlive it: leftovers in its group, backends it left open. A forked
      // child is not ours to reap, so wait until the kernel has really ended it before the
      // history row says it was killed.
      killGroup(child, 'SIGKILL');
      if (child.pid && !answered) await untilGone(child.pid, 2000);
      if (child.pid) running.delete(child.pid);
      let answer: Answer | undefined;
      try {
        const line = answerText.split('\n').find((l) => l.trim() !== '');
        if (line) answer = JSON.parse(line) as Answer;
      } catch {
        answer = undefined;
      }
      if (stopped || (!answer?.ok && p.terminateBackendsOnFailure !== false)) {
        await terminateJobBackends(p.client, p.jobId).catch(() => 0);
      }
      p.log.debug(`BackgroundJob ID ${p.jobId}: Perl process ${child.pid ?? '-'} finished after ${Date.now() - started} ms (exit ${code ?? signal})`);
      const hide = (text: string) => redact(redact(text, p.client.dbpasswd), p.config.authDb.password);
      const fail = (message: string, kind: PerlFailureKind, perlError?: string, data?: string | null) =>
        reject(new PerlRunError(hide(message), kind, perlError && hide(perlError), data));
      if (stopped) return fail(stopped.message, stopped.kind);
      if (spawnError) {
        const why = spawnError.code === 'ENOENT' ? `'${perl}' not found` : spawnError.code === 'EACCES' ? `'${perl}' is not executable` : spawnError.message;
        return fail(`${label} needs kivitendo's Perl code, but perl cannot be started: ${why} (install perl or set [task_server] perl)`, 'no-perl');
      }
      if (!answer) {
        const tail = lastStderr ? `; last output: ${lastStderr}` : '';
        if (forked?.parentDied) return fail(`${label}: kivitendo's Perl process was killed because ${forked.parentDied}${tail}`, 'crash');
        if (signal) {
          const oom = signal === 'SIGKILL' ? ' (the kernel\'s OOM killer sends SIGKILL: out of memory?)' : '';
          return fail(`${label}: kivitendo's Perl process was killed by ${signal}${oom} before it reported a result${tail}`, 'crash');
        }
        return fail(`${label}: kivitendo's Perl process exited with code ${code} without reporting a result${tail}`, 'no-report');
      }
      if (answer.ok) return resolve(p.action === 'run_job' ? { result: (answer.result as string | null) ?? null, data: answer.data ?? null } : answer.result);
      const error = answer.error ?? 'unknown error';
      if (answer.missing_module) {
        return fail(`${label} cannot run: kivitendo's Perl code needs the Perl module ${answer.missing_module}, which is not installed`, 'missing-module', error, answer.data);
      }
      if (answer.phase === 'init') return fail(`${label}: kivitendo could not be initialised for client ${p.client.name}: ${firstLine(error)}`, 'init', error);
      if (answer.phase === 'load') return fail(`${label} does not compile: ${firstLine(error)}`, 'compile', error);
      // A package's own failure: kivitendo's history text, unchanged (run_job); one line for actions.
      if (p.action === 'run_job') return fail(error, 'run', error, answer.data);
      return fail(`${label}: ${firstLine(error)}`, 'run', error);
    };
  }));
}

/** What runPerlAction needs of a run's process: a cold perl or a child of the preloaded parent. */
type RunProcess = ChildProcess | ForkedRun;

/** Why a package's kivitendo module cannot be loaded, as one line (undefined: it loads). */
export type PackageProbe = Map<string, string | undefined>;

/**
 * Loads kivitendo's modules of the named packages in one perl process (for `check`), without
 * running anything. Rejects when perl cannot be started.
 */
export function probePerlPackages(config: Config, names: string[]): Promise<PackageProbe> {
  const perl = config.taskServer.perl;
  if (!perl) return Promise.reject(new Error('the Perl path is switched off ([task_server] perl = 0)'));
  const script = [
    'BEGIN { unshift @INC, "modules/override"; push @INC, "." }',
    'for my $p (@ARGV) {',
    '  if (eval "require SL::BackgroundJob::$p; 1") { print "$p\\tok\\n"; next }',
    '  my $e = "$@";',
    '  if ($e =~ m{^Can\'t locate (\\S+)\\.pm in \\@INC}) { (my $m = $1) =~ s{/}{::}g; print "$p\\tmissing\\t$m\\n"; next }',
    '  $e =~ s/\\n.*//s; print "$p\\terror\\t$e\\n";',
    '}',
  ].join('\n');
  return new Promise((resolve, reject) => {
    const child = spawn(perl, ['-e', script, ...names], { cwd: config.kivitendoDir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.resume();
    child.on('error', (e: NodeJS.ErrnoException) => reject(new Error(e.code === 'ENOENT' ? `'${perl}' not found` : e.message)));
    child.on('close', () => {
      const probe: PackageProbe = new Map();
      for (const line of out.split('\n')) {
        const [name, state, detail] = line.split('\t');
        if (!name || !names.includes(name)) continue;
        probe.set(name, state === 'ok' ? undefined : state === 'missing' ? `kivitendo's Perl code needs the Perl module ${detail}, which is not installed` : `does not compile: ${detail}`);
      }
      for (const n of names) if (!probe.has(n)) probe.set(n, 'loading it killed perl');
      resolve(probe);
    });
  });
}
