// Mass invoice creation and printing from sales delivery orders end to end, as kivitendo's web UI
// does it (SL/Controller/MassInvoiceCreatePrint.pm, "create and print all"): the `once`
// MassRecordCreationAndPrinting job with the chosen delivery orders and printers, SIGALRM, then
// the status page's polling of data.status until DONE. The package is kivitendo's own, run by OUR
// daemon through the Perl path, with kivitendo's LaTeX print templates; each case is also run by
// kivitendo's scripts/task_server.pl on a second installation and the rows are compared.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from './harness/cli';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';
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

function requireTool(tool: string, debianPackage: string) {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`]);
  if (r.status !== 0) throw new Error(`${tool} is missing (Debian package ${debianPackage}; .ci/run installs it)`);
}

/**
 * A client set up for printing invoices: its print templates folder (kivitendo's admin copies
 * templates/print/Standard to templates/<client>; a symlink here), defaults.templates naming it,
 * invoice numbers from 1000. Factur-X/ZUGFeRD, on by default in a fresh client, is switched off:
 * it needs the company's VAT id and more, else kivitendo refuses to print (a print_errors entry).
 */
async function prepare(inst: KivitendoInstallation) {
  fs.symlinkSync(standardTemplates(inst.src), path.join(inst.root, 'templates', 'Demo'));
  await inst.query('Demo', `UPDATE background_jobs SET active = false`);
  await inst.query('Demo', `UPDATE defaults SET templates = 'templates/Demo', invnumber = '1000', create_zugferd_invoices = 0, company = 'Testfirma GmbH'`);
}

/**
 * templates/print/Standard: a symlink to marei in kivitendo's git tree, but a checkout without
 * symlink support (as ../shared has it) leaves a small file holding the target's name.
 */
function standardTemplates(src: string): string {
  const standard = path.join(src, 'templates', 'print', 'Standard');
  if (fs.statSync(standard).isDirectory()) return standard;
  const target = path.join(path.dirname(standard), fs.readFileSync(standard, 'utf8').trim());
  if (!fs.existsSync(path.join(target, 'invoice.tex'))) throw new Error(`kivitendo's print templates not found: ${standard} names ${target}, which has no invoice.tex`);
  return target;
}

interface Printers {
  printerId: number;
  copyPrinterId: number;
  out: string;
  copyOut: string;
}

/** Two printers whose commands append what they get on stdin to a file each. */
async function addPrinters(inst: KivitendoInstallation, tag: string): Promise<Printers> {
  const dir = path.join(inst.root, 'users', 'printer-out');
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, `${tag}-printer.pdf`);
  const copyOut = path.join(dir, `${tag}-copy.pdf`);
  const add = async (description: string, file: string) =>
    (await inst.query('Demo', `INSERT INTO printers (printer_description, printer_command, template_code) VALUES ($1, $2, '') RETURNING id`, [description, `cat >> ${file}`]))[0].id as number;
  return { printerId: await add(`Drucker ${tag}`, out), copyPrinterId: await add(`Kopiedrucker ${tag}`, copyOut), out, copyOut };
}

/** A customer, a part and open sales delivery orders (qty 10, 20, ... at 2.50 EUR, 19 % VAT). */
async function addDeliveryOrders(inst: KivitendoInstallation, tag: string, count: number): Promise<number[]> {
  return inst.withClientDb('Demo', async (db) => {
    const bg = (await db.query(`SELECT id FROM buchungsgruppen WHERE description = 'Standard 19%'`)).rows[0].id;
    const zone = (await db.query(`SELECT id FROM tax_zones WHERE description = 'Inland'`)).rows[0].id;
    const employee = (await db.query(`SELECT id FROM employee WHERE login = 'taskserver'`)).rows[0].id;
    const customer = (
      await db.query(
        `INSERT INTO customer (name, customernumber, taxzone_id, currency_id, taxincluded, country_id, street, zipcode, city)
         VALUES ($1, $2, $3, (SELECT currency_id FROM defaults), false, (SELECT id FROM countries WHERE iso2 = 'DE'), 'Lieferweg 1', '10115', 'Berlin') RETURNING id`,
        [`Lieferkunde ${tag} GmbH`, `K-${tag}`, zone],
      )
    ).rows[0].id;
    const part = (
      await db.query(
        `INSERT INTO parts (partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id)
         VALUES ($1, 'Schraube M6', 'Stck', 'part', 2.5, 1, $2) RETURNING id`,
        [`P-${tag}`, bg],
      )
    ).rows[0].id;
    const ids: number[] = [];
    for (let i = 1; i <= count; i++) {
      const d = await db.query(
        `INSERT INTO delivery_orders (donumber, transdate, customer_id, employee_id, taxzone_id, currency_id, taxincluded, record_type, delivered, closed)
         VALUES ($1, current_date, $2, $3, $4, (SELECT currency_id FROM defaults), false, 'sales_delivery_order', true, false) RETURNING id`,
        [`LS-${tag}-${i}`, customer, employee, zone],
      );
      await db.query(
        `INSERT INTO delivery_order_items (delivery_order_id, parts_id, description, qty, base_qty, unit, sellprice, discount, position, price_factor, marge_price_factor)
         VALUES ($1, $2, 'Schraube M6', $3::numeric, $3::real, 'Stck', 2.5, 0, 1, 1, 1)`,
        [d.rows[0].id, part, String(i * 10)],
      );
      ids.push(d.rows[0].id);
    }
    return ids;
  });
}

before(async () => {
  requireTool('pdflatex', 'texlive-latex-recommended');
  requireTool('gs', 'ghostscript');
  requireTool('pdftotext', 'poppler-utils');
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

interface Outcome {
  data: Record<string, any>;
  seen: Record<string, any>[];
  history: Record<string, any>;
  /** YAML formatting of background_jobs.data and of the history row's data */
  yaml: { job: string | null; history: string | null };
  invoices: Record<string, any>[];
  bookings: Record<string, any>[];
  items: Record<string, any>[];
  deliveryOrders: Record<string, any>[];
}

async function outcome(inst: KivitendoInstallation, tag: string, jobId: number, data: Record<string, any>, seen: Record<string, any>[]): Promise<Outcome> {
  const q = (sql: string, p: unknown[] = []) => inst.query('Demo', sql, p);
  const [{ data: historyData, ...history }] = await q(
    `SELECT status, result, error, data FROM background_job_histories WHERE package_name = 'MassRecordCreationAndPrinting' ORDER BY id DESC LIMIT 1`,
  );
  const [{ data: jobText }] = await q(`SELECT data FROM background_jobs WHERE id = $1`, [jobId]);
  const yaml = { job: yamlShape(jobText), history: yamlShape(historyData) };
  const invoices = await q(
    `SELECT ar.invnumber, ar.transdate = $2::date AS today, ar.amount, ar.netamount, ar.paid, ar.invoice, ar.taxincluded, ar.type,
            c.customernumber, d.donumber, ar.donumber AS ar_donumber, e.login AS employee, ar.taxzone_id, ar.storno
       FROM ar JOIN customer c ON c.id = ar.customer_id
       JOIN record_links rl ON rl.from_table = 'delivery_orders' AND rl.to_table = 'ar' AND rl.to_id = ar.id
       JOIN delivery_orders d ON d.id = rl.from_id
       LEFT JOIN employee e ON e.id = ar.employee_id
      WHERE c.customernumber = $1 ORDER BY ar.invnumber`,
    [`K-${tag}`, localToday()],
  );
  const bookings = await q(
    `SELECT ar.invnumber, ch.accno, at.amount, at.taxkey, t.rate AS tax_rate, at.transdate = $2::date AS today
       FROM acc_trans at JOIN ar ON ar.id = at.trans_id JOIN customer c ON c.id = ar.customer_id JOIN chart ch ON ch.id = at.chart_id
       LEFT JOIN tax t ON t.id = at.tax_id
      WHERE c.customernumber = $1 ORDER BY ar.invnumber, ch.accno, at.amount`,
    [`K-${tag}`, localToday()],
  );
  const items = await q(
    `SELECT ar.invnumber, p.partnumber, i.description, i.qty, i.sellprice, i.fxsellprice, i.unit, i.position
       FROM invoice i JOIN ar ON ar.id = i.trans_id JOIN customer c ON c.id = ar.customer_id JOIN parts p ON p.id = i.parts_id
      WHERE c.customernumber = $1 ORDER BY ar.invnumber, i.position`,
    [`K-${tag}`],
  );
  const deliveryOrders = await q(`SELECT donumber, closed FROM delivery_orders WHERE donumber LIKE $1 ORDER BY donumber`, [`LS-${tag}-%`]);
  return { data, seen, history, yaml, invoices, bookings, items, deliveryOrders };
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

/**
 * Today as kivitendo's Perl code dates an invoice: in the local time zone of the process (the suite
 * runs in TZ Europe/Berlin), not the test cluster's (UTC) — between midnight in Berlin and midnight
 * UTC the two days differ.
 */
function localToday(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function pdfText(file: string): { pages: number; text: string } {
  const info = spawnSync('pdfinfo', [file], { encoding: 'utf8' });
  assert.equal(info.status, 0, `pdfinfo ${file}: ${info.stderr}`);
  const text = spawnSync('pdftotext', [file, '-'], { encoding: 'utf8' });
  return { pages: Number(/^Pages:\s+(\d+)/m.exec(info.stdout)?.[1]), text: text.stdout };
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
