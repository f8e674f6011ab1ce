// Business-day arithmetic of kivitendo's DateTime helper (five-day week, no holidays), needed by
// the NovoclonStrict checks ("older than N business days").

/** ISO day of week: Monday 1 ... Sunday 7. */
function isoDow(d: Date): number {
  return ((d.getDay() + 6) % 7) + 1;
}

function addDays(d: Date, days: number): Date {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + days);
}

/** `date` minus `days` business days; a weekend start counts from the following Monday. */
export function subtractBusinessDays(date: Date, days: number): Date {
  const week = 5;
  const weeks = Math.floor(days / week);
  const rest = days % week;
  let d = addDays(date, -7 * weeks);
  if (isoDow(d) > week) d = addDays(d, 8 - isoDow(d));
  d = addDays(d, -(isoDow(d) > rest ? rest : rest + (7 - week)));
  return d;
}
