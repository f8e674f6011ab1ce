// Daemonising without fork(): `start` re-runs this executable with the same command plus the hidden
// flag --daemon-child, detached (new session via setsid), stdin from /dev/null, stdout/stderr into
// syslog (`logger --prio-prefix`, like task_server.pl's logger pipe; `--daemon-child=syslog`) or
// /dev/null with every line going to the debug log instead (`--daemon-child=debug-log`: the name
// admins see in `ps`), and an extra pipe
// on fd 3 over which the child reports progress as JSON lines:
//   {"t":"out","line":...}  a line for the caller's stdout (e.g. "Removed stale pid file ...")
//   {"t":"err","line":...}  a line for the caller's stderr (a pre-flight error)
//   {"t":"wait","ms":N}     pre-flight waits up to N ms (null: unbounded) for the auth DB
//   {"t":"ready","pid":N}   pre-flight passed, pid file written: the parent may exit 0
// If the child exits before "ready", the parent exits with the child's exit code — so `start`
// reports the real outcome instead of always 0 (spec task-server.md §14.24).
import { spawn, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as sea from 'node:sea';
import type { Writable } from 'node:stream';

export const DAEMON_CHILD_FLAG = '--daemon-child';
/** Beyond the child's own start-up wait: its pre-flight after the auth DB came (upgrade check, pid file). */
const WAIT_MARGIN_MS = 30_000;
const STATUS_FD = 3;

/** How a child of this very program is started: the SEA binary itself, or node + its flags + script. */
export function selfCommand(): { file: string; prefix: string[] } {
  if (isSea()) return { file: process.execPath, prefix: [] };
  return { file: process.execPath, prefix: [...process.execArgv, process.argv[1]] };
}

export function isSea(): boolean {
  try {
    return sea.isSea();
  } catch {
    return false;
  }
}

/** Where a daemon child's user-visible lines go. */
export interface Reporter {
  out(line: string): void;
  err(line: string): void;
  /** Start-up waits (for the auth DB) up to waitMs (Infinity: no bound): `line` says so, once. */
  waiting(line: string, waitMs: number): void;
  ready(pid: number): void;
}

export const foregroundReporter: Reporter = {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  waiting: (line) => process.stdout.write(line + '\n'),
  ready: () => undefined,
};

/** The child's side of the status pipe. Lines are also written to the child's own stderr (syslog). */
export function childReporter(fd = STATUS_FD): Reporter {
  let open = true;
  const send = (msg: object) => {
    if (!open) return;
    const buf = Buffer.from(JSON.stringify(msg) + '\n');
    for (let off = 0, tries = 0; off < buf.length && tries < 1000; ) {
      try {
        off += fs.writeSync(fd, buf, off);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
          tries++;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
          continue;
        }
        open = false; // the parent is gone (EPIPE): nobody to tell
        return;
      }
    }
  };
  return {
    out(line) {
      send({ t: 'out', line });
      process.stderr.write(line + '\n');
    },
    err(line) {
      send({ t: 'err', line });
      process.stderr.write(line + '\n');
    },
    waiting(line, waitMs) {
      // The parent extends its own start-up timeout to the child's bound (null: none).
      send({ t: 'wait', ms: Number.isFinite(waitMs) ? waitMs : null });
      send({ t: 'out', line });
      process.stderr.write(line + '\n');
    },
    ready(pid) {
      send({ t: 'ready', pid });
      if (open) {
        open = false;
        try {
          fs.closeSync(fd);
        } catch {
          /* already closed */
        }
      }
    },
  };
}

function onPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir || '.', cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * The `logger` command line, through sh to ignore SIGALRM and SIGHUP in it (an ignored signal stays
 * ignored across exec, and logger keeps it): its arguments name the program, so `pkill -ALRM -f
 * kivitendo` meant as a wake-up would otherwise kill it, and the daemon's log lines with it.
 */
export function syslogCommand(logger: string): [string, string[]] {
  return ['/bin/sh', ['-c', 'trap "" ALRM HUP; exec "$0" "$@"', logger, '-t', 'kivitendo-background-jobs', '--prio-prefix', '-p', 'user.notice']];
}

/** A `logger` process feeding syslog/journald, if there is a logger and a log socket. */
function spawnSyslogPipe(): { stream: Writable; close(): void } | undefined {
  const logger = onPath('logger');
  const socket = ['/dev/log', '/run/systemd/journal/socket'].some((s) => fs.existsSync(s));
  if (!logger || !socket) return undefined;
  const [file, args] = syslogCommand(logger);
  const lg = spawn(file, args, { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  lg.on('error', () => undefined);
  lg.unref();
  return {
    stream: lg.stdin!,
    close: () => lg.stdin!.destroy(),
  };
}

export interface DetachOptions {
  /** Arguments for the child, without the hidden flag. */
  args: string[];
  cwd: string;
  /** Give up waiting after this long (the child is then terminated). */
  timeoutMs?: number;
  out?: (line: string) => void;
  err?: (line: string) => void;
}

/**
 * V8 flags for the long-running daemon. Under load V8 grows its young generation to 2 × 16 MiB and
 * keeps it; capped at 1 MiB, RSS after thousands of job runs stays within ~10 % of its start
 * (bench/memory.ts). A single executable takes V8 flags only through NODE_OPTIONS, so the detached
 * daemon gets them here and the boot templates set them for the foreground daemon. An admin's own
 * setting wins.
 */
export const DAEMON_V8_FLAGS = '--max-semi-space-size=1';

export function daemonNodeOptions(current: string | undefined): string {
  if (current?.includes('--max-semi-space-size')) return current;
  return [current, DAEMON_V8_FLAGS].filter(Boolean).join(' ');
}

/** Starts the daemon child and waits for its verdict. Resolves with the exit code for `start`. */
export function startDetached(opts: DetachOptions): Promise<number> {
  const out = opts.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const err = opts.err ?? ((l: string) => process.stderr.write(l + '\n'));
  const syslog = spawnSyslogPipe();
  const { file, prefix } = selfCommand();
  const stdio: StdioOptions = ['ignore', syslog?.stream ?? 'ignore', syslog?.stream ?? 'ignore', 'pipe'];
  const child = spawn(file, [...prefix, ...opts.args, `${DAEMON_CHILD_FLAG}=${syslog ? 'syslog' : 'debug-log'}`], {
    cwd: opts.cwd,
    detached: true,
    stdio,
    env: { ...process.env, NODE_OPTIONS: daemonNodeOptions(process.env.NODE_OPTIONS) },
  });
  syslog?.close();
  return new Promise((resolve) => {
    let done = false;
    let told = false;
    let buffered = '';
    const status = child.stdio[STATUS_FD] as NodeJS.ReadableStream & { destroy(): void };
    const finish = (code: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      status.removeAllListeners('data');
      status.destroy();
      child.unref();
      resolve(code);
    };
    const giveUp = (ms: number) =>
      setTimeout(() => {
        err(`kivitendo-background-jobs did not finish starting within ${Math.round(ms / 1000)} s; terminated it`);
        try {
          child.kill('SIGTERM');
        } catch {
          /* gone */
        }
        finish(1);
      }, ms);
    let timer: NodeJS.Timeout | undefined = giveUp(opts.timeoutMs ?? 60_000);
    status.setEncoding?.('utf8');
    status.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let msg: { t?: string; line?: string; pid?: number; ms?: number | null };
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (msg.t === 'wait') {
          clearTimeout(timer);
          timer = typeof msg.ms === 'number' ? giveUp(msg.ms + WAIT_MARGIN_MS) : undefined;
        } else if (msg.t === 'out') out(String(msg.line));
        else if (msg.t === 'err') {
          told = true;
          err(String(msg.line));
        }
        else if (msg.t === 'ready') finish(0);
      }
    });
    status.on('error', () => undefined);
    child.on('error', (e) => {
      err(`Cannot start kivitendo-background-jobs: ${e.message}`);
      finish(1);
    });
    child.on('close', (code, signal) => {
      if (done) return;
      if (signal) err(`kivitendo-background-jobs was killed by ${signal} during start-up`);
      else if (!told && code !== 0) err(`kivitendo-background-jobs exited during start-up (exit code ${code}); see syslog`);
      finish(code ?? 1);
    });
  });
}
