// The running daemon's own state for `status` (run by root or the web server's user, without a
// database): a small JSON file next to the pid file, rewritten atomically (temporary file + rename)
// after every poll, at job starts and ends and every 10 s. It holds no
// password and nothing read from a database that `list` would not show.
// Written at most once a second while jobs start and end: it is a few hundred KiB with 2,000 jobs.
import fs from 'node:fs';
import type { SchedulerSnapshot } from '../scheduler/scheduler';
import { readMemoryUsage } from './memoryLimit';

export interface DaemonState extends SchedulerSnapshot {
  format: 1;
  pid: number;
  version: string;
  nodeId: string;
  startedAt: number;
  writtenAt: number;
  rssBytes: number;
  heapUsedBytes: number;
  perlParents: { pid: number; rssBytes?: number; runs: number; idleSinceMs?: number }[];
  metricsListen?: string;
}

/** users/pid/config.kivitendo.conf.pid → users/pid/config.kivitendo.conf.state.json */
export function stateFilePath(pidFile: string): string {
  return pidFile.replace(/\.pid$/, '') + '.state.json';
}

export function writeStateFile(file: string, state: DaemonState): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state) + '\n', { mode: 0o644 });
  fs.renameSync(tmp, file);
}

/** The state file of the daemon with this pid; undefined when missing, unreadable or another process's. */
export function readStateFile(file: string, pid: number): DaemonState | undefined {
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as DaemonState;
    return s.format === 1 && s.pid === pid ? s : undefined;
  } catch {
    return undefined;
  }
}

/** VmRSS of a process in bytes (Linux), undefined when it is gone or not readable. */
export function processRss(pid: number): number | undefined {
  return readMemoryUsage(`/proc/${pid}/status`).rss;
}

export interface StateFileWriter {
  /** Writes soon (coalesced). */
  touch(): void;
  /** Stops writing and removes the file. */
  close(): void;
}

/** Keeps the state file current; `collect` builds the state, errors are logged once per kind and never fatal. */
export function startStateFile(file: string, collect: () => DaemonState, warn: (m: string) => void): StateFileWriter {
  let pending: NodeJS.Timeout | undefined;
  let lastError = '';
  let closed = false;
  const write = () => {
    pending = undefined;
    if (closed) return;
    try {
      writeStateFile(file, collect());
      lastError = '';
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== lastError) warn(`Cannot write the state file ${file} (status shows less): ${msg}`);
      lastError = msg;
    }
  };
  const tick = setInterval(write, 10_000);
  tick.unref();
  write();
  return {
    touch() {
      if (!pending && !closed) pending = setTimeout(write, 1000);
      pending?.unref();
    },
    close() {
      closed = true;
      clearInterval(tick);
      if (pending) clearTimeout(pending);
      fs.rmSync(file, { force: true });
    },
  };
}
