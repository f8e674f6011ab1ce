// The poll loop (spec task-server.md §7) rebuilt around what the Perl loop cannot do:
//  - it sleeps until the earliest next_run_at of all clients (at most 30 s, the clock re-read
//    after every sleep), so a due job starts within a second instead of at the next full minute;
//  - SIGALRM (wake()) starts a sweep at once, also while jobs run: a wake-up is never lost;
//  - clients are polled and run concurrently up to a bound; jobs of one client run one after the
//    other as in kivitendo, so a slow or hung client only occupies its own slot;
//  - every job is claimed with an advisory lock (claimJob), so several servers never run one twice;
//  - an auth DB or client DB outage is logged once, retried with backoff and survived.
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { formatLocalTimestamp, parseLocalTimestamp, systemClock, type Clock } from '../clock';
import type { Config } from '../config/config';
import { enabledClients, loadUserById, loadUserByLogin } from '../db/auth';
import { claimJob, claimJobById, earliestNextRun, releaseJob, selectDueJobs, type NodeFilter } from '../db/backgroundJobs';
import type { HistoryRow } from '../db/backgroundJobHistories';
import { clientDbParams, openConnection, type Client } from '../db/pg';
import type { BackgroundJobRow, ClientRow, TaskServerUser } from '../jobs/types';
import { routeJobPackage } from '../jobs/registry';
import type { Logger } from '../log/logger';
import { Backoff, isTransientDbError } from './backoff';
import { Semaphore } from './semaphore';
import { failureMailer } from './notifications';
import { runClaimedJob } from './runner';

/** What the scheduler reports to the notification layer (failure mails, spec §9). */
export type FailureEvent =
  | { kind: 'job'; client: ClientRow; user: TaskServerUser; history: HistoryRow }
  | { kind: 'client-outage'; client: ClientRow; message: string }
  | { kind: 'client-recovered'; client: ClientRow };

export interface SchedulerOptions {
  config: Config;
  log: Logger;
  nodeId: string;
  clock?: Clock;
  /** Failure notification hook; default: the mail of [task_server/notify_on_failure]. Errors are logged, never fatal. */
  onFailure?: (event: FailureEvent) => Promise<void>;
  /** Checked after each sweep; a message ends the loop with 'memory-limit' (spec §7.7). */
  memoryCheck?: () => string | undefined;
  /** Longest sleep between sweeps, ms. */
  maxSleepMs?: number;
}

export type StopReason = 'stopped' | 'memory-limit';

/** The node id: [task_server] node_id, else the host name (spec §4.3). */
export function resolveNodeId(config: Config): string {
  return config.taskServer.nodeId || os.hostname();
}

export function nodeFilter(config: Config, nodeId: string): NodeFilter {
  return { nodeId, onlyRunTasksForThisNode: config.taskServer.onlyRunTasksForThisNode };
}

interface ClientState {
  row: ClientRow;
  /** Earliest known next_run_at (ms since epoch); undefined = unknown, poll. */
  earliest?: number;
  lastPolled: number;
  /** Subtracted from the first poll time, to spread re-polls (ms). */
  phase: number;
  running: boolean;
  backoff: Backoff;
  /** Set while the client's DB is unreachable: the outage is reported once. */
  outage?: string;
  outageSince?: number;
}

/** A job running now, as `status` shows it. */
export interface RunningJob {
  clientId: number;
  client: string;
  jobId: number;
  package: string | null;
  startedAt: number;
  how: 'native' | 'perl' | 'cannot run';
  /** The Perl process of the run, once it runs. */
  perlPid?: number;
}

/** Emitted as 'job-finished' after the history row is written (metrics, state file). */
export interface JobFinished {
  run: RunningJob;
  status: 'success' | 'failure';
  durationMs: number;
  /** From next_run_at to the start of the run; undefined for jobs due "at once". */
  startLatencyMs?: number;
  runAt: string;
}

/** Emitted as 'sweep' after every pass over the clients. */
export interface SweepFinished {
  durationMs: number;
  polled: number;
}

/** The scheduler's own state, for `status`, /healthz and /metrics: nothing here is read from a database. */
export interface SchedulerSnapshot {
  sweeps: number;
  jobsRun: number;
  /** When the last sweep ended / the current one began (ms since epoch). */
  lastSweepEndedAt?: number;
  sweepStartedAt?: number;
  lastSweepMs: number;
  lastSweepPolled: number;
  /** Enabled clients known from the auth DB. */
  clients: number;
  authOutage?: { since: number; error: string };
  outages: { clientId: number; client: string; since: number; error: string }[];
  running: RunningJob[];
  /** The last run of each job this process ran: "clientId:jobId" → run_at, duration, status. */
  lastRuns: Record<string, { runAt: string; ms: number; status: 'success' | 'failure' }>;
}

/**
 * A client is re-polled at least this often even when nothing is known to be due, to see jobs
 * created or rescheduled in the web UI (which sends SIGALRM only for `once` jobs) — kivitendo's
 * minute. Re-polls are spread over the minute and batched per second, so a thousand clients cost
 * about 17 connections a second instead of a burst of a thousand.
 */
const REPOLL_MS = 60_000;
/** Polls at the same time; with the auth connection this stays ≤ 10 connections while idle. */
const POLL_CONCURRENCY = 8;

function repollAt(state: { lastPolled: number }): number {
  return Math.ceil((state.lastPolled + REPOLL_MS) / 1000) * 1000;
}

export interface SchedulerStats {
  sweeps: number;
  polls: number;
  jobsRun: number;
  /** Wall time of the last sweep (polls only; runners go on in the background), ms. */
  lastSweepMs: number;
}

export class Scheduler {
  readonly firstPoll: Promise<void>;
  readonly stats: SchedulerStats = { sweeps: 0, polls: 0, jobsRun: 0, lastSweepMs: 0 };
  private resolveFirstPoll!: () => void;
  private config: Config;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly clients = new Map<number, ClientState>();
  private auth?: Client;
  private readonly authBackoff = new Backoff(250, 2000);
  private authOutage?: string;
  private stopping = false;
  private wakeRequested = false;
  private wakeSleep?: () => void;
  private readonly runners = new Set<Promise<void>>();
  private readonly runSlots: Semaphore;
  private readonly shutdown = new AbortController();
  /** 'sweep' (SweepFinished), 'job-started' (RunningJob), 'job-finished' (JobFinished): metrics and the state file listen. */
  readonly events = new EventEmitter();
  private readonly running = new Map<string, RunningJob>();
  private readonly lastRuns = new Map<string, { runAt: string; ms: number; status: 'success' | 'failure' }>();
  private authOutageSince?: number;
  private lastSweepEndedAt?: number;
  private sweepStartedAt?: number;
  private lastSweepPolled = 0;

  constructor(readonly opts: SchedulerOptions) {
    this.config = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log;
    this.firstPoll = new Promise((resolve) => (this.resolveFirstPoll = resolve));
    this.runSlots = new Semaphore(this.config.taskServer.concurrency);
    this.onFailure = opts.onFailure ?? failureMailer(() => this.config, this.log, (login) => this.userEmail(login));
  }

  private readonly onFailure: (event: FailureEvent) => Promise<void>;

  private async userEmail(login: string): Promise<string | undefined> {
    const user = await this.withAuth((auth) => loadUserByLogin(auth, login, { language: this.config.system.language, kivitendoDir: this.config.kivitendoDir }));
    return user?.settings.email;
  }

  async run(): Promise<StopReason> {
    this.log.info(`The task server for node ${this.opts.nodeId} is up and running.`);
    while (!this.stopping) {
      this.wakeRequested = false;
      const pollAll = this.clients.size === 0;
      const started = performance.now();
      this.sweepStartedAt = Date.now();
      await this.sweep(pollAll);
      this.stats.sweeps += 1;
      this.stats.lastSweepMs = performance.now() - started;
      this.lastSweepEndedAt = Date.now();
      this.sweepStartedAt = undefined;
      this.events.emit('sweep', { durationMs: this.stats.lastSweepMs, polled: this.lastSweepPolled } satisfies SweepFinished);
      this.resolveFirstPoll();
      const memory = this.opts.memoryCheck?.();
      if (memory) {
        this.log.warn(memory);
        this.log.debug('Memory usage too high - exiting.');
        await this.drain(60_000);
        return 'memory-limit';
      }
      if (this.stopping) break;
      await this.sleep(this.sleepMs());
    }
    return 'stopped';
  }

  snapshot(): SchedulerSnapshot {
    const outages = [...this.clients.values()]
      .filter((c) => c.outage !== undefined)
      .map((c) => ({ clientId: c.row.id, client: c.row.name, since: c.outageSince ?? 0, error: c.outage! }));
    return {
      sweeps: this.stats.sweeps,
      jobsRun: this.stats.jobsRun,
      lastSweepEndedAt: this.lastSweepEndedAt,
      sweepStartedAt: this.sweepStartedAt,
      lastSweepMs: this.stats.lastSweepMs,
      lastSweepPolled: this.lastSweepPolled,
      clients: this.clients.size,
      authOutage: this.authOutage === undefined ? undefined : { since: this.authOutageSince ?? 0, error: this.authOutage },
      outages,
      running: [...this.running.values()].map((r) => ({ ...r })),
      lastRuns: Object.fromEntries(this.lastRuns),
    };
  }

  /** SIGALRM: poll every client now. */
  wake(): void {
    this.log.debug('Got woken up by SIGALRM');
    this.wakeRequested = true;
    for (const c of this.clients.values()) c.earliest = undefined;
    this.wakeSleep?.();
  }

  reload(config: Config): void {
    this.config = config;
    this.runSlots.setLimit(config.taskServer.concurrency);
    this.wakeSleep?.();
  }

  /** Stop taking jobs; wait up to graceMs for running ones, then stop them (failure history rows). */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.wakeSleep?.();
    await this.drain(graceMs);
    await this.auth?.end().catch(() => undefined);
    this.auth = undefined;
  }

  private async drain(graceMs: number) {
    const all = Promise.all([...this.runners]);
    const timedOut = await Promise.race([all.then(() => false), delay(graceMs).then(() => true)]);
    if (timedOut) {
      this.shutdown.abort();
      await all;
    }
  }

  private sleepMs(): number {
    if (this.wakeRequested) return 0;
    const now = this.clock.now().getTime();
    let until = now + (this.opts.maxSleepMs ?? 30_000);
    for (const c of this.clients.values()) {
      if (c.running) continue;
      const due = c.backoff.failing ? c.backoff.retryAt : Math.min(c.earliest ?? now, repollAt(c));
      until = Math.min(until, due);
    }
    if (this.authOutage) until = Math.min(until, this.authBackoff.retryAt);
    return Math.max(0, until - now);
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    this.log.debug('Sleeping');
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wakeSleep = () => {
        this.wakeSleep = undefined;
        done();
      };
    });
  }

  /** One pass over the enabled clients: poll those that may have due jobs, start runners. */
  private async sweep(pollAll: boolean): Promise<void> {
    const rows = await this.loadClients();
    if (!rows) return;
    const now = this.clock.now().getTime();
    const toPoll: ClientState[] = [];
    const seen = new Set<number>();
    for (const [index, row] of rows.entries()) {
      seen.add(row.id);
      let state = this.clients.get(row.id);
      if (!state) {
        // The phase spreads the periodic re-polls of many clients evenly over the minute.
        const phase = pollAll ? Math.floor((index / rows.length) * REPOLL_MS) : 0;
        state = { row, lastPolled: 0, phase, running: false, backoff: new Backoff(500, 5000) };
        this.clients.set(row.id, state);
      }
      state.row = row; // credentials edited in the admin screen apply from now on
      if (state.running) continue;
      if (state.backoff.failing && state.backoff.retryAt > now) continue;
      if (pollAll || state.earliest === undefined || state.earliest <= now || repollAt(state) <= now) toPoll.push(state);
    }
    for (const id of this.clients.keys()) if (!seen.has(id) && !this.clients.get(id)!.running) this.clients.delete(id);
    this.lastSweepPolled = toPoll.length;
    await mapBounded(toPoll, POLL_CONCURRENCY, (c) => this.poll(c));
  }

  private authQueue: Promise<unknown> = Promise.resolve();

  /** The one auth connection is shared by the sweep and the runners: one statement at a time. */
  private withAuth<T>(fn: (auth: Client) => Promise<T>): Promise<T> {
    const next = this.authQueue.then(async () => fn(await this.authConnection()));
    this.authQueue = next.catch(() => undefined);
    return next;
  }

  private async authConnection(): Promise<Client> {
    if (!this.auth) {
      const conn = await openConnection(this.config.authDb, { applicationName: 'kivitendo-task-server' });
      conn.on('error', () => {
        if (this.auth === conn) this.auth = undefined;
      });
      this.auth = conn;
    }
    return this.auth;
  }

  private async loadClients(): Promise<ClientRow[] | undefined> {
    if (this.authOutage && this.authBackoff.retryAt > this.clock.now().getTime()) return undefined;
    try {
      const rows = await this.withAuth(enabledClients);
      if (this.authOutage) this.log.notice(`The authentication database is reachable again (was: ${this.authOutage}).`);
      this.authOutage = undefined;
      this.authBackoff.succeed();
      return rows;
    } catch (e) {
      await this.auth?.end().catch(() => undefined);
      this.auth = undefined;
      const msg = (e as Error).message;
      // The outage is logged once, with its first error, whatever global_level says; its end names
      // that first error again (later ones are mostly "connection refused" while it restarts).
      if (!this.authOutage) this.authOutageSince = Date.now();
      if (!this.authOutage) this.log.problem(`The authentication database is unreachable, retrying with backoff: ${msg}`);
      this.authOutage ??= msg;
      this.authBackoff.fail(this.clock.now().getTime());
      return undefined;
    }
  }

  /** Opens the client's DB, learns its earliest next_run_at, and hands it to a runner if jobs are due. */
  private async poll(state: ClientState): Promise<void> {
    if (this.stopping) return;
    const { row } = state;
    this.log.debug(`Running for client ID ${row.id} (${row.name})`);
    let db: Client | undefined;
    this.stats.polls += 1;
    try {
      db = await openConnection(clientDbParams(row), { applicationName: 'kivitendo-task-server' });
      const next = await earliestNextRun(db, nodeFilter(this.config, this.opts.nodeId));
      const now = this.clock.now().getTime();
      state.lastPolled = now - state.phase;
      state.phase = 0;
      state.earliest = earliestMs(next);
      this.clientRecovered(state);
      if (state.earliest > now) {
        this.log.debug(' No jobs to execute found');
        return;
      }
      // With a slot free now the runner goes on with this connection: a connection (and its
      // authentication) less between SIGALRM and the job's start. Otherwise it connects when its
      // slot comes, so no idle connections pile up behind the concurrency limit.
      if (!this.stopping && this.runSlots.tryAcquire()) {
        this.startRunner(state, db);
        db = undefined;
      } else this.startRunner(state);
    } catch (e) {
      this.clientFailed(state, e as Error);
    } finally {
      await db?.end().catch(() => undefined);
    }
  }

  private clientFailed(state: ClientState, e: Error) {
    const msg = `client ${state.row.id} (${state.row.name}): ${e.message}`;
    state.backoff.fail(this.clock.now().getTime(), isTransientDbError(e) ? 2000 : 60_000);
    if (state.outage) return;
    state.outage = e.message;
    state.outageSince = Date.now();
    this.log.problem(`Exception during execution: ${msg}`);
    this.notify({ kind: 'client-outage', client: state.row, message: e.message });
  }

  private clientRecovered(state: ClientState) {
    state.backoff.succeed();
    if (!state.outage) return;
    this.log.notice(`client ${state.row.id} (${state.row.name}) is reachable again (was: ${state.outage}).`);
    state.outage = undefined;
    state.outageSince = undefined;
    this.notify({ kind: 'client-recovered', client: state.row });
  }

  private notify(event: FailureEvent) {
    this.onFailure(event).catch((e) => this.log.warn(`Sending a failure notification failed: ${(e as Error).message}`));
  }

  /** `db`: an open connection to the client's database that comes with a slot already taken. */
  private startRunner(state: ClientState, db?: Client) {
    state.running = true;
    const p = this.runClient(state, db)
      .catch((e) => this.clientFailed(state, e as Error))
      .finally(() => {
        state.running = false;
        state.earliest = undefined; // re-poll: jobs may have become due while this one ran
        this.runners.delete(p);
        this.wakeSleep?.();
      });
    this.runners.add(p);
  }

  /** Runs the due jobs of one client one after the other (kivitendo's order within a client). */
  private async runClient(state: ClientState, polled?: Client): Promise<void> {
    if (!polled) await this.runSlots.acquire();
    let db = polled;
    try {
      if (this.stopping) return;
      db ??= await openConnection(clientDbParams(state.row), { applicationName: 'kivitendo-task-server' });
      const user = await this.withAuth((auth) =>
        loadUserById(auth, state.row.task_server_user_id, { language: this.config.system.language, kivitendoDir: this.config.kivitendoDir }),
      );
      const filter = nodeFilter(this.config, this.opts.nodeId);
      const due = await selectDueJobs(db, formatLocalTimestamp(this.clock.now()), filter);
      this.log.debug(due.length ? ` Executing the following jobs: ${due.map((j) => j.package_name).join(' ')}` : ' No jobs to execute found');
      for (const candidate of due) {
        if (this.stopping) break;
        const job = await claimJob(db, candidate.id, formatLocalTimestamp(this.clock.now()), filter);
        if (!job) continue; // another server has it, or it is no longer due
        const run = this.jobStarted(state.row, job);
        try {
          const { history } = await runClaimedJob({
            config: this.config, log: this.log, clock: this.clock, nodeId: this.opts.nodeId,
            client: state.row, user, control: db, job, shutdown: this.shutdown.signal,
            onPerlPid: (pid) => (run.perlPid = pid),
            onRoute: (kind) => (run.how = howItRuns(kind)),
          });
          this.jobFinished(run, job, history);
          this.stats.jobsRun += 1;
          this.log.debug(`   Executed job ${job.package_name}; result: ${describeOutcome(history)}`);
          if (history.status === 'failure') this.notify({ kind: 'job', client: state.row, user, history });
        } finally {
          this.running.delete(`${run.clientId}:${run.jobId}`);
          await releaseJob(db, job.id).catch(() => undefined);
        }
      }
    } finally {
      this.runSlots.release();
      await db?.end().catch(() => undefined);
    }
  }

  private jobStarted(client: ClientRow, job: BackgroundJobRow): RunningJob {
    // A first answer without the client's release; the runner's onRoute corrects it once read.
    const route = routeJobPackage(this.config, job.package_name);
    const run: RunningJob = {
      clientId: client.id, client: client.name, jobId: job.id, package: job.package_name, startedAt: Date.now(),
      how: howItRuns(route.kind),
    };
    this.running.set(`${client.id}:${job.id}`, run);
    this.events.emit('job-started', run);
    return run;
  }

  private jobFinished(run: RunningJob, job: BackgroundJobRow, history: HistoryRow) {
    const durationMs = Date.now() - run.startedAt;
    const due = job.next_run_at && !/infinity/.test(job.next_run_at) ? parseLocalTimestamp(job.next_run_at).getTime() : undefined;
    const key = `${run.clientId}:${run.jobId}`;
    this.lastRuns.delete(key);
    this.lastRuns.set(key, { runAt: history.run_at, ms: durationMs, status: history.status });
    // Bounded: the oldest entries go first (a Map keeps insertion order).
    if (this.lastRuns.size > MAX_LAST_RUNS) this.lastRuns.delete(this.lastRuns.keys().next().value!);
    const finished: JobFinished = {
      run, status: history.status, durationMs, runAt: history.run_at,
      startLatencyMs: due === undefined ? undefined : Math.max(0, run.startedAt - due),
    };
    this.events.emit('job-finished', finished);
  }
}

/** Enough for every job of 200 clients with 10 jobs each; bounded so the state file stays small. */
const MAX_LAST_RUNS = 2000;

/**
 * kivitendo compares next_run_at with "now" in whole seconds, so a fractional next_run_at is due
 * only at the following whole second; waking earlier would find nothing and poll again at once.
 */
function earliestMs(next: { at: string | null; any: boolean }): number {
  if (!next.any) return Number.POSITIVE_INFINITY;
  if (next.at === null || next.at === '-infinity') return 0;
  if (next.at === 'infinity') return Number.POSITIVE_INFINITY; // only parked jobs (parkJob)
  return Math.ceil(parseLocalTimestamp(next.at).getTime() / 1000) * 1000;
}

function describeOutcome(history: HistoryRow): string {
  return history.status === 'success' ? 'succeeded' : `failed; error: ${history.error}`;
}

/** --run-job=ID (spec §8): runs job ID in every enabled client, or only in `clientFilter` (id or name). */
export async function runSingleJob(opts: SchedulerOptions, jobId: number, clientFilter?: string): Promise<number> {
  const { config, log } = opts;
  const clock = opts.clock ?? systemClock;
  const auth = await openConnection(config.authDb, { applicationName: 'kivitendo-task-server' });
  const language = { language: config.system.language, kivitendoDir: config.kivitendoDir };
  const onFailure = opts.onFailure ?? failureMailer(() => config, log, async (login) => (await loadUserByLogin(auth, login, language))?.settings.email);
  let ran = 0;
  try {
    const clients = (await enabledClients(auth)).filter(
      (c) => clientFilter === undefined || String(c.id) === clientFilter || c.name === clientFilter,
    );
    if (clientFilter !== undefined && clients.length === 0) {
      throw new Error(`no enabled client with id or name '${clientFilter}'`);
    }
    for (const client of clients) {
      log.debug(`Running single job ID ${jobId} for client ID ${client.id} (${client.name})`);
      let db: Client | undefined;
      try {
        db = await openConnection(clientDbParams(client), { applicationName: 'kivitendo-task-server' });
        const job = await claimJobById(db, jobId);
        if (!job) {
          log.debug(' No jobs to execute found');
          continue;
        }
        if (job === 'locked') {
          log.warn(`job ${jobId} of client ${client.name} is running on another server; not run`);
          continue;
        }
        log.debug(` Executing the following job: ${job.package_name}`);
        const user = await loadUserById(auth, client.task_server_user_id, language);
        try {
          const { history } = await runClaimedJob({ config, log, clock, nodeId: opts.nodeId, client, user, control: db, job });
          ran += 1;
          log.debug(`   Executed job ${job.package_name}; result: ${describeOutcome(history)}`);
          if (history.status === 'failure') await onFailure({ kind: 'job', client, user, history }).catch((e) => log.warn(`Sending a failure notification failed: ${(e as Error).message}`));
        } finally {
          await releaseJob(db, job.id).catch(() => undefined);
        }
      } catch (e) {
        log.warn(`Exception during execution: client ${client.id} (${client.name}): ${(e as Error).message}`);
      } finally {
        await db?.end().catch(() => undefined);
      }
    }
  } finally {
    await auth.end().catch(() => undefined);
  }
  return ran;
}

function delay(ms: number) {
  return new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
}

/** Runs fn over items with at most `limit` at a time. */
export async function mapBounded<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/** A route's kind as status and the metrics name it. */
function howItRuns(kind: 'native' | 'perl' | 'unavailable'): RunningJob['how'] {
  return kind === 'native' ? 'native' : kind === 'perl' ? 'perl' : 'cannot run';
}
