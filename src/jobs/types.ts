// The contract between the scheduler and a job package (spec jobs.md §0). A job module knows its
// tables and nothing of the daemon: it gets a JobContext and returns its result text.
import type { Client } from '../db/pg';
import type { Config } from '../config/config';
import type { Clock } from '../clock';
import type { Logger } from '../log/logger';
import type { Mailer } from '../mail/mailer';
import type { BackgroundJobRow, ClientRow, TaskServerUser } from '../db/rows';

export type { BackgroundJobRow, ClientRow, TaskServerUser } from '../db/rows';


export interface JobContext {
  /** The row as claimed. Jobs do not write it; they change `data` and call saveData(). */
  readonly job: BackgroundJobRow;
  /** The parsed YAML `data` ({} when empty). Written to the history row after the run. */
  data: Record<string, unknown>;
  /** Persists `data` into background_jobs.data now (progress for the web UI). */
  saveData(): Promise<void>;
  /** The client DB connection (DateStyle of the user set, autocommit). Jobs may BEGIN/COMMIT on it. */
  readonly db: Client;
  /** A connection to the auth DB, opened on first use and closed after the run. */
  authDb(): Promise<Client>;
  readonly client: ClientRow;
  readonly user: TaskServerUser;
  readonly config: Config;
  /** ROOT of the kivitendo installation; relative template paths resolve against it. */
  readonly kivitendoDir: string;
  readonly clock: Clock;
  /** This server's node id ([task_server] node_id or the host name). */
  readonly nodeId: string;
  readonly log: Logger;
  /** Mail transport from [mail_delivery] for this user. */
  readonly mailer: Mailer;
  /** Aborted when the run's wall-time limit is reached or the server shuts down. */
  readonly signal: AbortSignal;
}

/** What a job returns becomes background_job_histories.result (null/undefined → NULL). */
export type JobResult = string | number | null | undefined;

export interface JobPackage {
  /** kivitendo package name, e.g. "CleanBackgroundJobHistory". */
  readonly name: string;
  /**
   * The kivitendo releases (x.y.z) whose Perl package this module was checked against row for row;
   * for any other kivitendo the installation's own package runs (see releases.ts).
   */
  readonly verifiedReleases: readonly string[];
  run(ctx: JobContext): Promise<JobResult>;
  /** Overrides [task_server] job_time_limit for this package. */
  readonly timeLimitMs?: number;
}

/** A failure a job reports on purpose; the message goes to history.error as is. */
export class JobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobError';
  }
}

/** Thrown for kivitendo packages this server does not implement (yet). */
export class NotSupportedError extends JobError {
  constructor(what: string, version: string) {
    super(`${what} is not supported by kivitendo-task-server ${version}`);
    this.name = 'NotSupportedError';
  }
}
