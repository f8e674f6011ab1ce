// Order → invoice for one config and one period start date (spec periodic-invoices.md §3): every
// `ar` and `invoice` value from its source, variable substitution, price adjustment, and the
// resolved master data the price/tax calculation needs. Nothing here writes to the database.
import type { ConfigRow } from './configs';
import {
  billingLength,
  dueDate,
  formatUserDate,
  formatYmd,
  isLastBillDateInOrderValueCycle,
  orderValueLength,
  parseYmdOrNull,
  periodEnd,
  taxPoint,
  type Ymd,
} from './dates';
import { RunError } from './errors';
import type { MasterData, OrderItemRow, OrderRow, PartRow } from './masterData';
import { num, numText, round2 } from './money';
import type { AssemblyComponent, CalcItem, PartInventory } from './pricesAndTaxes';
import { periodVariables, replaceVariables, type PeriodVariables, type VariableLocale } from './variables';

export interface InvoiceItemDraft {
  source: OrderItemRow;
  part: PartRow;
  description: string;
  longdescription: string;
  /** The sellprice as text: the DB's own text when unchanged, num→text of the double otherwise. */
  sellpriceText: string;
  sellprice: number;
  discountText: string;
  calc: CalcItem;
}

export interface InvoiceDraft {
  config: ConfigRow;
  order: OrderRow;
  periodStart: Ymd;
  vars: PeriodVariables;
  today: Ymd;
  taxincluded: boolean;
  notes: string;
  intnotes: string;
  transactionDescription: string;
  taxPoint: Ymd;
  duedate: Ymd;
  paymentId: number | null;
  items: InvoiceItemDraft[];
}

export interface ConversionContext {
  md: MasterData;
  today: Ymd;
  locale: VariableLocale;
}

/** The accounts a part's cost of goods is booked on (Part::get_chart 'expense'/'inventory'). */
function partInventory(md: MasterData, part: PartRow, taxzone: number): PartInventory {
  if (part.buchungsgruppen_id === null) {
    return { expenseChartId: null, inventoryChartId: null, missingBuchungsgruppe: part.partnumber, openPurchases: [] };
  }
  return {
    expenseChartId: md.taxzoneCharts.get(`${taxzone}/${part.buchungsgruppen_id}`)?.expense ?? null,
    inventoryChartId: md.inventoryCharts.get(part.buchungsgruppen_id) ?? null,
    openPurchases: [],
  };
}

/** The component tree of an assembly (spec §4.5), with the inventory data of its parts. */
function assemblyComponents(md: MasterData, assembly: PartRow, taxzone: number, path: number[]): AssemblyComponent[] {
  if (path.includes(assembly.id)) {
    // kivitendo would recurse until it runs out of memory; refuse instead.
    throw new RunError('Deep recursion on subroutine "_calculate_assembly_item"', `assembly ${assembly.partnumber} contains itself`);
  }
  return (md.assemblies.get(assembly.id) ?? []).map((entry) => {
    const part = md.parts.get(entry.parts_id)!;
    return {
      partsId: part.id,
      partType: part.part_type,
      qty: entry.qty,
      description: part.description,
      unit: part.unit,
      inventory: part.part_type === 'part' ? partInventory(md, part, taxzone) : null,
      components: part.part_type === 'assembly' ? assemblyComponents(md, part, taxzone, [...path, assembly.id]) : [],
    };
  });
}

/** Perl truthiness of a string: '' and '0' are false. */
const perlTrueStr = (s: string | null | undefined) => s !== null && s !== undefined && s !== '' && s !== '0';

export function buildInvoice(cfg: ConfigRow, order: OrderRow | undefined, periodStart: Ymd, cx: ConversionContext): InvoiceDraft {
  const { md, today, locale } = cx;
  const vars = periodVariables(cfg, periodStart, locale);
  if (!order) throw new RunError("Unsupported source object type ''", `the order ${cfg.oe_id} of the config does not exist`);

  // Payment terms: the order's, else the customer's.
  let terms = order.payment_id !== null ? md.paymentTerms.get(order.payment_id) : undefined;
  if (!terms && order.customer_id !== null) {
    const cp = md.customerPaymentIds.get(order.customer_id);
    if (cp !== null && cp !== undefined) terms = md.paymentTerms.get(cp);
  }

  const items = order.items.filter(
    (it) => it.recurring_billing_mode === 'always' || (it.recurring_billing_mode === 'once' && !it.recurring_billing_invoice_id),
  );

  const pend = periodEnd(cfg, periodStart);
  const tp = taxPoint(parseYmdOrNull(order.tax_point), pend, periodStart, cfg.periodicity);

  let intnotes = perlTrueStr(order.intnotes) ? `${order.intnotes}\n\n` : '';
  intnotes += `Automatisch am ${formatUserDate(today, locale.dateformat)} erzeugte Rechnung`;

  const cc = locale.countrycode;
  const draft: InvoiceDraft = {
    config: cfg,
    order,
    periodStart,
    vars,
    today,
    taxincluded: !!order.taxincluded,
    notes: replaceVariables(order.notes, vars, 'html', cc),
    intnotes: replaceVariables(intnotes, vars, 'text', cc),
    transactionDescription: replaceVariables(order.transaction_description, vars, 'text', cc),
    taxPoint: tp,
    duedate: dueDate(today, terms ?? null),
    paymentId: terms ? terms.id : order.payment_id,
    items: [],
  };

  const drafts = items.map((it) => ({
    it,
    description: replaceVariables(it.description, vars, 'text', cc),
    longdescription: replaceVariables(it.longdescription, vars, 'html', cc),
    sellprice: num(it.sellprice) ?? 0,
    sellpriceText: it.sellprice ?? '0',
  }));

  // Price adjustment for differing billing and order-value periods (§3.6), on every item.
  if (cfg.periodicity !== 'o') {
    const b = billingLength(cfg.periodicity);
    const v = orderValueLength(cfg.periodicity, cfg.order_value_periodicity);
    if (b !== v) {
      if (v < b) {
        for (const d of drafts) {
          d.sellprice = d.sellprice * (b / v);
          d.sellpriceText = numText(d.sellprice);
        }
      } else {
        const isLast = isLastBillDateInOrderValueCycle(cfg, periodStart);
        const n = v / b;
        for (const d of drafts) {
          const one = round2((d.sellprice * b) / v);
          d.sellprice = isLast ? d.sellprice - (n - 1) * one : one;
          d.sellpriceText = numText(d.sellprice);
        }
      }
    }
  }

  const perpetual = md.defaults.inventory_system === 'perpetual';
  for (const d of drafts) {
    const it = d.it;
    if (it.parts_id === null) continue;
    const part = md.parts.get(it.parts_id);
    if (!part) throw new RunError(`Can't call method "unit" on an undefined value`, `order item ${it.id}: part ${it.parts_id} does not exist`);
    const partBf = md.baseFactor(part.unit);
    const itemBf = md.baseFactor(it.unit);
    if (partBf === undefined) throw new RunError(`Undefined unit ${part.unit}`, `part ${part.partnumber}`);
    if (itemBf === undefined) throw new RunError(`Undefined unit ${it.unit}`, `order item at position ${it.position}`);
    const taxzone = order.taxzone_id ?? 0;
    const charts = part.buchungsgruppen_id !== null ? md.taxzoneCharts.get(`${taxzone}/${part.buchungsgruppen_id}`) : undefined;
    if (!charts) {
      throw new RunError(
        `Can't call method "get_active_taxkey" on an undefined value`,
        part.buchungsgruppen_id === null
          ? `part ${part.partnumber} has no Buchungsgruppe`
          : `no income account for Buchungsgruppe ${part.buchungsgruppen_id} of part ${part.partnumber} in tax zone ${taxzone}`,
      );
    }
    const tax = md.taxFor(charts.income, draft.taxPoint);
    if (!tax) {
      throw new RunError(
        `Can't call method "tax" on an undefined value`,
        `no tax key of income account ${charts.income} (part ${part.partnumber}) valid on ${formatYmd(draft.taxPoint)}`,
      );
    }
    const discount = num(it.discount);
    const pf = it.price_factor_id !== null ? md.priceFactors.get(it.price_factor_id) : undefined;
    const mpf = part.price_factor_id !== null ? md.priceFactors.get(part.price_factor_id) : undefined;
    const calc: CalcItem = {
      sellprice: d.sellprice,
      discount: discount ? discount : 0,
      qty: num(it.qty) ?? 0,
      itemBaseFactor: itemBf,
      partBaseFactor: partBf,
      priceFactor: pf || 1,
      margePriceFactor: mpf || 1,
      itemLastcost: num(it.lastcost),
      partLastcost: part.lastcost,
      partType: part.part_type,
      incomeChartId: charts.income,
      tax,
      inventory: perpetual && part.part_type === 'part' ? partInventory(md, part, taxzone) : null,
      components: perpetual && part.part_type === 'assembly' ? assemblyComponents(md, part, taxzone, []) : [],
    };
    draft.items.push({
      source: it,
      part,
      description: d.description,
      longdescription: d.longdescription,
      sellpriceText: d.sellpriceText,
      sellprice: d.sellprice,
      discountText: discount ? (it.discount as string) : '0',
      calc,
    });
  }
  return draft;
}
