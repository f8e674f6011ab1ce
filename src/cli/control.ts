// status / stop / restart / reload / start: the pid-file side of the CLI. `status` and `stop` need
// no database and no valid configuration beyond its file name (spec §14.11, deliberate difference).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { childReporter, foregroundReporter, startDetached } from '../daemon/detach';
import { Fatal } from '../daemon/errors';
import { DEFAULT_SHUTDOWN_GRACE_MS, loadConfig } from '../config/config';
import { alreadyRunningMessage, isAlive, pidState, processUid, readPid, removeStale } from '../daemon/pidFile';
import { readStateFile, stateFilePath } from '../daemon/stateFile';
import type { CliOptions } from './args';
import { formatDaemonState } from './statusFormat';
import { PROGRAM } from './usage';

export interface Context {
  opts: CliOptions;
  root: string;
  configPath: string;
  explicitConfig: boolean;
  pidFile: string;
}

const out = (line: string) => process.stdout.write(line + '\n');

export const NOT_RUNNING = `No ${PROGRAM} running`;

export function status(ctx: Context): number {
  const s = pidState(ctx.pidFile);
  if (s.state === 'running') {
    out(`${PROGRAM} running - pid ${s.pid}`);
    // What the daemon publishes about itself; the first line and the exit code stay as before.
    const state = readStateFile(stateFilePath(ctx.pidFile), s.pid);
    if (state) for (const l of formatDaemonState(state, Date.now())) out(l);
    else out(`  (no state published by pid ${s.pid} yet: it is starting, or it is an older version)`);
    return 0;
  }
  if (s.state === 'dead') {
    out(`${PROGRAM} dead`);
    return 1;
  }
  out(NOT_RUNNING);
  return 3;
}

/**
 * Timing of the kill sequence (spec §2.6): INT, TERM after 15 s, KILL after 30 s. The daemon gives
 * running jobs [task_server] shutdown_grace after INT and exits at once on a second signal, so the
 * TERM waits until the grace period is over plus a margin for the failure rows.
 */
export const KILL_TIMING = { intWaitMs: 15_000, termWaitMs: 15_000, killWaitMs: 30_000, graceMarginMs: 5000, pollMs: 20 };

export function killTimes(graceMs: number) {
  const term = Math.max(KILL_TIMING.intWaitMs, graceMs + KILL_TIMING.graceMarginMs);
  return { term, kill: term + KILL_TIMING.termWaitMs, giveUp: term + KILL_TIMING.termWaitMs + KILL_TIMING.killWaitMs };
}

/** The daemon's grace period from its configuration; stop works without a valid one (the default then). */
function configuredGrace(ctx: Context): number {
  try {
    return loadConfig(ctx.root, ctx.configPath).taskServer.shutdownGraceMs;
  } catch {
    return DEFAULT_SHUTDOWN_GRACE_MS;
  }
}

function userName(uid: number): string | undefined {
  try {
    return execFileSync('getent', ['passwd', String(uid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(':')[0] || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Signals the daemon. EPERM (the daemon runs as another user) ends the command with exit code 4,
 * LSB's "user had insufficient privilege", and a line saying whom to ask.
 */
function signal(pid: number, sig: NodeJS.Signals, command: string): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return;
    if (code === 'EPERM') {
      const uid = processUid(pid);
      const name = uid === undefined ? undefined : userName(uid);
      const owner = uid === undefined ? 'another user' : name ? `user ${name} (uid ${uid})` : `uid ${uid}`;
      throw new Fatal(`Error: Not allowed to send ${sig} to ${PROGRAM} (pid ${pid}): it runs as ${owner}; run ${command} as root or as that user`, 4);
    }
    throw e;
  }
}

// Polled (Node has no pidfd): every 20 ms, so `stop` returns right after an idle daemon is gone.
async function waitGone(pid: number, untilMs: number): Promise<boolean> {
  while (Date.now() < untilMs) {
    if (!isAlive(pid)) return true;
    await sleep(KILL_TIMING.pollMs);
  }
  return !isAlive(pid);
}

/** INT, wait; TERM, wait; KILL, wait — kivitendo's messages. Returns false if it would not die. */
export async function killSequence(pid: number, command = 'stop', graceMs = DEFAULT_SHUTDOWN_GRACE_MS): Promise<boolean> {
  const t0 = Date.now();
  const at = killTimes(graceMs);
  signal(pid, 'SIGINT', command);
  out(`Killing ${pid}`);
  if (await waitGone(pid, t0 + 1000)) return true;
  out(`Waiting for ${pid} to die...`);
  if (!(await waitGone(pid, t0 + at.term))) {
    signal(pid, 'SIGTERM', command);
    out(`Killing ${pid} with -TERM...`);
    if (!(await waitGone(pid, t0 + at.kill))) {
      signal(pid, 'SIGKILL', command);
      out(`Killing ${pid} with -KILL...`);
      if (!(await waitGone(pid, t0 + at.giveUp))) {
        out(`Giving up on ${pid} ever dying.`);
        return false;
      }
    }
  }
  out(`Process ${pid} is gone`);
  return true;
}

function removeIfStillPid(file: string, pid: number) {
  try {
    if (readPid(file) === pid) fs.unlinkSync(file);
  } catch {
    /* gone already */
  }
}

/** Stops a running daemon. Returns 0 (also when none ran) or 1 when it would not die. */
export async function stop(ctx: Context): Promise<number> {
  const s = pidState(ctx.pidFile);
  if (s.state !== 'running') {
    out(NOT_RUNNING);
    if (s.state === 'dead') removeStale(ctx.pidFile);
    return 0;
  }
  if (!(await killSequence(s.pid, 'stop', configuredGrace(ctx)))) return 1;
  removeIfStillPid(ctx.pidFile, s.pid);
  return 0;
}

/** The arguments the detached child gets: same command line, made explicit. */
function childArgs(ctx: Context): string[] {
  const args = ['start', '--kivitendo-dir', ctx.root];
  if (ctx.opts.configFile) args.push('-c', ctx.opts.configFile);
  return args;
}

const journald = (ctx: Context) => ctx.opts.daemonChild === 'syslog' || Boolean(process.env.JOURNAL_STREAM);

export async function start(ctx: Context): Promise<number> {
  const loc = { root: ctx.root, configPath: ctx.configPath, explicit: ctx.explicitConfig };
  // Loaded on demand: status, stop and the `start` launcher never evaluate the scheduler, the jobs
  // and their libraries, which is most of the bundle (~0.1 s of every short CLI call).
  const { runDaemon, runJobOnce } = await import('../daemon/daemon');
  if (ctx.opts.runJob !== undefined) {
    return runJobOnce({ ...loc, jobId: ctx.opts.runJob, client: ctx.opts.client, journald: journald(ctx) });
  }
  if (ctx.opts.daemonChild) {
    return runDaemon({ ...loc, reporter: childReporter(), detached: true, journald: journald(ctx), stderrLost: ctx.opts.daemonChild === 'debug-log' });
  }
  const s = pidState(ctx.pidFile);
  if (s.state === 'running') {
    out(alreadyRunningMessage(s.pid));
    return ctx.opts.foreground ? 1 : 0;
  }
  if (ctx.opts.foreground) {
    return runDaemon({ ...loc, reporter: foregroundReporter, detached: false, journald: journald(ctx) });
  }
  out(`Starting ${PROGRAM} server`);
  const code = await startDetached({ args: childArgs(ctx), cwd: ctx.root });
  if (code === 0) {
    const now = pidState(ctx.pidFile);
    if (now.state === 'running') out(`${PROGRAM} running - pid ${now.pid}`);
  }
  return code;
}

export async function restart(ctx: Context): Promise<number> {
  const s = pidState(ctx.pidFile);
  if (s.state === 'running') {
    if (!(await killSequence(s.pid, 'restart', configuredGrace(ctx)))) return 1;
    removeIfStillPid(ctx.pidFile, s.pid);
  } else {
    out(NOT_RUNNING);
  }
  return start(ctx);
}

export async function reload(ctx: Context): Promise<number> {
  const s = pidState(ctx.pidFile);
  if (s.state === 'running') {
    signal(s.pid, 'SIGHUP', 'reload');
    out('Requested reconfiguration');
    return 0;
  }
  out(NOT_RUNNING);
  return start(ctx);
}
