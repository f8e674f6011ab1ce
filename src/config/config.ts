// kivitendo.conf → one typed, plain (serialisable) Config object. Lookup order and merge rules as
// task_server.pl (spec task-server.md §2.1 step 3–4, §4.1).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mergeSections, parseConfigStd, perlTrue, Sections } from './configStd';
import { isFile } from '../fsutil';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface DbParams {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

export interface Config {
  /** The kivitendo installation directory (ROOT). */
  kivitendoDir: string;
  /** The config path as given or found, relative to ROOT where it lies below it (names the pid file). */
  configPath: string;
  /** The files that were read, base first. */
  files: string[];
  /** Every section, merged: for keys the typed part below does not cover (jobs, mail). */
  sections: Sections;
  taskServer: {
    debug: boolean;
    runAs: string;
    /** Configured node id; '' means the host name. */
    nodeId: string;
    onlyRunTasksForThisNode: boolean;
    /** Clients polled and run at the same time (kivitendo-task-server only). */
    concurrency: number;
    /** Wall-time limit of one job run in ms (kivitendo-task-server only); Infinity: no limit (`0`). */
    jobTimeLimitMs: number;
    /** Per-package overrides of jobTimeLimitMs. */
    jobTimeLimitsMs: Record<string, number>;
    /** How long running jobs may finish after SIGTERM/SIGINT before they are stopped, ms (kivitendo-task-server only). */
    shutdownGraceMs: number;
    /** How long start-up waits for an auth DB that is not up yet, ms (Infinity: until it is); undefined: not set. */
    startupWaitMs: number | undefined;
    /**
     * `[task_server] perl`: the perl binary for kivitendo's own job packages (default `perl`, looked
     * up in PATH); null when the Perl path is switched off (`perl = 0`).
     */
    perl: string | null;
    /** `[task_server] perl_packages`: packages run through kivitendo's Perl code even where a native module exists. */
    perlPackages: string[];
    /**
     * `[task_server] force_native_packages`: native modules run even for a kivitendo release or a
     * client database they are not verified for — at the admin's own risk.
     */
    forceNativePackages: string[];
    /**
     * `[task_server] perl_preload_idle`: a preloaded Perl parent forks the Perl runs and stops itself
     * after this long without a run (default 5 min); 0: a cold perl per run.
     */
    perlPreloadIdleMs: number;
    /**
     * `[task_server] render_concurrency`: Perl processes that render (LaTeX) the invoices of one
     * CreatePeriodicInvoices run at the same time before they are printed and sent in order
     * (default: the number of CPUs); 1: one after the other, in the printing process itself.
     */
    renderConcurrency: number;
    /** `[task_server] metrics_listen`: where /metrics and /healthz are served; undefined: off (the default). */
    metricsListen?: { host: string; port: number };
  };
  notifyOnFailure: {
    sendEmailTo: string;
    emailFrom: string;
    emailSubject: string;
    emailTemplate: string;
  };
  system: { language: string; memoryLimitRss: string; memoryLimitVsz: string; hasSection: boolean };
  authentication: { module: string; sessionTimeoutMinutes: number };
  authDb: DbParams;
  debug: { globalLevel: string; fileName: string };
}

/** [task_server] shutdown_grace when not set: what task_server.pl's `stop` allows before its SIGTERM, minus a margin. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

/** Candidates for the default config file, in task_server.pl's order. */
export const DEFAULT_CONFIG_CANDIDATES = ['config/kivitendo.conf', 'config/lx_office.conf', 'config/kivitendo.conf.default'];

const READ_ERRORS: Record<string, string> = {
  EACCES: 'permission denied',
  ENOENT: 'no such file',
  EISDIR: 'is a directory',
  ELOOP: 'too many levels of symbolic links',
  ENOTDIR: 'a path component is not a directory',
};

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a plain file';
}

/**
 * What is at a config file's name: 'file', 'absent', or a ConfigError saying why it cannot be used.
 * task_server.pl asks only `-f` and silently moves on to the next candidate (or the defaults) when
 * the answer is no — a directory, a dangling symlink or a file it may not read then means "other
 * auth DB, logging off" without a word. Here only a name with nothing behind it counts as absent.
 */
function probeConfigFile(full: string, shown: string): 'file' | 'absent' | ConfigError {
  let st: fs.Stats;
  try {
    st = fs.statSync(full);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code === 'ENOENT') {
      let target: string | undefined;
      try {
        target = fs.readlinkSync(full);
      } catch {
        return 'absent';
      }
      return new ConfigError(`Config file '${shown}' is a symbolic link to '${target}', which does not exist`);
    }
    return new ConfigError(`Cannot read config file '${shown}': ${READ_ERRORS[code] ?? code ?? (e as Error).message}`);
  }
  if (!st.isFile()) return new ConfigError(`Config file '${shown}' is not a regular file (it is ${kindOf(st)})`);
  return 'file';
}

/**
 * The config path as task_server.pl names it: `-c FILE` verbatim, else the first existing default
 * candidate, made relative to ROOT after resolving symlinks (this string names the pid file). A
 * candidate that exists but cannot be used is an error, not a reason to take the next one.
 */
export function resolveConfigPath(kivitendoDir: string, cliPath?: string): string {
  if (cliPath) return cliPath;
  for (const candidate of DEFAULT_CONFIG_CANDIDATES) {
    const full = path.join(kivitendoDir, candidate);
    const probe = probeConfigFile(full, full);
    if (probe === 'absent') continue;
    if (probe instanceof ConfigError) throw probe;
    return path.relative(fs.realpathSync(kivitendoDir), fs.realpathSync(full));
  }
  throw new ConfigError(`No configuration file found (looked for ${DEFAULT_CONFIG_CANDIDATES.join(', ')} in ${kivitendoDir}).`);
}

function readSections(file: string): Sections {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`Cannot read config file '${file}': ${READ_ERRORS[code ?? ''] ?? code ?? (e as Error).message}`);
  }
  return parseConfigStd(text, file);
}

function positiveInt(sections: Sections, section: string, key: string, fallback: number): number {
  const raw = sections[section]?.[key];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    throw new ConfigError(`Invalid value '${raw}' for [${section}] ${key}: expected a positive whole number`);
  }
  return n;
}

/** Reads base + overlay config and builds the typed Config. Throws ConfigError / ConfigSyntaxError. */
export function loadConfig(kivitendoDir: string, configPath: string): Config {
  const defaultsFile = ['config/kivitendo.conf.default', 'config/lx_office.conf.default']
    .map((f) => path.join(kivitendoDir, f))
    .find(isFile);
  if (!defaultsFile) {
    throw new ConfigError(`Missing default config file ${path.join(kivitendoDir, 'config/kivitendo.conf.default')}`);
  }
  // The file was found at start-up (resolveConfigPath, or -c). Should it be gone or unusable now
  // (SIGHUP), that is an error: kivitendo would quietly run on the defaults alone.
  const overlayFile = path.resolve(kivitendoDir, configPath);
  const probe = probeConfigFile(overlayFile, overlayFile);
  if (probe === 'absent') throw new ConfigError(`Config file '${overlayFile}' does not exist`);
  if (probe instanceof ConfigError) throw probe;
  const files = [defaultsFile];
  let sections = readSections(defaultsFile);
  if (overlayFile !== defaultsFile) {
    files.push(overlayFile);
    sections = mergeSections(sections, readSections(overlayFile));
  }
  return buildConfig(kivitendoDir, configPath, files, sections);
}

export function buildConfig(kivitendoDir: string, configPath: string, files: string[], sections: Sections): Config {
  const ts = sections['task_server'];
  if (!ts) throw new ConfigError(`Missing section [task_server] in config file ${files[files.length - 1]}`);
  const get = (section: string, key: string, fallback = '') => sections[section]?.[key] ?? fallback;
  const limits: Record<string, number> = {};
  for (const [key, value] of Object.entries(ts)) {
    const m = /^job_time_limit\.(\w+)$/.exec(key);
    if (m) limits[m[1]] = parseTimeLimit(value, `[task_server] ${key}`);
  }
  const sessionTimeout = Number(get('authentication', 'session_timeout', '480'));
  return {
    kivitendoDir,
    configPath,
    files,
    sections,
    taskServer: {
      debug: perlTrue(ts.debug),
      runAs: ts.run_as ?? '',
      nodeId: perlTrue(ts.node_id) ? ts.node_id : '',
      onlyRunTasksForThisNode: perlTrue(ts.only_run_tasks_for_this_node),
      concurrency: positiveInt(sections, 'task_server', 'concurrency', 4),
      jobTimeLimitMs: ts.job_time_limit?.trim() ? parseTimeLimit(ts.job_time_limit, '[task_server] job_time_limit') : 3600_000,
      jobTimeLimitsMs: limits,
      shutdownGraceMs: ts.shutdown_grace ? parseDuration(ts.shutdown_grace, '[task_server] shutdown_grace') : DEFAULT_SHUTDOWN_GRACE_MS,
      startupWaitMs: !ts.startup_wait?.trim()
        ? undefined
        : /^\s*(forever|infinite|unlimited)\s*$/i.test(ts.startup_wait)
          ? Number.POSITIVE_INFINITY
          : parseDuration(ts.startup_wait, '[task_server] startup_wait'),
      perl: ts.perl === '0' ? null : (ts.perl ?? '').trim() || 'perl',
      perlPackages: packageList(ts.perl_packages ?? '', '[task_server] perl_packages'),
      forceNativePackages: packageList(ts.force_native_packages ?? '', '[task_server] force_native_packages'),
      metricsListen: parseMetricsListen(ts.metrics_listen),
      perlPreloadIdleMs: !ts.perl_preload_idle?.trim() ? 300_000 : /^\s*0\s*$/.test(ts.perl_preload_idle) ? 0 : parseDuration(ts.perl_preload_idle, '[task_server] perl_preload_idle'),
      renderConcurrency: positiveInt(sections, 'task_server', 'render_concurrency', Math.max(1, os.cpus().length)),
    },
    notifyOnFailure: {
      sendEmailTo: get('task_server/notify_on_failure', 'send_email_to'),
      emailFrom: get('task_server/notify_on_failure', 'email_from'),
      emailSubject: get('task_server/notify_on_failure', 'email_subject'),
      emailTemplate: get('task_server/notify_on_failure', 'email_template'),
    },
    system: {
      language: get('system', 'language', 'de') || 'de',
      memoryLimitRss: get('system', 'memory_limit_rss'),
      memoryLimitVsz: get('system', 'memory_limit_vsz'),
      hasSection: 'system' in sections,
    },
    authentication: {
      module: get('authentication', 'module', 'DB'),
      sessionTimeoutMinutes: Number.isFinite(sessionTimeout) && sessionTimeout > 0 ? sessionTimeout : 480,
    },
    authDb: {
      host: get('authentication/database', 'host', 'localhost') || 'localhost',
      port: Number(get('authentication/database', 'port', '5432')) || 5432,
      database: get('authentication/database', 'db', 'kivitendo_auth'),
      user: get('authentication/database', 'user', 'postgres'),
      password: get('authentication/database', 'password'),
    },
    debug: {
      globalLevel: get('debug', 'global_level', 'NONE'),
      fileName: get('debug', 'file_name', 'users/kivitendo-debug.log'),
    },
  };
}

/** `A, B C` → ['A', 'B', 'C']; names must look like kivitendo package names. */
function packageList(value: string, where: string): string[] {
  const names = value.split(/[\s,]+/).filter(Boolean);
  for (const n of names) {
    if (!/^[A-Z][A-Za-z0-9]+$/.test(n)) throw new ConfigError(`Invalid package name '${n}' in ${where}: expected names like CsvImport, separated by commas`);
  }
  return names;
}

/**
 * The longest duration a key may have: Node's timers hold 2^31-1 ms (24.8 days, 596 h); a longer
 * delay would fire after 1 ms, i.e. a time limit of 597 h would stop every job at once.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** `90`, `90s`, `15m`, `2h` → milliseconds; at most MAX_DURATION_MS. */
export function parseDuration(value: string, where: string): number {
  const m = /^\s*(\d+)\s*(ms|s|m|h)?\s*$/i.exec(value);
  if (!m) throw new ConfigError(`Invalid duration '${value}' for ${where}: expected e.g. 90s, 15m or 2h`);
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3600_000 }[(m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(m[1]) * factor;
  if (ms > MAX_DURATION_MS) throw new ConfigError(`Invalid duration '${value.trim()}' for ${where}: at most 596h (24 days)`);
  return ms;
}

/** A job time limit: a duration, or `0` for none (Infinity). Never a limit of 0 ms. */
export function parseTimeLimit(value: string, where: string): number {
  const ms = parseDuration(value, where);
  return ms === 0 ? Number.POSITIVE_INFINITY : ms;
}

/** The deprecated `login`/`client` keys make task_server.pl refuse to start (§3 step 4). */
export function hasDeprecatedKeys(config: Config): boolean {
  const ts = config.sections['task_server'] ?? {};
  return perlTrue(ts.login) || perlTrue(ts.client);
}

/** `users/pid/<config path with / replaced by .>.pid` (§2.4), absolute. */
export function pidFilePath(config: Pick<Config, 'kivitendoDir' | 'configPath'>): string {
  return path.join(config.kivitendoDir, 'users', 'pid', `${config.configPath.replace(/\//g, '.')}.pid`);
}

/** A section's key, or ''. */
export function configValue(config: Config, section: string, key: string): string {
  return config.sections[section]?.[key] ?? '';
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1)$/;

/**
 * `[task_server] metrics_listen`: `PORT` (on 127.0.0.1), `ADDRESS:PORT` or `[IPv6]:PORT`; empty or
 * `0`: off. The endpoints have no authentication, so a wildcard (`0.0.0.0`, `::`, `*`) or a host name
 * is refused: the admin who wants them on the network writes the one address to serve them on.
 */
export function parseMetricsListen(value: string | undefined): { host: string; port: number } | undefined {
  const v = (value ?? '').trim();
  if (v === '' || v === '0') return undefined;
  const key = `[task_server] metrics_listen = ${v}`;
  const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):)?(\d{1,5})$/.exec(v);
  if (!m) throw new ConfigError(`${key}: expected PORT, ADDRESS:PORT or [IPv6]:PORT, e.g. 127.0.0.1:9464`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new ConfigError(`${key}: port ${port} is out of range (1-65535)`);
  let host = m[1] ?? m[2] ?? '127.0.0.1';
  if (host === 'localhost') host = '127.0.0.1';
  if (host === '' || host === '*' || host === '0.0.0.0' || host === '::') {
    throw new ConfigError(`${key}: refusing to serve the metrics and health endpoints (no authentication) on every address; write 127.0.0.1:${port}, or the one address to serve them on`);
  }
  if (!LOOPBACK.test(host) && !/^\d{1,3}(\.\d{1,3}){3}$/.test(host) && !m[1]) {
    throw new ConfigError(`${key}: '${host}' is not an IP address; write 127.0.0.1:${port}, or the one address to serve the endpoints on`);
  }
  return { host, port };
}

export function formatListen(l: { host: string; port: number }): string {
  return l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}
