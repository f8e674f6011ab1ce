// The period variables and the <%name format=…%> substitution of periodic invoices (spec
// periodic-invoices.md §3.5): text fields use <% %>, HTML fields the stored-escaped &lt;% %&gt;,
// names match case-insensitively but are looked up case-sensitively, `format=` is a strftime
// pattern rendered with the CLDR de_DE names of DateTime::Locale 1.37 whatever the user's language.
import {
  addMonths,
  addYears,
  dayOfWeek,
  dayOfYear,
  formatUserDate,
  periodEnd,
  quarter,
  subtractMonths,
  subtractYears,
  toDayNumber,
  type Ymd,
} from './dates';

export type Mode = 'text' | 'html';

const MONTHS_DE = ['Januar', 'Februar', 'März', 'April', 'Mai', 'Juni', 'Juli', 'August', 'September', 'Oktober', 'November', 'Dezember'];
const MONTHS_EN = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

// CLDR de_DE (DateTime::Locale 1.37), format context.
const CLDR_DE = {
  monthsWide: MONTHS_DE,
  monthsAbbr: ['Jan.', 'Feb.', 'März', 'Apr.', 'Mai', 'Juni', 'Juli', 'Aug.', 'Sept.', 'Okt.', 'Nov.', 'Dez.'],
  // Monday first, as DateTime's day_of_week.
  daysWide: ['Montag', 'Dienstag', 'Mittwoch', 'Donnerstag', 'Freitag', 'Samstag', 'Sonntag'],
  daysAbbr: ['Mo.', 'Di.', 'Mi.', 'Do.', 'Fr.', 'Sa.', 'So.'],
  amPm: ['AM', 'PM'],
};

/** A variable: its reference date and its rendering without `format=`. */
export interface PeriodVariable {
  date: Ymd;
  render: () => string;
}

export type PeriodVariables = Record<string, PeriodVariable>;

export interface VariableLocale {
  /** User dateformat, e.g. "dd.mm.yy". */
  dateformat: string;
  /** User countrycode: selects month names of *_month_long and the HTML quoting map. */
  countrycode: string;
}

/** The 14 variables for period start `start` of a config (spec §3.5). */
export function periodVariables(
  cfg: { periodicity: string; order_value_periodicity: string },
  start: Ymd,
  loc: VariableLocale,
): PeriodVariables {
  const end = periodEnd(cfg, start);
  const month = { y: start.y, m: start.m, d: 1 };
  const year = { y: start.y, m: 1, d: 1 };
  const names = loc.countrycode === 'de' ? MONTHS_DE : MONTHS_EN;
  const v = (date: Ymd, render: (d: Ymd) => string): PeriodVariable => ({ date, render: () => render(date) });
  const q = (d: Ymd) => String(quarter(d));
  const mon = (d: Ymd) => String(d.m);
  const longName = (d: Ymd) => names[d.m - 1];
  const yr = (d: Ymd) => String(d.y);
  const fmt = (d: Ymd) => formatUserDate(d, loc.dateformat);
  return {
    current_quarter: v(month, q),
    previous_quarter: v(subtractMonths(month, 3), q),
    next_quarter: v(addMonths(month, 3), q),
    current_month: v(month, mon),
    previous_month: v(subtractMonths(month, 1), mon),
    next_month: v(addMonths(month, 1), mon),
    current_month_long: v(month, longName),
    previous_month_long: v(subtractMonths(month, 1), longName),
    next_month_long: v(addMonths(month, 1), longName),
    current_year: v(year, yr),
    previous_year: v(subtractYears(year, 1), yr),
    next_year: v(addYears(year, 1), yr),
    period_start_date: v(start, fmt),
    period_end_date: v(end, fmt),
  };
}

// ---- HTML quoting (Locale::quote_special_chars 'html') ----

const HTML_DE: [string, string][] = [
  ['&', '&amp;'],
  ['"', '&quot;'],
  ['<', '&lt;'],
  ['>', '&gt;'],
];
const HTML_EN: [string, string][] = [
  ...HTML_DE,
  ['ä', '&auml;'],
  ['ö', '&ouml;'],
  ['ü', '&uuml;'],
  ['Ä', '&Auml;'],
  ['Ö', '&Ouml;'],
  ['Ü', '&Uuml;'],
  ['ß', '&szlig;'],
];

function htmlMap(countrycode: string) {
  return countrycode === 'de' ? HTML_DE : HTML_EN;
}

export function quoteHtml(s: string, countrycode: string): string {
  for (const [from, to] of htmlMap(countrycode)) s = s.split(from).join(to);
  return s;
}

export function unquoteHtml(s: string, countrycode: string): string {
  const map = htmlMap(countrycode);
  for (let i = map.length - 1; i >= 0; i--) s = s.split(map[i][1]).join(map[i][0]);
  return s;
}

// ---- strftime (DateTime::Format::Strptime + DateTime::strftime, locale de_DE) ----

/** A `format=` pattern DateTime::Format::Strptime refuses; kivitendo dies with this text. */
export class StrftimePatternError extends Error {}

/**
 * Validates like Strptime's constructor: %<letter> tokens outside its list are an error. The
 * tokenizer stops silently at a '%' that starts no token (e.g. a trailing '%'), as Strptime's does.
 */
export function validateStrftimePattern(pattern: string): void {
  const tok = /%([%CdgGHIjmMnOsSUuwWyYzZektlaAbBhpPDFrRTcxX])|%([1-9]?)N|(%[0-9]*[a-zA-Z])|([^%]+)/y;
  let m: RegExpExecArray | null;
  while (tok.lastIndex < pattern.length && (m = tok.exec(pattern)) !== null) {
    if (m[3]) throw new StrftimePatternError(`Pattern contained an unrecognized strptime token, "${m[3]}"`);
  }
}

function pad(n: number, w = 2, c = '0') {
  return String(n).padStart(w, c);
}

/** ISO week-numbering year and week of a date. */
function isoWeek(d: Ymd): { year: number; week: number } {
  const dn = toDayNumber(d);
  const dow = dayOfWeek(d);
  const thursday = dn - dow + 4;
  const ty = new Date(thursday * 86400000).getUTCFullYear();
  const jan1 = toDayNumber({ y: ty, m: 1, d: 1 });
  return { year: ty, week: Math.floor((thursday - jan1) / 7) + 1 };
}

/** DateTime->strftime with locale de_DE for a date at 00:00:00 (the job's reference dates). */
export function strftimeDe(d: Ymd, pattern: string): string {
  validateStrftimePattern(pattern);
  const dow = dayOfWeek(d);
  const one = (c: string): string | undefined => {
    switch (c) {
      case 'a': return CLDR_DE.daysAbbr[dow - 1];
      case 'A': return CLDR_DE.daysWide[dow - 1];
      case 'b': case 'h': return CLDR_DE.monthsAbbr[d.m - 1];
      case 'B': return CLDR_DE.monthsWide[d.m - 1];
      case 'c': return `${pad(d.d)}.${pad(d.m)}.${d.y}, 00:00:00`;
      case 'C': return String(Math.floor(d.y / 100));
      case 'd': return pad(d.d);
      case 'D': return `${pad(d.m)}/${pad(d.d)}/${pad(d.y % 100)}`;
      case 'e': return pad(d.d, 2, ' ');
      case 'F': return `${pad(d.y, 4)}-${pad(d.m)}-${pad(d.d)}`;
      case 'g': return pad(isoWeek(d).year % 100);
      case 'G': return String(isoWeek(d).year);
      case 'H': return '00';
      case 'I': return '12';
      case 'j': return pad(dayOfYear(d), 3);
      case 'k': return ' 0';
      case 'l': return '12';
      case 'm': return pad(d.m);
      case 'M': return '00';
      case 'n': return '\n';
      case 'N': return '000000000';
      // The job's dates are floating DateTimes (parsed from the DB, no zone).
      case 'O': return 'floating';
      case 'p': return CLDR_DE.amPm[0];
      case 'P': return CLDR_DE.amPm[0].toLowerCase();
      case 'r': return `12:00:00 ${CLDR_DE.amPm[0]}`;
      case 'R': return '00:00';
      case 's': return String(toDayNumber(d) * 86400);
      case 'S': return '00';
      case 't': return '\t';
      case 'T': return '00:00:00';
      case 'u': return String(dow);
      case 'U': {
        const wd = dow % 7; // Sunday = 0
        return pad(Math.floor((dayOfYear(d) - 1 - wd + 7) / 7));
      }
      case 'V': return pad(isoWeek(d).week);
      case 'w': return String(dow % 7);
      case 'W': {
        const wd = (dow + 6) % 7; // Monday = 0
        return pad(Math.floor((dayOfYear(d) - 1 - wd + 7) / 7));
      }
      case 'x': return `${pad(d.d)}.${pad(d.m)}.${d.y}`;
      case 'X': return '00:00:00';
      case 'y': return pad(d.y % 100);
      case 'Y': return String(d.y);
      case 'z': return '+0000';
      case 'Z': return 'floating';
      case '%': return '%';
      default: return undefined;
    }
  };
  return pattern.replace(/%(\d*N|.)/gs, (all, c: string) => {
    if (c.endsWith('N') && c.length > 1) return '0'.repeat(Math.min(Number(c.slice(0, -1)) || 9, 9));
    return one(c) ?? all;
  });
}

// ---- substitution ----

const NAME_ORDER = [
  'current_quarter', 'previous_quarter', 'next_quarter',
  'current_month', 'previous_month', 'next_month',
  'current_month_long', 'previous_month_long', 'next_month_long',
  'current_year', 'previous_year', 'next_year',
  'period_start_date', 'period_end_date',
];

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const regexCache = new Map<string, RegExp>();

function tagRegex(mode: Mode, names: string[]): RegExp {
  const key = `${mode}\u0000${names.join('|')}`;
  let re = regexCache.get(key);
  if (!re) {
    const [open, close] = mode === 'html' ? ['&lt;%', '%&gt;'] : ['<%', '%>'];
    // Perl alternation tries names in order and backtracks; longest first gives the same matches.
    const alternatives = [...names].sort((a, b) => b.length - a.length).map(escapeRe).join('|');
    // `.` without /s: the format pattern never spans lines, as in Perl.
    re = new RegExp(`${escapeRe(open)}(${alternatives})(\\s+format\\s*=\\s*(.*?)\\s*)?${escapeRe(close)}`, 'gi');
    regexCache.set(key, re);
  }
  return re;
}

/**
 * Replaces the tags in one field. `extra` holds further lookups (the ar columns in the e-mail step).
 * NULL becomes ''. A bad strftime pattern throws StrftimePatternError.
 */
export function replaceVariables(
  value: string | null | undefined,
  vars: PeriodVariables,
  mode: Mode,
  countrycode: string,
  extra: Record<string, unknown> = {},
): string {
  const str = value ?? '';
  const names = [...NAME_ORDER.filter((n) => n in vars), ...Object.keys(extra)];
  if (!str.includes(mode === 'html' ? '&lt;%' : '<%')) return str;
  return str.replace(tagRegex(mode, names), (_all, key: string, _fmtPart: string | undefined, format: string | undefined) => {
    let out: string;
    const v = Object.prototype.hasOwnProperty.call(vars, key) ? vars[key] : undefined;
    if (v && format && format !== '0') {
      const pattern = mode === 'html' ? unquoteHtml(format, countrycode) : format;
      out = strftimeDe(v.date, pattern);
    } else if (v) {
      out = v.render();
    } else if (Object.prototype.hasOwnProperty.call(extra, key)) {
      const e = extra[key];
      out = e === null || e === undefined ? '' : String(e);
    } else {
      out = '';
    }
    return mode === 'html' ? quoteHtml(out, countrycode) : out;
  });
}
