// The preloaded Perl parent (Minion's and Resque's model): one `perl` per (perl binary, installation)
// that has loaded kivitendo's modules — no client, no database connection, no session — and forks
// one child per run, which initialises its client and runs the job exactly as a cold child does.
// It is started on demand at the first Perl run, stops itself after [task_server] perl_preload_idle
// without a run, is restarted on SIGHUP (kivitendo's modules may have changed on disk) and dies with
// the server (PR_SET_PDEATHSIG). Whenever it cannot take a run — its folder cannot be created, not
// started, broken, dead, slow to fork — the run falls back to a cold perl; a run it already forked
// fails with a line saying the parent died. A parent slow to fork is retired gently: no new runs,
// the runs in it finish, then it is stopped.
//
// Per run the server listens on a Unix socket in a private 0700 directory; the forked child connects
// three times (control, stdout, stderr: first line names the stream), so its output and its result
// are the run's alone. The parent reports each child's pid at once and its exit status when reaped.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { PassThrough } from 'node:stream';
import type { Config } from '../../config/config';
import type { Logger } from '../../log/logger';

/** How long the parent may take to load kivitendo's modules before it is taken for hung. */
const READY_TIMEOUT_MS = 120_000;
/** How long a fork may take to be acknowledged. */
const FORK_TIMEOUT_MS = 10_000;

/** A run forked by the parent, shaped like the ChildProcess of a cold run for runPerlAction. */
export interface ForkedRun extends EventEmitter {
  pid: number;
  stdout: PassThrough;
  stderr: PassThrough;
  control: PassThrough;
  parentPid: number;
  /** Set when the parent died before it could report this run's exit. */
  parentDied?: string;
  /** The run is over (its result read or given up): its socket, listener and entry go. */
  release(): void;
  /** kivitendo's modules the run loaded beyond the parent's: the parent loads them for the runs after it. */
  learn(modules: string[]): void;
}

interface Pending {
  run: number;
  resolveFork: (r: ForkedRun | undefined) => void;
  /** Its streams exist before the fork: the child may connect before its pid is reported. */
  run_: ForkedRun;
  forked?: ForkedRun;
  server: net.Server;
  socket: string;
  ended: number;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

const SIGNALS: Record<number, NodeJS.Signals> = Object.fromEntries(
  Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

class PerlParent {
  readonly proc: ChildProcess;
  readonly dir: string;
  readonly ready: Promise<boolean>;
  private runs = new Map<number, Pending>();
  get runCount(): number {
    return this.runs.size;
  }
  private nextRun = 1;
  /** No new runs (idle exit announced by dying, SIGHUP, broken). */
  retired = false;
  dead = false;
  /** When a run last started or ended here (status: "idle for"). */
  lastActive = Date.now();
  private markReady!: (ok: boolean) => void;

  constructor(
    readonly key: string,
    perl: string,
    cwd: string,
    glue: string,
    idleMs: number,
    private log: Logger,
    private onGone: (p: PerlParent) => void,
  ) {
    // Throws when TMPDIR is missing, full or not writable: forkPreloaded then starts a cold perl.
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-perl-'));
    const script = path.join(this.dir, 'kivitendo-child.pl');
    try {
      fs.chmodSync(this.dir, 0o700);
      fs.writeFileSync(script, glue, { mode: 0o600 });
    } catch (e) {
      removeDir(this.dir);
      throw e;
    }
    this.ready = new Promise((r) => (this.markReady = r));
    const started = Date.now();
    // `-e`, as `perl -` for a cold run: kivitendo finds its root through FindBin, which takes the
    // current directory (the installation) for -e and -, but the script's folder for a file.
    this.proc = spawn(perl, ['-e', 'my $f = shift; do $f; die $@ || "cannot read $f: $!\n";', script, 'preload'], {
      cwd,
      detached: true, // its own group: a run's group kill never reaches it, nor a terminal's ^C
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, KTS_SERVER_PID: String(process.pid), KTS_PRELOAD_IDLE: String(idleMs / 1000) },
    });
    // An idle parent does not keep the server (or --run-job) alive; a run in it does, by its socket.
    this.proc.unref();
    for (const s of [this.proc.stdin, this.proc.stdout, this.proc.stderr]) (s as unknown as { unref?: () => void }).unref?.();
    const readyTimer = setTimeout(() => {
      this.log.warn(`Preloaded Perl parent ${this.proc.pid}: kivitendo's modules not loaded after ${READY_TIMEOUT_MS / 1000} s; stopping it, runs start a cold perl`);
      this.kill();
    }, READY_TIMEOUT_MS);
    readyTimer.unref();
    this.proc.on('error', (e) => {
      this.log.warn(`Preloaded Perl parent cannot be started: ${e.message}`);
      this.gone(`it could not be started: ${e.message}`);
    });
    this.proc.stdin!.on('error', () => undefined);
    readline.createInterface({ input: this.proc.stderr!, crlfDelay: Infinity }).on('line', (l) => this.log.info(`Preloaded Perl parent ${this.proc.pid} stderr: ${l}`));
    readline.createInterface({ input: this.proc.stdout!, crlfDelay: Infinity }).on('line', (line) => this.onReport(line, readyTimer, started));
    this.proc.on('exit', (code, signal) => {
      clearTimeout(readyTimer);
      this.gone(signal ? `killed by ${signal}` : `exit ${code}`);
    });
  }

  broken = false;
  /** Retired because it did not fork in time: stopped once the runs in it are over. */
  private sick = false;

  /** One report line of the parent: ready, a run forked (or not), a run's exit. */
  private onReport(line: string, readyTimer: NodeJS.Timeout, started: number) {
    let m: { ready?: 0 | 1; ms?: number; error?: string; retire?: 1; run?: number; pid?: number | null; exit?: number | null; signal?: number | null };
    try {
      m = JSON.parse(line);
    } catch {
      return this.log.info(`Preloaded Perl parent ${this.proc.pid} stdout: ${line}`);
    }
    if (m.ready !== undefined) {
      clearTimeout(readyTimer);
      if (m.ready) this.log.info(`Preloaded Perl parent ${this.proc.pid} started: kivitendo's modules loaded in ${m.ms} ms (${Date.now() - started} ms)`);
      else {
        this.log.warn(`Preloaded Perl parent ${this.proc.pid}: kivitendo's modules do not load (${(m.error ?? '').split('\n')[0]}); runs start a cold perl until the next SIGHUP`);
        this.broken = true;
      }
      this.markReady(!!m.ready);
      return;
    }
    // kivitendo's config changed on disk: the parent read the old one; the next run gets a new parent.
    if (m.retire) return void (this.retired || this.retire());
    const pending = m.run !== undefined ? this.runs.get(m.run) : undefined;
    const isFork = m.exit === undefined && m.signal === undefined;
    if (!pending) {
      // A fork reported after its run was given up (it started a cold perl): that child must not
      // run the job a second time. It cannot connect to the closed socket anyway; make sure.
      if (isFork && m.pid) killPid(m.pid);
      return;
    }
    if (isFork) {
      if (!m.pid) {
        this.log.warn(`Preloaded Perl parent ${this.proc.pid} could not fork: ${m.error}`);
        this.drop(pending);
        return pending.resolveFork(undefined);
      }
      const f = pending.run_;
      f.pid = m.pid;
      pending.forked = f;
      pending.resolveFork(f);
      setImmediate(() => f.emit('spawn'));
      return;
    }
    pending.exit = { code: m.exit ?? null, signal: m.signal ? (SIGNALS[m.signal] ?? null) : null };
    pending.forked?.emit('exit', pending.exit.code, pending.exit.signal);
    this.maybeClose(pending);
  }

  private maybeClose(p: Pending) {
    if (!p.exit || !p.forked || p.ended < 3) return;
    this.drop(p);
    p.forked.emit('close', p.exit.code, p.exit.signal);
  }

  private drop(p: Pending) {
    if (!this.runs.delete(p.run)) return;
    this.lastActive = Date.now();
    p.server.close();
    fs.rmSync(p.socket, { force: true });
    if (this.sick && !this.runs.size) this.kill();
  }

  private gone(why: string) {
    if (this.dead) return;
    this.dead = true;
    this.retired = true;
    this.markReady(false);
    this.onGone(this);
    if (this.runs.size) this.log.warn(`Preloaded Perl parent ${this.proc.pid} died (${why}) with ${this.runs.size} run(s) in it`);
    else this.log.debug(`Preloaded Perl parent ${this.proc.pid} ended (${why})`);
    for (const p of [...this.runs.values()]) {
      if (!p.forked) {
        this.drop(p);
        p.resolveFork(undefined);
        continue;
      }
      // Its child got SIGKILL from the kernel (PR_SET_PDEATHSIG); nobody is left to report its exit.
      try {
        process.kill(-p.forked.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      p.forked.parentDied = `the preloaded Perl parent (pid ${this.proc.pid}) died (${why}) during the run`;
      p.exit = { code: null, signal: 'SIGKILL' };
      p.forked.emit('exit', null, 'SIGKILL');
      for (const s of [p.forked.stdout, p.forked.stderr, p.forked.control]) if (!s.writableEnded) s.end();
    }
    removeDir(this.dir);
  }

  /** Forks a run; undefined when the parent cannot take it (the caller starts a cold perl). */
  async fork(request: unknown, pgappname: string): Promise<ForkedRun | undefined> {
    if (!(await this.ready) || this.retired) return undefined;
    this.lastActive = Date.now();
    const run = this.nextRun++;
    const socket = path.join(this.dir, `run-${run}.sock`);
    const server = net.createServer();
    const f = new EventEmitter() as ForkedRun;
    f.parentPid = this.proc.pid!;
    f.stdout = new PassThrough();
    f.stderr = new PassThrough();
    f.control = new PassThrough();
    const pending: Pending = { run, resolveFork: () => undefined, run_: f, server, socket, ended: 0 };
    f.release = () => this.drop(pending);
    f.learn = (modules) => this.learn(modules);
    for (const s of [f.stdout, f.stderr, f.control]) s.on('end', () => (++pending.ended, this.maybeClose(pending)));
    const forked = new Promise<ForkedRun | undefined>((resolve) => (pending.resolveFork = resolve));
    server.on('connection', (sock) => acceptStream(sock, f));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    }).catch((e) => {
      this.log.warn(`Preloaded Perl parent: cannot listen on ${socket}: ${(e as Error).message}`);
    });
    if (!server.listening) return undefined;
    this.runs.set(run, pending);
    const timer = setTimeout(() => {
      if (pending.forked) return;
      this.log.warn(`Preloaded Perl parent ${this.proc.pid} did not fork within ${FORK_TIMEOUT_MS / 1000} s; it takes no new runs and is stopped once the ${this.runs.size - 1} run(s) in it are over; this run starts a cold perl`);
      this.retireSick();
      this.drop(pending);
      pending.resolveFork(undefined);
    }, FORK_TIMEOUT_MS);
    this.proc.stdin!.write(JSON.stringify({ run, socket, pgappname, request }) + '\n');
    const result = await forked;
    clearTimeout(timer);
    return result;
  }

  private learn(modules: string[]) {
    const names = modules.filter((m) => typeof m === 'string' && m.length <= 200 && /^SL(::\w+)+$/.test(m)).slice(0, 5000);
    if (!names.length || this.retired || this.dead || !this.proc.stdin?.writable) return;
    this.proc.stdin.write(JSON.stringify({ learn: names }) + '\n');
  }

  /** No new runs; the parent exits once its runs are done (its stdin closes). */
  retire() {
    this.retired = true;
    this.onGone(this);
    this.proc.stdin!.end();
  }

  /**
   * A parent that did not fork in time: no new runs, but the runs in it (other clients' jobs) go
   * on; once they are over it is stopped, whether it noticed its closed stdin or hangs.
   */
  private retireSick() {
    this.sick = true;
    this.retire();
    if (![...this.runs.values()].some((r) => r.forked)) this.kill();
  }

  kill() {
    this.retired = true;
    killPid(-this.proc.pid!);
  }

  /** The server exits: the parent goes, and its folder with the runs' sockets. */
  exitNow() {
    this.kill();
    removeDir(this.dir);
  }
}

/** One of a forked run's three connections: its first line names the stream it carries. */
function acceptStream(sock: net.Socket, f: ForkedRun) {
  let head = Buffer.alloc(0);
  const onData = (d: Buffer) => {
    head = Buffer.concat([head, d]);
    const nl = head.indexOf(10);
    if (nl < 0) {
      if (head.length > 64) sock.destroy();
      return;
    }
    sock.off('data', onData);
    const name = head.subarray(0, nl).toString();
    const target = name === 'stdout' ? f.stdout : name === 'stderr' ? f.stderr : name === 'control' ? f.control : undefined;
    if (!target || target.destroyed) return void sock.destroy();
    if (nl + 1 < head.length) target.write(head.subarray(nl + 1));
    sock.pipe(target);
  };
  sock.on('data', onData);
  sock.on('error', () => undefined);
}

function killPid(pid: number) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

function removeDir(dir: string) {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    /* nothing to do about it on the way out */
  }
}

const parents = new Map<string, PerlParent>();
const all = new Set<PerlParent>();
let exitHook = false;
/** mkdtemp failed (TMPDIR missing or full): said once, runs start a cold perl. */
let noDirWarned = false;
/** Preloaded parents started by this process (metrics: a count that climbs means parents keep dying). */
let perlParentStarts = 0;

/**
 * A run forked by the preloaded parent of this perl and installation (started on demand), or
 * undefined when preloading is off or the parent cannot take it.
 */
export async function forkPreloaded(config: Config, log: Logger, glue: string, request: unknown, pgappname: string): Promise<ForkedRun | undefined> {
  const perl = config.taskServer.perl;
  if (!perl || !config.taskServer.perlPreloadIdleMs) return undefined;
  const key = `${perl}\0${path.resolve(config.kivitendoDir)}`;
  let parent = parents.get(key);
  if (parent?.broken) return undefined;
  if (!parent || parent.retired) {
    try {
      parent = new PerlParent(key, perl, config.kivitendoDir, glue, config.taskServer.perlPreloadIdleMs, log, (p) => {
        if (parents.get(p.key) === p && !p.broken) parents.delete(p.key);
        if (p.dead) all.delete(p);
      });
    } catch (e) {
      if (!noDirWarned) log.warn(`Preloaded Perl parent cannot be started: ${(e as Error).message}; runs start a cold perl`);
      noDirWarned = true;
      return undefined;
    }
    noDirWarned = false;
    parents.set(key, parent);
    all.add(parent);
    perlParentStarts += 1;
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const p of all) p.exitNow();
      });
    }
  }
  return parent.fork(request, pgappname);
}

/** SIGHUP: kivitendo may have been upgraded on disk; the next run starts a fresh parent. */
export function restartPerlParents(): void {
  for (const p of [...parents.values()]) p.retire();
  parents.clear();
}

/** Shutdown: the parents exit once their runs are gone. */
export function stopPerlParents(): void {
  restartPerlParents();
  for (const p of all) p.retire();
}

/** Runs the preloaded parents hold now: their listeners and sockets (tests: nothing may leak). */
export function perlParentRuns(): number {
  return [...all].reduce((n, p) => n + p.runCount, 0);
}

/** Pids of the preloaded parents now running (benchmarks, tests). */
export function perlParentPids(): number[] {
  return [...all].filter((p) => !p.dead && p.proc.pid).map((p) => p.proc.pid!);
}

/** The preloaded parents now running, for `status` and the metrics. */
export function perlParentStates(): { pid: number; runs: number; idleSinceMs?: number }[] {
  return [...all]
    .filter((p) => !p.dead && p.proc.pid)
    .map((p) => ({ pid: p.proc.pid!, runs: p.runCount, idleSinceMs: p.runCount ? undefined : p.lastActive }));
}

export function perlParentStartCount(): number {
  return perlParentStarts;
}
