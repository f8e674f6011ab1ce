// The pid file users/pid/<config path with / → .>.pid (spec task-server.md §2.4), content "PID\n".
//
// Node has no flock(). Instead of a lock, the daemon keeps the pid file open for its whole life, and
// "is the daemon of this pid file running" is answered from /proc:
//   1. the pid from the file exists (kill(pid, 0) succeeds or fails with EPERM), and
//   2. that process holds the pid file open (/proc/<pid>/fd/* → same device and inode) — this also
//      rules out pid reuse: a recycled pid belongs to a process that does not have our file open;
//   3. where /proc/<pid>/fd is not readable (another uid, not root), the fallback is the start time:
//      a process that started after the pid file was written cannot be the one that wrote it.
// The file is created complete and atomically: written under a temporary name while already held
// open, then hard-linked to the final name (link fails with EEXIST, like O_EXCL).
import fs from 'node:fs';
import path from 'node:path';
import { Fatal } from './errors';

export type PidState = { state: 'running'; pid: number } | { state: 'dead'; pid?: number } | { state: 'none' };

export const alreadyRunningMessage = (pid: number) => `kivitendo-background-jobs is already running (pid ${pid})`;

export class AlreadyRunning extends Fatal {
  constructor(readonly pid: number) {
    super(alreadyRunningMessage(pid), 1, 'stdout');
    this.name = 'AlreadyRunning';
  }
}

/** The number the file starts with (like kivitendo's web UI: leading digits), or undefined. */
export function readPid(file: string): number | undefined {
  const m = /^\s*(\d+)/.exec(fs.readFileSync(file, 'utf8'));
  const pid = m ? Number(m[1]) : 0;
  return pid > 0 ? pid : undefined;
}

/** The process exists and is not a zombie (an exited daemon whose parent has not reaped it yet). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/**
 * What a live process is, for messages: its command line (arguments joined by spaces, at most 100
 * characters), else its comm name, else '' (hidepid, gone meanwhile).
 */
export function describeProcess(pid: number): string {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ').trim();
    if (cmdline) return cmdline.length > 100 ? `${cmdline.slice(0, 99)}…` : cmdline;
  } catch {
    /* try comm */
  }
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The real uid of a process (Linux /proc), or undefined. */
export function processUid(pid: number): number | undefined {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** true/false when /proc/<pid>/fd can be read, undefined when it cannot. */
function holdsOpen(pid: number, file: fs.Stats): boolean | undefined {
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    try {
      const st = fs.statSync(`/proc/${pid}/fd/${fd}`);
      if (st.ino === file.ino && st.dev === file.dev) return true;
    } catch {
      // fd closed meanwhile
    }
  }
  return false;
}

/** Start time of a process in ms since the epoch (Linux), or undefined. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]); // field 22 of proc(5); fields[0] is field 3
    const btime = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(btime)) return undefined;
    return (btime + ticks / 100) * 1000; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/** Is `pid` the daemon that wrote `file` (and still holds it)? */
export function isDaemonOf(pid: number, file: string, stats?: fs.Stats): boolean {
  if (!isAlive(pid)) return false;
  let st: fs.Stats;
  try {
    st = stats ?? fs.statSync(file);
  } catch {
    return false;
  }
  const held = holdsOpen(pid, st);
  if (held !== undefined) return held;
  const started = processStartTime(pid);
  // btime has whole seconds: allow 2 s of slack.
  return started === undefined || started <= st.mtimeMs + 2000;
}

/** running / dead (file present, daemon gone or content invalid) / none (no file). */
export function pidState(file: string): PidState {
  let pid: number | undefined;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
    pid = readPid(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'none' };
    throw new Fatal(`Error: Cannot read pid file ${file}: ${(e as Error).message}`);
  }
  if (pid !== undefined && isDaemonOf(pid, file, st)) return { state: 'running', pid };
  return { state: 'dead', pid };
}

/** Removes a pid file if it still is the one described by `st` (not a newer daemon's). */
function removeIfSame(file: string, st: fs.Stats): boolean {
  const grave = `${file}.stale.${process.pid}`;
  try {
    fs.renameSync(file, grave);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
  const moved = fs.statSync(grave);
  if (moved.ino !== st.ino || moved.dev !== st.dev) {
    // Another starter replaced it in between: put theirs back.
    try {
      fs.linkSync(grave, file);
    } catch {
      /* a third one got there first */
    }
    fs.unlinkSync(grave);
    return false;
  }
  fs.unlinkSync(grave);
  return true;
}

/** Deletes a stale pid file (used by stop/restart); false if it turned out to be live. */
export function removeStale(file: string): boolean {
  try {
    const st = fs.statSync(file);
    const pid = readPid(file);
    if (pid !== undefined && isDaemonOf(pid, file, st)) return false;
    return removeIfSame(file, st);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
}

export interface PidFileHandle {
  file: string;
  fd: number;
  /** pid of a stale file that was replaced, if any */
  replacedStalePid?: number | null;
  /** The stale pid was alive but another program: its command line ('' if unreadable). */
  replacedStaleProgram?: string;
  release(): void;
}

const describe = (e: unknown) => {
  const err = e as NodeJS.ErrnoException;
  const reason = { EACCES: 'permission denied', EROFS: 'read-only file system', ENOENT: 'directory does not exist', ENOSPC: 'no space left on device' }[err.code ?? ''];
  return reason ?? err.message;
};

/**
 * Creates the pid file with this process's pid and keeps it open. Throws Fatal with
 * `kivitendo-background-jobs is already running (pid N)` when a live daemon holds it; a stale file
 * is replaced (replacedStalePid says so; null when the stale file had no valid pid).
 */
export function acquirePidFile(file: string): PidFileHandle {
  const tmp = `${file}.new.${process.pid}`;
  let replacedStalePid: number | null | undefined;
  let replacedStaleProgram: string | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(tmp, 'wx', 0o666);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        fs.unlinkSync(tmp);
        attempt--;
        continue;
      }
      throw new Fatal(`Error: Cannot create pid file ${file}: ${describe(e)}`);
    }
    try {
      fs.writeSync(fd, `${process.pid}\n`);
      fs.linkSync(tmp, file);
      fs.unlinkSync(tmp);
      const handle: PidFileHandle = {
        file,
        fd,
        replacedStalePid,
        replacedStaleProgram,
        release() {
          try {
            const mine = fs.fstatSync(fd);
            const now = fs.statSync(file);
            if (mine.ino === now.ino && mine.dev === now.dev) fs.unlinkSync(file);
          } catch {
            /* already gone */
          }
          try {
            fs.closeSync(fd);
          } catch {
            /* closed */
          }
        },
      };
      return handle;
    } catch (e) {
      fs.closeSync(fd);
      try {
        fs.unlinkSync(tmp);
      } catch {
        /* not created */
      }
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Fatal(`Error: Cannot create pid file ${file}: ${describe(e)}`);
    }
    // The file exists: a running daemon, or a stale file.
    let st: fs.Stats;
    let pid: number | undefined;
    try {
      st = fs.statSync(file);
      pid = readPid(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new Fatal(`Error: Cannot read pid file ${file}: ${describe(e)}`);
    }
    if (pid !== undefined && pid !== process.pid && isDaemonOf(pid, file, st)) throw new AlreadyRunning(pid);
    try {
      const program = pid !== undefined && pid !== process.pid && isAlive(pid) ? describeProcess(pid) : undefined;
      if (removeIfSame(file, st)) {
        replacedStalePid = pid ?? null;
        replacedStaleProgram = program;
      }
    } catch (e) {
      throw new Fatal(`Error: Cannot remove stale pid file ${file}: ${describe(e)}`);
    }
  }
  throw new Fatal(`Error: Cannot create pid file ${file}: it keeps changing (another start at the same time?)`);
}

/** The pid file path relative to ROOT for messages. */
export function displayPath(root: string, file: string): string {
  const rel = path.relative(root, file);
  return rel.startsWith('..') ? file : rel;
}
