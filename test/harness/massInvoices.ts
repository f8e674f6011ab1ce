// Fixtures and readings for mass invoice creation and printing from sales delivery orders
// (kivitendo's MassInvoiceCreatePrint page and its MassRecordCreationAndPrinting job), shared by
// the test that emulates the page (perl-e2e-mass-invoices) and the one that clicks through it
// (webui-real): a client set up for printing, printers, a customer with open delivery orders, the
// rows the job leaves, the text of a PDF.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Installation } from './installation';

type Client = Pick<Installation, 'query' | 'withClientDb' | 'root'>;

export function requireTool(tool: string, debianPackage: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`]);
  if (r.status !== 0) throw new Error(`${tool} is missing (Debian package ${debianPackage}; .ci/run installs it)`);
}

/** What printing invoices needs on this machine: LaTeX, ghostscript (merging), poppler (reading). */
export function requirePrintingTools(): void {
  requireTool('pdflatex', 'texlive-latex-recommended');
  requireTool('gs', 'ghostscript');
  requireTool('pdftotext', 'poppler-utils');
}

/**
 * templates/print/Standard: a symlink to marei in kivitendo's git tree, but a checkout without
 * symlink support (as ../shared has it) leaves a small file holding the target's name.
 */
export function standardTemplates(src: string): string {
  const standard = path.join(src, 'templates', 'print', 'Standard');
  if (fs.statSync(standard).isDirectory()) return standard;
  const target = path.join(path.dirname(standard), fs.readFileSync(standard, 'utf8').trim());
  if (!fs.existsSync(path.join(target, 'invoice.tex'))) throw new Error(`kivitendo's print templates not found: ${standard} names ${target}, which has no invoice.tex`);
  return target;
}

/**
 * A client set up for printing invoices: its print templates folder (kivitendo's admin copies
 * templates/print/Standard to templates/<client>; a symlink here), defaults.templates naming it,
 * invoice numbers from 1000. Factur-X/ZUGFeRD, on by default in a fresh client, is switched off:
 * it needs the company's VAT id and more, else kivitendo refuses to print (a print_errors entry).
 */
export async function prepareInvoicePrinting(inst: Client & { src: string }, client = 'Demo'): Promise<void> {
  fs.symlinkSync(standardTemplates(inst.src), path.join(inst.root, 'templates', client));
  await inst.query(
    client,
    `UPDATE defaults SET templates = $1, invnumber = '1000', create_zugferd_invoices = 0, company = 'Testfirma GmbH'`,
    [`templates/${client}`],
  );
}

export interface Printers {
  printerId: number;
  copyPrinterId: number;
  out: string;
  copyOut: string;
}

/** Two printers whose commands append what they get on stdin to a file each. */
export async function addPrinters(inst: Client, tag: string): Promise<Printers> {
  const dir = path.join(inst.root, 'users', 'printer-out');
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, `${tag}-printer.pdf`);
  const copyOut = path.join(dir, `${tag}-copy.pdf`);
  const add = async (description: string, file: string) =>
    (await inst.query('Demo', `INSERT INTO printers (printer_description, printer_command, template_code) VALUES ($1, $2, '') RETURNING id`, [description, `cat >> ${file}`]))[0].id as number;
  return { printerId: await add(`Drucker ${tag}`, out), copyPrinterId: await add(`Kopiedrucker ${tag}`, copyOut), out, copyOut };
}

/** The customer addDeliveryOrders creates for a tag, as the page lists it. */
export const deliveryCustomerName = (tag: string) => `Lieferkunde ${tag} GmbH`;

/**
 * A customer (K-<tag>), a part (P-<tag>) and open sales delivery orders LS-<tag>-1, -2, ... (qty
 * 10, 20, ... at 2.50 EUR, 19 % VAT), delivered by the employee `taskserver`.
 */
export async function addDeliveryOrders(inst: Client, tag: string, count: number): Promise<number[]> {
  return inst.withClientDb('Demo', async (db) => {
    const bg = (await db.query(`SELECT id FROM buchungsgruppen WHERE description = 'Standard 19%'`)).rows[0].id;
    const zone = (await db.query(`SELECT id FROM tax_zones WHERE description = 'Inland'`)).rows[0].id;
    const employee = (await db.query(`SELECT id FROM employee WHERE login = 'taskserver'`)).rows[0].id;
    const customer = (
      await db.query(
        `INSERT INTO customer (name, customernumber, taxzone_id, currency_id, taxincluded, country_id, street, zipcode, city)
         VALUES ($1, $2, $3, (SELECT currency_id FROM defaults), false, (SELECT id FROM countries WHERE iso2 = 'DE'), 'Lieferweg 1', '10115', 'Berlin') RETURNING id`,
        [deliveryCustomerName(tag), `K-${tag}`, zone],
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

export interface InvoiceRows {
  /** ar rows, each with the delivery order linked to it in record_links */
  invoices: Record<string, any>[];
  bookings: Record<string, any>[];
  items: Record<string, any>[];
  deliveryOrders: Record<string, any>[];
}

/**
 * What the job left for the tag's customer: invoices linked to their delivery orders, bookings,
 * items. `today` is kivitendo's date (DateTime->today_local: the time zone its processes run in,
 * TZ or the machine's), not PostgreSQL's current_date (the test server runs in UTC).
 */
export async function invoiceRows(inst: Client, tag: string, timeZone = process.env.TZ || 'Etc/UTC'): Promise<InvoiceRows> {
  const q = (sql: string) => inst.query('Demo', sql, sql.includes('$2') ? [`K-${tag}`, timeZone] : [`K-${tag}`]);
  const invoices = await q(
    `SELECT ar.invnumber, ar.transdate = (now() AT TIME ZONE $2)::date AS today, ar.amount, ar.netamount, ar.paid, ar.invoice, ar.taxincluded, ar.type,
            c.customernumber, d.donumber, ar.donumber AS ar_donumber, e.login AS employee, ar.taxzone_id, ar.storno
       FROM ar JOIN customer c ON c.id = ar.customer_id
       JOIN record_links rl ON rl.from_table = 'delivery_orders' AND rl.to_table = 'ar' AND rl.to_id = ar.id
       JOIN delivery_orders d ON d.id = rl.from_id
       LEFT JOIN employee e ON e.id = ar.employee_id
      WHERE c.customernumber = $1 ORDER BY ar.invnumber`,
  );
  const bookings = await q(
    `SELECT ar.invnumber, ch.accno, at.amount, at.taxkey, t.rate AS tax_rate, at.transdate = (now() AT TIME ZONE $2)::date AS today
       FROM acc_trans at JOIN ar ON ar.id = at.trans_id JOIN customer c ON c.id = ar.customer_id JOIN chart ch ON ch.id = at.chart_id
       LEFT JOIN tax t ON t.id = at.tax_id
      WHERE c.customernumber = $1 ORDER BY ar.invnumber, ch.accno, at.amount`,
  );
  const items = await q(
    `SELECT ar.invnumber, p.partnumber, i.description, i.qty, i.sellprice, i.fxsellprice, i.unit, i.position
       FROM invoice i JOIN ar ON ar.id = i.trans_id JOIN customer c ON c.id = ar.customer_id JOIN parts p ON p.id = i.parts_id
      WHERE c.customernumber = $1 ORDER BY ar.invnumber, i.position`,
  );
  const deliveryOrders = await q(
    `SELECT d.donumber, d.closed FROM delivery_orders d JOIN customer c ON c.id = d.customer_id WHERE c.customernumber = $1 ORDER BY d.donumber`,
  );
  return { invoices, bookings, items, deliveryOrders };
}

/** Pages and text of a PDF (poppler's pdfinfo and pdftotext). */
export function pdfText(file: string): { pages: number; text: string } {
  const info = spawnSync('pdfinfo', [file], { encoding: 'utf8' });
  assert.equal(info.status, 0, `pdfinfo ${file}: ${info.stderr}`);
  const text = spawnSync('pdftotext', [file, '-'], { encoding: 'utf8' });
  return { pages: Number(/^Pages:\s+(\d+)/m.exec(info.stdout)?.[1]), text: text.stdout };
}
