// Calendar dates with Perl DateTime's month arithmetic (spec periodic-invoices.md §2.3, §7.2).
// Dates are plain y/m/d values: no time zone, no JS Date, so a day can never shift through UTC.

export interface Ymd {
  readonly y: number;
  readonly m: number;
  readonly d: number;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

export function ymd(y: number, m: number, d: number): Ymd {
  return { y, m, d };
}

/** Parses "YYYY-MM-DD" (ISO DateStyle text); anything else is an error. */
export function parseYmd(s: string): Ymd {
  const m = /^(\d{4,})-(\d{2})-(\d{2})/.exec(s);
  if (!m) throw new Error(`not an ISO date: '${s}'`);
  return { y: Number(m[1]), m: Number(m[2]), d: Number(m[3]) };
}

export function parseYmdOrNull(s: string | null | undefined): Ymd | null {
  return s === null || s === undefined ? null : parseYmd(s);
}

export function formatYmd(d: Ymd): string {
  return `${pad(d.y, 4)}-${pad(d.m)}-${pad(d.d)}`;
}

export function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

export function daysInMonth(y: number, m: number): number {
  return [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];
}

/** Days since 1970-01-01 (proleptic Gregorian). */
export function toDayNumber(d: Ymd): number {
  // Howard Hinnant's days_from_civil.
  const y = d.m <= 2 ? d.y - 1 : d.y;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (d.m + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + d.d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

export function fromDayNumber(z0: number): Ymd {
  const z = z0 + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return { y: yoe + era * 400 + (m <= 2 ? 1 : 0), m, d };
}

export function addDays(d: Ymd, n: number): Ymd {
  return fromDayNumber(toDayNumber(d) + n);
}

export function compareYmd(a: Ymd, b: Ymd): number {
  return a.y - b.y || a.m - b.m || a.d - b.d;
}

export const ymdEq = (a: Ymd, b: Ymd) => compareYmd(a, b) === 0;
export const maxYmd = (a: Ymd, b: Ymd) => (compareYmd(a, b) >= 0 ? a : b);
export const minYmd = (a: Ymd, b: Ymd) => (compareYmd(a, b) <= 0 ? a : b);

/**
 * DateTime's add(months => n) for n ≥ 0 ("wrap"): keep the day number; a day past the end of the
 * target month overflows into the next month. 31.01.2013 + 1 = 03.03.2013 — not clamped.
 */
export function addMonths(d: Ymd, n: number): Ymd {
  if (n < 0) return subtractMonths(d, -n);
  const total = d.y * 12 + (d.m - 1) + n;
  const y = Math.floor(total / 12);
  const m = (total % 12) + 1;
  const dim = daysInMonth(y, m);
  if (d.d <= dim) return { y, m, d: d.d };
  return addDays({ y, m, d: dim }, d.d - dim);
}

/** DateTime's subtract(months => n) ("preserve"): a month-end stays a month-end, other days clamp. */
export function subtractMonths(d: Ymd, n: number): Ymd {
  const total = d.y * 12 + (d.m - 1) - n;
  const y = Math.floor(total / 12);
  const m = (((total % 12) + 12) % 12) + 1;
  const dim = daysInMonth(y, m);
  const wasMonthEnd = d.d === daysInMonth(d.y, d.m);
  return { y, m, d: wasMonthEnd || d.d > dim ? dim : d.d };
}

export function addYears(d: Ymd, n: number): Ymd {
  return addMonths(d, 12 * n);
}

export function subtractYears(d: Ymd, n: number): Ymd {
  return subtractMonths(d, 12 * n);
}

/** ISO day of week, Monday = 1 … Sunday = 7. */
export function dayOfWeek(d: Ymd): number {
  const z = toDayNumber(d); // 1970-01-01 was a Thursday (4)
  return ((((z + 3) % 7) + 7) % 7) + 1;
}

export function dayOfYear(d: Ymd): number {
  return toDayNumber(d) - toDayNumber({ y: d.y, m: 1, d: 1 }) + 1;
}

export function quarter(d: Ymd): number {
  return Math.floor((d.m - 1) / 3) + 1;
}

/** Local calendar date of a JS Date (the process TZ decides, like DateTime->today_local). */
export function localYmd(t: Date): Ymd {
  return { y: t.getFullYear(), m: t.getMonth() + 1, d: t.getDate() };
}

/**
 * Renders a date in a kivitendo user dateformat (dd.mm.yy, yyyy-mm-dd, mm/dd/yy, dd/mm/yy, …) the
 * way Locale::format_date does: the year is always written with 4 digits, day and month runs are
 * zero-padded to their length.
 */
export function formatUserDate(d: Ymd, dateformat: string): string {
  return dateformat.replace(/d+|m+|y+/g, (run) => {
    if (run[0] === 'y') return pad(d.y, 4);
    const v = run[0] === 'd' ? d.d : d.m;
    return pad(v, run.length);
  });
}

// ---- period lengths and the date series (spec §1.2, §2.3, §3.6) ----

const BILLING_LENGTHS: Record<string, number> = { o: 0, m: 1, q: 3, b: 6, y: 12 };
const ORDER_VALUE_LENGTHS: Record<string, number> = { ...BILLING_LENGTHS, '2': 24, '3': 36, '4': 48, '5': 60 };

/** Billing length in months; one-time and unknown codes count as 1. */
export function billingLength(periodicity: string): number {
  return BILLING_LENGTHS[periodicity] || 1;
}

export function orderValueLength(periodicity: string, orderValuePeriodicity: string): number {
  if (orderValuePeriodicity === 'p') return billingLength(periodicity);
  return ORDER_VALUE_LENGTHS[orderValuePeriodicity] || 1;
}

export interface DateConfig {
  periodicity: string;
  order_value_periodicity: string;
  start_date: Ymd | null;
  first_billing_date: Ymd | null;
  end_date: Ymd | null;
  terminated: boolean;
  extend_automatically_by: number | null;
}

export class MissingStartDateError extends Error {}

/**
 * The period start dates still to bill up to `bound` (today), ascending. `lastBilled` is
 * MAX(periodic_invoices.period_start_date) of the config. The month addition is cumulative on the
 * running date, so a 31st drifts (31.01 → 03.03 → 03.04 …) exactly as kivitendo's series does.
 */
export function calculateInvoiceDates(cfg: DateConfig, lastBilled: Ymd | null, bound: Ymd, today: Ymd): Ymd[] {
  const len = billingLength(cfg.periodicity);
  const anchor = cfg.first_billing_date ?? cfg.start_date;
  if (!anchor) throw new MissingStartDateError("Can't call method \"clone\" on an undefined value");
  let end = cfg.terminated || !cfg.extend_automatically_by ? cfg.end_date : null;
  end ??= addYears(today, 100);
  end = minYmd(end, bound);
  const lower = lastBilled ? addDays(lastBilled, 1) : anchor;
  if (cfg.periodicity === 'o') {
    return compareYmd(anchor, lower) >= 0 && compareYmd(anchor, end) <= 0 ? [anchor] : [];
  }
  const dates: Ymd[] = [];
  let cur = anchor;
  while (compareYmd(cur, end) <= 0) {
    if (compareYmd(cur, lower) >= 0) dates.push(cur);
    cur = addMonths(cur, len);
  }
  return dates;
}

/** Whether `date` is the last billing date of its order-value cycle (spec §3.6). */
export function isLastBillDateInOrderValueCycle(cfg: DateConfig, date: Ymd): boolean {
  const b = billingLength(cfg.periodicity);
  const v = orderValueLength(cfg.periodicity, cfg.order_value_periodicity);
  if (b >= v) return true;
  const next = addMonths(date, b);
  if (!cfg.start_date) throw new MissingStartDateError("Can't call method \"clone\" on an undefined value");
  let c = maxYmd(cfg.start_date, cfg.first_billing_date ?? cfg.start_date);
  while (compareYmd(c, next) < 0) c = addMonths(c, v);
  return ymdEq(c, next);
}

/** Period end: P + length months − 1 day (wrap rule), length per §3.5. */
export function periodEnd(cfg: Pick<DateConfig, 'periodicity' | 'order_value_periodicity'>, start: Ymd): Ymd {
  const len = cfg.periodicity === 'o' ? orderValueLength(cfg.periodicity, cfg.order_value_periodicity) : billingLength(cfg.periodicity);
  return addDays(addMonths(start, len), -1);
}

/** tax_point per §3.7: order tax point or period end, moved forward by whole billing periods. */
export function taxPoint(orderTaxPoint: Ymd | null, pend: Ymd, start: Ymd, periodicity: string): Ymd {
  let tp = orderTaxPoint ?? pend;
  const len = billingLength(periodicity);
  while (compareYmd(tp, start) < 0) tp = addMonths(tp, len);
  return tp;
}

/**
 * Automatic extension (§2.2). `now` is the local date and time; the end date counts as midnight,
 * so it is "reached" on the end date itself once any second of it has passed.
 * Returns 'deactivate', a new end date, or null for "nothing to do".
 */
export function automaticExtension(
  cfg: Pick<DateConfig, 'terminated' | 'end_date' | 'extend_automatically_by'>,
  now: Date,
): 'deactivate' | Ymd | null {
  if (cfg.terminated || !cfg.end_date) return null;
  const today = localYmd(now);
  const secondsIntoDay = now.getHours() * 3600 + now.getMinutes() * 60 + now.getSeconds();
  const after = (end: Ymd) => {
    const c = compareYmd(today, end);
    return c > 0 || (c === 0 && secondsIntoDay > 0);
  };
  if (!after(cfg.end_date)) return null;
  if (!cfg.extend_automatically_by) return 'deactivate';
  let end = cfg.end_date;
  while (after(end)) end = addMonths(end, cfg.extend_automatically_by);
  return end;
}

/** duedate per payment terms (§3.2): + terms_netto days, weekend → next Monday. */
export function dueDate(today: Ymd, terms: { auto_calculation: boolean; terms_netto: number | null } | null): Ymd {
  if (!terms || !terms.auto_calculation) return today;
  let d = addDays(today, terms.terms_netto ?? 0);
  const dow = dayOfWeek(d);
  if (dow === 6) d = addDays(d, 2);
  else if (dow === 7) d = addDays(d, 1);
  return d;
}
