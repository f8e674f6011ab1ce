// kivitendo's date rendering (SL::Locale format_date_object / format_date_object_to_time), for the
// values templates print: `history.run_at_as_timestamp`, `entry.run_at.to_kivitendo`, ….
// Timestamps are handled as wall-clock strings, never through a time zone.

export interface DateSettings {
  /** The user's `dateformat` (`dd.mm.yy`, `mm/dd/yy`, `dd/mm/yy`, `yyyy-mm-dd`, …); default `yyyy-mm-dd`. */
  dateformat?: string;
  /** The user's `timeformat`; default `hh:mm`. */
  timeformat?: string;
  /** The user's `numberformat`, for the millisecond separator; default `1,000.00`. */
  numberformat?: string;
}

export type Precision = 'day' | 'hour' | 'minute' | 'second' | 'millisecond';

interface WallClock {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  ms: number;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/**
 * Reads a timestamp as PostgreSQL prints it under any of kivitendo's DateStyles (ISO, German,
 * SQL US/European — the latter two told apart by the dateformat), or a JS Date (local time).
 */
export function parseWallClock(value: string | Date, dateformat = ''): WallClock | undefined {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) return undefined;
    return {
      y: value.getFullYear(), mo: value.getMonth() + 1, d: value.getDate(),
      h: value.getHours(), mi: value.getMinutes(), s: value.getSeconds(), ms: value.getMilliseconds(),
    };
  }
  const time = /(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?/.source;
  const iso = new RegExp(`^(\\d{4})-(\\d{1,2})-(\\d{1,2})${time}`).exec(value.trim());
  const dmy = new RegExp(`^(\\d{1,2})([./])(\\d{1,2})[./](\\d{4})${time}`).exec(value.trim());
  let y: number, mo: number, d: number, rest: (string | undefined)[];
  if (iso) {
    [y, mo, d] = [Number(iso[1]), Number(iso[2]), Number(iso[3])];
    rest = iso.slice(4);
  } else if (dmy) {
    const usOrder = dmy[2] === '/' && dateformat.startsWith('mm');
    [y, mo, d] = [Number(dmy[4]), Number(usOrder ? dmy[1] : dmy[3]), Number(usOrder ? dmy[3] : dmy[1])];
    rest = dmy.slice(5);
  } else return undefined;
  return {
    y, mo, d,
    h: Number(rest[0] ?? 0), mi: Number(rest[1] ?? 0), s: Number(rest[2] ?? 0),
    ms: rest[3] ? Number(rest[3].slice(0, 3).padEnd(3, '0')) : 0,
  };
}

/** format_date_object: the dateformat with a 4-digit year, plus the time part for `precision`. */
export function formatKivitendoDate(value: string | Date, settings: DateSettings = {}, precision: Precision = 'day'): string {
  const t = parseWallClock(value, settings.dateformat);
  if (!t) return typeof value === 'string' ? value : '';
  const date = (settings.dateformat || 'yyyy-mm-dd')
    .replace(/yy(?:yy)?/, '\u0001')
    .replace('mm', '\u0002')
    .replace('dd', '\u0003')
    .replace('\u0001', String(t.y).padStart(4, '0'))
    .replace('\u0002', pad(t.mo))
    .replace('\u0003', pad(t.d));
  const sep = /,\d+$/.test(settings.numberformat || '1,000.00') ? ',' : '.';
  const time: Record<Precision, string> = {
    day: '',
    hour: pad(t.h),
    minute: `${pad(t.h)}:${pad(t.mi)}`,
    second: `${pad(t.h)}:${pad(t.mi)}:${pad(t.s)}`,
    millisecond: `${pad(t.h)}:${pad(t.mi)}:${pad(t.s)}${sep}${pad(t.ms, 3)}`,
  };
  return time[precision] ? `${date} ${time[precision]}` : date;
}

/** format_date_object_to_time: the user's timeformat (`hh:mm` or `hh:mm:ss`). */
export function formatKivitendoTime(value: string | Date, settings: DateSettings = {}): string {
  const t = parseWallClock(value, settings.dateformat);
  if (!t) return '';
  return (settings.timeformat || 'hh:mm').replace('hh', pad(t.h)).replace('mm', pad(t.mi)).replace('ss', pad(t.s));
}

/**
 * A timestamp as templates see kivitendo's DateTime objects: `[% x.to_kivitendo %]`,
 * `[% x.to_kivitendo_time %]`; printed bare it shows the ISO wall-clock value.
 */
export function templateTimestamp(value: string | Date, settings: DateSettings = {}) {
  const t = parseWallClock(value, settings.dateformat);
  const iso = t ? `${pad(t.y, 4)}-${pad(t.mo)}-${pad(t.d)}T${pad(t.h)}:${pad(t.mi)}:${pad(t.s)}` : String(value);
  return {
    to_kivitendo: () => formatKivitendoDate(value, settings, 'day'),
    to_kivitendo_time: () => formatKivitendoTime(value, settings),
    toString: () => iso,
  };
}
