// What kivitendo's web UI does when it hands work to the task server, reproduced for tests: the
// rows and files its controllers write before they create a `once` job and send SIGALRM, and the
// page's polling of `background_jobs.data`. Read from kivitendo 4.1.1 (SL/Controller/CsvImport.pm,
// SL/BackgroundJob/CsvImport.pm, SL/SessionFile*.pm, SL/Controller/MassInvoiceCreatePrint.pm,
// SL/BackgroundJob/MassRecordCreationAndPrinting.pm); nothing of it is copied.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import YAML from 'yaml';
import { cliEnv, DEFAULT_PID_FILE, readIfExists, spawnCli, waitFor } from './cli';
import type { Installation } from './installation';

/**
 * next_run_at as SL::DB::BackgroundJob's before_save hook sets it for a row without cron_spec: the
 * next occurrence of '* * * * *', the next full minute. A `once` job without cron_spec is due at
 * once regardless (task_server.pl's selection), so SIGALRM must start it before that.
 */
export const KIVITENDO_SAVE_NEXT_RUN_AT = `date_trunc('minute', localtimestamp) + interval '1 minute'`;

/**
 * YAML as kivitendo's SL::YAML::Dump writes it (undef as `~`: Perl's YAML.pm reads `null` as the
 * string "null").
 */
export function dumpAsKivitendo(data: Record<string, unknown>): string {
  return YAML.stringify(data, { nullStr: '~' });
}

/** A logged-in user's session: the auth.session row and its id (kivitendo: 32 hex digits). */
export async function createWebSession(inst: Installation): Promise<string> {
  const id = crypto.randomBytes(16).toString('hex');
  const auth = await inst.authConnection();
  try {
    await auth.query(`INSERT INTO auth.session (id, ip_address, mtime) VALUES ($1, '127.0.0.1', now())`, [id]);
  } finally {
    await auth.end();
  }
  return id;
}

/**
 * A session file as SL::SessionFile::Random writes it: users/session_files/<session id>/<10 random
 * characters of [A-Za-z0-9_]>. Returns the name the controller stores in the profile's `file_name`
 * setting (the relative path; kivitendo strips everything up to the last slash when reading it).
 */
export function writeSessionFile(root: string, sessionId: string, content: string | Buffer): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_';
  const name = Array.from(crypto.randomBytes(10), (b) => chars[b % chars.length]).join('');
  const dir = path.join(root, 'users', 'session_files', sessionId);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), content);
  return `users/session_files/${sessionId}/${name}`;
}

/**
 * The settings the CSV import page saves for a customer/vendor import (form fields `settings.*`,
 * the separator/quote/escape choices, `json_mappings`, `file_name`), with what the page preselects.
 */
export function customerImportSettings(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    sep_char: ';',
    quote_char: '"',
    escape_char: '"',
    charset: 'UTF-8',
    numberformat: '1.000,00',
    dateformat: 'dd.mm.yyyy',
    duplicates: 'no_check',
    duplicates_name: '1',
    full_preview: '0',
    table: 'customer',
    update_policy: 'update_existing',
    // the page's country picker has no empty choice; '' here means "Deutschland" (looked up per DB)
    default_country_id: '',
    default_taxzone: '4',
    json_mappings: '[]',
    ...overrides,
  };
}

export interface CsvImportJob {
  jobId: number;
  profileId: number;
  sessionId: string;
  fileName: string;
}

/**
 * The CSV import page's "import" (test = 0) or "test" (test = 1) button: the uploaded file becomes
 * a session file; the profile is saved as the nameless, non-default copy the controller makes
 * (clone_and_reset_deep) with its settings; then the `once` CsvImport job with the data create_job
 * writes: employee_id, profile_id, session_id, test, type.
 */
export async function createCsvImportJob(
  inst: Installation,
  client: string,
  opts: { csv: string | Buffer; login: string; sessionId: string; test: 0 | 1; type?: string; settings?: Record<string, string> },
): Promise<CsvImportJob> {
  const type = opts.type ?? 'customers_vendors';
  const fileName = writeSessionFile(inst.root, opts.sessionId, opts.csv);
  const settings: Record<string, string> = { ...(opts.settings ?? customerImportSettings()), file_name: fileName };
  return inst.withClientDb(client, async (db) => {
    const employee = await db.query(`SELECT id FROM employee WHERE login = $1`, [opts.login]);
    if (!employee.rows.length) throw new Error(`no employee row for login ${opts.login} in client ${client}`);
    const profile = await db.query(
      `INSERT INTO csv_import_profiles (name, type, is_default, login) VALUES ('', $1, false, $2) RETURNING id`,
      [type, opts.login],
    );
    const profileId: number = profile.rows[0].id;
    if (settings.default_country_id === '') {
      settings.default_country_id = String((await db.query(`SELECT id FROM countries WHERE iso2 = 'DE'`)).rows[0].id);
    }
    for (const [key, value] of Object.entries(settings)) {
      await db.query(`INSERT INTO csv_import_profile_settings (csv_import_profile_id, key, value) VALUES ($1, $2, $3)`, [profileId, key, value]);
    }
    const data = dumpAsKivitendo({ employee_id: employee.rows[0].id, profile_id: profileId, session_id: opts.sessionId, test: opts.test, type });
    const job = await db.query(
      `INSERT INTO background_jobs (type, active, package_name, data, next_run_at) VALUES ('once', true, 'CsvImport', $1, ${KIVITENDO_SAVE_NEXT_RUN_AT}) RETURNING id`,
      ['---\n' + data],
    );
    return { jobId: job.rows[0].id, profileId, sessionId: opts.sessionId, fileName };
  });
}

/** `background_jobs.data` of a job, parsed as the web UI does (data_as_hash); undefined once the row is gone. */
export async function jobData(inst: Installation, client: string, jobId: number): Promise<Record<string, any> | undefined> {
  const rows = await inst.query(client, `SELECT data FROM background_jobs WHERE id = $1`, [jobId]);
  if (!rows.length) return undefined;
  // logLevel error: kivitendo's YAML carries Perl class tags (!!perl/array:SL::Helper::Csv::Error)
  return (YAML.parse(rows[0].data ?? '', { logLevel: 'error' }) ?? {}) as Record<string, any>;
}

export interface PollResult {
  data: Record<string, any>;
  /** every distinct `data` state the page saw, in order */
  seen: Record<string, any>[];
  polls: number;
  ms: number;
}

/**
 * Polls `data` every 500 ms, as the web UI's result pages do, until `done(data)` holds. Fails
 * after timeoutMs with the last state and `detail()` (e.g. the daemon's stderr).
 */
export async function pollAsThePageDoes(
  inst: Installation,
  client: string,
  jobId: number,
  done: (data: Record<string, any>) => boolean,
  opts: {
    timeoutMs?: number;
    intervalMs?: number;
    detail?: () => string;
    /** Checked after each poll that did not see the end: a text ends the wait at once (e.g. the run is over). */
    givenUp?: () => Promise<string | undefined>;
  } = {},
): Promise<PollResult> {
  const started = Date.now();
  const timeout = opts.timeoutMs ?? 60_000;
  const seen: Record<string, any>[] = [];
  let polls = 0;
  for (;;) {
    polls += 1;
    const data = await jobData(inst, client, jobId);
    if (data === undefined) throw new Error(`background job ${jobId} vanished while the page polled it`);
    if (!seen.length || JSON.stringify(seen[seen.length - 1]) !== JSON.stringify(data)) seen.push(data);
    if (done(data)) return { data, seen, polls, ms: Date.now() - started };
    const reason = await opts.givenUp?.();
    if (reason) {
      // the end state may have been written between the two reads
      const last = await jobData(inst, client, jobId);
      if (last && done(last)) {
        seen.push(last);
        return { data: last, seen, polls, ms: Date.now() - started };
      }
    }
    if (reason) throw new Error(`job ${jobId}: ${reason}; the page would wait forever; last data ${JSON.stringify(data)}${opts.detail ? `; ${opts.detail()}` : ''}`);
    if (Date.now() - started > timeout) {
      throw new Error(`job ${jobId}: page polled ${polls} times in ${timeout} ms without the end state; last data ${JSON.stringify(data)}${opts.detail ? `; ${opts.detail()}` : ''}`);
    }
    await sleep(opts.intervalMs ?? 500);
  }
}

/**
 * For pollAsThePageDoes: the job's run is over (last_run_at set) — with the history row's error if
 * it failed — but the page has not seen its end state in data.
 */
export function runIsOver(inst: Installation, client: string, jobId: number, packageName: string) {
  return async (): Promise<string | undefined> => {
    const [job] = await inst.query(client, `SELECT last_run_at FROM background_jobs WHERE id = $1`, [jobId]);
    if (!job?.last_run_at) return undefined;
    const [h] = await inst.query(client, `SELECT status, error FROM background_job_histories WHERE package_name = $1 ORDER BY id DESC LIMIT 1`, [packageName]);
    return `the run ended (history: ${h ? `${h.status}${h.error ? ` - ${h.error}` : ''}` : 'none'})`;
  };
}

/** The CSV import result page's end condition: `progress.finished` or `errors` set. */
export const csvImportFinished = (d: Record<string, any>) => Boolean(d.progress?.finished || (Array.isArray(d.errors) && d.errors.length));

/**
 * The web UI's wake-up after creating a `once` job (SL::System::TaskServer->wake_up): SIGALRM to
 * the pid in the installation's pid file. Returns that pid.
 */
export function wakeUpTaskServer(root: string, pidFile = DEFAULT_PID_FILE(root)): number {
  const content = readIfExists(pidFile);
  const pid = content ? parseInt(content, 10) : NaN;
  if (!(pid > 0)) throw new Error(`no task server pid file at ${pidFile}: the web UI could not wake it up`);
  process.kill(pid, 'SIGALRM');
  return pid;
}

export interface RunningDaemon {
  pid: number;
  out: { stdout: string; stderr: string };
  /** SIGTERM, wait for the exit; the exit code */
  stop(): Promise<number | null>;
}

/**
 * Our daemon in the foreground (`start -f`, as under systemd) on the installation, up once it
 * wrote its pid file and logged its start (with [task_server] debug: its first poll).
 */
export async function startOurDaemon(inst: Installation, opts: { binary?: string; env?: Record<string, string> } = {}): Promise<RunningDaemon> {
  const log = path.join(inst.root, 'users', 'kivitendo-debug.log');
  const { child, out, exited } = spawnCli(['-f', 'start'], { env: { KIVITENDO_DIR: inst.root, ...(opts.env ?? {}) }, binary: opts.binary, cwd: inst.root });
  const detail = () => `daemon stdout: ${out.stdout} stderr: ${out.stderr} log: ${readIfExists(log) ?? ''}`;
  let exitedEarly: { code: number | null } | undefined;
  void exited.then((e) => (exitedEarly = e));
  await waitFor(
    'the daemon to finish its first poll',
    () => {
      if (exitedEarly) throw new Error(`the daemon exited (code ${exitedEarly.code}) before its first poll; ${detail()}`);
      // the first poll's debug line, or without [task_server] debug the start line (our daemon keeps
      // a wake-up that arrives during its first sweep)
      const text = out.stderr + (readIfExists(log) ?? '');
      return /task server: first poll finished|is up and running/.test(text) && readIfExists(DEFAULT_PID_FILE(inst.root)) !== undefined;
    },
    30_000,
    detail,
  );
  return {
    pid: child.pid!,
    out,
    async stop() {
      if (!exitedEarly) child.kill('SIGTERM');
      const e = await exited;
      return e.code;
    },
  };
}

/**
 * kivitendo's own task server running one job (`scripts/task_server.pl --run-job=ID debug` in the
 * installation): the reference for the rows a job package writes.
 */
export function runWithKivitendoTaskServer(inst: Installation, jobId: number, timeoutMs = 120_000): { code: number | null; stdout: string; stderr: string; ms: number } {
  const started = Date.now();
  const r = spawnSync('perl', ['scripts/task_server.pl', `--run-job=${jobId}`, 'debug'], { cwd: inst.root, encoding: 'utf8', timeout: timeoutMs, env: cliEnv() });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
}

/** MassRecordCreationAndPrinting's states (data.status), as its package defines them. */
export const MASS_PRINT_STATUS = { WAITING_FOR_EXECUTION: 0, CONVERTING_DELIVERY_ORDERS: 1, PRINTING_INVOICES: 2, DONE: 3 } as const;

/**
 * The mass invoice page's "create and print all" (SL/Controller/MassInvoiceCreatePrint.pm,
 * action_create_print_all_start): a `once` MassRecordCreationAndPrinting job with the selected
 * delivery orders and the chosen printer, saved with update_next_run_at (next full minute).
 */
export async function createMassInvoiceJob(
  inst: Installation,
  client: string,
  opts: { deliveryOrderIds: number[]; printerId?: number | null; copyPrinterId?: number | null; bothsided?: boolean; transdate?: string | null; sessionId: string },
): Promise<number> {
  const data = {
    record_ids: opts.deliveryOrderIds,
    printer_id: opts.printerId ?? null,
    copy_printer_id: opts.copyPrinterId ?? null,
    bothsided: opts.bothsided ? 1 : 0,
    transdate: opts.transdate ?? null,
    status: MASS_PRINT_STATUS.WAITING_FOR_EXECUTION,
    num_created: 0,
    num_printed: 0,
    invoice_ids: [],
    conversion_errors: [],
    print_errors: [],
    session_id: opts.sessionId,
  };
  const rows = await inst.query(
    client,
    `INSERT INTO background_jobs (type, active, package_name, data, next_run_at)
     VALUES ('once', true, 'MassRecordCreationAndPrinting', $1, ${KIVITENDO_SAVE_NEXT_RUN_AT}) RETURNING id`,
    ['---\n' + dumpAsKivitendo(data)],
  );
  return rows[0].id;
}

/**
 * The text of a job's `data` (or a history row's) with ids, session ids and other numbers
 * replaced: what is left is the YAML formatting, which must be kivitendo's (the values are
 * compared parsed).
 */
export function yamlShape(text: string | null | undefined): string | null {
  if (text == null) return null;
  return text.replace(/\b[0-9a-f]{32}\b/g, 'SESSION').replace(/\d+/g, 'N');
}
