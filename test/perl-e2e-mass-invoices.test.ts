// Mass invoice creation and printing from sales delivery orders end to end, as kivitendo's web UI
// does it (SL/Controller/MassInvoiceCreatePrint.pm, "create and print all"): the `once`
// MassRecordCreationAndPrinting job with the chosen delivery orders and printers, SIGALRM, then
// the status page's polling of data.status until DONE. The package is kivitendo's own, run by OUR
// daemon through the Perl path, with kivitendo's LaTeX print templates; each case is also run by
// kivitendo's scripts/task_server.pl on a second installation and the rows are compared.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from './harness/cli';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';
import { addDeliveryOrders, addPrinters, invoiceRows, pdfText, prepareInvoicePrinting, requirePrintingTools, type InvoiceRows } from './harness/massInvoices';
import {
  createMassInvoiceJob,
  createWebSession,
  jobData,
  MASS_PRINT_STATUS,
  pollAsThePageDoes,
  runIsOver,
  runWithKivitendoTaskServer,
  startOurDaemon,
  wakeUpTaskServer,
  yamlShape,
  type RunningDaemon,
} from './harness/webui';

let ours: KivitendoInstallation;
let ref: KivitendoInstallation;
let daemon: RunningDaemon | undefined;

/** A client set up for printing invoices, its interval jobs (the reference data's) off. */
async function prepare(inst: KivitendoInstallation) {
  await prepareInvoicePrinting(inst);
  await inst.query('Demo', `UPDATE background_jobs SET active = false`);
}

before(async () => {
  requirePrintingTools();
  ours = await createKivitendoInstallation();
  ref = await createKivitendoInstallation();
  await prepare(ours);
  await prepare(ref);
  daemon = await startOurDaemon(ours);
});

after(async () => {
  if (daemon) await daemon.stop();
  ours?.remove();
  ref?.remove();
});

const daemonDetail = () => (daemon ? `daemon stderr: ${daemon.out.stderr.slice(-4000)}` : 'no daemon');

interface Outcome extends InvoiceRows {
  data: Record<string, any>;
  seen: Record<string, any>[];
  history: Record<string, any>;
  /** YAML formatting of background_jobs.data and of the history row's data */
  yaml: { job: string | null; history: string | null };
}

async function outcome(inst: KivitendoInstallation, tag: string, jobId: number, data: Record<string, any>, seen: Record<string, any>[]): Promise<Outcome> {
  const q = (sql: string, p: unknown[] = []) => inst.query('Demo', sql, p);
  const [{ data: historyData, ...history }] = await q(
    `SELECT status, result, error, data FROM background_job_histories WHERE package_name = 'MassRecordCreationAndPrinting' ORDER BY id DESC LIMIT 1`,
  );
  const [{ data: jobText }] = await q(`SELECT data FROM background_jobs WHERE id = $1`, [jobId]);
  const yaml = { job: yamlShape(jobText), history: yamlShape(historyData) };
  return { data, seen, history, yaml, ...(await invoiceRows(inst, tag)) };
}

/** data without installation-specific ids and paths. */
function comparableData(d: Record<string, any>) {
  const { record_ids, invoice_ids, session_id, printer_id, copy_printer_id, pdf_file_name, ...rest } = d;
  return {
    ...rest,
    record_ids: record_ids?.length,
    invoice_ids: invoice_ids?.length,
    printer: printer_id != null,
    copy_printer: copy_printer_id != null,
    pdf_file_name: typeof pdf_file_name === 'string' ? path.basename(pdf_file_name).replace(/_\d+\.pdf$/, '_ID.pdf') : pdf_file_name,
  };
}

function assertSameAsTaskServerPl(o: Outcome, r: Outcome) {
  assert.deepEqual(o.history, r.history, 'history row as task_server.pl writes it');
  assert.deepEqual(o.yaml, r.yaml, "the YAML text of data (job and history) is formatted as kivitendo's task_server.pl writes it");
  assert.deepEqual(comparableData(o.data), comparableData(r.data), 'background_jobs.data as task_server.pl leaves it');
  assert.deepEqual(o.invoices, r.invoices, 'ar rows');
  assert.deepEqual(o.bookings, r.bookings, 'acc_trans rows');
  assert.deepEqual(o.items, r.items, 'invoice rows');
  assert.deepEqual(o.deliveryOrders, r.deliveryOrders, 'delivery orders closed');
}

/** The status page: refreshed every five seconds until data.status is DONE. */
async function createThroughOurDaemon(tag: string, count: number, withPrinters: boolean) {
  const deliveryOrderIds = await addDeliveryOrders(ours, tag, count);
  const printers = withPrinters ? await addPrinters(ours, tag) : undefined;
  const sessionId = await createWebSession(ours);
  const jobId = await createMassInvoiceJob(ours, 'Demo', { deliveryOrderIds, printerId: printers?.printerId, copyPrinterId: printers?.copyPrinterId, sessionId });
  wakeUpTaskServer(ours.root);
  const polled = await pollAsThePageDoes(ours, 'Demo', jobId, (d) => d.status === MASS_PRINT_STATUS.DONE, {
    intervalMs: 5000,
    timeoutMs: 180_000,
    detail: daemonDetail,
    givenUp: runIsOver(ours, 'Demo', jobId, 'MassRecordCreationAndPrinting'),
  });
  await waitFor('the end of our run', async () => (await ours.query('Demo', `SELECT 1 FROM background_jobs WHERE id = $1 AND last_run_at IS NOT NULL`, [jobId])).length > 0, 30_000, daemonDetail);
  return { o: await outcome(ours, tag, jobId, (await jobData(ours, 'Demo', jobId))!, polled.seen), printers, sessionId, jobId };
}

async function createThroughTaskServerPl(tag: string, count: number, withPrinters: boolean) {
  const deliveryOrderIds = await addDeliveryOrders(ref, tag, count);
  const printers = withPrinters ? await addPrinters(ref, tag) : undefined;
  const sessionId = await createWebSession(ref);
  const jobId = await createMassInvoiceJob(ref, 'Demo', { deliveryOrderIds, printerId: printers?.printerId, copyPrinterId: printers?.copyPrinterId, sessionId });
  const r = runWithKivitendoTaskServer(ref, jobId, 300_000);
  assert.equal(r.code, 0, `task_server.pl --run-job=${jobId}: ${r.stdout}${r.stderr}`);
  const data = (await jobData(ref, 'Demo', jobId))!;
  return { r: await outcome(ref, tag, jobId, data, [data]), printers };
}

describe('mass invoice creation and printing through our daemon', { concurrency: false, timeout: 20 * 60_000 }, () => {
  test('with printers: invoices posted, status DONE, the merged PDF reaches both printer commands; same rows as task_server.pl', async () => {
    const { r, printers: refPrinters } = await createThroughTaskServerPl('A', 2, true);
    const { o, printers } = await createThroughOurDaemon('A', 2, true);

    assert.equal(o.data.status, MASS_PRINT_STATUS.DONE, JSON.stringify(o.data));
    assert.equal(o.data.num_created, 2);
    assert.equal(o.data.num_printed, 2);
    assert.equal(o.data.invoice_ids.length, 2);
    assert.deepEqual(o.data.conversion_errors, []);
    assert.deepEqual(o.data.print_errors, []);
    assert.deepEqual(o.history, { status: 'success', result: '1', error: null });
    // posted: numbers from defaults.invnumber, net 25/50 EUR + 19 % VAT, bookings balanced
    assert.deepEqual(
      o.invoices.map((i) => [i.invnumber, i.donumber, i.today, Number(i.netamount), Number(i.amount), Number(i.paid), i.invoice, i.type]),
      [
        ['1001', 'LS-A-1', true, 25, 29.75, 0, true, 'invoice'],
        ['1002', 'LS-A-2', true, 50, 59.5, 0, true, 'invoice'],
      ],
    );
    for (const invnumber of ['1001', '1002']) {
      const rows = o.bookings.filter((b) => b.invnumber === invnumber);
      assert.equal(rows.length, 3, `AR, revenue and tax rows of ${invnumber}: ${JSON.stringify(rows)}`);
      assert.equal(rows.reduce((s, b) => s + Math.round(Number(b.amount) * 100), 0), 0, `${invnumber} balances`);
    }
    assert.deepEqual(o.items.map((i) => [i.invnumber, i.partnumber, Number(i.qty), Number(i.sellprice)]), [['1001', 'P-A', 10, 2.5], ['1002', 'P-A', 20, 2.5]]);
    assert.deepEqual(o.deliveryOrders, [{ donumber: 'LS-A-1', closed: true }, { donumber: 'LS-A-2', closed: true }]);

    for (const file of [printers!.out, printers!.copyOut]) {
      assert.ok(fs.existsSync(file), `the printer command wrote ${file}`);
      assert.equal(fs.readFileSync(file).subarray(0, 5).toString(), '%PDF-');
      const { pages, text } = pdfText(file);
      assert.equal(pages, 2, 'one page per invoice, merged');
      assert.match(text, /Rechnung Nr\. 1001/);
      assert.match(text, /Rechnung Nr\. 1002/);
      assert.match(text, /Lieferkunde A GmbH/);
    }
    // kivitendo's run printed the same
    assert.equal(pdfText(refPrinters!.out).pages, 2);
    assertSameAsTaskServerPl(o, r);
  });

  test('without a printer: status DONE, the merged PDF is the session file the page offers for download', async () => {
    const { r } = await createThroughTaskServerPl('B', 1, false);
    const { o, sessionId, jobId } = await createThroughOurDaemon('B', 1, false);
    assert.equal(o.data.status, MASS_PRINT_STATUS.DONE, JSON.stringify(o.data));
    assert.deepEqual(o.data.print_errors, []);
    assert.equal(o.data.pdf_file_name, `users/session_files/${sessionId}/mass_invoice_${jobId}.pdf`);
    const file = path.join(ours.root, o.data.pdf_file_name);
    const { pages, text } = pdfText(file);
    assert.equal(pages, 1);
    assert.match(text, /Rechnung Nr\. 1003/);
    assert.deepEqual(o.invoices.map((i) => [i.invnumber, i.donumber]), [['1003', 'LS-B-1']]);
    assertSameAsTaskServerPl(o, r);
  });
});
