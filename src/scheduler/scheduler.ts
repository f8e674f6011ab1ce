// PLACEHOLDER API (implemented by the scheduler work): the poll loop the daemon drives.
import type { Config } from '../config/config';
import type { Logger } from '../log/logger';
import type { Clock } from '../clock';

export interface SchedulerOptions {
  config: Config;
  log: Logger;
  nodeId: string;
  clock?: Clock;
}

export type StopReason = 'stopped' | 'memory-limit';

export class Scheduler {
  /** Resolves after the first sweep over all clients has finished. */
  readonly firstPoll: Promise<void>;
  constructor(readonly opts: SchedulerOptions) {
    this.firstPoll = Promise.resolve();
  }
  /** Runs the loop until stop() or the memory limit; resolves with the reason. */
  async run(): Promise<StopReason> {
    throw new Error('not implemented');
  }
  /** SIGALRM: start a sweep now (also while jobs run: the wake-up is never lost). */
  wake(): void {}
  /** SIGHUP: use this config from the next sweep on. */
  reload(config: Config): void {
    void config;
  }
  /** Stop taking jobs; wait up to graceMs for running ones, then abort them. */
  async stop(graceMs: number): Promise<void> {
    void graceMs;
  }
}

/** --run-job=ID: run job ID in every enabled client (or only `clientFilter`, id or name). Returns jobs run. */
export async function runSingleJob(opts: SchedulerOptions, jobId: number, clientFilter?: string): Promise<number> {
  void opts;
  void jobId;
  void clientFilter;
  throw new Error('not implemented');
}
