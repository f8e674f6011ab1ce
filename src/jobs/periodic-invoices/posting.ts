// Posting one invoice (spec periodic-invoices.md §4.5–§4.8) in kivitendo's write order, so every
// sequence hands out the same ids: ar, invoice rows (+ their custom variables), the cloned custom
// ship-to, record_links, acc_trans (COGS, income, tax, AR), allocations, rounding, once-items,
// periodic_invoices.
import type { Client } from '../../db/pg';
import type { InvoiceDraft } from './conversion';
import { formatYmd } from './dates';
import { objectSave, RunError } from './errors';
import { nextInvoiceNumber } from './invoiceNumbers';
import type { MasterData } from './masterData';
import { numText } from './money';
import { calculatePricesAndTaxes, InventoryChartError, type AssemblyComponent, type CalcResult, type PartInventory } from './pricesAndTaxes';

/** Invoice numbers of the run: one lock, one read of ar, one defaults row lock (§4.6). */
export class InvoiceNumberAllocator {
  private inUse: Set<string> | undefined;
  private current: string | null = null;
  private dirty = false;

  constructor(private readonly db: Client) {}

  async next(): Promise<string> {
    if (!this.inUse) {
      await this.db.query('LOCK TABLE ar IN ROW EXCLUSIVE MODE');
      const used = await this.db.query<{ invnumber: string }>('SELECT invnumber FROM ar');
      this.inUse = new Set(used.rows.map((r) => r.invnumber));
      // Held until the commit: kivitendo's number generators lock this row the same way.
      const d = await this.db.query<{ invnumber: string | null }>('SELECT invnumber FROM defaults FOR UPDATE');
      this.current = d.rows[0]?.invnumber ?? null;
    }
    const n = nextInvoiceNumber(this.current, this.inUse);
    this.inUse.add(n);
    this.current = n;
    this.dirty = true;
    return n;
  }

  /** Writes the last number handed out; kivitendo writes each one, only the last one stays. */
  async flush(): Promise<void> {
    if (!this.dirty) return;
    await objectSave(this.db, 'Default', { name: 'kts_pi_defaults_invnumber', text: 'UPDATE defaults SET invnumber = $1', values: [this.current] });
    this.dirty = false;
  }
}

export interface PostedInvoice {
  id: number;
  invnumber: string;
  calc: CalcResult;
  draft: InvoiceDraft;
  /** ar columns as written, for the summary template. */
  row: Record<string, unknown>;
}

const AR_COLUMNS = [
  'invnumber', 'transdate', 'gldate', 'customer_id', 'taxincluded', 'amount', 'netamount', 'paid', 'duedate', 'deliverydate',
  'invoice', 'shippingpoint', 'notes', 'ordnumber', 'employee_id', 'quonumber', 'cusordnumber', 'intnotes', 'department_id',
  'shipvia', 'cp_id', 'language_id', 'payment_id', 'delivery_customer_id', 'delivery_vendor_id', 'storno', 'taxzone_id',
  'shipto_id', 'type', 'orddate', 'globalproject_id', 'salesman_id', 'marge_total', 'marge_percent', 'transaction_description',
  'direct_debit', 'delivery_term_id', 'currency_id', 'tax_point', 'billing_address_id', 'tax_point_start',
] as const;
const AR_INSERT = `INSERT INTO ar (${AR_COLUMNS.join(', ')}) VALUES (${AR_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING id`;

const ITEM_COLUMNS = [
  'trans_id', 'position', 'parts_id', 'description', 'longdescription', 'qty', 'sellprice', 'fxsellprice', 'discount', 'project_id',
  'serialnumber', 'pricegroup_id', 'transdate', 'cusordnumber', 'unit', 'lastcost', 'price_factor_id', 'active_discount_source',
  'active_price_source', 'subtotal', 'deliverydate', 'ordnumber', 'donumber', 'base_qty', 'price_factor', 'marge_price_factor',
  'marge_total', 'marge_percent', 'allocated', 'assemblyitem',
] as const;

function multiInsert(table: string, columns: readonly string[], rows: unknown[][], returning = ''): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const tuples = rows.map((row) => `(${row.map((v) => `$${values.push(v)}`).join(', ')})`);
  return { text: `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}${returning}`, values };
}

export interface PostContext {
  db: Client;
  md: MasterData;
  numbers: InvoiceNumberAllocator;
  exchangerate: (currencyId: number | null, date: string) => Promise<number>;
}

/** Every PartInventory of the invoice: direct parts and the parts inside assemblies. */
function inventories(draft: InvoiceDraft): { partsId: number; inv: PartInventory }[] {
  const out: { partsId: number; inv: PartInventory }[] = [];
  const walk = (components: AssemblyComponent[]) => {
    for (const c of components) {
      if (c.inventory) out.push({ partsId: c.partsId, inv: c.inventory });
      walk(c.components);
    }
  };
  for (const item of draft.items) {
    if (item.calc.inventory) out.push({ partsId: item.part.id, inv: item.calc.inventory });
    walk(item.calc.components);
  }
  return out;
}

/**
 * Loads the open purchase rows for the parts of a perpetual-inventory invoice (physical order, as
 * kivitendo's unordered iterator sees them). Rows allocated by earlier invoices of this run are
 * already updated in the transaction.
 */
async function loadOpenPurchases(pc: PostContext, draft: InvoiceDraft): Promise<void> {
  const invs = inventories(draft);
  if (invs.length === 0) return;
  const r = await pc.db.query(
    `SELECT id, parts_id, base_qty, allocated, sellprice::text AS sellprice, discount FROM invoice
      WHERE parts_id = ANY($1::integer[]) AND (base_qty + allocated) < 0`,
    [[...new Set(invs.map((i) => i.partsId))]],
  );
  for (const { partsId, inv } of invs) {
    inv.openPurchases = r.rows
      .filter((row) => row.parts_id === partsId)
      .map((row) => ({ id: row.id, baseQty: Number(row.base_qty), allocated: Number(row.allocated ?? 0), sellprice: Number(row.sellprice), discount: Number(row.discount ?? 0) }));
  }
}

export async function postInvoice(pc: PostContext, draft: InvoiceDraft): Promise<PostedInvoice> {
  const { db, md } = pc;
  const { order, config } = draft;
  const perpetual = md.defaults.inventory_system === 'perpetual';
  const today = formatYmd(draft.today);

  // Exchange rate of the invoice currency on the invoice date (§4.3); default currency → 1.
  let r = 1;
  const currencyName = order.currency_id !== null ? (md.currencies.get(order.currency_id) ?? '') : '';
  if (currencyName !== md.defaultCurrencyName) r = (await pc.exchangerate(order.currency_id, today)) || 1;

  if (perpetual) await loadOpenPurchases(pc, draft);
  let calc: CalcResult;
  try {
    calc = calculatePricesAndTaxes({
      taxincluded: draft.taxincluded,
      exchangerate: r,
      precision: md.defaults.precision,
      perpetual,
      items: draft.items.map((i) => i.calc),
    });
  } catch (e) {
    if (e instanceof InventoryChartError) throw new RunError(e.kivitendoMessage, e.detail);
    throw e;
  }

  const invnumber = await pc.numbers.next();
  const ar: Record<(typeof AR_COLUMNS)[number], unknown> = {
    invnumber,
    transdate: today,
    gldate: today,
    customer_id: order.customer_id,
    taxincluded: draft.taxincluded,
    amount: numText(calc.amount),
    netamount: numText(calc.netamount),
    paid: 0,
    duedate: formatYmd(draft.duedate),
    deliverydate: formatYmd(draft.periodStart),
    invoice: true,
    shippingpoint: order.shippingpoint,
    notes: draft.notes,
    ordnumber: order.ordnumber,
    employee_id: order.employee_id,
    quonumber: order.quonumber,
    cusordnumber: order.cusordnumber,
    intnotes: draft.intnotes,
    department_id: order.department_id,
    shipvia: order.shipvia,
    cp_id: order.cp_id,
    language_id: order.language_id,
    payment_id: draft.paymentId,
    delivery_customer_id: order.delivery_customer_id,
    delivery_vendor_id: order.delivery_vendor_id,
    storno: false,
    taxzone_id: order.taxzone_id,
    shipto_id: order.shipto_id,
    type: 'invoice',
    orddate: order.transdate,
    globalproject_id: order.globalproject_id,
    salesman_id: order.salesman_id,
    marge_total: numText(calc.margeTotal),
    marge_percent: numText(calc.margePercent),
    transaction_description: draft.transactionDescription,
    direct_debit: !!config.direct_debit,
    delivery_term_id: order.delivery_term_id,
    currency_id: order.currency_id,
    tax_point: formatYmd(draft.taxPoint),
    billing_address_id: order.billing_address_id,
    tax_point_start: formatYmd(draft.periodStart),
  };
  const arRes = await objectSave<{ id: number }>(db, 'Invoice', { name: 'kts_pi_ar', text: AR_INSERT, values: AR_COLUMNS.map((c) => ar[c]) });
  const arId = arRes.rows[0].id;

  // invoice rows: each item, followed by its assembly component rows (perpetual inventory only).
  const rows: unknown[][] = [];
  const sourceOfRow: (number | null)[] = [];
  let position = 0;
  draft.items.forEach((item, idx) => {
    const it = item.source;
    const res = calc.items[idx];
    position += 1;
    rows.push([
      arId, position, it.parts_id, item.description, item.longdescription, it.qty, item.sellpriceText, item.sellpriceText,
      item.discountText, it.project_id, it.serialnumber, it.pricegroup_id, it.transdate, it.cusordnumber, it.unit, it.lastcost,
      it.price_factor_id, it.active_discount_source, it.active_price_source, !!it.subtotal, it.reqdate, order.ordnumber, '',
      numText(res.baseQty), numText(item.calc.priceFactor), numText(item.calc.margePriceFactor), numText(res.margeTotal),
      numText(res.margePercent), res.allocated === null ? null : numText(res.allocated), false,
    ]);
    sourceOfRow.push(it.id);
    for (const c of res.components) {
      position += 1;
      // kivitendo builds these rows after the price calculation from part, qty, allocated and
      // the zero prices only; every other column is the model default (price factors 1, price
      // sources '', subtotal false) or NULL (base_qty, discount, margins, ordnumber, donumber …).
      rows.push([
        arId, position, c.partsId, c.description, null, numText(c.qty), '0', '0', null, null, null, null, null, null, c.unit, null,
        null, '', '', false, null, null, null, null, '1', '1', null, null, numText(c.allocated), true,
      ]);
      sourceOfRow.push(null);
    }
  });
  const invoiceIds: number[] = [];
  if (rows.length) {
    const ins = multiInsert('invoice', ITEM_COLUMNS, rows, ' RETURNING id, position');
    const res = await objectSave<{ id: number; position: number }>(db, 'InvoiceItem', ins);
    const byPos = new Map(res.rows.map((x) => [x.position, x.id]));
    for (let i = 0; i < rows.length; i++) invoiceIds.push(byPos.get(i + 1)!);
  }

  // Item custom variables (after the invoice rows: their ids come from another sequence), then the
  // cloned custom ship-to and its custom variables.
  const cvarRows: unknown[][] = [];
  sourceOfRow.forEach((src, i) => {
    if (src === null) return;
    for (const cv of md.itemCvars.get(src) ?? []) {
      cvarRows.push([cv.config_id, invoiceIds[i], 'invoice', cv.bool_value ?? false, cv.timestamp_value, cv.text_value, cv.number_value]);
    }
  });
  if (cvarRows.length) {
    await objectSave(db, 'CustomVariable', multiInsert('custom_variables', ['config_id', 'trans_id', 'sub_module', 'bool_value', 'timestamp_value', 'text_value', 'number_value'], cvarRows));
  }
  if (order.shipto_id === null) {
    const st = md.customShiptos.get(order.id);
    if (st) {
      const cols = Object.keys(st.cols);
      const ins = multiInsert('shipto', [...cols, 'module', 'trans_id'], [[...cols.map((c) => st.cols[c]), 'AR', arId]], ' RETURNING shipto_id');
      const res = await objectSave<{ shipto_id: number }>(db, 'Shipto', ins);
      const newId = res.rows[0].shipto_id;
      if (st.cvars.length) {
        await objectSave(
          db,
          'CustomVariable',
          multiInsert(
            'custom_variables',
            ['config_id', 'trans_id', 'sub_module', 'bool_value', 'timestamp_value', 'text_value', 'number_value'],
            st.cvars.map((cv) => [cv.config_id, newId, cv.sub_module ?? '', cv.bool_value ?? false, cv.timestamp_value, cv.text_value, cv.number_value]),
          ),
        );
      }
    }
  }

  // record_links: order → invoice, then each order item → its invoice row, in position order.
  const links: unknown[][] = [['oe', order.id, 'ar', arId]];
  sourceOfRow.forEach((src, i) => {
    if (src !== null) links.push(['orderitems', src, 'invoice', invoiceIds[i]]);
  });
  await objectSave(db, 'RecordLink', multiInsert('record_links', ['from_table', 'from_id', 'to_table', 'to_id'], links));

  // acc_trans: COGS, income, tax, AR; rows with amount 0 are not written.
  const t0 = md.noTaxId;
  const project = order.globalproject_id;
  const link = (chart: number) => md.chartLinks.get(chart) || '';
  const acc: unknown[][] = [];
  const add = (chart: number, amount: number, taxId: number, taxkey: number, chartLink: string) => {
    if (amount !== 0) acc.push([arId, chart, numText(amount), taxId, taxkey, project, today, chartLink]);
  };
  for (const [chart, amount] of calc.cogs) add(chart, amount, t0, 0, link(chart));
  for (const [chart, e] of calc.income) add(chart, e.amount, e.taxId, e.taxkey, link(chart));
  for (const [chart, amount] of calc.taxes) add(chart, amount, t0, 0, link(chart));
  add(config.ar_chart_id, calc.amount * -1, t0, 0, link(config.ar_chart_id));
  const accCols = ['trans_id', 'chart_id', 'amount', 'tax_id', 'taxkey', 'project_id', 'transdate', 'chart_link'];
  if (acc.length) await objectSave(db, 'AccTransaction', multiInsert('acc_trans', accCols, acc));

  for (const [rowId, q] of calc.allocatedUpdates) {
    await objectSave(db, 'InvoiceItem', { text: 'UPDATE invoice SET allocated = allocated + $2 WHERE id = $1', values: [rowId, numText(q)] });
  }

  // Rounding row; its chart_link is the chart id (kivitendo quirk, §4.8).
  if (calc.rounding !== 0) {
    const chart = calc.rounding > 0 ? md.defaults.rndgain_accno_id : md.defaults.rndloss_accno_id;
    if (chart) await objectSave(db, 'AccTransaction', multiInsert('acc_trans', accCols, [[arId, chart, numText(calc.rounding), t0, 0, project, today, String(chart)]]));
  }

  // Once-items of the whole order get this invoice (kept in memory for later dates of the run).
  const once = order.items.filter((it) => it.recurring_billing_mode === 'once' && !it.recurring_billing_invoice_id);
  if (once.length) {
    await objectSave(db, 'OrderItem', {
      name: 'kts_pi_once',
      text: 'UPDATE orderitems SET recurring_billing_invoice_id = $1 WHERE id = ANY($2::integer[])',
      values: [arId, once.map((it) => it.id)],
    });
    for (const it of once) it.recurring_billing_invoice_id = arId;
  }

  await objectSave(db, 'PeriodicInvoice', {
    name: 'kts_pi_periodic_invoice',
    text: 'INSERT INTO periodic_invoices (config_id, ar_id, period_start_date) VALUES ($1, $2, $3)',
    values: [config.id, arId, formatYmd(draft.periodStart)],
  });

  return { id: arId, invnumber, calc, draft, row: { id: arId, ...ar } };
}
