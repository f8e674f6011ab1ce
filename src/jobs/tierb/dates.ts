// Calendar helpers with the semantics of the Perl modules the tier B jobs use: kivitendo's date
// parsing (SL::Locale::parse_date_to_object), DateTime's month arithmetic and strftime.

export type { Ymd as YMD } from '../periodic-invoices/dates';
import { addDays, daysInMonth, formatYmd as isoDate, type Ymd as YMD } from '../periodic-invoices/dates';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

export { localYmd as ymdOf, formatYmd as isoDate } from '../periodic-invoices/dates';

export function ymdUtcOf(d: Date): YMD {
  return { y: d.getUTCFullYear(), m: d.getUTCMonth() + 1, d: d.getUTCDate() };
}


// DateTime's calendar arithmetic (month ends, "wrap" on add, "preserve" on subtract) is shared with
// CreatePeriodicInvoices, whose golden scenarios pin it down.
export { addDays, addMonths, daysInMonth } from '../periodic-invoices/dates';

export class DateParseError extends Error {}

/**
 * SL::Locale::parse_date_to_object for a date in the user's `dateformat` (plus `today` and
 * `yesterday`). Returns undefined where kivitendo returns undef (empty or incomplete input) and
 * throws DateParseError where DateTime->new dies (a day or month out of range).
 */
export function parseKivitendoDate(text: string, dateformat: string, today: YMD): YMD | undefined {
  if (text.toLowerCase() === 'today') return today;
  if (text.toLowerCase() === 'yesterday') return addDays(today, -1);
  const dateStr = text.split(/\s+/)[0];
  if (!dateStr) return undefined;
  let parts: string[];
  let y: string | undefined, m: string | undefined, d: string | undefined;
  if (/\D/.test(dateStr)) {
    parts = dateStr.split(/\D/);
    const fmt = dateformat || 'yy-mm-dd';
    if (/^yy/.test(fmt)) [y, m, d] = parts;
    else if (/^mm/.test(fmt)) [m, d, y] = parts;
    else if (/^dd/.test(fmt)) [d, m, y] = parts;
  } else {
    const rest = dateStr.slice(2);
    const match = /(..)(..)(..)/.exec(rest);
    if (match) [y, m, d] = [match[1], match[2], match[3]];
  }
  // Perl numifies: leading digits count, anything else is 0.
  const num = (s: string | undefined) => {
    const lead = /^\s*[-+]?\d+/.exec(s ?? '');
    return lead ? Number(lead[0]) : 0;
  };
  let yy = num(y);
  const mm = num(m);
  const dd = num(d);
  yy = yy < 70 ? yy + 2000 : yy;
  yy = yy >= 70 && yy <= 99 ? yy + 1900 : yy;
  if (!yy || !mm || !dd) return undefined;
  if (mm < 1 || mm > 12) throw new DateParseError(`Invalid month ${mm}`);
  if (dd < 1 || dd > daysInMonth(yy, mm)) throw new DateParseError(`Invalid day of month (day = ${dd} - month = ${mm} - year = ${yy})`);
  return { y: yy, m: mm, d: dd };
}

const DAY_ABBR = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const DAY_NAME = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTH_ABBR = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH_NAME = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** DateTime::strftime (English locale) for a date at midnight. Unknown patterns stay as written. */
export function strftimeDate(v: YMD, format: string): string {
  const dow = new Date(Date.UTC(v.y, v.m - 1, v.d)).getUTCDay();
  const doy = Math.round((Date.UTC(v.y, v.m - 1, v.d) - Date.UTC(v.y, 0, 1)) / 86_400_000) + 1;
  const map: Record<string, () => string> = {
    a: () => DAY_ABBR[dow],
    A: () => DAY_NAME[dow],
    b: () => MONTH_ABBR[v.m - 1],
    h: () => MONTH_ABBR[v.m - 1],
    B: () => MONTH_NAME[v.m - 1],
    C: () => pad(Math.floor(v.y / 100)),
    d: () => pad(v.d),
    D: () => `${pad(v.m)}/${pad(v.d)}/${pad(v.y % 100)}`,
    e: () => String(v.d).padStart(2, ' '),
    F: () => isoDate(v),
    H: () => '00',
    I: () => '12',
    j: () => pad(doy, 3),
    k: () => ' 0',
    l: () => '12',
    m: () => pad(v.m),
    M: () => '00',
    n: () => '\n',
    p: () => 'AM',
    S: () => '00',
    t: () => '\t',
    T: () => '00:00:00',
    u: () => String(dow === 0 ? 7 : dow),
    w: () => String(dow),
    y: () => pad(v.y % 100),
    Y: () => String(v.y),
    '%': () => '%',
  };
  return format.replace(/%(.)/gs, (m, c: string) => (map[c] ? map[c]() : m));
}
