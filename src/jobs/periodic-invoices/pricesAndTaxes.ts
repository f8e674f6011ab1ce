// kivitendo's calculate_prices_and_taxes for a sales invoice (spec periodic-invoices.md §4.3, §4.5),
// as a pure function over resolved master data. The operation order is kivitendo's on purpose: the
// stored values (unrounded tax-included income, 5-decimal margins) depend on the exact doubles.
import { round2, roundCash } from './money';

export interface TaxInfo {
  /** taxkeys.id, for messages. */
  taxkeyRowId: number;
  taxkeyId: number;
  taxId: number;
  rate: number;
  /** tax.chart_id: the tax account, NULL for "no tax". */
  chartId: number | null;
}

/** An open purchase row a sale can take cost of goods from (perpetual inventory). */
export interface PurchaseRow {
  id: number;
  baseQty: number;
  allocated: number;
  sellprice: number;
  discount: number;
}

export interface PartInventory {
  /** NULL when the tax zone has no expense account for the part's Buchungsgruppe. */
  expenseChartId: number | null;
  /** NULL when the Buchungsgruppe has no inventory account. */
  inventoryChartId: number | null;
  /** Set when the part has no Buchungsgruppe: kivitendo dies as soon as it looks up the accounts. */
  missingBuchungsgruppe?: string;
  /** Rows of `invoice` with this part and base_qty + allocated < 0, in the DB's order. */
  openPurchases: PurchaseRow[];
}

export interface AssemblyComponent {
  partsId: number;
  partType: string;
  /** assembly.qty: per one unit of the assembly. */
  qty: number;
  description: string | null;
  unit: string | null;
  inventory: PartInventory | null;
  components: AssemblyComponent[];
}

export interface CalcItem {
  sellprice: number;
  /** Already normalised: 0 when NULL/0. */
  discount: number;
  qty: number;
  /** bf(item unit) / bf(part unit) factors. */
  itemBaseFactor: number;
  partBaseFactor: number;
  priceFactor: number;
  margePriceFactor: number;
  itemLastcost: number | null;
  partLastcost: number | null;
  partType: string;
  incomeChartId: number;
  tax: TaxInfo;
  /** Perpetual inventory only: allocation data for parts, components for assemblies. */
  inventory: PartInventory | null;
  components: AssemblyComponent[];
}

export interface CalcInput {
  taxincluded: boolean;
  exchangerate: number;
  precision: number | null;
  perpetual: boolean;
  items: CalcItem[];
}

export interface IncomeEntry {
  amount: number;
  taxkey: number;
  taxId: number;
}

export interface ComponentRow {
  partsId: number;
  description: string | null;
  unit: string | null;
  qty: number;
  allocated: number;
}

export interface ItemResult {
  baseQty: number;
  margeTotal: number;
  margePercent: number;
  /** null for non-parts (the column stays NULL). */
  allocated: number | null;
  components: ComponentRow[];
}

export interface CalcResult {
  items: ItemResult[];
  netamount: number;
  amount: number;
  margeTotal: number;
  margePercent: number;
  rounding: number;
  income: Map<number, IncomeEntry>;
  /** Rounded tax per tax chart. */
  taxes: Map<number, number>;
  cogs: Map<number, number>;
  /** invoice.id of purchase rows → quantity to add to their `allocated`. */
  allocatedUpdates: Map<number, number>;
}

export class TaxWithoutChartError extends Error {}
/** A perpetual-inventory allocation needs an account the part's Buchungsgruppe does not give. */
export class InventoryChartError extends Error {
  constructor(
    readonly kivitendoMessage: string,
    readonly detail: string,
  ) {
    super(`${kivitendoMessage} (${detail})`);
  }
}

export function calculatePricesAndTaxes(input: CalcInput): CalcResult {
  const r = input.exchangerate;
  const taxesRaw = new Map<number, number>();
  const income = new Map<number, IncomeEntry>();
  const cogs = new Map<number, number>();
  const allocated = new Map<number, number>();
  let invoicediff = 0;
  let lastcostTotal = 0;
  let margeTotal = 0;
  let lastIncomeChart: number | undefined;

  const allocatePart = (inv: PartInventory | null, totalQty: number, baseFactor: number): number => {
    if (!input.perpetual || !totalQty || !inv) return 0;
    if (inv.missingBuchungsgruppe !== undefined) {
      throw new InventoryChartError(`Can't call method "call_sub" on an undefined value`, `part ${inv.missingBuchungsgruppe} has no Buchungsgruppe`);
    }
    const bf = baseFactor || 1;
    let remaining = totalQty;
    for (const row of inv.openPurchases) {
      if (!(remaining > 0)) break;
      const q = Math.min(remaining, row.baseQty * -1 - row.allocated - (allocated.get(row.id) ?? 0));
      if (!q) continue;
      const v = round2((row.sellprice * (1 - row.discount) * q) / bf);
      if (inv.expenseChartId === null || inv.inventoryChartId === null) {
        throw new InventoryChartError(
          `Can't call method "id" on an undefined value`,
          `no ${inv.expenseChartId === null ? 'expense' : 'inventory'} account for the part of purchase invoice row ${row.id}`,
        );
      }
      cogs.set(inv.expenseChartId, (cogs.get(inv.expenseChartId) ?? 0) - v);
      cogs.set(inv.inventoryChartId, (cogs.get(inv.inventoryChartId) ?? 0) + v);
      allocated.set(row.id, (allocated.get(row.id) ?? 0) + q);
      remaining -= q;
    }
    return remaining - totalQty;
  };

  const assemblyRows = (components: AssemblyComponent[], totalQty: number, out: ComponentRow[]) => {
    if (!input.perpetual) return;
    for (const c of components) {
      const row: ComponentRow = { partsId: c.partsId, description: c.description, unit: c.unit, qty: totalQty * c.qty, allocated: 0 };
      out.push(row);
      if (c.partType === 'assembly') assemblyRows(c.components, totalQty * c.qty, out);
      else if (c.partType === 'part') row.allocated = allocatePart(c.inventory, totalQty * c.qty, 1);
    }
  };

  const items: ItemResult[] = input.items.map((it) => {
    const ibf = it.itemBaseFactor || 1;
    const pbf = it.partBaseFactor || 1;
    const baseQty = (it.qty * ibf) / pbf;
    const sellprice = it.sellprice;
    const pf = it.priceFactor;
    let line = round2((sellprice * (1 - it.discount) * it.qty) / pf) * r;
    line = round2(line);
    if (input.taxincluded) invoicediff += (sellprice * (1 - it.discount) * it.qty * r) / pf - line;

    const rate = it.tax.rate;
    const taxAmount = input.taxincluded ? (line * rate) / (rate + 1) : line * rate;
    if (it.tax.chartId) {
      taxesRaw.set(it.tax.chartId, (taxesRaw.get(it.tax.chartId) ?? 0) + taxAmount);
    } else if (taxAmount) {
      throw new TaxWithoutChartError(`tax_amount != 0 but no chart_id for taxkey ${it.tax.taxkeyRowId} tax ${it.tax.taxId}`);
    }
    let entry = income.get(it.incomeChartId);
    if (!entry) {
      entry = { amount: 0, taxkey: it.tax.taxkeyId, taxId: it.tax.taxId };
      income.set(it.incomeChartId, entry);
    }
    entry.amount += line;
    if (input.taxincluded) entry.amount -= taxAmount;

    let itemMarge = 0;
    let itemMargePercent = 0;
    if (line) {
      const lastcost = !(it.itemLastcost ?? 0) ? it.partLastcost || 0 : (it.itemLastcost as number);
      const cost = round2((lastcost * it.qty) / it.margePriceFactor);
      const net = input.taxincluded ? line - taxAmount : line;
      itemMarge = net - cost;
      itemMargePercent = (itemMarge * 100) / net;
      margeTotal += itemMarge;
      lastcostTotal += cost;
    }

    const components: ComponentRow[] = [];
    let alloc: number | null = null;
    if (it.partType === 'assembly') assemblyRows(it.components, baseQty, components);
    else if (it.partType === 'part') alloc = allocatePart(it.inventory, baseQty, ibf / pbf);

    lastIncomeChart = it.incomeChartId;
    return { baseQty, margeTotal: itemMarge, margePercent: itemMargePercent, allocated: alloc, components };
  });

  let taxdiff = 0;
  const taxes = new Map<number, number>();
  for (const [chart, raw] of taxesRaw) {
    const rounded = round2(raw * r);
    if (input.taxincluded) taxdiff += raw * r - rounded;
    taxes.set(chart, rounded);
  }
  let sumIncome = 0;
  let first = true;
  for (const e of income.values()) {
    sumIncome = first ? e.amount : sumIncome + e.amount;
    first = false;
  }
  const netamount = round2((sumIncome + taxdiff) * r);
  const diff = netamount - (sumIncome + taxdiff) * r;
  if (input.taxincluded) {
    invoicediff += diff;
    if (lastIncomeChart !== undefined) income.get(lastIncomeChart)!.amount += invoicediff;
  }
  let taxSum = 0;
  for (const t of taxes.values()) taxSum += t;
  const unroundedGross = netamount + taxSum;
  const amount = roundCash(unroundedGross, input.precision);
  const rounding = round2(amount - unroundedGross);

  return {
    items,
    netamount,
    amount,
    margeTotal,
    margePercent: netamount ? ((netamount - lastcostTotal) * 100) / netamount : 0,
    rounding,
    income,
    taxes,
    cogs,
    allocatedUpdates: allocated,
  };
}
