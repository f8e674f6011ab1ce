// Rows of kivitendo's tables as this server reads them (timestamps are local wall-clock strings).

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
