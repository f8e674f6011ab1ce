// The contract between the scheduler and a job package (spec jobs.md §0). A job module knows its
// tables and nothing of the daemon: it gets a JobContext and returns its result text.
import type { Client } from '../db/pg';
import type { Config } from '../config/config';
import type { Clock } from '../clock';
import type { Logger } from '../log/logger';
import type { Mailer } from '../mail/mailer';

/** A background_jobs row as PostgreSQL prints it (timestamps are local wall-clock strings). */
export interface BackgroundJobRow {
  id: number;
  type: string | null;
  package_name: string | null;
  last_run_at: string | null;
  next_run_at: string | null;
  data: string | null;
  active: boolean | null;
  cron_spec: string | null;
  node_id: string | null;
  description: string | null;
}

/** An auth.clients row. `dbpasswd` must never reach a log line, a mail or a history row. */
export interface ClientRow {
  id: number;
  name: string;
  dbhost: string;
  dbport: number;
  dbname: string;
  dbuser: string;
  dbpasswd: string;
  is_default: boolean;
  task_server_user_id: number | null;
}

/** The client's task server user: login plus auth.user_config settings (spec task-server.md §6.3 step 8). */
export interface TaskServerUser {
  id: number | null;
  login: string;
  /** cfg_key → cfg_value, with kivitendo's defaults applied (dateformat, numberformat, countrycode, email, ...). */
  settings: Record<string, string>;
}

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
