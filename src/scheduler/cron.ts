// kivitendo's cron dialect (spec cron.md §2) and the next run of a schedule (§4), as pure
// functions in the process-local time zone (TZ). No cron library speaks this dialect (`!N`, `<N`,
// `>N`, no month/day names, extra fields ignored, cron_spec `0` = every minute), so it is here.
//
// NEXT RUN. The next run after `after` is the first local wall-clock minute later than the minute
// of `after` whose minute, hour, month and day (day-of-month/day-of-week rule, §2.3) match the
// spec. Outside DST changes this is what kivitendo computes (§4.3), so its search/cascade
// algorithm (§4.1/4.2) is not ported literally; that removes its cascade overshoot by construction:
// when `after` is itself a match, kivitendo may skip valid days (E20: '0 0 * 3,6 1' from Monday
// 2025-03-31 00:00:00 gives June 9 instead of June 2). We give June 2.
//
// DST POLICY. next_run_at is stored, and compared with "now", as a local wall-clock value without
// zone (§1, §8). So:
//  - Spring gap (wall times that do not exist; Berlin: 02:00–02:59 on the last Sunday of March):
//    a scheduled time in the gap runs at the first valid minute after it, i.e. at the end of the
//    gap (03:00 CEST), once, however many of the spec's times fall into the gap. kivitendo moved
//    such times to the next day, and threw "Invalid local time" for some specs (E25–E27).
//  - Autumn overlap (Berlin: 02:00–02:59 on the last Sunday of October occurs twice, CEST then
//    CET): each wall time runs once. The result is the first occurrence that is later than
//    `after`: CEST when computed before or during the first pass, CET when computed during the
//    second pass (say, for a job saved then). The result's wall clock is always later than that
//    of `after`, so a stored value is never due at once, and with wall-clock comparison no time
//    of the repeated hour can run twice. kivitendo returned the second (CET) occurrence (E31,
//    E34) although its daemon, comparing wall clocks, ran the job in the first pass; we return
//    the instant the job really runs at.
//    Consequence, kept deliberately: a job that ran late in the first pass has the rest of the
//    hour behind it, so every-minute jobs pause during the second pass (02:59 CEST → 03:00 CET).
//    Filling that hour would need wall values the daemon could tell apart from first-pass ones;
//    next_run_at is a zone-less column shared with kivitendo's web UI, so it cannot.
//  - Missed runs are not replayed (as in kivitendo): the caller passes the end of the last run.
import {
  DAY_MS,
  MINUTE_MS,
  civilFields,
  firstInstantAfterGap,
  floorToMinute,
  instantsAtWallTime,
  startOfDay,
  startOfNextMonth,
  wallTimeAt,
  type WallTime,
} from './cronTime';

/** A bad cron_spec; `reason` is kivitendo's own message (§2), `message` names the spec too. */
export class CronSyntaxError extends Error {
  readonly reason: string;
  constructor(readonly spec: string, message: string) {
    super(`invalid cron_spec '${spec}': ${message}`);
    this.name = 'CronSyntaxError';
    this.reason = message;
  }
}

/** The spec kivitendo uses when cron_spec is false in Perl's sense. */
export const EVERY_MINUTE = '* * * * *';

interface FieldRange {
  readonly name: 'minute' | 'hour' | 'dayOfMonth' | 'month' | 'dayOfWeek';
  readonly min: number;
  readonly max: number;
}

const RANGES: readonly FieldRange[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'dayOfMonth', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'dayOfWeek', min: 1, max: 7 },
];

/** Longest month per month number; February counts as 29 (§2.4). */
const MONTH_MAX_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** One expanded field: sorted values as kivitendo lists them (duplicates kept, they count for "full"). */
export interface CronField {
  readonly values: readonly number[];
  readonly has: ReadonlySet<number>;
}

/** How day-of-month and day-of-week combine (§2.3). */
export type DayRule = 'dayOfMonth' | 'dayOfWeek' | 'either';

export interface CronSpec {
  /** The spec that was parsed: `* * * * *` for a false cron_spec. */
  readonly text: string;
  readonly minute: CronField;
  readonly hour: CronField;
  readonly dayOfMonth: CronField;
  readonly month: CronField;
  /** ISO weekdays, Monday = 1 … Sunday = 7 (0 already mapped to 7). */
  readonly dayOfWeek: CronField;
  readonly dayRule: DayRule;
}

/** Perl truthiness of the column value: NULL, '' and '0' all mean "every minute" (§1). */
export function effectiveCronSpec(spec: string | null | undefined): string {
  return spec === null || spec === undefined || spec === '' || spec === '0' ? EVERY_MINUTE : spec;
}

// ---------------------------------------------------------------------------------------------
// Parsing (§2)

/** Values start, start+step, … ≤ end. Kept symbolic so `0-999999999` costs nothing. */
interface Progression {
  readonly start: number;
  readonly end: number;
  readonly step: number;
}

/** What the elements of one field contribute before the field-wide rules are applied. */
interface FieldParts {
  picked: Progression[];
  comparisons: Array<(v: number) => boolean>;
  excluded: Set<number>;
}

const NUMBER = /^[0-9]+$/;
const RANGE = /^([0-9]+)-([0-9]+)$/;
const EXCLUSION = /^!([0-9]+)$/;
const COMPARISON = /^([<>])([0-9]+)$/;
const STEP = /\/([0-9]+)$/;

/** Adds one comma-separated element to `parts`; anything unrecognised contributes nothing (§2.2). */
function addElement(parts: FieldParts, element: string, range: FieldRange): void {
  const stepMatch = STEP.exec(element);
  // A step applies to the values of its own element. kivitendo's parser tests the step text for
  // Perl truth: "0" (or none) means no stepping, so `*/0` is `*`; "00", "000" are true and divide
  // by zero ("Illegal modulus zero") as soon as the element lists a value, so they are refused.
  const stepText = stepMatch?.[1];
  const zeroStep = stepText !== undefined && stepText !== '0' && Number(stepText) === 0;
  const step = stepText !== undefined && !zeroStep ? Number(stepText) || 1 : 1;
  const body = stepMatch ? element.slice(0, stepMatch.index) : element;
  const pick = (start: number, end: number) => {
    if (zeroStep && start <= end) throw new FieldError('Illegal modulus zero');
    parts.picked.push({ start, end, step });
  };
  let m: RegExpExecArray | null;
  if (NUMBER.test(body)) {
    pick(Number(body), Number(body));
  } else if (body === '*') {
    pick(range.min, range.max);
  } else if ((m = RANGE.exec(body))) {
    pick(Number(m[1]), Number(m[2]));
  } else if ((m = EXCLUSION.exec(body))) {
    parts.excluded.add(Number(m[1]));
  } else if ((m = COMPARISON.exec(body))) {
    const bound = Number(m[2]);
    parts.comparisons.push(m[1] === '<' ? (v) => v < bound : (v) => v > bound);
  }
}

/** The largest value of `p` above `limit` that is not excluded, if any. */
function largestAbove(p: Progression, limit: number, excluded: ReadonlySet<number>): number | undefined {
  if (p.start > p.end) return undefined;
  let v = p.start + Math.floor((p.end - p.start) / p.step) * p.step;
  if (!Number.isSafeInteger(v)) return v; // beyond exact integers nothing can be excluded reliably
  // Bounded by the number of exclusions: with huge (inexact) numbers `v - step` may equal v.
  for (let i = 0; i <= excluded.size && v > limit && excluded.has(v); i++) v -= p.step;
  return v > limit && !excluded.has(v) ? v : undefined;
}

/** Expands one field per the combination rules of §2.2 and validates it (errors as kivitendo's). */
function expandField(text: string, range: FieldRange): number[] {
  const parts: FieldParts = { picked: [], comparisons: [], excluded: new Set() };
  for (const element of text.split(',')) addElement(parts, element, range);

  // Values above the range can only ever produce an error, so only the largest one is tracked.
  let values: number[] = [];
  let overflow: number | undefined;
  for (const p of parts.picked) {
    for (let v = p.start; v <= Math.min(p.end, range.max); v += p.step) values.push(v);
    const big = largestAbove(p, range.max, parts.excluded);
    if (big !== undefined) overflow = Math.max(overflow ?? big, big);
  }
  const listedAny = parts.picked.some((p) => p.start <= p.end);
  if (parts.comparisons.length > 0) {
    for (let v = range.min; v <= range.max; v++) if (parts.comparisons.every((ok) => ok(v))) values.push(v);
  }
  if (parts.excluded.size > 0) {
    // Exclusions filter what was listed, or the whole range when nothing was.
    const base = listedAny || values.length > 0 ? values : fullRange(range);
    values = base.filter((v) => !parts.excluded.has(v));
  }
  values.sort((a, b) => a - b);
  return validateField(text, range, values, overflow);
}

function fullRange(range: FieldRange): number[] {
  const all: number[] = [];
  for (let v = range.min; v <= range.max; v++) all.push(v);
  return all;
}

/** §2.2 validation, in kivitendo's order. Throws a bare message; parseCronSpec adds the spec. */
function validateField(text: string, range: FieldRange, sorted: number[], overflow: number | undefined): number[] {
  if (sorted.length === 0 && overflow === undefined) throw new FieldError(`Malformed cron field '${text}'`);
  const outOfRange = (v: number) => new FieldError(`Field value (${v}) out of range (${range.min}-${range.max})`);
  if (overflow !== undefined) throw outOfRange(overflow);
  let values = sorted;
  if (range.name === 'dayOfWeek' && values.includes(0)) {
    // Sunday may be written 0: one 0 is dropped and 7 added unless present (so `0,0` still fails).
    values = values.slice(1);
    if (!sorted.includes(7)) values.push(7);
  }
  if (values[0] < range.min) throw outOfRange(values[0]);
  return values;
}

class FieldError extends Error {}

function cronField(values: number[]): CronField {
  return { values, has: new Set(values) };
}

/** §2.3: "full" counts elements, however the field was written. */
function dayRuleOf(dayOfMonth: CronField, dayOfWeek: CronField): DayRule {
  const domFull = dayOfMonth.values.length === 31;
  const dowFull = dayOfWeek.values.length === 7;
  if (domFull && !dowFull) return 'dayOfWeek';
  if (dowFull && !domFull) return 'dayOfMonth';
  return 'either';
}

/** §2.4: some listed month must have some listed day, February counting 29 days. */
function hasPossibleDate(spec: Pick<CronSpec, 'month' | 'dayOfMonth' | 'dayRule'>): boolean {
  if (spec.dayRule === 'dayOfWeek') return true;
  return spec.month.values.some((m) => spec.dayOfMonth.values.some((d) => d <= MONTH_MAX_DAYS[m - 1]));
}

/** Parses a cron_spec column value (false values mean every minute). Throws CronSyntaxError. */
export function parseCronSpec(spec: string | null | undefined): CronSpec {
  const text = effectiveCronSpec(spec);
  const fail = (reason: string) => new CronSyntaxError(String(spec ?? ''), reason);
  const words = text.trim().split(/\s+/).filter((w) => w !== '');
  // Fields after the fifth are crontab's user/command columns and are ignored (§2.1).
  if (words.length < 5) throw fail('At least five cron entry fields required.');
  let fields: CronField[];
  try {
    fields = RANGES.map((range, i) => cronField(expandField(words[i], range)));
  } catch (e) {
    if (e instanceof FieldError) throw fail(e.message);
    throw e;
  }
  const [minute, hour, dayOfMonth, month, dayOfWeek] = fields;
  const parsed: CronSpec = { text, minute, hour, dayOfMonth, month, dayOfWeek, dayRule: dayRuleOf(dayOfMonth, dayOfWeek) };
  if (!hasPossibleDate(parsed)) throw fail('Impossible last day for provided months.');
  return parsed;
}

/** kivitendo's error message for a bad spec, or undefined if it is valid. */
export function validateCronSpec(spec: string | null | undefined): string | undefined {
  try {
    parseCronSpec(spec);
    return undefined;
  } catch (e) {
    if (e instanceof CronSyntaxError) return e.reason;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Matching and the next run (§2.3, §4)

/** §2.3 day rule for a calendar day. */
export function dayMatches(spec: CronSpec, dayOfMonth: number, isoWeekday: number): boolean {
  const dom = spec.dayOfMonth.has.has(dayOfMonth);
  const dow = spec.dayOfWeek.has.has(isoWeekday);
  if (spec.dayRule === 'dayOfMonth') return dom;
  if (spec.dayRule === 'dayOfWeek') return dow;
  return dom || dow;
}

/** Does a local wall-clock minute match the spec? */
export function matchesWallTime(spec: CronSpec, w: WallTime): boolean {
  const f = civilFields(w);
  return spec.minute.has.has(f.minute) && spec.hour.has.has(f.hour) && spec.month.has.has(f.month) && dayMatches(spec, f.day, f.isoWeekday);
}

/** The first time of day at or after hour:minute that matches minute and hour lists, as ms since midnight. */
function firstTimeOfDay(spec: CronSpec, fromHour: number, fromMinute: number): number | undefined {
  for (const hour of spec.hour.values) {
    if (hour < fromHour) continue;
    const minFloor = hour === fromHour ? fromMinute : 0;
    const minute = spec.minute.values.find((m) => m >= minFloor);
    if (minute !== undefined) return (hour * 60 + minute) * MINUTE_MS;
  }
  return undefined;
}

/**
 * Every valid spec matches within 8 years (Feb 29 is the rarest possible day); the bound only
 * turns a broken invariant into an error instead of an endless loop.
 */
const SEARCH_LIMIT_MS = 12 * 366 * DAY_MS;

/** The first matching wall-clock minute at or after `from` (a whole minute). */
export function nextMatchingWallTime(spec: CronSpec, from: WallTime): WallTime {
  let w = from;
  while (w - from <= SEARCH_LIMIT_MS) {
    const f = civilFields(w);
    if (!spec.month.has.has(f.month)) {
      w = startOfNextMonth(w);
      continue;
    }
    if (dayMatches(spec, f.day, f.isoWeekday)) {
      const time = firstTimeOfDay(spec, f.hour, f.minute);
      if (time !== undefined) return startOfDay(w) + time;
    }
    w = startOfDay(w) + DAY_MS;
  }
  throw new Error(`cron_spec '${spec.text}': no matching time within 12 years after ${new Date(from).toISOString().slice(0, 16)} (wall clock)`);
}

/**
 * The instant a matching wall time runs at, per the DST policy above: the first occurrence later
 * than `after`, or the end of the gap for a wall time that does not exist.
 */
function runInstant(w: WallTime, after: number): number | undefined {
  const instants = instantsAtWallTime(w);
  if (instants.length === 0) {
    const t = firstInstantAfterGap(w);
    return t > after ? t : undefined;
  }
  return instants.find((t) => t > after);
}

/**
 * The next occurrence of `spec` strictly after `after` (process-local time zone, second 0).
 * A false spec (null, '', '0') means every minute. Throws CronSyntaxError for a bad spec.
 */
export function nextRunAt(spec: string | null | undefined, after: Date): Date {
  const afterMs = after.getTime();
  if (!Number.isFinite(afterMs)) throw new RangeError(`nextRunAt: 'after' is not a valid date (cron_spec '${spec ?? ''}')`);
  const parsed = parseCronSpec(spec);
  let w = floorToMinute(wallTimeAt(afterMs)) + MINUTE_MS;
  // One round suffices (see runInstant); the loop only guards against odd zone rules.
  for (let round = 0; round < 1000; round++) {
    w = nextMatchingWallTime(parsed, w);
    const at = runInstant(w, afterMs);
    if (at !== undefined) return new Date(at);
    w += MINUTE_MS;
  }
  throw new Error(`cron_spec '${parsed.text}': no run time found after ${after.toISOString()}`);
}
