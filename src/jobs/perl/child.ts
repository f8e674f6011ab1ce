// One fresh kivitendo Perl process per run (Resque's and Minion's model): the memory kivitendo's
// modules take goes back to the OS after every run, a hung run can be killed without harming the
// daemon, and kivitendo's own packages run unchanged. The Perl side is kivitendo-child.pl (plus
// optional actions/<action>.pl), embedded into the bundle by build.ts and read from disk otherwise.
//
// A run along its protocol, one place per step:
//   spawn/fork   runPerlAction here: a child of the preloaded parent (preload.ts), else a cold `perl -`
//                that reads the glue from stdin and one JSON request line from descriptor 3;
//   streams      streams.ts: stdout/stderr logged line by line with the job id, bounded; the one
//                JSON result line on descriptor 3 (or the control socket of a forked run);
//   report       report.ts: that line (or how the process ended) becomes the result or a PerlRunError;
//   clean-up     cleanup.ts: the run's process group and its own database backends.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Config } from '../../config/config';
import { perlRunApplicationName } from '../../db/jobBackends';
import { redact } from '../../db/pg';
import { lookupUser } from '../../daemon/privileges';
import type { Logger } from '../../log/logger';
import type { ClientRow, TaskServerUser } from '../types';
import { KILL_GRACE_MS, killGroup, terminatePerlRunBackends, trackGroup, untilGone, untrackGroup } from './cleanup';
import { forkPreloaded, type ForkedRun } from './preload';
import { outcomeOf, PerlRunError, type Answer, type RunEnd } from './report';
import { AnswerChannel, OutputBudget } from './streams';

export { KILL_GRACE_MS, terminatePerlRunBackends } from './cleanup';
export { PerlRunError, type PerlFailureKind, type PerlJobResult } from './report';

declare const __KTS_PERL_FILES__: Record<string, string> | undefined;

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
  /** Infinity: no limit ([task_server] job_time_limit = 0). */
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

/** The text of one of the Perl files (kivitendo-child.pl, actions/<name>.pl); undefined if absent. */
export function perlSource(name: string): string | undefined {
  if (typeof __KTS_PERL_FILES__ !== 'undefined') return __KTS_PERL_FILES__[name];
  const file = path.join(__dirname, name);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
}

/** What runPerlAction needs of a run's process: a cold perl or a child of the preloaded parent. */
type RunProcess = ChildProcess | ForkedRun;

interface Prepared {
  label: string;
  perl: string;
  glue: string;
  request: Record<string, unknown>;
}

/**
 * Runs one action in a fresh kivitendo Perl process. Resolves with the action's JSON result (for
 * run_job a PerlJobResult); rejects with a PerlRunError.
 */
export async function runPerlAction(p: PerlActionParams): Promise<unknown> {
  const prepared = prepare(p);
  const appName = perlRunApplicationName(p.jobId);
  const forked = await forkPreloaded(p.config, p.log, prepared.glue, prepared.request, appName);
  if (forked) p.log.debug(`BackgroundJob ID ${p.jobId}: forked by the preloaded Perl parent ${forked.parentPid} as Perl process ${forked.pid}`);
  // A cold perl's spawn error comes on the next tick: supervise it in the same tick it is spawned.
  return superviseRun(p, prepared, forked ?? spawnCold(p, prepared, appName));
}

function prepare(p: PerlActionParams): Prepared {
  const label = p.label ?? (p.action === 'run_job' ? `job ${p.jobId}` : `Perl action ${p.action}`);
  const perl = p.config.taskServer.perl;
  if (!perl) throw new PerlRunError(`${label} needs kivitendo's Perl code, but the Perl path is switched off ([task_server] perl = 0)`, 'no-perl');
  const glue = perlSource('kivitendo-child.pl');
  if (!glue) throw new Error('kivitendo-child.pl is missing from this build');
  let actionSource: string | undefined;
  if (p.action !== 'run_job') {
    if (!/^[a-z][a-z0-9_]*$/.test(p.action) || !(actionSource = perlSource(`actions/${p.action}.pl`))) {
      throw new PerlRunError(`${label}: no such Perl action '${p.action}' in this build`, 'init');
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
  return { label, perl, glue, request };
}

/** Spawn: a cold `perl -` reading the glue from stdin and the request from descriptor 3. */
function spawnCold(p: PerlActionParams, { perl, glue, request }: Prepared, appName: string): ChildProcess {
  const cold = spawn(perl, ['-'], {
    cwd: p.config.kivitendoDir,
    detached: true, // its own process group: TERM/KILL reach whatever it started, too
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, PGAPPNAME: appName, KTS_SERVER_PID: String(process.pid) },
  });
  cold.stdin!.on('error', () => undefined);
  cold.stdin!.end(glue);
  const control = cold.stdio[3] as unknown as { write(s: string): boolean; on(e: string, f: () => void): void };
  control.on('error', () => undefined);
  control.write(JSON.stringify(request) + '\n');
  return cold;
}

/**
 * Time limit and shutdown: the run's process group gets SIGTERM (SIGKILL after a grace) and its
 * backends are terminated — unless its result is in already: the report that arrived first wins.
 */
function armStops(p: PerlActionParams, label: string, child: RunProcess, answers: AnswerChannel) {
  let stopped: RunEnd['stopped'];
  const timers: NodeJS.Timeout[] = [];
  const stop = (kind: 'time-limit' | 'shutdown', message: string) => {
    if (stopped) return;
    if (answers.complete) {
      // It reported first: its result counts. What it may have left running still goes.
      p.log.debug(`BackgroundJob ID ${p.jobId}: ${kind} after the Perl process reported its result; the result stands`);
      killGroup(child.pid, 'SIGKILL');
      return;
    }
    stopped = { kind, message };
    p.log.warn(`BackgroundJob ID ${p.jobId}: ${message}`);
    killGroup(child.pid, 'SIGTERM');
    timers.push(setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS));
    terminatePerlRunBackends(p.client, p.jobId).catch((e) => p.log.warn(`BackgroundJob ID ${p.jobId}: terminating its database backends failed: ${(e as Error).message}`));
  };
  if (Number.isFinite(p.timeLimitMs)) {
    timers.push(setTimeout(
      () => stop('time-limit', `${label} (ID ${p.jobId}) exceeded its time limit of ${Math.round(p.timeLimitMs / 1000)} s and was stopped; its Perl process was killed and its database backends terminated`),
      p.timeLimitMs,
    ));
  }
  const onAbort = () => stop('shutdown', `${label} (ID ${p.jobId}) was stopped because the task server shut down; its Perl process was killed and its database backends terminated`);
  if (p.signal?.aborted) onAbort();
  else p.signal?.addEventListener('abort', onAbort, { once: true });
  return {
    stopped: () => stopped,
    disarm() {
      for (const t of timers) clearTimeout(t);
      p.signal?.removeEventListener('abort', onAbort);
    },
  };
}

/** Streams, time limit and shutdown, then clean-up and the report of one started run. */
function superviseRun(p: PerlActionParams, prep: Prepared, child: RunProcess): Promise<unknown> {
  const started = Date.now();
  const forked = 'control' in child ? (child as ForkedRun) : undefined;
  const hide = (text: string) => redact(redact(text, p.client.dbpasswd), p.config.authDb.password);
  let lastStderr = '';
  const output = new OutputBudget((name, line) => {
    if (name === 'stderr' && line.trim()) lastStderr = line.trim();
    p.log.info(`BackgroundJob ID ${p.jobId} perl ${name}: ${hide(line)}`);
  });
  output.follow(child.stdout, 'stdout');
  output.follow(child.stderr, 'stderr');
  const control = (forked ? forked.control : (child as ChildProcess).stdio[3]) as Readable;
  const answers = new AnswerChannel(control);
  const stops = armStops(p, prep.label, child, answers);

  return new Promise((resolve, reject) => {
    let spawnError: NodeJS.ErrnoException | undefined;
    let finished = false;
    child.on('spawn', () => {
      trackGroup(child.pid!);
      p.onSpawn?.(child.pid!);
    });
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
        if (++streamsEnded === 3 && answers.complete) void ((answered = true), finish(0, null));
      });
    }
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => void finish(code, signal));
    // 'close' waits for stdout/stderr, which something the package started may still hold: once
    // perl itself is gone, its group is killed, and the run ends shortly after in any case.
    child.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      killGroup(child.pid, 'SIGKILL');
      setTimeout(() => {
        for (const s of [child.stdout, child.stderr, control]) s?.destroy();
        void finish(code, signal);
      }, 2000).unref();
    });

    const finish = async (code: number | null, signal: NodeJS.Signals | null) => {
      if (finished) return;
      finished = true;
      stops.disarm();
      // Nothing of the run may outlive it: leftovers in its group, backends it left open, the
      // preloaded parent's socket for it. A forked child is not ours to reap, so wait until the
      // kernel has really ended it before the history row says it was killed (not needed once it
      // answered and closed its output: then it only has its _exit left).
      killGroup(child.pid, 'SIGKILL');
      if (child.pid && !answered) await untilGone(child.pid, 2000);
      if (child.pid) untrackGroup(child.pid);
      forked?.release();
      const answer = answers.answer<Answer>();
      if (forked && Array.isArray(answer?.kts_modules)) forked.learn(answer.kts_modules);
      const stopped = stops.stopped();
      if (stopped || (!answer?.ok && p.terminateBackendsOnFailure !== false)) {
        await terminatePerlRunBackends(p.client, p.jobId).catch(() => 0);
      }
      const dropped = output.summary();
      if (dropped) p.log.info(`BackgroundJob ID ${p.jobId} perl: ${dropped}`);
      p.log.debug(`BackgroundJob ID ${p.jobId}: Perl process ${child.pid ?? '-'} finished after ${Date.now() - started} ms (exit ${code ?? signal})`);
      const outcome = outcomeOf({
        label: prep.label, action: p.action, clientName: p.client.name, perl: prep.perl, answer, answerTooLong: answers.tooLong,
        stopped, spawnError, code, signal, lastStderr, parentDied: forked?.parentDied, hide,
      });
      if ('error' in outcome) reject(outcome.error);
      else resolve(outcome.value);
    };
  });
}

/** Why a package's kivitendo module cannot be loaded, as one line (undefined: it loads). */
export type PackageProbe = Map<string, string | undefined>;

/** How long `check` lets perl load the packages' modules (a cold kivitendo takes 3–15 s). */
export const PROBE_TIMEOUT_MS = 60_000;

/**
 * Loads kivitendo's modules of the named packages in one perl process (for `check`), without
 * running anything — but loading a package runs its top-level code: so as the user jobs run as
 * (`run_as`, when check runs as root; as task_server.pl loads them only after dropping to it) and
 * bounded in time. Rejects when perl cannot be started.
 */
export function probePerlPackages(config: Config, names: string[], timeoutMs = PROBE_TIMEOUT_MS): Promise<PackageProbe> {
  const perl = config.taskServer.perl;
  if (!perl) return Promise.reject(new Error('the Perl path is switched off ([task_server] perl = 0)'));
  const script = [
    'BEGIN { unshift @INC, "modules/override"; push @INC, "." }',
    '$| = 1;',
    'for my $p (@ARGV) {',
    '  if (eval "require SL::BackgroundJob::$p; 1") { print "$p\\tok\\n"; next }',
    '  my $e = "$@";',
    '  if ($e =~ m{^Can\'t locate (\\S+)\\.pm in \\@INC}) { (my $m = $1) =~ s{/}{::}g; print "$p\\tmissing\\t$m\\n"; next }',
    '  $e =~ s/\\n.*//s; print "$p\\terror\\t$e\\n";',
    '}',
  ].join('\n');
  const runAs = process.getuid?.() === 0 && config.taskServer.runAs ? lookupUser(config.taskServer.runAs) : undefined;
  if (process.getuid?.() === 0 && config.taskServer.runAs && !runAs) {
    return Promise.reject(new Error(`[task_server] run_as user ${config.taskServer.runAs} does not exist`));
  }
  return new Promise((resolve, reject) => {
    const child = spawn(perl, ['-e', script, ...names], {
      cwd: config.kivitendoDir,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own group: the time limit reaches whatever a package's top-level code started
      ...(runAs && { uid: runAs.uid, gid: runAs.gid, env: { ...process.env, USER: runAs.name, LOGNAME: runAs.name, HOME: runAs.home || '/' } }),
    });
    let out = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.resume();
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(e.code === 'ENOENT' ? `'${perl}' not found` : e.message));
    });
    child.on('close', () => {
      clearTimeout(timer);
      const probe: PackageProbe = new Map();
      for (const line of out.split('\n')) {
        const [name, state, detail] = line.split('\t');
        if (!name || !names.includes(name)) continue;
        probe.set(name, state === 'ok' ? undefined : state === 'missing' ? `kivitendo's Perl code needs the Perl module ${detail}, which is not installed` : `does not compile: ${detail}`);
      }
      const why = timedOut ? `loading it took longer than ${timeoutMs / 1000} s; stopped` : 'loading it killed perl';
      for (const n of names) if (!probe.has(n)) probe.set(n, why);
      resolve(probe);
    });
  });
}
