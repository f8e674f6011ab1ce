// kivitendo's CreatePeriodicInvoices (spec periodic-invoices.md): recurring invoices from sales
// orders, row for row as SL::BackgroundJob::CreatePeriodicInvoices writes them. One transaction
// for the whole run; an object-save DB error rolls back and "returns nothing" (success, NULL),
// any other error rolls back and fails. Printing and e-mailing run after the commit through
// kivitendo's own Perl code (periodic-invoices/output.ts); their errors fail the job, the invoices
// stay posted.
import type { Client } from '../db/pg';
import { handleAutomaticExtensions, lastBilledDates, loadActiveConfigs, type ConfigRow } from './periodic-invoices/configs';
import { buildInvoice } from './periodic-invoices/conversion';
import { calculateInvoiceDates, formatYmd, localYmd, MissingStartDateError, type Ymd } from './periodic-invoices/dates';
import { DbObjectError, objectSave, RunError } from './periodic-invoices/errors';
import { MasterData } from './periodic-invoices/masterData';
import { num } from './periodic-invoices/money';
import { InvoiceNumberAllocator, postInvoice, type PostedInvoice } from './periodic-invoices/posting';
import { deliverOutput, hasOutput, queueOutput, type OutputQueue, type ToDeliver } from './periodic-invoices/output';
import { emptyLists, renderSummaryEmail, sendSummaryEmail, type RunLists } from './periodic-invoices/summary';
import { StrftimePatternError } from './periodic-invoices/variables';
import { isSchemaMismatch } from './schemaErrors';
import { JobError, type JobContext, type JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'CreatePeriodicInvoices';

/** One-time config: close the order (with kivitendo's order save hooks) and deactivate (§2.4). */
async function disableOneTimeConfig(db: Client, md: MasterData, config: ConfigRow, invoice: PostedInvoice): Promise<string> {
  const order = invoice.draft.order;
  let projectId = order.globalproject_id;
  const d = md.defaults;
  if (d.order_always_project && !projectId && order.record_type === 'sales_order') {
    const exists = await db.query('SELECT 1 FROM project WHERE projectnumber = $1', [order.ordnumber]);
    if (exists.rows.length) {
      throw new RunError(
        `Error while creating project with project number of new order number, project number ${order.ordnumber} already exists!`,
        `closing the order of one-time config ${config.id}`,
      );
    }
    const p = await objectSave<{ id: number }>(db, 'Project', {
      text: `INSERT INTO project (projectnumber, description, customer_id, active, project_type_id, project_status_id)
             SELECT $1, c.name, c.id, true, $3, $4 FROM customer c WHERE c.id = $2 RETURNING id`,
      values: [order.ordnumber, order.customer_id, d.project_type_id, d.project_status_id],
    });
    projectId = p.rows[0]?.id ?? null;
    order.globalproject_id = projectId;
  }
  await objectSave(db, 'Order', {
    text: 'UPDATE oe SET closed = true, globalproject_id = $2 WHERE id = $1',
    values: [order.id, projectId],
  });
  order.closed = true;
  if (order.record_type === 'sales_order') {
    // Open sales order intakes reachable through record_links in the "from" direction.
    await objectSave(db, 'Order', {
      text: `WITH RECURSIVE src(tbl, id) AS (
               SELECT from_table::text, from_id FROM record_links WHERE to_table = 'oe' AND to_id = $1
               UNION
               SELECT rl.from_table::text, rl.from_id FROM record_links rl JOIN src ON rl.to_table = src.tbl AND rl.to_id = src.id)
             UPDATE oe SET closed = true
              WHERE id IN (SELECT id FROM src WHERE tbl = 'oe') AND record_type = 'sales_order_intake' AND NOT COALESCE(closed, false)`,
      values: [order.id],
    });
  }
  config.active = false;
  await objectSave(db, 'PeriodicInvoicesConfig', { text: 'UPDATE periodic_invoices_configs SET active = false WHERE id = $1', values: [config.id] });
  return order.ordnumber;
}

/** The body of the run inside the transaction. Returns what is to be printed and e-mailed after the commit. */
async function runInTransaction(ctx: JobContext, lists: RunLists): Promise<{ queue: OutputQueue; templates: string | null } | undefined> {
  const db = ctx.db;
  const now = ctx.clock.now();
  const today: Ymd = localYmd(now);
  const settings = ctx.user.settings;
  const locale = { dateformat: settings.dateformat || 'dd.mm.yy', countrycode: settings.countrycode || 'de' };

  const configs = await loadActiveConfigs(db);
  const ext = await handleAutomaticExtensions(db, configs, now);
  for (const e of ext.extended) ctx.log.debug?.(`${NAME}: config ${e.config.id} extended through ${formatYmd(e.endDate)}`);

  const active = configs.filter((c) => c.active);
  const last = await lastBilledDates(db, active.map((c) => c.id));

  // Dates first (pure), so that a run with nothing due touches nothing else.
  const due: { config: ConfigRow; dates: Ymd[] }[] = [];
  for (const config of active) {
    let dates: Ymd[];
    try {
      dates = calculateInvoiceDates(config, last.get(config.id) ?? null, today, today);
    } catch (e) {
      if (e instanceof MissingStartDateError) throw new RunError(e.message, `config ${config.id} has neither start_date nor first_billing_date`);
      throw e;
    }
    if (dates.length) due.push({ config, dates });
  }
  if (due.length === 0) return undefined;

  const md = new MasterData();
  await md.loadReference(db);
  await md.loadOrders(db, [...new Set(due.map((d) => d.config.oe_id))]);
  const numbers = new InvoiceNumberAllocator(db);
  const rates = new Map<string, number>();
  const postCtx = {
    db,
    md,
    numbers,
    async exchangerate(currencyId: number | null, date: string) {
      const key = `${currencyId}/${date}`;
      if (!rates.has(key)) {
        const r = await db.query<{ buy: string | null }>('SELECT buy FROM exchangerate WHERE currency_id = $1 AND transdate = $2', [currencyId, date]);
        rates.set(key, num(r.rows[0]?.buy) ?? 0);
      }
      return rates.get(key)!;
    },
  };

  const toPrint: ToDeliver[] = [];
  const toEmail: ToDeliver[] = [];
  for (const { config, dates } of due) {
    const order = md.orders.get(config.oe_id);
    for (const date of dates) {
      let invoice: PostedInvoice;
      try {
        const draft = buildInvoice(config, order, date, { md, today, locale });
        invoice = await postInvoice(postCtx, draft);
      } catch (e) {
        const where = `periodic invoice config ${config.id}, order ${order?.ordnumber ?? `id ${config.oe_id}`}, period ${formatYmd(date)}`;
        if (e instanceof RunError) e.where = e.where ? `${where}: ${e.where}` : where;
        else if (e instanceof StrftimePatternError) throw new RunError(e.message, where);
        else if (e instanceof DbObjectError) ctx.log.warn(`${NAME}: ${where}: ${e.message}`);
        throw e;
      }
      lists.posted.push(invoice.row);
      if (config.print) toPrint.push({ invoice, config });
      if (config.send_email) toEmail.push({ invoice, config });
      if (config.periodicity === 'o') {
        lists.disabledOrders.push(await disableOneTimeConfig(db, md, config, invoice));
        break;
      }
    }
  }
  await numbers.flush();

  const queue = await queueOutput(db, toPrint, toEmail);
  if (!hasOutput(queue)) {
    await sendSummaryEmail(ctx, lists, md.defaults.templates);
    return undefined;
  }
  // The summary goes out after printing and e-mailing (it lists their outcome), i.e. after the
  // commit; a broken summary template must still roll the run back as in kivitendo, so render it
  // once here.
  await renderSummaryEmail(ctx, lists, md.defaults.templates);
  return { queue, templates: md.defaults.templates };
}

/** The job's time limit, as the runner applies it; the Perl process gets it as its own bound. */
function timeLimitMs(ctx: JobContext): number {
  const ts = ctx.config.taskServer;
  return ts.jobTimeLimitsMs[NAME] || ts.jobTimeLimitMs;
}

export const CreatePeriodicInvoices: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    const lists = emptyLists();
    const db = ctx.db;
    let output: Awaited<ReturnType<typeof runInTransaction>>;
    await db.query('BEGIN');
    try {
      // Dates as ISO text inside the run; reverts with the transaction.
      await db.query(`SET LOCAL DateStyle TO 'ISO'`);
      output = await runInTransaction(ctx, lists);
      await db.query('COMMIT');
    } catch (e) {
      await db.query('ROLLBACK').catch(() => undefined);
      // The server's own SQL not fitting the schema is never the data's fault: the runner fails the run.
      if (isSchemaMismatch(e)) throw e;
      if (e instanceof DbObjectError) {
        // kivitendo swallows SL::X::DBError: the run ends with "success" and no result.
        ctx.log.warn(`${NAME}: rolled back: ${e.message}`);
        return null;
      }
      const msg = e instanceof RunError ? `${e.kivitendoMessage}${e.where ? ` at ${e.where}.` : ''}` : (e as Error).message;
      throw new JobError(`do_transaction() failed - ${msg}`);
    }
    if (output) {
      await deliverOutput(ctx, output.queue, lists, timeLimitMs(ctx));
      await sendSummaryEmail(ctx, lists, output.templates);
    }
    if (lists.jobErrors.length) throw new JobError(lists.jobErrors.join('\n'));
    return 1;
  },
};
