// kivitendo's cron dialect: parser, day rule, next run, DST policy (spec cron.md §2–4, §7, §8).
// Zone-dependent: run with TZ=Europe/Berlin (the test runner sets it).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import {
  CronSyntaxError,
  matchesWallTime,
  nextMatchingWallTime,
  nextRunAt,
  parseCronSpec,
  validateCronSpec,
  type CronSpec,
} from '../src/scheduler/cron';
import { MINUTE_MS, civilFields, wallTimeAt, wallTimeOf, type WallTime } from '../src/scheduler/cronTime';

// --- Berlin wall-clock notation as used in cron.md: "2024-10-27 02:00:00 CET" ------------------

const ZONES: Record<string, string> = { CET: '+01:00', CEST: '+02:00' };

function at(text: string): Date {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (CET|CEST)$/.exec(text);
  if (!m) throw new Error(`bad test time '${text}'`);
  return new Date(`${m[1]}T${m[2]}${ZONES[m[3]]}`);
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Local wall clock without zone, as next_run_at is stored. */
function wall(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function berlin(d: Date): string {
  const offset = d.getTimezoneOffset();
  const zone = offset === -60 ? 'CET' : offset === -120 ? 'CEST' : `UTC${-offset / 60}`;
  return `${wall(d)} ${zone}`;
}

function next(spec: string | null | undefined, now: string): string {
  return berlin(nextRunAt(spec, at(now)));
}

test('the process runs in Europe/Berlin (TZ=Europe/Berlin), which every example below assumes', () => {
  assert.equal(new Date('2024-01-15T12:00:00Z').getTimezoneOffset(), -60, 'run the tests with TZ=Europe/Berlin');
  assert.equal(new Date('2024-07-15T12:00:00Z').getTimezoneOffset(), -120, 'run the tests with TZ=Europe/Berlin');
});

// --- cron.md §7 worked examples ---------------------------------------------------------------

interface Example {
  id: string;
  spec: string;
  now: string;
  next: string;
  /** Set where kivitendo's result is a defect the port fixes: what it is and what kivitendo gave. */
  fixed?: { what: string; kivitendo: string };
}

const EXAMPLES: Example[] = [
  { id: 'E1', spec: '* * * * *', now: '2024-05-10 12:00:00 CEST', next: '2024-05-10 12:01:00 CEST' },
  { id: 'E2', spec: '* * * * *', now: '2024-05-10 12:00:59 CEST', next: '2024-05-10 12:01:00 CEST' },
  { id: 'E3', spec: '*/5 * * * *', now: '2024-05-10 12:04:59 CEST', next: '2024-05-10 12:05:00 CEST' },
  { id: 'E4', spec: '*/5 * * * *', now: '2024-05-10 12:05:00 CEST', next: '2024-05-10 12:10:00 CEST' },
  { id: 'E5', spec: '0 3 * * *', now: '2024-05-10 02:59:59 CEST', next: '2024-05-10 03:00:00 CEST' },
  { id: 'E6', spec: '0 3 * * *', now: '2024-05-10 03:00:00 CEST', next: '2024-05-11 03:00:00 CEST' },
  { id: 'E7', spec: '30 6 * * *', now: '2024-05-10 06:30:10 CEST', next: '2024-05-11 06:30:00 CEST' },
  { id: 'E8', spec: '0 3 1 * *', now: '2024-01-31 04:00:00 CET', next: '2024-02-01 03:00:00 CET' },
  { id: 'E9', spec: '7 6 1-5 * *', now: '2024-05-10 08:00:00 CEST', next: '2024-06-01 06:07:00 CEST' },
  { id: 'E10', spec: '0 0 1 * 1', now: '2024-05-10 08:00:00 CEST', next: '2024-05-13 00:00:00 CEST' },
  { id: 'E11', spec: '0 0 1 * 1', now: '2024-05-27 00:00:00 CEST', next: '2024-06-01 00:00:00 CEST' },
  { id: 'E12', spec: '0 9 * * 1-5', now: '2024-05-10 09:00:01 CEST', next: '2024-05-13 09:00:00 CEST' },
  { id: 'E13', spec: '0 0 * * 0', now: '2024-05-12 00:00:00 CEST', next: '2024-05-19 00:00:00 CEST' },
  { id: 'E14', spec: '0 0 31 * *', now: '2024-04-15 10:00:00 CEST', next: '2024-05-31 00:00:00 CEST' },
  { id: 'E15', spec: '0 0 31 * *', now: '2024-01-31 00:00:00 CET', next: '2024-03-31 00:00:00 CET' },
  { id: 'E16', spec: '0 0 29 2 *', now: '2024-03-01 00:00:00 CET', next: '2028-02-29 00:00:00 CET' },
  { id: 'E17', spec: '59 23 31 12 *', now: '2024-12-31 23:59:00 CET', next: '2025-12-31 23:59:00 CET' },
  { id: 'E18', spec: '0 12 */2 * *', now: '2024-01-31 12:00:00 CET', next: '2024-02-01 12:00:00 CET' },
  { id: 'E19', spec: '*/15 9-17 * * 1-5', now: '2024-05-10 17:45:00 CEST', next: '2024-05-13 09:00:00 CEST' },
  {
    id: 'E20', spec: '0 0 * 3,6 1', now: '2025-03-31 00:00:00 CEST', next: '2025-06-02 00:00:00 CEST',
    fixed: { what: 'matching-minute cascade overshoot: the first Monday in June', kivitendo: '2025-06-09 00:00:00 CEST' },
  },
  { id: 'E21', spec: '0 0 * 3,6 1', now: '2025-03-31 00:00:05 CEST', next: '2025-06-02 00:00:00 CEST' },
  { id: 'E22', spec: '!0 * * * *', now: '2024-05-10 12:59:30 CEST', next: '2024-05-10 13:01:00 CEST' },
  { id: 'E23', spec: '0 3 * * * root', now: '2024-05-10 12:00:00 CEST', next: '2024-05-11 03:00:00 CEST' },
  { id: 'E24', spec: '0', now: '2024-05-10 12:00:10 CEST', next: '2024-05-10 12:01:00 CEST' },
  {
    id: 'E25', spec: '30 2 * * *', now: '2024-03-31 01:00:00 CET', next: '2024-03-31 03:00:00 CEST',
    fixed: { what: 'spring gap: 02:30 does not exist and runs at 03:00, the first valid minute after it', kivitendo: '2024-04-01 02:30:00 CEST' },
  },
  {
    id: 'E26', spec: '30 2 * * *', now: '2024-03-30 02:30:00 CET', next: '2024-03-31 03:00:00 CEST',
    fixed: { what: 'spring gap: the day of the change is not skipped', kivitendo: '2024-04-01 02:30:00 CEST' },
  },
  {
    id: 'E27', spec: '30 2 31 3 *', now: '2024-03-31 01:00:00 CET', next: '2024-03-31 03:00:00 CEST',
    fixed: { what: 'spring gap: no "Invalid local time" error, runs at 03:00', kivitendo: 'error Invalid local time for date in time zone: Europe/Berlin' },
  },
  { id: 'E28', spec: '*/15 * * * *', now: '2024-03-31 01:50:00 CET', next: '2024-03-31 03:00:00 CEST' },
  { id: 'E29', spec: '0 3 * * *', now: '2024-03-31 01:59:59 CET', next: '2024-03-31 03:00:00 CEST' },
  { id: 'E30', spec: '30 2 * * *', now: '2024-10-27 01:00:00 CEST', next: '2024-10-27 02:30:00 CEST' },
  {
    id: 'E31', spec: '0 * * * *', now: '2024-10-27 01:30:00 CEST', next: '2024-10-27 02:00:00 CEST',
    fixed: { what: 'autumn hour: the first pass, when the daemon really runs it (same stored wall value)', kivitendo: '2024-10-27 02:00:00 CET' },
  },
  { id: 'E32', spec: '0 * * * *', now: '2024-10-27 02:00:03 CEST', next: '2024-10-27 03:00:00 CET' },
  { id: 'E33', spec: '* * * * *', now: '2024-10-27 02:59:03 CEST', next: '2024-10-27 03:00:00 CET' },
  {
    id: 'E34', spec: '* * * * *', now: '2024-10-27 02:00:03 CEST', next: '2024-10-27 02:01:00 CEST',
    fixed: { what: 'autumn hour: the next minute of the first pass, not an hour later (same stored wall value)', kivitendo: '2024-10-27 02:01:00 CET' },
  },
  { id: 'E35', spec: '30 2 * * *', now: '2024-10-27 02:30:03 CEST', next: '2024-10-28 02:30:00 CET' },
  { id: 'E36', spec: '*/30 * * * *', now: '2024-10-27 02:30:03 CEST', next: '2024-10-27 03:00:00 CET' },
];

for (const e of EXAMPLES) {
  const title = e.fixed
    ? `${e.id} fixed: ${e.fixed.what} — '${e.spec}' after ${e.now} → ${e.next} (kivitendo: ${e.fixed.kivitendo})`
    : `${e.id} as kivitendo: '${e.spec}' after ${e.now} → ${e.next}`;
  test(title, () => {
    assert.equal(next(e.spec, e.now), e.next);
  });
}

test('E31/E34: the fixed autumn values are stored exactly as kivitendo stores them (wall clock)', () => {
  assert.equal(wall(nextRunAt('0 * * * *', at('2024-10-27 01:30:00 CEST'))), '2024-10-27 02:00:00');
  assert.equal(wall(nextRunAt('* * * * *', at('2024-10-27 02:00:03 CEST'))), '2024-10-27 02:01:00');
});

// --- cron.md §5 default schedules --------------------------------------------------------------

test('§5 default schedules', () => {
  const now = '2024-05-10 12:00:00 CEST';
  assert.equal(next('*/5 * * * *', now), '2024-05-10 12:05:00 CEST');
  assert.equal(next('20 2 * * *', now), '2024-05-11 02:20:00 CEST');
  assert.equal(next('35 4 * * *', now), '2024-05-11 04:35:00 CEST');
  assert.equal(next('7 3 1 * *', now), '2024-06-01 03:07:00 CEST');
  assert.equal(next('1 0 10 * *', now), '2024-06-10 00:01:00 CEST');
  assert.equal(next('7 6 1-5 * *', '2024-06-03 06:07:00 CEST'), '2024-06-04 06:07:00 CEST');
  assert.equal(next('59 23 31 12 *', now), '2024-12-31 23:59:00 CET');
});

// --- false specs (Perl truthiness), strictness, seconds ----------------------------------------

test('a false cron_spec (null, undefined, empty, "0") means every minute', () => {
  for (const spec of [null, undefined, '', '0']) assert.equal(next(spec, '2024-05-10 12:00:10 CEST'), '2024-05-10 12:01:00 CEST');
});

test('only null, "" and "0" are false: "00" and blanks are parsed (and rejected) like kivitendo', () => {
  assert.equal(validateCronSpec('00'), 'At least five cron entry fields required.');
  assert.equal(validateCronSpec('   '), 'At least five cron entry fields required.');
});

test('the result is strictly later, at second 0, also when "after" has milliseconds', () => {
  const after = new Date(at('2024-05-10 12:00:00 CEST').getTime() + 999);
  assert.equal(berlin(nextRunAt('* * * * *', after)), '2024-05-10 12:01:00 CEST');
  assert.equal(nextRunAt('* * * * *', after).getMilliseconds(), 0);
});

test('leading/trailing whitespace and runs of blanks or tabs between fields are accepted', () => {
  assert.equal(next('  0\t3  * *   *  ', '2024-05-10 12:00:00 CEST'), '2024-05-11 03:00:00 CEST');
});

test('a 6-field seconds-first spec is misread as kivitendo does (minute 0, hour 0, day 3)', () => {
  assert.equal(next('0 0 3 * * *', '2024-05-10 12:00:00 CEST'), '2024-06-03 00:00:00 CEST');
});

test('an invalid date passed as "after" is a RangeError, not a cron error', () => {
  assert.throws(() => nextRunAt('* * * * *', new Date(NaN)), RangeError);
});

// --- parse errors and field lists (cron.md §2, §7 "Further parse results") -----------------------

const ERRORS: Array<[string, string]> = [
  ['0 3 * *', 'At least five cron entry fields required.'],
  ['60 * * * *', 'Field value (60) out of range (0-59)'],
  ['0 24 * * *', 'Field value (24) out of range (0-23)'],
  ['0 0 0 * *', 'Field value (0) out of range (1-31)'],
  ['0 0 32 * *', 'Field value (32) out of range (1-31)'],
  ['0 0 * 0 *', 'Field value (0) out of range (1-12)'],
  ['0 0 * * 8', 'Field value (8) out of range (1-7)'],
  ['0 0 * * mon', "Malformed cron field 'mon'"],
  ['0 0 * jan *', "Malformed cron field 'jan'"],
  ['5-2 * * * *', "Malformed cron field '5-2'"],
  ['-1 * * * *', "Malformed cron field '-1'"],
  ['1- * * * *', "Malformed cron field '1-'"],
  ['<3,>57 * * * *', "Malformed cron field '<3,>57'"],
  ['@daily * * * *', "Malformed cron field '@daily'"],
  ['0 0 30 2 *', 'Impossible last day for provided months.'],
  ['0 0 31 2 *', 'Impossible last day for provided months.'],
  ['0 0 31 2 1', 'Impossible last day for provided months.'],
  ['0 0 31 4,6,9,11 *', 'Impossible last day for provided months.'],
  ['0-99999999999 * * * *', 'Field value (99999999999) out of range (0-59)'],
  ['0-100,!100 * * * *', 'Field value (99) out of range (0-59)'],
  ['0 0 * * 0,0', 'Field value (0) out of range (1-7)'],
];

for (const [spec, message] of ERRORS) {
  test(`parse error: '${spec}' → ${message}`, () => {
    assert.equal(validateCronSpec(spec), message);
    assert.throws(
      () => nextRunAt(spec, at('2024-05-10 12:00:00 CEST')),
      (e: unknown) => e instanceof CronSyntaxError && e.message === `invalid cron_spec '${spec}': ${message}` && e.reason === message && e.spec === spec,
    );
  });
}

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

const LISTS: Array<[string, keyof Pick<CronSpec, 'minute' | 'hour' | 'dayOfMonth' | 'month' | 'dayOfWeek'>, number[]]> = [
  ['*/20,30-35 * * * *', 'minute', [0, 20, 30, 31, 32, 33, 34, 35, 40]],
  ['>50,!55 * * * *', 'minute', [51, 52, 53, 54, 56, 57, 58, 59]],
  ['!5 * * * *', 'minute', range(0, 59).filter((v) => v !== 5)],
  ['>57 * * * *', 'minute', [58, 59]],
  ['<3,>1 * * * *', 'minute', [2]],
  ['*/15 * * * *', 'minute', [0, 15, 30, 45]],
  ['0 */5 * * *', 'hour', [0, 5, 10, 15, 20]],
  ['1-10/3 * * * *', 'minute', [1, 4, 7, 10]],
  ['5/2 * * * *', 'minute', [5]],
  ['*/0 * * * *', 'minute', range(0, 59)],
  ['07 * * * *', 'minute', [7]],
  ['!5/2 * * * *', 'minute', range(0, 59).filter((v) => v !== 5)],
  ['0 0 1,mon * *', 'dayOfMonth', [1]],
  ['0 0 * * 0-6', 'dayOfWeek', range(1, 7)],
  ['0 0 * * 0', 'dayOfWeek', [7]],
  ['0 0 * * 0,7', 'dayOfWeek', [7]],
  ['0 0 * * */2', 'dayOfWeek', [1, 3, 5, 7]],
  ['0 0 * * !3', 'dayOfWeek', [1, 2, 4, 5, 6, 7]],
];

for (const [spec, field, values] of LISTS) {
  test(`field list: '${spec}' ${field} = ${values.length > 12 ? `${values.length} values` : values.join(',')}`, () => {
    assert.deepEqual(parseCronSpec(spec)[field].values, values);
  });
}

test('day rule §2.3: "full" is a count, however written; both restricted means OR', () => {
  assert.equal(parseCronSpec('* * * * *').dayRule, 'either');
  assert.equal(parseCronSpec('* * 1-31 * 0-6').dayRule, 'either');
  assert.equal(parseCronSpec('* * 1-5 * *').dayRule, 'dayOfMonth');
  assert.equal(parseCronSpec('* * * * 1-5').dayRule, 'dayOfWeek');
  assert.equal(parseCronSpec('* * 1 * 1').dayRule, 'either');
  // dom full and dow restricted: the impossible-date check is skipped and only weekdays count.
  assert.equal(validateCronSpec('0 0 * 2 1'), undefined);
  assert.equal(next('0 0 1 * 1', '2024-05-01 00:00:00 CEST'), '2024-05-06 00:00:00 CEST');
});

test('Feb 29 is accepted and fires only in leap years, skipping 2100', () => {
  assert.equal(next('0 0 29 2 *', '2096-03-01 00:00:00 CET'), '2104-02-29 00:00:00 CET');
});

// --- DST policy in Europe/Berlin (cron.md §8), with the daemon's wall-clock comparison --------

/**
 * Runs a job the way the daemon does: it is due when its stored wall-clock next_run_at is not
 * later than the wall clock; a run takes one second; the next run is computed from its end.
 * Checked every real minute, plus half a minute in, from `from` to `to`.
 */
function simulate(spec: string, from: string, to: string, saved = from): string[] {
  const runs: string[] = [];
  let stored = wall(nextRunAt(spec, at(saved)));
  for (let t = at(from).getTime(); t <= at(to).getTime(); t += MINUTE_MS / 2) {
    const now = new Date(t);
    if (wall(now) < stored) continue;
    runs.push(berlin(now));
    stored = wall(nextRunAt(spec, new Date(t + 1000)));
  }
  return runs;
}

/** Run times of one night without the date. */
function times(runs: string[]): string[] {
  return runs.map((r) => r.slice(11));
}

test('spring forward 2024-03-31: nothing is lost, gap times run once at 03:00 CEST', () => {
  const [from, to] = ['2024-03-31 01:57:00 CET', '2024-03-31 03:02:00 CEST'];
  assert.deepEqual(times(simulate('* * * * *', from, to)), ['01:58:00 CET', '01:59:00 CET', '03:00:00 CEST', '03:01:00 CEST', '03:02:00 CEST']);
  assert.deepEqual(times(simulate('*/30 * * * *', '2024-03-31 00:50:00 CET', '2024-03-31 03:45:00 CEST')), ['01:00:00 CET', '01:30:00 CET', '03:00:00 CEST', '03:30:00 CEST']);
  assert.deepEqual(times(simulate('15 * * * *', '2024-03-31 00:50:00 CET', '2024-03-31 03:45:00 CEST')), ['01:15:00 CET', '03:00:00 CEST', '03:15:00 CEST']);
  assert.deepEqual(simulate('30 2 * * *', '2024-03-30 12:00:00 CET', '2024-04-01 12:00:00 CEST'), ['2024-03-31 03:00:00 CEST', '2024-04-01 02:30:00 CEST']);
  assert.deepEqual(times(simulate('*/10 2 * * *', '2024-03-31 00:00:00 CET', '2024-03-31 12:00:00 CEST')), ['03:00:00 CEST']);
  assert.deepEqual(times(simulate('0 3 * * *', '2024-03-31 00:00:00 CET', '2024-03-31 12:00:00 CEST')), ['03:00:00 CEST']);
});

test('spring forward: a gap time runs on the day of the change, then on its normal time', () => {
  assert.equal(next('30 2 * * *', '2024-03-31 01:59:59 CET'), '2024-03-31 03:00:00 CEST');
  assert.equal(next('30 2 * * *', '2024-03-31 03:00:01 CEST'), '2024-04-01 02:30:00 CEST');
  assert.equal(next('0 2 * * *', '2025-03-29 02:00:00 CET'), '2025-03-30 03:00:00 CEST');
  assert.equal(next('0 2 * * *', '2025-03-30 03:00:00 CEST'), '2025-03-31 02:00:00 CEST');
});

test('fall back 2024-10-27: each wall time of the repeated hour runs once (in its first pass)', () => {
  const [from, to] = ['2024-10-27 00:50:00 CEST', '2024-10-27 03:45:00 CET'];
  assert.deepEqual(times(simulate('*/30 * * * *', from, to)), ['01:00:00 CEST', '01:30:00 CEST', '02:00:00 CEST', '02:30:00 CEST', '03:00:00 CET', '03:30:00 CET']);
  assert.deepEqual(times(simulate('0 * * * *', from, to)), ['01:00:00 CEST', '02:00:00 CEST', '03:00:00 CET']);
  assert.deepEqual(simulate('30 2 * * *', '2024-10-26 12:00:00 CEST', '2024-10-28 12:00:00 CET'), ['2024-10-27 02:30:00 CEST', '2024-10-28 02:30:00 CET']);
  assert.deepEqual(times(simulate('0 3 * * *', from, to)), ['03:00:00 CET']);
  // Every-minute jobs: the times 02:00–02:59 have run in the first pass, so the second pass is
  // a pause (documented consequence of wall-clock next_run_at).
  assert.deepEqual(times(simulate('* * * * *', '2024-10-27 02:58:00 CEST', '2024-10-27 03:01:00 CET')), ['02:59:00 CEST', '03:00:00 CET', '03:01:00 CET']);
});

test('fall back: a job saved during the second pass runs in the second pass', () => {
  assert.equal(next('*/15 * * * *', '2024-10-27 02:10:00 CET'), '2024-10-27 02:15:00 CET');
  assert.equal(next('30 2 * * *', '2024-10-27 02:10:00 CET'), '2024-10-27 02:30:00 CET');
  assert.deepEqual(times(simulate('*/15 * * * *', '2024-10-27 02:10:00 CET', '2024-10-27 03:00:00 CET')), ['02:15:00 CET', '02:30:00 CET', '02:45:00 CET', '03:00:00 CET']);
});

test('around both changes the result is later than "after" in time and in wall clock (never due at once)', () => {
  const specs = ['* * * * *', '*/7 * * * *', '0 * * * *', '30 2 * * *', '0,59 2,3 * * *', '* 2 * * *', '0 0 * * *', '30 2 31 3 *', '30 2 27 10 *'];
  const windows = [['2024-03-30 23:00:00 CET', '2024-03-31 04:00:00 CEST'], ['2024-10-26 23:00:00 CEST', '2024-10-27 04:00:00 CET']];
  for (const [from, to] of windows) {
    for (let t = at(from).getTime(); t <= at(to).getTime(); t += 97_000) {
      for (const spec of specs) {
        const after = new Date(t);
        const r = nextRunAt(spec, after);
        const where = `'${spec}' after ${berlin(after)} → ${berlin(r)}`;
        assert.ok(r.getTime() > t, where);
        assert.ok(wall(r) > wall(after), where);
        assert.equal(r.getSeconds(), 0, where);
      }
    }
  }
});

// --- equivalence with kivitendo's literal algorithm outside DST (cron.md §4, §4.3) -------------
//
// A zone-free transcription of §4.1/§4.2 on wall times (a day without DST change behaves like
// this in every zone). Random specs and times must give its result, except for the cascade
// overshoot (only possible when "now" itself matches, months are restricted and so are days).

function kivitendoNext(spec: CronSpec, now: WallTime): WallTime {
  const valid = (w: WallTime) => w % MINUTE_MS === 0 && matchesWallTime(spec, w);
  let d = now;
  do d = valid(d) ? cascade(spec, d) : search(spec, d);
  while (!valid(d));
  return d;
}

const truncMonth = (w: WallTime) => { const f = civilFields(w); return wallTimeOf(f.year, f.month, 1); };
const truncDay = (w: WallTime) => { const f = civilFields(w); return wallTimeOf(f.year, f.month, f.day); };
const truncHour = (w: WallTime) => { const f = civilFields(w); return wallTimeOf(f.year, f.month, f.day, f.hour); };
const truncMinute = (w: WallTime) => Math.floor(w / MINUTE_MS) * MINUTE_MS;
const addMonth = (w: WallTime) => { const d = new Date(w); d.setUTCMonth(d.getUTCMonth() + 1); return d.getTime(); };

function search(spec: CronSpec, start: WallTime): WallTime {
  const days = (w: WallTime) => { const f = civilFields(w); return dayRule(spec, f.day, f.isoWeekday); };
  let d = start % MINUTE_MS === 0 ? start : truncMinute(start) + MINUTE_MS;
  const f = civilFields(d);
  if (!spec.month.has.has(f.month)) d = truncMonth(d);
  else if (!days(d)) d = truncDay(d);
  else if (!spec.hour.has.has(f.hour)) d = truncHour(d);
  else d = truncMinute(d);
  while (!matchesWallTime(spec, d)) {
    while (!spec.month.has.has(civilFields(d).month)) d = addMonth(d);
    const dayOrig = civilFields(d).day;
    while (!days(d)) d += 24 * 60 * MINUTE_MS;
    if (civilFields(d).day < dayOrig) { d = truncMonth(d); continue; }
    const hourOrig = civilFields(d).hour;
    while (!spec.hour.has.has(civilFields(d).hour)) d += 60 * MINUTE_MS;
    if (civilFields(d).hour < hourOrig) { d = truncDay(d); continue; }
    const minOrig = civilFields(d).minute;
    while (!spec.minute.has.has(civilFields(d).minute)) d += MINUTE_MS;
    if (civilFields(d).minute < minOrig) { d = truncHour(d); continue; }
  }
  return d;
}

function dayRule(spec: CronSpec, day: number, dow: number): boolean {
  const a = spec.dayOfMonth.has.has(day);
  const b = spec.dayOfWeek.has.has(dow);
  return spec.dayRule === 'dayOfMonth' ? a : spec.dayRule === 'dayOfWeek' ? b : a || b;
}

function succ(list: readonly number[], v: number): number {
  const i = list.lastIndexOf(v);
  return list[(i + 1) % list.length];
}

function cascade(spec: CronSpec, d: WallTime): WallTime {
  const f = civilFields(d);
  let [lm, lh, ld, lmo, y] = [f.minute, f.hour, f.day, f.month, f.year];
  let [nm, nh, nd, nmo] = [lm, lh, ld, lmo];
  for (;;) {
    nm = succ(spec.minute.values, lm);
    if (nm <= lm) {
      nh = succ(spec.hour.values, lh);
      if (nh <= lh) {
        let failed = false;
        try { nd = nextDay(spec, y, lmo, ld); } catch { failed = true; }
        if (failed || nd <= ld) {
          nmo = succ(spec.month.values, lmo);
          if (nmo <= lmo) y += 1;
          lmo = nmo;
        }
        ld = nd;
      }
      lh = nh;
    }
    lm = nm;
    const w = wallTimeOf(y, nmo, nd, nh, nm);
    if (civilFields(w).day === nd) return w; // else: no such date (Feb 30), advance again
  }
}

function nextDay(spec: CronSpec, y: number, m: number, day: number): number {
  let c = wallTimeOf(y, m, day);
  if (civilFields(c).day !== day) throw new Error('invalid date');
  do c += 24 * 60 * MINUTE_MS;
  while (!dayRule(spec, civilFields(c).day, civilFields(c).isoWeekday));
  return civilFields(c).day;
}

/** A §7 "now"/"next" text as a wall time (only for days without a DST change). */
function wallOfText(text: string): WallTime {
  return wallTimeAt(at(text).getTime());
}

test('the transcription reproduces kivitendo\'s results of §7 E1–E24, including the E20 overshoot', () => {
  for (const e of EXAMPLES.slice(0, 24)) {
    const expected = e.fixed?.kivitendo ?? e.next;
    const spec = parseCronSpec(e.spec);
    assert.equal(kivitendoNext(spec, wallOfText(e.now)), wallOfText(expected), e.id);
  }
});

/** Small deterministic PRNG (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomField(rnd: () => number, min: number, max: number): string {
  const n = () => min + Math.floor(rnd() * (max - min + 1));
  const forms = [
    () => '*', () => '*', () => `*/${1 + Math.floor(rnd() * 12)}`, () => `${n()}`, () => `${n()},${n()}`,
    () => { const a = n(); return `${a}-${Math.min(max, a + Math.floor(rnd() * 6))}`; },
    () => { const a = n(); return `${a}-${max}/${1 + Math.floor(rnd() * 4)}`; },
    () => `!${n()}`, () => `>${n()}`, () => `<${n()}`, () => `>${n()},!${n()}`,
  ];
  return forms[Math.floor(rnd() * forms.length)]();
}

test('outside DST changes: same next run as kivitendo\'s algorithm for 3000 random specs and times, except the cascade overshoot', () => {
  const rnd = random(20240331);
  let compared = 0;
  let overshoots = 0;
  for (let i = 0; i < 3000; i++) {
    const text = [randomField(rnd, 0, 59), randomField(rnd, 0, 23), randomField(rnd, 1, 31), randomField(rnd, 1, 12), randomField(rnd, 0, 7)].join(' ');
    if (validateCronSpec(text) !== undefined) continue;
    const spec = parseCronSpec(text);
    // A random wall time (seconds 0 half of the time), then a chain of matches (cascade path).
    let now = wallTimeOf(2000 + Math.floor(rnd() * 30), 1, 1) + Math.floor(rnd() * 365 * 24 * 60) * MINUTE_MS + (rnd() < 0.5 ? 0 : 1000 * (1 + Math.floor(rnd() * 59)));
    for (let k = 0; k < 4; k++) {
      const ours = nextMatchingWallTime(spec, truncMinute(now) + MINUTE_MS);
      const theirs = kivitendoNext(spec, now);
      compared++;
      if (ours !== theirs) {
        const where = `'${text}' after ${new Date(now).toISOString()}: ours ${new Date(ours).toISOString()}, kivitendo ${new Date(theirs).toISOString()}`;
        // Overshoot: kivitendo's cascade from a matching time with restricted months lands later.
        const overshootPossible = matchesWallTime(spec, now) && now % MINUTE_MS === 0 && spec.month.has.size < 12;
        assert.ok(overshootPossible && theirs > ours, where);
        overshoots++;
      }
      now = ours;
    }
  }
  assert.ok(compared > 2000, `only ${compared} comparisons`);
  assert.ok(overshoots > 0, 'the random specs should hit the cascade overshoot at least once');
});

test('the wall-time search is what nextRunAt uses on an ordinary day', () => {
  const spec = parseCronSpec('*/15 9-17 * * 1-5');
  const after = at('2024-05-10 17:45:00 CEST');
  assert.equal(new Date(nextMatchingWallTime(spec, wallTimeAt(after.getTime()) + MINUTE_MS)).toISOString(), '2024-05-13T09:00:00.000Z');
});

// --- steps of 0, checked against kivitendo's parser itself ----------------------------------------

/**
 * Runs kivitendo's parser (DateTime::Event::Cron on Set::Crontab, Debian's
 * libdatetime-event-cron-perl, as SL::DB::BackgroundJob uses it) on each spec: new_from_cron, then
 * three times next() from `from` (local wall clock). Returns per spec the three wall times or the
 * error text without Perl's " at FILE line N." suffix.
 */
function kivitendoParser(specs: string[], from: string): Record<string, string[] | string> {
  const script = `
    use strict; use DateTime; use DateTime::Event::Cron;
    my @f = split /[- :]/, shift @ARGV;
    for my $spec (@ARGV) {
      my $d = DateTime->new(year => $f[0], month => $f[1], day => $f[2], hour => $f[3], minute => $f[4], second => $f[5], time_zone => 'local');
      my @out = eval { my $c = DateTime::Event::Cron->new_from_cron($spec); map { $d = $c->next($d); $d->strftime('%Y-%m-%d %H:%M:%S') } 1 .. 3 };
      my $err = $@; $err =~ s/ at \\S+ line \\d+\\.?\\n?$//s; $err =~ s/\\n$//;
      print "$spec\\t", (@out ? join(',', @out) : "error: $err"), "\\n";
    }`;
  const r = spawnSync('perl', ['-e', script, from, ...specs], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kivitendo's cron parser could not be run (Debian package libdatetime-event-cron-perl missing?): ${r.stderr}`);
  const out: Record<string, string[] | string> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const [spec, result] = line.split('\t');
    out[spec] = result.startsWith('error: ') ? result.slice(7) : result.split(',');
  }
  assert.deepEqual(Object.keys(out).sort(), [...specs].sort(), r.stdout + r.stderr);
  return out;
}

function ours(spec: string, from: string): string[] | string {
  try {
    let d = parseWall(from);
    return [1, 2, 3].map(() => wall((d = nextRunAt(spec, d))));
  } catch (e) {
    if (e instanceof CronSyntaxError) return e.reason;
    throw e;
  }
}

function parseWall(text: string): Date {
  const [y, mo, d, h, mi, s] = text.split(/[- :]/).map(Number);
  return new Date(y, mo - 1, d, h, mi, s);
}

test('a step of 0 is what kivitendo makes of it: "/0" means no step, "/00" is refused ("Illegal modulus zero")', () => {
  const specs = [
    '*/0 * * * *', '0 */0 * * *', '1-10/0 * * * *', '5/0 * * * *', '* * */0 * *', '*/0 */0 */0 */0 */0',
    '*/00 * * * *', '0 */000 * * *', '0 0 */00 * *', '3/00 * * * *', '1-10/00 * * * *',
    // "/00" only fails where the element lists values: not after !N, <N, >N or an empty range.
    '!5/00 * * * *', '>50/00 * * * *', '5-2/00,7 * * * *',
    // Which error comes first: a field is expanded (step error) before it is range-checked.
    '*/00 99 * * *', '99 */00 * * *', '*/01 * * * *', '*/060 * * * *',
  ];
  const from = '2026-05-12 09:17:30';
  const theirs = kivitendoParser(specs, from);
  assert.equal(theirs['*/00 * * * *'], 'Illegal modulus zero', 'kivitendo refuses */00');
  assert.deepEqual(theirs['*/0 * * * *'], ['2026-05-12 09:18:00', '2026-05-12 09:19:00', '2026-05-12 09:20:00'], 'kivitendo runs */0 every minute');
  for (const spec of specs) assert.deepEqual(ours(spec, from), theirs[spec], spec);
});
