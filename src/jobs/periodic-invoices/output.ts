// Print and customer e-mail of the posted invoices (spec periodic-invoices.md §5.1, §5.2) through
// kivitendo's own Perl code: nearly every company has edited its invoice template, so only
// kivitendo's print pipeline (Form::parse_template, SL::Helper::CreatePDF with ZUGFeRD, SL::Mailer)
// prints them as kivitendo does. One Perl process per run prints and mails, after the posting has
// committed, in kivitendo's order; render processes beside it run LaTeX ahead on every core
// ([task_server] render_concurrency). The action is src/jobs/perl/actions/periodic_invoices_output.pl.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '../../db/pg';
import { runPerlAction } from '../perl/child';
import type { JobContext } from '../types';
import type { ConfigRow } from './configs';
import type { PostedInvoice } from './posting';
import { failureText, type RunLists } from './summary';

export const OUTPUT_ACTION = 'periodic_invoices_output';

export interface ToDeliver {
  invoice: PostedInvoice;
  config: ConfigRow;
}

/** What the Perl action reports (invoice ids; errors as kivitendo's texts). */
export interface OutputResult {
  printed: number[];
  printed_failed: [number, string][];
  emailed: number[];
  emailed_failed: [number, string][];
  job_errors: string[];
}

/** The invoices of a run that kivitendo would actually print and e-mail, in posting order. */
export interface OutputQueue {
  print: PostedInvoice[];
  email: PostedInvoice[];
}

/**
 * kivitendo's own early returns of _print_invoice (no printer, no printer command) and
 * _email_invoice (no recipients), checked here on the run's transaction so that a run with
 * nothing to print or send starts no Perl process. The Perl side checks them again.
 */
export async function queueOutput(db: Client, toPrint: ToDeliver[], toEmail: ToDeliver[]): Promise<OutputQueue> {
  const queue: OutputQueue = { print: [], email: [] };
  for (const { invoice, config } of toPrint) {
    if (!config.print || !config.printer_id) continue;
    const p = await db.query<{ printer_command: string | null }>('SELECT printer_command FROM printers WHERE id = $1', [config.printer_id]);
    if (p.rows[0]?.printer_command) queue.print.push(invoice);
  }
  for (const { invoice, config } of toEmail) {
    const c = await db.query<{ send_email: boolean; email_recipient_address: string | null; cp_email: string | null }>(
      `SELECT pic.send_email, pic.email_recipient_address, ct.cp_email
         FROM periodic_invoices_configs pic LEFT JOIN contacts ct ON ct.cp_id = pic.email_recipient_contact_id
        WHERE pic.id = $1`,
      [config.id],
    );
    const row = c.rows[0];
    if (!row?.send_email) continue;
    const cust = await db.query<{ invoice_mail: string | null }>('SELECT invoice_mail FROM customer WHERE id = $1', [invoice.draft.order.customer_id]);
    const recipients = [...(row.email_recipient_address ?? '').split(','), row.cp_email ?? '', cust.rows[0]?.invoice_mail ?? ''].filter((s) => s.trim());
    if (recipients.length) queue.email.push(invoice);
  }
  return queue;
}

export function hasOutput(q: OutputQueue): boolean {
  return q.print.length > 0 || q.email.length > 0;
}

/**
 * Runs kivitendo's print and e-mail steps for the queued invoices in one Perl process and merges
 * the outcome into the run's lists. When the process itself fails (no perl, killed at the time
 * limit, crashed), every queued invoice counts as failed with that one-line reason; the posted
 * invoices stay posted either way.
 */
export async function deliverOutput(ctx: JobContext, queue: OutputQueue, lists: RunLists, timeLimitMs: number): Promise<void> {
  const byId = new Map([...queue.print, ...queue.email].map((i) => [i.id, i]));
  const row = (id: number) => byId.get(id)?.row ?? { id };
  // Render processes pay off only when they start in milliseconds (forked by the preloaded parent);
  // a cold perl each would first spend seconds loading kivitendo.
  const shares = ctx.config.taskServer.perlPreloadIdleMs > 0 ? renderShares(queue, ctx.config.taskServer.renderConcurrency) : [];
  const latexCache = shares.length > 1 ? fs.mkdtempSync(path.join(os.tmpdir(), 'kts-latex-')) : undefined;
  let result: OutputResult;
  // The printing process starts with the render processes and waits, invoice by invoice, for theirs.
  const rendered = latexCache ? renderAhead(ctx, shares, latexCache, timeLimitMs) : undefined;
  try {
    result = (await runPerlAction({
      ...outputRun(ctx),
      request: { ...PACKAGE, print: queue.print.map((i) => i.id), email: queue.email.map((i) => i.id), latex_cache: latexCache },
      timeLimitMs,
      label: 'CreatePeriodicInvoices printing/e-mailing',
    })) as OutputResult;
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    const why = (e as Error).message;
    const countrycode = ctx.user.settings.countrycode || 'de';
    for (const i of queue.print) {
      lists.jobErrors.push(failureText('print', countrycode, i.invnumber, why));
      lists.printedFailed.push([i.row, why]);
    }
    for (const i of queue.email) {
      lists.jobErrors.push(failureText('email', countrycode, i.invnumber, why));
      lists.emailedFailed.push([i.row, why]);
    }
    return;
  } finally {
    await rendered?.catch(() => undefined);
    if (latexCache) fs.rmSync(latexCache, { recursive: true, force: true });
  }
  const r = result ?? ({} as Partial<OutputResult>);
  lists.printed.push(...(r.printed ?? []).map(row));
  lists.printedFailed.push(...(r.printed_failed ?? []).map(([id, err]): [Record<string, unknown>, string] => [row(id), err]));
  lists.emailed.push(...(r.emailed ?? []).map(row));
  lists.emailedFailed.push(...(r.emailed_failed ?? []).map(([id, err]): [Record<string, unknown>, string] => [row(id), err]));
  lists.jobErrors.push(...(r.job_errors ?? []));
  ctx.log.info(
    `CreatePeriodicInvoices: printed ${lists.printed.length} and e-mailed ${lists.emailed.length} invoice(s) through kivitendo's Perl code; ` +
      `${lists.printedFailed.length} print(s) and ${lists.emailedFailed.length} mail(s) failed`,
  );
}

/** What every Perl run of the output step shares. */
function outputRun(ctx: JobContext) {
  return { config: ctx.config, log: ctx.log, client: ctx.client, user: ctx.user, action: OUTPUT_ACTION, jobId: ctx.job.id, signal: ctx.signal };
}

/** package_name: the preloaded Perl parent loads kivitendo's package for the runs after this one. */
const PACKAGE = { package_name: 'CreatePeriodicInvoices' };

/**
 * The run's LaTeX work split among up to `concurrency` render processes: every print and every
 * mail is one LaTeX run in kivitendo, dealt out in turn so that each process gets a like share.
 * Fewer than two shares: nothing to gain, the printing process renders as before.
 */
export function renderShares(queue: OutputQueue, concurrency: number): { print: number[]; email: number[] }[] {
  const steps = [...queue.print.map((i) => ['print', i.id] as const), ...queue.email.map((i) => ['email', i.id] as const)];
  const n = Math.min(concurrency, steps.length);
  if (n < 2) return [];
  const shares = Array.from({ length: n }, () => ({ print: [] as number[], email: [] as number[] }));
  steps.forEach(([kind, id], k) => shares[k % n][kind].push(id));
  return shares;
}

/**
 * Renders the shares at the same time, each in a Perl process of its own (forked by the preloaded
 * parent): kivitendo's print and mail code with nothing leaving the process, keeping the PDFs LaTeX
 * makes in latexCache for the printing process. A render process that fails costs only time: the
 * printing process compiles what it does not find.
 */
async function renderAhead(ctx: JobContext, shares: { print: number[]; email: number[] }[], latexCache: string, timeLimitMs: number): Promise<void> {
  const t0 = Date.now();
  try {
    await Promise.all(
      shares.map((share, k) =>
        runPerlAction({
          ...outputRun(ctx),
          request: { ...PACKAGE, ...share, latex_cache: latexCache, render: 1 },
          timeLimitMs,
          label: `CreatePeriodicInvoices rendering (${k + 1} of ${shares.length})`,
          // the printing process of the job runs beside it with the same application_name
          terminateBackendsOnFailure: false,
        }).catch((e) => {
          if (!ctx.signal.aborted) ctx.log.warn(`BackgroundJob ID ${ctx.job.id}: ${(e as Error).message}; the printing process renders that share itself`);
        }),
      ),
    );
  } finally {
    // The printing process waits for nothing more.
    fs.writeFileSync(path.join(latexCache, 'renders-done'), '');
  }
  const pdfs = fs.readdirSync(latexCache).filter((f) => f.endsWith('.pdf')).length;
  ctx.log.info(`CreatePeriodicInvoices: ${shares.length} render processes made ${pdfs} PDF(s) in ${Date.now() - t0} ms`);
}
