// The summary e-mail of a run (spec periodic-invoices.md §5.3), rendered from the installation's
// Template Toolkit file, and the texts of print/e-mail failures (§5.1, §5.2).
import { renderTemplateFile } from '../../mail/template';
import type { JobContext } from '../types';

export interface RunLists {
  posted: Record<string, unknown>[];
  printed: Record<string, unknown>[];
  printedFailed: [Record<string, unknown>, string][];
  emailed: Record<string, unknown>[];
  emailedFailed: [Record<string, unknown>, string][];
  disabledOrders: string[];
  jobErrors: string[];
}

export function emptyLists(): RunLists {
  return { posted: [], printed: [], printedFailed: [], emailed: [], emailedFailed: [], disabledOrders: [], jobErrors: [] };
}

const TEXTS: Record<string, { de: string; en: string }> = {
  print: { de: 'Ausdruck von wiederkehrender Rechnung #1 schlug fehl: #2', en: 'Printing periodic invoice #1 failed: #2' },
  email: { de: 'E-Mail-Versand von wiederkehrender Rechnung #1 schlug fehl: #2', en: 'Sending email for periodic invoice #1 failed: #2' },
};

export function failureText(kind: 'print' | 'email', countrycode: string, invnumber: string, error: string): string {
  const t = countrycode === 'de' ? TEXTS[kind].de : TEXTS[kind].en;
  return t.replace('#1', invnumber).replace('#2', error);
}

/** Resolves `send_email_to`: an address, or a login whose configured e-mail is used. */
async function recipient(ctx: JobContext, sendTo: string): Promise<string | undefined> {
  if (sendTo.includes('@')) return sendTo;
  const auth = await ctx.authDb();
  const r = await auth.query<{ cfg_value: string | null }>(
    `SELECT c.cfg_value FROM auth."user" u JOIN auth.user_config c ON c.user_id = u.id AND c.cfg_key = 'email' WHERE u.login = $1`,
    [sendTo],
  );
  return r.rows[0]?.cfg_value || undefined;
}

export interface SummaryEmail {
  to: string;
  file: string;
  output: string;
}

/**
 * The summary mail of the run if one is configured and due, rendered; a template error throws
 * (kivitendo dies inside the transaction, so the caller rolls back).
 */
export async function renderSummaryEmail(ctx: JobContext, lists: RunLists, templatesDir: string | null): Promise<SummaryEmail | undefined> {
  const conf = ctx.config.sections['periodic_invoices'] ?? {};
  if (!conf.send_email_to || lists.posted.length === 0) return undefined;
  const errorsOnly = conf.send_for_errors_only && conf.send_for_errors_only !== '0';
  if (errorsOnly && lists.printedFailed.length === 0 && lists.emailedFailed.length === 0) return undefined;
  const to = await recipient(ctx, conf.send_email_to);
  if (!to) return undefined;
  const file = conf.email_template || `${templatesDir || 'templates/design40_webpages'}/oe/periodic_invoices_email.txt`;
  const output = renderTemplateFile(ctx.kivitendoDir, file, {
    POSTED_INVOICES: lists.posted,
    PRINTED_INVOICES: lists.printed,
    PRINTED_FAILED: lists.printedFailed,
    EMAILED_INVOICES: lists.emailed,
    EMAILED_FAILED: lists.emailedFailed,
    DISABLED_ORDERS: lists.disabledOrders,
  });
  return { to, file, output };
}

/**
 * Sends the summary if configured. A template error throws; a send failure is ignored, as
 * kivitendo ignores Mailer's error string.
 */
export async function sendSummaryEmail(ctx: JobContext, lists: RunLists, templatesDir: string | null): Promise<void> {
  const mail = await renderSummaryEmail(ctx, lists, templatesDir);
  if (!mail) return;
  const conf = ctx.config.sections['periodic_invoices'] ?? {};
  const { to, file, output } = mail;
  const html = /.html$/.test(file);
  try {
    await ctx.mailer.send({
      from: conf.email_from ?? '',
      to,
      subject: conf.email_subject ?? '',
      ...(html ? { html: output } : { text: output }),
    });
  } catch (e) {
    ctx.log.warn(`CreatePeriodicInvoices: sending the summary e-mail to ${to} failed: ${(e as Error).message}`);
  }
}
