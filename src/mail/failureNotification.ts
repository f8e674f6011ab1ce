// The task server's failure notification mail (spec task-server.md §9). Deliberate differences from
// task_server.pl (§14.13): the template never sees the client's DB password, a broken template
// still produces a useful mail, and mailer failures are logged instead of swallowed.
import type { Config } from '../config/config';
import { perlTrue } from '../config/configStd';
import type { ClientRow } from '../db/rows';
import type { Logger } from '../log/logger';
import { formatKivitendoDate } from './kivitendoDate';
import { createMailer, Mailer } from './mailer';
import { renderTemplateFile, resolveTemplatePath } from './template';
import { isFile } from '../fsutil';

/** The failed background_job_histories row (as written by the runner). */
export interface FailedHistory {
  id?: number;
  package_name: string | null;
  description: string | null;
  run_at: string;
  status: string;
  result: string | null;
  error: string | null;
  data: string | null;
}

export interface NotifyFailureOptions {
  config: Config;
  /** ROOT; relative template paths resolve against it. Default config.kivitendoDir. */
  kivitendoDir?: string;
  client: ClientRow;
  /** A failed job run — or `exception` for a per-client failure outside a job. */
  history?: FailedHistory;
  exception?: string;
  /**
   * The client's task server user settings: `dateformat` (and `timeformat`, `numberformat`) for
   * `history.run_at_as_timestamp`, `email` for the per-sender mail transport.
   */
  userSettings?: Record<string, string | undefined>;
  /** E-mail of a kivitendo login (auth.user_config `email`), for a `send_email_to` without `@`. */
  lookupUserEmail(login: string): Promise<string | undefined>;
  log: Pick<Logger, 'debug' | 'warn'>;
  /** Default: createMailer(config, userSettings.email). */
  mailer?: Mailer;
}

export type NotifyOutcome = 'sent' | 'disabled' | 'template-missing' | 'no-recipient' | 'send-failed';

/** The `client` template variable: the auth.clients row without `dbpasswd`. */
export function clientTemplateVars(client: ClientRow): Record<string, unknown> {
  const { dbpasswd: _omitted, ...rest } = client;
  return { ...rest };
}

/** The `history` template variable, with the columns and accessors kivitendo's row object offers. */
export function historyTemplateVars(h: FailedHistory, settings: NotifyFailureOptions['userSettings'] = {}): Record<string, unknown> {
  return {
    id: h.id,
    package_name: h.package_name,
    description: h.description,
    run_at: h.run_at,
    run_at_as_timestamp: formatKivitendoDate(h.run_at, { dateformat: settings.dateformat, numberformat: settings.numberformat }, 'minute'),
    status: h.status,
    result: h.result,
    error_col: h.error,
    data: h.data,
  };
}

function fallbackBody(opts: NotifyFailureOptions, templateError: string): string {
  const what = opts.history
    ? `The background job ${opts.history.package_name ?? ''} failed for client ${opts.client.name} at ${opts.history.run_at}:\n\n${opts.history.error ?? ''}`
    : `An exception occurred in the task server for client ${opts.client.name}:\n\n${opts.exception ?? ''}`;
  return `${what}\n\n(The notification template could not be rendered: ${templateError})\n`;
}

/**
 * Sends the failure notification if [task_server/notify_on_failure] is fully configured. Never
 * throws: the outcome is returned and problems are logged (debug for the silent preconditions of
 * §9.1, warn for template and delivery failures).
 */
export async function notifyFailure(opts: NotifyFailureOptions): Promise<NotifyOutcome> {
  const cfg = opts.config.notifyOnFailure;
  if (![cfg.sendEmailTo, cfg.emailFrom, cfg.emailSubject, cfg.emailTemplate].every((v) => perlTrue(v))) return 'disabled';
  const root = opts.kivitendoDir ?? opts.config.kivitendoDir;
  const templatePath = resolveTemplatePath(root, cfg.emailTemplate);
  if (!isFile(templatePath)) {
    opts.log.debug(`Template ${cfg.emailTemplate} missing!`);
    return 'template-missing';
  }

  let to = cfg.sendEmailTo;
  if (!to.includes('@')) {
    let email: string | undefined;
    try {
      email = await opts.lookupUserEmail(to);
    } catch (e) {
      opts.log.warn(`Sending a failure notification failed: cannot read the e-mail of user ${to}: ${(e as Error).message}`);
      return 'send-failed';
    }
    if (!email || !email.includes('@')) {
      opts.log.debug(`user for notification ${to} doesn't have a valid email address`);
      return 'no-recipient';
    }
    to = email;
  }

  const vars: Record<string, unknown> = { client: clientTemplateVars(opts.client) };
  if (opts.history) vars.history = historyTemplateVars(opts.history, opts.userSettings);
  if (opts.exception !== undefined) vars.exception = opts.exception;
  let body: string;
  try {
    body = renderTemplateFile(root, cfg.emailTemplate, vars);
  } catch (e) {
    opts.log.warn(`Failure notification: ${(e as Error).message}`);
    body = fallbackBody(opts, (e as Error).message);
  }

  const mailer = opts.mailer ?? createMailer(opts.config, opts.userSettings?.email);
  try {
    await mailer.send({ from: cfg.emailFrom, to, subject: cfg.emailSubject, text: body });
    return 'sent';
  } catch (e) {
    opts.log.warn(`Sending a failure notification failed: ${(e as Error).message}`);
    return 'send-failed';
  }
}

/**
 * "One mail per outage": task_server.pl mails every minute while e.g. a client database is
 * unreachable (§14.13). Ask before notifying; only the first failure after a success (or after
 * start) of the same key answers true. Keys are the caller's, e.g. `client:<id>`.
 */
export class OutageNotifier {
  private readonly down = new Set<string>();

  /** Record one attempt's outcome for `key`; true if this failure starts a new outage. */
  shouldNotify(key: string, failing: boolean): boolean {
    if (!failing) {
      this.down.delete(key);
      return false;
    }
    if (this.down.has(key)) return false;
    this.down.add(key);
    return true;
  }

  isDown(key: string): boolean {
    return this.down.has(key);
  }
}
