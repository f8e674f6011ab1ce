// Two sinks: kivitendo's debug log file (format and level mask of SL/LXDebug.pm, spec task-server.md
// §10) and stderr, with sd-daemon priority prefixes ("<4>") when journald reads it (JOURNAL_STREAM).
import fs from 'node:fs';
import path from 'node:path';

export type Level = 'info' | 'debug1' | 'warn' | 'error' | 'notice' | 'problem';

export interface Logger {
  info(msg: string): void;
  /** The daemon's own "task server: ..." debug messages. */
  debug(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  /** kivitendo's level-0 messages (written whatever global_level says) that are not errors. */
  notice(msg: string): void;
  /**
   * A warning an admin must see whatever global_level says (an outage begins): written to the file
   * like a level-0 message but marked WARNING, priority 4 in the journal.
   */
  problem(msg: string): void;
}

const LEVEL_BITS: Record<string, number> = {
  NONE: 0, INFO: 1, DEBUG1: 2, DEBUG2: 4, QUERY: 8, TRACE: 16, BACKTRACE_ON_ERROR: 32, REQUEST_TIMER: 64,
  REQUEST: 128, WARN: 256, TRACE2: 512, SHOW_CALLER: 1024,
};
LEVEL_BITS.DEVEL = LEVEL_BITS.INFO | LEVEL_BITS.DEBUG1 | LEVEL_BITS.QUERY | LEVEL_BITS.TRACE | LEVEL_BITS.BACKTRACE_ON_ERROR | LEVEL_BITS.REQUEST_TIMER;
LEVEL_BITS.ALL = 0xffff;

export function levelMask(globalLevel: string): number {
  return globalLevel
    .split(/\s+/)
    .filter(Boolean)
    .reduce((mask, name) => mask | (LEVEL_BITS[name.toUpperCase()] ?? 0), 0);
}

const FILE_LEVEL: Record<Level, { bit: number; name: string }> = {
  info: { bit: LEVEL_BITS.INFO, name: 'info' },
  debug1: { bit: LEVEL_BITS.DEBUG1, name: 'debug1' },
  warn: { bit: LEVEL_BITS.WARN, name: 'WARNING' },
  error: { bit: 0, name: '' }, // level 0: always written
  notice: { bit: 0, name: '' },
  problem: { bit: 0, name: 'WARNING' },
};
const JOURNAL_PRIORITY: Record<Level, number> = { error: 3, warn: 4, problem: 4, notice: 5, info: 6, debug1: 7 };
const STDERR_LABEL: Record<Level, string> = { error: 'ERROR', warn: 'WARN', problem: 'WARN', notice: 'NOTICE', info: 'INFO', debug1: 'DEBUG1' };

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
function fileTimestamp(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** One line of kivitendo's debug log. */
export function formatLogLine(d: Date, pid: number, levelName: string, msg: string): string {
  return `${fileTimestamp(d)} ${pid} [${pid}] ${levelName}: ${msg.replace(/\n$/, '')}\n`;
}

export interface LoggerOptions {
  /** Absolute path of kivitendo's debug log, or undefined for none. */
  file?: string;
  /** [debug] global_level */
  globalLevel: string;
  /** [task_server] debug */
  taskServerDebug: boolean;
  /** Write to stderr too (foreground / journald). */
  stderr: boolean;
  journald?: boolean;
  /**
   * Nobody reads stderr (a detached daemon without a syslog socket): every line meant for stderr
   * goes to the file instead, whatever global_level says.
   */
  stderrLost?: boolean;
}

export function createLogger(opts: LoggerOptions): Logger {
  const mask = levelMask(opts.globalLevel);
  const journald = opts.journald ?? Boolean(process.env.JOURNAL_STREAM);
  const write = (level: Level, msg: string) => {
    const { bit, name } = FILE_LEVEL[level];
    // Deliberate fix of spec §14.14: the daemon's own debug messages only need [task_server] debug
    // (kivitendo also requires DEBUG1 in [debug] global_level, contrary to its config comment).
    const forStderr = level !== 'debug1' || opts.taskServerDebug;
    if (opts.file && (bit === 0 || (mask & bit) !== 0 || (level === 'debug1' && opts.taskServerDebug) || (opts.stderrLost && forStderr))) {
      try {
        fs.mkdirSync(path.dirname(opts.file), { recursive: true });
        fs.appendFileSync(opts.file, formatLogLine(new Date(), process.pid, name, msg));
      } catch {
        // The log file is shared with the web server and may be unwritable; stderr still has it.
      }
    }
    if (opts.stderr && !opts.stderrLost && forStderr) {
      const text = journald
        ? msg.split('\n').map((l) => `<${JOURNAL_PRIORITY[level]}>${l}`).join('\n')
        : `${new Date().toISOString()} ${STDERR_LABEL[level]} ${msg}`;
      process.stderr.write(text + '\n');
    }
  };
  return {
    info: (m) => write('info', m),
    debug: (m) => {
      if (opts.taskServerDebug) write('debug1', `task server: ${m}`);
    },
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
    notice: (m) => write('notice', m),
    problem: (m) => write('problem', m),
  };
}

/** A logger whose target can be replaced (SIGHUP re-creates it from the new configuration). */
export function switchableLogger(initial: Logger): Logger & { target: Logger } {
  const l = {
    target: initial,
    info: (m: string) => l.target.info(m),
    debug: (m: string) => l.target.debug(m),
    warn: (m: string) => l.target.warn(m),
    error: (m: string) => l.target.error(m),
    notice: (m: string) => l.target.notice(m),
    problem: (m: string) => l.target.problem(m),
  };
  return l;
}

/** A logger that keeps lines in memory (tests, `check`). */
export function memoryLogger(lines: string[] = []): Logger & { lines: string[] } {
  return {
    lines,
    info: (m) => lines.push(`INFO ${m}`),
    debug: (m) => lines.push(`DEBUG task server: ${m}`),
    warn: (m) => lines.push(`WARN ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
    notice: (m) => lines.push(`NOTICE ${m}`),
    problem: (m) => lines.push(`WARN ${m}`),
  };
}
