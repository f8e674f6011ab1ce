// Command line → options (minimist). Unknown options and commands are usage errors with exit 2
// (task_server.pl printed the usage and exited 0 — deliberate difference).
import minimist from 'minimist';

export const COMMANDS = ['start', 'stop', 'restart', 'reload', 'status', 'check', 'list', 'help', 'version', 'debug'] as const;
export type Command = (typeof COMMANDS)[number];

export interface CliOptions {
  command: Command;
  /** -c / --configfile */
  configFile?: string;
  /** -f / --foreground (also implied by `debug`) */
  foreground: boolean;
  runJob?: number;
  /** --client: restricts --run-job or list to one client (id or name) */
  client?: string;
  /** list: --all (inactive jobs too), --failed (only jobs whose last run failed), --json */
  all: boolean;
  failed: boolean;
  json: boolean;
  /** --kivitendo-dir */
  kivitendoDir?: string;
  /** --debug: print PIDFILE=<path> first (as Daemon::Generic) */
  printPidFile: boolean;
  /** hidden: this process is the detached daemon child; stderr goes to syslog or nowhere */
  /** the detached daemon's output: syslog (through `logger`), or the debug log when there is no syslog socket */
  daemonChild?: 'syslog' | 'debug-log';
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const STRING_OPTS = ['configfile', 'run-job', 'client', 'kivitendo-dir', 'daemon-child'];
const BOOLEAN_OPTS = ['foreground', 'debug', 'help', 'version', 'all', 'failed', 'json'];
const ALIASES: Record<string, string> = { c: 'configfile', f: 'foreground', h: 'help' };
const KNOWN = new Set([...STRING_OPTS, ...BOOLEAN_OPTS, ...Object.keys(ALIASES)]);

/** The last value of an option given more than once. */
function single(v: unknown): string | undefined {
  if (Array.isArray(v)) return single(v[v.length - 1]);
  if (v === undefined || v === null || v === false) return undefined;
  return String(v);
}

/**
 * A single-dash word such as `-foreground`. minimist reads it as the letters -f -o -r … and the last
 * letter swallows the next argument (`-foreground start` became "Missing command"). Perl's
 * Getopt::Long took it for --foreground; here long options need two dashes, so name it instead.
 */
function singleDashWord(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return undefined;
    if (arg === '-c' || (arg.startsWith('--') && !arg.includes('=') && STRING_OPTS.includes(arg.slice(2)))) {
      i++; // its value may start with a dash
      continue;
    }
    if (/^-[^-]/.test(arg) && arg.split('=')[0].length > 2) return arg.split('=')[0];
  }
  return undefined;
}

export function parseArgs(argv: string[]): CliOptions {
  const word = singleDashWord(argv);
  if (word) {
    const name = word.slice(1);
    const long = [...STRING_OPTS, ...BOOLEAN_OPTS].includes(name) && name !== 'daemon-child';
    throw new UsageError(`Unknown option: ${word}${long ? ` (long options take two dashes: --${name})` : ''}`);
  }
  const unknown: string[] = [];
  const a = minimist(argv, {
    string: STRING_OPTS,
    boolean: BOOLEAN_OPTS,
    alias: ALIASES,
    unknown: (arg) => {
      if (arg.startsWith('-') && arg !== '-') {
        unknown.push(arg);
        return false;
      }
      return true;
    },
  });
  // minimist also reports "--no-foo" and "-xyz" combinations through `unknown`; keep the first.
  if (unknown.length) {
    const name = unknown[0].replace(/^--?/, '').replace(/=.*$/, '');
    if (!KNOWN.has(name)) throw new UsageError(`Unknown option: ${name}`);
  }
  for (const key of ['configfile', 'client', 'kivitendo-dir', 'run-job']) {
    if (key in a && single(a[key]) === '') throw new UsageError(`Option ${key} requires an argument`);
  }
  const positionals = a._.map(String);
  let command: string | undefined = positionals[0];
  if (positionals.length > 1) throw new UsageError(`Expected one command, got: ${positionals.join(' ')}`);
  if (!command) {
    if (a.help) command = 'help';
    else if (a.version) command = 'version';
    else throw new UsageError('Missing command');
  }
  if (!(COMMANDS as readonly string[]).includes(command)) throw new UsageError(`Unknown command: ${command}`);
  const opts: CliOptions = {
    command: command as Command,
    configFile: single(a.configfile),
    foreground: Boolean(a.foreground) || command === 'debug',
    client: single(a.client),
    kivitendoDir: single(a['kivitendo-dir']),
    printPidFile: Boolean(a.debug),
    all: Boolean(a.all),
    failed: Boolean(a.failed),
    json: Boolean(a.json),
  };
  for (const flag of ['all', 'failed', 'json'] as const) {
    if (opts[flag] && command !== 'list') throw new UsageError(`Option ${flag} can only be used with list`);
  }
  const runJob = single(a['run-job']);
  if (runJob !== undefined) {
    if (!/^\d+$/.test(runJob)) throw new UsageError(`Value "${runJob}" invalid for option run-job (number expected)`);
    if (Number(runJob) <= 0) throw new UsageError('Option run-job needs a job ID greater than 0');
    if (opts.command !== 'start' && opts.command !== 'debug') throw new UsageError('Option run-job can only be used with start or debug');
    opts.runJob = Number(runJob);
  }
  if (opts.client !== undefined && opts.runJob === undefined && command !== 'list') throw new UsageError('Option client can only be used together with --run-job or list');
  const child = single(a['daemon-child']);
  if (child !== undefined) {
    if (child !== 'syslog' && child !== 'debug-log') throw new UsageError(`Unknown option: daemon-child=${child}`);
    opts.daemonChild = child;
  }
  return opts;
}
