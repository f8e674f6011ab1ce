// The daemon itself (foreground `start -f`, or the detached child of `start`) and the --run-job mode.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pidFilePath, type Config } from '../config/config';
import { restartPerlParents, stopPerlParents } from '../jobs/perl/preload';
import { createLogger, switchableLogger, type Logger } from '../log/logger';
import { resolveNodeId, runSingleJob, Scheduler } from '../scheduler/scheduler';
import type { Reporter } from './detach';
import { Fatal, oneLine } from './errors';
import { acquirePidFile, AlreadyRunning, displayPath, type PidFileHandle } from './pidFile';
import { preflight, readConfig, type ConfigLocation } from './preflight';
import { installDaemonSignals, type SignalHandlers } from './signals';
import { memoryLimitExceeded } from './memoryLimit';
import { RUN_AS_ROOT_WARNING, runsAsRootWithoutRunAs } from './privileges';
import { startWatching, type Watching } from './watching';

export interface DaemonOptions extends ConfigLocation {
  reporter: Reporter;
  /** Running as the detached child of `start`. */
  detached: boolean;
  /** stderr goes to journald/syslog: prefix lines with <N>. */
  journald: boolean;
  /** stderr goes nowhere (detached, no syslog socket): its lines go to the debug log instead. */
  stderrLost?: boolean;
  /** How long running jobs may finish after SIGTERM/SIGINT; default [task_server] shutdown_grace. */
  graceMs?: number;
}

export function createConfiguredLogger(config: Config, journald: boolean, stderrLost = false): Logger {
  const file = config.debug.fileName ? path.resolve(config.kivitendoDir, config.debug.fileName) : '/tmp/lx-office-debug.log';
  return createLogger({
    file,
    globalLevel: config.debug.globalLevel,
    taskServerDebug: config.taskServer.debug,
    stderr: true,
    journald,
    stderrLost,
  });
}

function note(msg: string, journald: boolean, prio = 6) {
  try {
    process.stderr.write(`${journald ? `<${prio}>` : ''}${msg}\n`);
  } catch {
    /* no stderr */
  }
}

function ensurePidDir(file: string) {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Fatal(`Error: Cannot create directory ${path.dirname(file)}: ${code === 'EACCES' ? 'permission denied' : oneLine(e)}`);
  }
}

/**
 * How long the daemon's start-up waits for the auth DB unless [task_server] startup_wait says: a
 * foreground daemon (systemd, upstart) until it is up — the supervisor started it, and PostgreSQL may
 * come later in boot —, a detached `start` (SysV init, the web UI, a shell) 60 s, since its caller
 * waits for the verdict.
 */
export const DEFAULT_STARTUP_WAIT_MS = { foreground: Number.POSITIVE_INFINITY, detached: 60_000 };

/** Runs the daemon until it is stopped; returns the exit code. Throws Fatal for start-up failures. */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const config = await preflight(opts, {
    defaultWaitMs: opts.detached ? DEFAULT_STARTUP_WAIT_MS.detached : DEFAULT_STARTUP_WAIT_MS.foreground,
    onWait: (line, ms) => opts.reporter.waiting(line, ms),
  });
  const pidFile = pidFilePath(config);
  const shownPidFile = displayPath(config.kivitendoDir, pidFile);
  ensurePidDir(pidFile);
  // Before the pid file exists: no TERM, INT or HUP from now on may kill the process and leave the
  // file behind, not even between its creation and the next statement.
  const signals = installDaemonSignals();
  let handle: PidFileHandle;
  try {
    handle = acquirePidFile(pidFile);
  } catch (e) {
    if (e instanceof AlreadyRunning) {
      // Started in the background while one runs: task_server.pl's exit 0. In the foreground (systemd,
      // upstart, debug) this process cannot be the daemon: exit 1.
      throw new Fatal(e.message, opts.detached ? 0 : 1, 'stdout');
    }
    throw e;
  }
  if (handle.replacedStalePid !== undefined) {
    opts.reporter.out(
      handle.replacedStalePid === null
        ? `Replaced invalid pid file ${shownPidFile}`
        : handle.replacedStaleProgram === undefined
          ? `Removed stale pid file ${shownPidFile} (pid ${handle.replacedStalePid} was not running)`
          : // A live pid that does not hold the file: the pid was reused after the daemon died.
            `Removed stale pid file ${shownPidFile} (pid ${handle.replacedStalePid} belongs to another program, not this task server${handle.replacedStaleProgram ? `: ${handle.replacedStaleProgram}` : ''})`,
    );
  }

  if (runsAsRootWithoutRunAs(config.taskServer.runAs)) {
    if (opts.detached) opts.reporter.err(RUN_AS_ROOT_WARNING);
    else note(RUN_AS_ROOT_WARNING, opts.journald, 4);
  }

  if (opts.detached) {
    // stdout/stderr feed `logger`; should it die, writes fail with EPIPE — that must not kill the daemon.
    process.stdout.on('error', () => undefined);
    process.stderr.on('error', () => undefined);
  }
  const log = switchableLogger(createConfiguredLogger(config, opts.journald, opts.stderrLost));
  // task_server.pl's progress lines; without a reader of stderr they go to the debug log.
  const say = (msg: string, prio = 6) => (opts.stderrLost ? log.notice(msg) : note(msg, opts.journald, prio));
  let watching: Watching | undefined;
  const fatalExit = (what: string, e: unknown) => {
    log.error(`${what}: ${oneLine(e)}`);
    watching?.close();
    handle.release();
    process.exit(1);
  };
  process.on('uncaughtException', (e) => fatalExit('Unexpected error', e));
  process.on('unhandledRejection', (e) => fatalExit('Unexpected error', e));

  say('Starting up...');
  let current = config;
  const nodeId = resolveNodeId(config);
  let scheduler: Scheduler;
  try {
    scheduler = new Scheduler({ config, log, nodeId, memoryCheck: () => memoryLimitExceeded(current) });
  } catch (e) {
    handle.release();
    throw new Fatal(`Error: Cannot start the scheduler: ${oneLine(e)}`);
  }
  try {
    watching = await startWatching({ config, scheduler, pidFile, nodeId, log });
  } catch (e) {
    handle.release();
    throw new Fatal(`Error: ${oneLine(e)}`);
  }
  const graceMs = () => opts.graceMs ?? current.taskServer.shutdownGraceMs;
  // Set by the first SIGTERM/SIGINT: resolves once running jobs finished or were stopped.
  let stopped: Promise<void> | undefined;

  const handlers: SignalHandlers = {
    wake: () => scheduler.wake(),
    stop: (signal, repeated) => {
      if (repeated) {
        say(`${signal} received again - exiting now`, 4);
        watching?.close();
        handle.release();
        process.exit(0);
      }
      say('Quitting...');
      watching?.stopping();
      log.debug(`${signal} received, stopping (grace period ${graceMs()} ms)`);
      stopped = scheduler.stop(graceMs());
      stopped.then(
        // run() returns once its current sweep ends; should that take long (a client DB that does not
        // answer), leave anyway: the jobs are done.
        () => setTimeout(() => (watching?.close(), handle.release(), process.exit(0)), 2000).unref(),
        () => undefined, // reported where run() awaits it
      );
    },
    reload: () => {
      say('Reconfiguration requested');
      try {
        const next = readConfig(opts);
        if (next.taskServer.runAs !== current.taskServer.runAs) {
          log.warn('[task_server] run_as changed: this only takes effect after a restart');
        }
        if (JSON.stringify(next.taskServer.metricsListen) !== JSON.stringify(current.taskServer.metricsListen)) {
          log.warn('[task_server] metrics_listen changed: this only takes effect after a restart');
        }
        log.target = createConfiguredLogger(next, opts.journald, opts.stderrLost);
        scheduler.reload(next);
        current = next;
        // kivitendo may have been upgraded on disk: the next Perl run loads its modules afresh.
        restartPerlParents();
        log.info('Configuration reloaded');
      } catch (e) {
        log.error(`Reconfiguration failed, keeping the previous configuration: ${oneLine(e).replace(/^Error:\s*/, '')}`);
      }
    },
  };

  opts.reporter.ready(process.pid);
  watching?.ready();
  // A stop or reload that came during the start-up is delivered now.
  signals.route(handlers);
  const started = performance.now();
  scheduler.firstPoll.then(
    () => log.debug(`first poll finished in ${Math.round(performance.now() - started)} ms`),
    () => undefined,
  );

  let code = 0;
  try {
    // 'memory-limit' (logged by the scheduler) ends with exit 0 like kivitendo: the process manager
    // (systemd Restart=always, upstart respawn) starts a fresh one.
    await scheduler.run();
    // The loop ends as soon as a stop is requested; the jobs still running get their grace period.
    await stopped;
    stopPerlParents();
  } catch (e) {
    log.error(`The scheduler failed: ${oneLine(e)}`);
    code = 1;
  }
  signals.uninstall();
  watching?.close();
  handle.release();
  return code;
}

export interface RunJobOptions extends ConfigLocation {
  jobId: number;
  client?: string;
  journald: boolean;
}

/**
 * --run-job=ID: run one job now and exit (always in the foreground). Unlike task_server.pl this does
 * not take the pid file, so it also works while the daemon runs (spec §14.7).
 */
export async function runJobOnce(opts: RunJobOptions): Promise<number> {
  const config = await preflight(opts);
  const log = createConfiguredLogger(config, opts.journald);
  let count: number;
  try {
    count = await runSingleJob({ config, log, nodeId: resolveNodeId(config) }, opts.jobId, opts.client);
  } catch (e) {
    throw new Fatal(`Error: ${oneLine(e)}`);
  }
  if (count === 0) {
    throw new Fatal(`Error: No background job with ID ${opts.jobId} found in ${opts.client ? `client ${opts.client}` : 'any enabled client'}`);
  }
  return 0;
}
