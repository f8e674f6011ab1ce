// Running the kivitendo-task-server CLI as a process in tests: `node --import tsx src/main.ts` (fast,
// no build needed) or the built single executable.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

export const REPO = path.join(__dirname, '..', '..');
export const MAIN = path.join(REPO, 'src', 'main.ts');
export const BINARY = path.join(REPO, 'dist', 'kivitendo-task-server');
/** tsx's loader by absolute URL: the CLI runs with cwd elsewhere (and re-runs itself from ROOT). */
export const TSX = pathToFileURL(path.join(REPO, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Run as this user (runuser -u; the test must run as root). */
  user?: string;
  /** Use this executable instead of node + src/main.ts. */
  binary?: string;
  timeoutMs?: number;
}

function command(args: string[], opts: RunOptions): [string, string[]] {
  const [file, argv] = opts.binary ? [opts.binary, args] : [process.execPath, ['--import', TSX, MAIN, ...args]];
  // tsx keeps its cache in $TMPDIR/tsx-<uid>, which another user may not be able to create (a
  // TMPDIR of the test runner's own): run the sources without it.
  if (opts.user) return ['runuser', ['-u', opts.user, '--', 'env', 'TSX_DISABLE_CACHE=1', file, ...argv]];
  return [file, argv];
}

/** Environment for the CLI: no JOURNAL_STREAM / KIVITENDO_DIR from the test runner. */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.JOURNAL_STREAM;
  delete env.KIVITENDO_DIR;
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Runs the CLI to completion. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const [file, argv] = command(args, opts);
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { cwd: opts.cwd ?? os.tmpdir(), env: cliEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 60_000} ms; stdout: ${stdout} stderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A CLI process that keeps running (start -f); output is collected as it comes. */
export function spawnCli(args: string[], opts: RunOptions = {}) {
  const [file, argv] = command(args, opts);
  const child = spawn(file, argv, { cwd: opts.cwd ?? os.tmpdir(), env: cliEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (out.stdout += d));
  child.stderr.on('data', (d) => (out.stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, out, exited };
}

/**
 * Polls fn (sync or async) until it returns something truthy. `detail` adds context to the timeout
 * error, e.g. a server's stderr.
 */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
  detail?: () => string,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${detail ? `; ${detail()}` : ''}`);
    await sleep(50);
  }
}

/** The process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = readIfExists(`/proc/${pid}/stat`);
  return stat === undefined || !/\) Z /.test(stat);
}

export function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

export const DEFAULT_PID_FILE = (root: string) => path.join(root, 'users', 'pid', 'config.kivitendo.conf.pid');

/** Kills a daemon left behind by a failed test (by its pid file). */
export function killFromPidFile(root: string): void {
  const content = readIfExists(DEFAULT_PID_FILE(root));
  const pid = content ? parseInt(content, 10) : NaN;
  if (pid > 0 && alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Non-empty lines of a text. */
export const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');

export const isRoot = process.getuid?.() === 0;

/** Builds dist/kivitendo-task-server unless it exists and is newer than every source file. */
export function ensureBinary(): string {
  const newest = (dir: string): number =>
    fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = path.join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
    }, 0);
  const srcTime = Math.max(newest(path.join(REPO, 'src')), fs.statSync(path.join(REPO, 'build.ts')).mtimeMs);
  let binTime = 0;
  try {
    binTime = fs.statSync(BINARY).mtimeMs;
  } catch {
    /* missing */
  }
  if (binTime < srcTime) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'build.ts')], { cwd: REPO, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`build failed: ${r.stdout}${r.stderr}`);
  }
  return BINARY;
}
