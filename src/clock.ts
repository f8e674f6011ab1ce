// kivitendo stores local wall-clock times without zone ("YYYY-MM-DD HH:MM:SS", process TZ).
// Every "now" goes through a Clock, so tests can fix it.

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export function fixedClock(at: Date): Clock {
  return { now: () => new Date(at.getTime()) };
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Local wall clock as kivitendo writes timestamps: whole seconds. */
export function formatLocalTimestamp(d: Date): string {
  return `${formatLocalDate(d)} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatLocalDate(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Parses "YYYY-MM-DD[ HH:MM[:SS[.fff]]]" as local wall clock. */
export function parseLocalTimestamp(s: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$/.exec(s.trim());
  if (!m) throw new Error(`not a timestamp: '${s}'`);
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0), ms);
}
