// Wall-clock arithmetic in the process-local time zone, for the cron module.
//
// A "wall time" is a local date and time without zone (what kivitendo stores in
// background_jobs.next_run_at). It is encoded as the number of milliseconds Date.UTC would give
// for those fields, so plain calendar arithmetic (next day, weekday, month length) can use the
// UTC methods of Date without any zone getting in the way. Converting between a wall time and real
// instants is the only place where the zone matters, and where DST gaps and overlaps show up.

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;

/** A wall time: local date/time fields encoded as if they were UTC, in milliseconds. */
export type WallTime = number;

export interface CivilFields {
  year: number;
  /** 1–12 */
  month: number;
  day: number;
  hour: number;
  minute: number;
  /** Monday = 1 … Sunday = 7 */
  isoWeekday: number;
}

/** Encodes fields as a wall time. setUTCFullYear, unlike Date.UTC, does not map years 0–99 to 19xx. */
export function wallTimeOf(year: number, month: number, day: number, hour = 0, minute = 0, second = 0): WallTime {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  return d.getTime();
}

/** The local wall clock of an instant, whole seconds (milliseconds dropped, as Perl's clock has none). */
export function wallTimeAt(instant: number): WallTime {
  const d = new Date(instant);
  return wallTimeOf(d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds());
}

export function floorToMinute(w: WallTime): WallTime {
  return Math.floor(w / MINUTE_MS) * MINUTE_MS;
}

export function civilFields(w: WallTime): CivilFields {
  const d = new Date(w);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    isoWeekday: d.getUTCDay() === 0 ? 7 : d.getUTCDay(),
  };
}

/** Midnight of the first day of the month after the one `w` lies in. */
export function startOfNextMonth(w: WallTime): WallTime {
  const { year, month } = civilFields(w);
  return month === 12 ? wallTimeOf(year + 1, 1, 1) : wallTimeOf(year, month + 1, 1);
}

export function startOfDay(w: WallTime): WallTime {
  return Math.floor(w / DAY_MS) * DAY_MS;
}

/** Local minus UTC at an instant, in ms (seconds-exact, so historic LMT offsets work too). */
function utcOffsetAt(instant: number): number {
  const whole = Math.floor(instant / 1000) * 1000;
  return wallTimeAt(whole) - whole;
}

/**
 * Every instant whose local wall clock reads `w`, ascending: one normally, none in a DST gap,
 * two in a repeated (autumn) hour. Assumes at most one offset change within a day of `w`, which
 * holds for every zone in the tz database in the years that matter here.
 */
export function instantsAtWallTime(w: WallTime): number[] {
  const offsets = new Set([utcOffsetAt(w - DAY_MS), utcOffsetAt(w), utcOffsetAt(w + DAY_MS)]);
  const found = new Set<number>();
  for (const offset of offsets) {
    const candidate = w - offset;
    if (wallTimeAt(candidate) === w) found.add(candidate);
  }
  return [...found].sort((a, b) => a - b);
}

/**
 * For a wall time that does not exist (spring-forward gap): the first whole minute after the gap,
 * i.e. the moment of the transition (03:00 CEST for any 02:xx on a Berlin spring-forward day).
 */
export function firstInstantAfterGap(w: WallTime): number {
  // Reading `w` with the offset valid before the gap lands past the gap (02:30 → 03:30 CEST) …
  let t = w - utcOffsetAt(w - DAY_MS);
  // … and walking back minute by minute, while the clock still reads past `w`, finds the
  // transition. Bounded by the gap length (an hour; a day at most, Samoa 2011).
  for (let i = 0; i < 1500 && wallTimeAt(t - MINUTE_MS) > w; i++) t -= MINUTE_MS;
  // Only reachable in zones with several changes within a day: move forward until past the gap.
  for (let i = 0; i < 1500 && wallTimeAt(t) <= w; i++) t += MINUTE_MS;
  return t;
}
