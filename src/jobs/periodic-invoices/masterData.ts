// Everything an invoice needs besides its order, loaded set-wise once per run: the small
// reference tables in full, orders/items/parts/customers/terms for the due configs only.
import type { QueryResult } from 'pg';
import type { Client } from '../../db/pg';
import { compareYmd, parseYmd, type Ymd } from './dates';
import { num } from './money';
import type { TaxInfo } from './pricesAndTaxes';

export interface DefaultsRow {
  precision: number | null;
  rndgain_accno_id: number | null;
  rndloss_accno_id: number | null;
  inventory_system: string | null;
  currency_id: number | null;
  order_always_project: boolean | null;
  project_type_id: number | null;
  project_status_id: number | null;
  templates: string | null;
}

export interface OrderRow {
  id: number;
  ordnumber: string;
  transdate: string | null;
  customer_id: number | null;
  taxincluded: boolean | null;
  shippingpoint: string | null;
  notes: string | null;
  employee_id: number | null;
  closed: boolean | null;
  quonumber: string | null;
  cusordnumber: string | null;
  intnotes: string | null;
  department_id: number | null;
  shipvia: string | null;
  cp_id: number | null;
  language_id: number | null;
  payment_id: number | null;
  delivery_customer_id: number | null;
  delivery_vendor_id: number | null;
  taxzone_id: number | null;
  shipto_id: number | null;
  globalproject_id: number | null;
  salesman_id: number | null;
  transaction_description: string | null;
  delivery_term_id: number | null;
  currency_id: number | null;
  tax_point: string | null;
  billing_address_id: number | null;
  record_type: string;
  items: OrderItemRow[];
}

export interface OrderItemRow {
  id: number;
  trans_id: number;
  parts_id: number | null;
  description: string | null;
  longdescription: string | null;
  qty: string | null;
  sellprice: string | null;
  discount: string | null;
  project_id: number | null;
  reqdate: string | null;
  serialnumber: string | null;
  pricegroup_id: number | null;
  transdate: string | null;
  cusordnumber: string | null;
  unit: string | null;
  subtotal: boolean | null;
  lastcost: string | null;
  price_factor_id: number | null;
  position: number | null;
  active_price_source: string | null;
  active_discount_source: string | null;
  recurring_billing_mode: string;
  recurring_billing_invoice_id: number | null;
}

export interface PartRow {
  id: number;
  partnumber: string;
  description: string | null;
  unit: string;
  lastcost: number | null;
  price_factor_id: number | null;
  part_type: string;
  buchungsgruppen_id: number | null;
}

export interface PaymentTermsRow {
  id: number;
  terms_netto: number | null;
  auto_calculation: boolean;
}

export interface CustomVariableRow {
  trans_id: number;
  config_id: number;
  bool_value: boolean | null;
  timestamp_value: string | null;
  text_value: string | null;
  number_value: string | null;
  sub_module?: string;
}

export interface ShiptoRow {
  shipto_id: number;
  trans_id: number;
  cols: Record<string, unknown>;
  cvars: CustomVariableRow[];
}

async function sequential(_db: Client, fns: (() => Promise<QueryResult<any>>)[]): Promise<QueryResult<any>[]> {
  const out = [];
  for (const f of fns) out.push(await f());
  return out;
}

export interface AssemblyEntry {
  parts_id: number;
  qty: number;
}

interface TaxkeyRow {
  id: number;
  tax_id: number;
  taxkey_id: number;
  startdate: Ymd;
}

export class MasterData {
  defaults!: DefaultsRow;
  defaultCurrencyName = '';
  currencies = new Map<number, string>();
  units = new Map<string, { base_unit: string | null; factor: number | null }>();
  priceFactors = new Map<number, number | null>();
  /** `${taxzone_id}/${buchungsgruppen_id}` → charts */
  taxzoneCharts = new Map<string, { income: number; expense: number }>();
  inventoryCharts = new Map<number, number>();
  chartLinks = new Map<number, string | null>();
  /** chart_id → taxkeys, newest first */
  taxkeys = new Map<number, TaxkeyRow[]>();
  taxes = new Map<number, { rate: number; chart_id: number | null }>();
  noTaxId = 0;
  parts = new Map<number, PartRow>();
  orders = new Map<number, OrderRow>();
  paymentTerms = new Map<number, PaymentTermsRow>();
  customerPaymentIds = new Map<number, number | null>();
  itemCvars = new Map<number, CustomVariableRow[]>();
  customShiptos = new Map<number, ShiptoRow>();
  /** Assembly part id → its components in `assembly.position` order (perpetual inventory only). */
  assemblies = new Map<number, AssemblyEntry[]>();
  private bfCache = new Map<string, number>();

  /** The reference tables (small, loaded in full). */
  async loadReference(db: Client): Promise<void> {
    // Sequential: one connection runs one statement at a time (pg deprecates queueing).
    const [defaults, currencies, units, pfs, tzc, bg, charts, tks, taxes, t0] = await sequential(db, [
      () => db.query(`SELECT precision, rndgain_accno_id, rndloss_accno_id, inventory_system, currency_id, order_always_project,
                       project_type_id, project_status_id, templates FROM defaults LIMIT 1`),
      () => db.query('SELECT id, name FROM currencies'),
      () => db.query('SELECT name, base_unit, factor FROM units'),
      () => db.query('SELECT id, factor FROM price_factors'),
      () => db.query('SELECT taxzone_id, buchungsgruppen_id, income_accno_id, expense_accno_id FROM taxzone_charts'),
      () => db.query('SELECT id, inventory_accno_id FROM buchungsgruppen'),
      () => db.query('SELECT id, link FROM chart'),
      () => db.query('SELECT id, chart_id, tax_id, taxkey_id, startdate::text AS startdate FROM taxkeys'),
      () => db.query('SELECT id, rate, chart_id FROM tax'),
      // kivitendo takes the first row Tax->find_by(taxkey => 0) returns, without ORDER BY.
      () => db.query('SELECT id FROM tax WHERE taxkey = 0 LIMIT 1'),
    ]);
    const d = defaults.rows[0] ?? {};
    this.defaults = { ...d, precision: num(d.precision) } as DefaultsRow;
    for (const c of currencies.rows) this.currencies.set(c.id, c.name);
    this.defaultCurrencyName = this.defaults.currency_id != null ? (this.currencies.get(this.defaults.currency_id) ?? '') : '';
    for (const u of units.rows) this.units.set(u.name, { base_unit: u.base_unit, factor: num(u.factor) });
    for (const p of pfs.rows) this.priceFactors.set(p.id, num(p.factor));
    for (const t of tzc.rows) this.taxzoneCharts.set(`${t.taxzone_id}/${t.buchungsgruppen_id}`, { income: t.income_accno_id, expense: t.expense_accno_id });
    for (const b of bg.rows) this.inventoryCharts.set(b.id, b.inventory_accno_id);
    for (const c of charts.rows) this.chartLinks.set(c.id, c.link);
    for (const t of tks.rows) {
      const list = this.taxkeys.get(t.chart_id) ?? [];
      list.push({ id: t.id, tax_id: t.tax_id, taxkey_id: t.taxkey_id, startdate: parseYmd(t.startdate) });
      this.taxkeys.set(t.chart_id, list);
    }
    for (const list of this.taxkeys.values()) list.sort((a, b) => compareYmd(b.startdate, a.startdate));
    for (const t of taxes.rows) this.taxes.set(t.id, { rate: num(t.rate) ?? 0, chart_id: t.chart_id });
    this.noTaxId = t0.rows[0]?.id;
  }

  /** Orders and their items, parts, terms, custom variables and custom ship-tos. */
  async loadOrders(db: Client, orderIds: number[]): Promise<void> {
    const ids = orderIds.filter((id) => !this.orders.has(id));
    if (ids.length === 0) return;
    const orders = await db.query<OrderRow>(
      `SELECT id, ordnumber, transdate::text, customer_id, taxincluded, shippingpoint, notes, employee_id, closed, quonumber,
              cusordnumber, intnotes, department_id, shipvia, cp_id, language_id, payment_id, delivery_customer_id,
              delivery_vendor_id, taxzone_id, shipto_id, globalproject_id, salesman_id, transaction_description,
              delivery_term_id, currency_id, tax_point::text, billing_address_id, record_type::text
         FROM oe WHERE id = ANY($1::integer[])`,
      [ids],
    );
    // No ORDER BY: kivitendo loads the items unordered and sorts them by position (stable).
    const items = await db.query<OrderItemRow>(
      `SELECT id, trans_id, parts_id, description, longdescription, qty::text, sellprice::text, discount::text, project_id,
              reqdate::text, serialnumber, pricegroup_id, transdate, cusordnumber, unit, subtotal, lastcost::text,
              price_factor_id, position, active_price_source, active_discount_source,
              recurring_billing_mode::text, recurring_billing_invoice_id
         FROM orderitems WHERE trans_id = ANY($1::integer[])`,
      [ids],
    );
    for (const o of orders.rows) this.orders.set(o.id, { ...o, items: [] });
    for (const it of items.rows) this.orders.get(it.trans_id)?.items.push(it);
    for (const o of this.orders.values()) {
      o.items.sort((a, b) => (a.position === null ? (b.position === null ? 0 : 1) : b.position === null ? -1 : a.position - b.position));
    }

    const partIds = [...new Set(items.rows.map((i) => i.parts_id).filter((p): p is number => p !== null))].filter((p) => !this.parts.has(p));
    const customerIds = [...new Set(orders.rows.map((o) => o.customer_id).filter((c): c is number => c !== null))];
    const itemIds = items.rows.map((i) => i.id);
    const [parts, customers, cvars, shiptos] = await sequential(db, [
      () => db.query(
        `SELECT id, partnumber, description, unit, lastcost::text AS lastcost, price_factor_id, part_type::text AS part_type, buchungsgruppen_id
           FROM parts WHERE id = ANY($1::integer[])`,
        [partIds],
      ),
      () => db.query('SELECT id, payment_id FROM customer WHERE id = ANY($1::integer[])', [customerIds]),
      () => db.query<CustomVariableRow>(
        `SELECT cv.trans_id, cv.config_id, cv.bool_value, cv.timestamp_value::text, cv.text_value, cv.number_value::text
           FROM custom_variables cv JOIN custom_variable_configs cfg ON cfg.id = cv.config_id
          WHERE cv.sub_module = 'orderitems' AND cfg.module = 'IC' AND cv.trans_id = ANY($1::integer[])`,
        [itemIds],
      ),
      () => db.query(`SELECT * FROM shipto WHERE module = 'OE' AND trans_id = ANY($1::integer[])`, [ids]),
    ]);
    for (const p of parts.rows) this.parts.set(p.id, { ...p, lastcost: num(p.lastcost) });
    if (this.defaults.inventory_system === 'perpetual') await this.loadAssemblies(db);
    for (const c of customers.rows) this.customerPaymentIds.set(c.id, c.payment_id);
    for (const cv of cvars.rows) {
      const list = this.itemCvars.get(cv.trans_id) ?? [];
      list.push(cv);
      this.itemCvars.set(cv.trans_id, list);
    }
    if (shiptos.rows.length) {
      const shiptoCvars = await db.query<CustomVariableRow>(
        `SELECT cv.trans_id, cv.config_id, cv.bool_value, cv.timestamp_value::text, cv.text_value, cv.number_value::text, cv.sub_module
           FROM custom_variables cv JOIN custom_variable_configs cfg ON cfg.id = cv.config_id
          WHERE cfg.module = 'ShipTo' AND cv.trans_id = ANY($1::integer[])`,
        [shiptos.rows.map((s) => s.shipto_id)],
      );
      for (const s of shiptos.rows) {
        // A record has one custom ship-to; kivitendo's relationship takes the first row found.
        if (this.customShiptos.has(s.trans_id)) continue;
        const cols: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(s)) if (!['itime', 'mtime', 'shipto_id', 'trans_id', 'module'].includes(k)) cols[k] = v;
        this.customShiptos.set(s.trans_id, { shipto_id: s.shipto_id, trans_id: s.trans_id, cols, cvars: shiptoCvars.rows.filter((c) => c.trans_id === s.shipto_id) });
      }
    }
    const termIds = new Set<number>();
    for (const o of orders.rows) if (o.payment_id !== null) termIds.add(o.payment_id);
    for (const c of customers.rows) if (c.payment_id !== null) termIds.add(c.payment_id);
    const missing = [...termIds].filter((t) => !this.paymentTerms.has(t));
    if (missing.length) {
      const terms = await db.query<PaymentTermsRow>('SELECT id, terms_netto, auto_calculation FROM payment_terms WHERE id = ANY($1::integer[])', [missing]);
      for (const t of terms.rows) this.paymentTerms.set(t.id, t);
    }
  }

  /**
   * The component lists of every loaded assembly, level by level down to the leaves, with their
   * parts. Only perpetual inventory books components (spec §4.5).
   */
  private async loadAssemblies(db: Client): Promise<void> {
    for (;;) {
      const ids = [...this.parts.values()].filter((p) => p.part_type === 'assembly' && !this.assemblies.has(p.id)).map((p) => p.id);
      if (ids.length === 0) return;
      // kivitendo's relationship sorts by position only; assembly_id makes ties deterministic.
      const rows = await db.query<{ id: number; parts_id: number; qty: string | null }>(
        'SELECT id, parts_id, qty::text AS qty FROM assembly WHERE id = ANY($1::integer[]) ORDER BY position, assembly_id',
        [ids],
      );
      for (const id of ids) this.assemblies.set(id, []);
      for (const r of rows.rows) this.assemblies.get(r.id)!.push({ parts_id: r.parts_id, qty: num(r.qty) ?? 0 });
      const missing = [...new Set(rows.rows.map((r) => r.parts_id))].filter((p) => !this.parts.has(p));
      if (missing.length) {
        const parts = await db.query(
          `SELECT id, partnumber, description, unit, lastcost::text AS lastcost, price_factor_id, part_type::text AS part_type, buchungsgruppen_id
             FROM parts WHERE id = ANY($1::integer[])`,
          [missing],
        );
        for (const p of parts.rows) this.parts.set(p.id, { ...p, lastcost: num(p.lastcost) });
      }
    }
  }

  /** Base factor of a unit (Unit::base_factor); unknown units → undefined. */
  baseFactor(name: string | null): number | undefined {
    if (name === null || !this.units.has(name)) return undefined;
    const cached = this.bfCache.get(name);
    if (cached !== undefined) return cached;
    const u = this.units.get(name)!;
    let bf = 1;
    if (u.base_unit && u.factor && name !== u.base_unit) bf = u.factor * (this.baseFactor(u.base_unit) ?? 1);
    this.bfCache.set(name, bf);
    return bf;
  }

  /** The tax key of a chart valid at `date` (greatest startdate ≤ date). */
  taxFor(chartId: number, date: Ymd): TaxInfo | undefined {
    const tk = this.taxkeys.get(chartId)?.find((t) => compareYmd(t.startdate, date) <= 0);
    if (!tk) return undefined;
    const tax = this.taxes.get(tk.tax_id);
    if (!tax) return undefined;
    return { taxkeyRowId: tk.id, taxkeyId: tk.taxkey_id, taxId: tk.tax_id, rate: tax.rate, chartId: tax.chart_id };
  }
}
