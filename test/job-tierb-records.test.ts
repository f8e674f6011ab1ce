// Tier B jobs that only change records: Test, SetClosedTo, SetNumberRange, CloseQuotations,
// CloseProjectsBelongingToClosedSalesOrders. Each test uses rows it creates and checks the rows,
// the history row and the result text.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Client } from 'pg';
import { createInstallation, type Installation } from './harness/installation';
import { runJob } from './harness/jobs';

let inst: Installation;
before(async () => {
  inst = await createInstallation({
    users: [{ login: 'taskserver' }, { login: 'english', settings: { countrycode: 'en' } }],
    clients: [{ name: 'A' }, { name: 'B' }, { name: 'C' }, { name: 'E', taskServerLogin: 'english' }],
  });
  // kivitendo uses a user's countrycode only if ROOT/locale/<code> exists.
  fs.mkdirSync(path.join(inst.root, 'locale', 'en'), { recursive: true });
});
after(() => inst.remove());

const withDb = <T>(client: string, fn: (db: Client) => Promise<T>) => inst.withClientDb(client, fn);

const at = (y: number, m: number, d: number, h = 10, mi = 0, s = 0) => new Date(y, m - 1, d, h, mi, s);

// ---- Test ----

test('Test: result text from data, level-0 log line, unknown key ignored with a warning (as kivitendo ignores it)', async () => {
  const r = await runJob(inst, 'A', { packageName: 'Test', data: { result: 'hello' } });
  assert.equal(r.history.status, 'success');
  assert.equal(r.history.result, 'hello');
  assert.ok(r.log.some((l) => /Test job ID \d+ is being executed on node test-node\./.test(l)));

  const n = await runJob(inst, 'A', { packageName: 'Test', data: '---\nresult:\n' });
  assert.equal(n.history.status, 'success');
  assert.equal(n.history.result, null);

  const stray = await runJob(inst, 'A', { packageName: 'Test', data: { reslt: 'x' } });
  assert.equal(stray.history.status, 'success', stray.history.error ?? '');
  assert.equal(stray.history.result, '1');
  assert.ok(stray.log.includes(`WARN BackgroundJob ID ${stray.job.id}: Test: unknown key 'reslt' in data ignored (kivitendo's Test does not read it either)`), stray.log.join('\n'));

  const list = await runJob(inst, 'A', { packageName: 'Test', data: { exception: ['a'] } });
  assert.equal(list.history.status, 'failure');
  assert.match(list.history.error!, /'exception'/);
});

// ---- SetClosedTo ----

async function closedTo(client: string): Promise<string | null> {
  return withDb(client, async (db) => (await db.query(`SELECT to_char(closedto, 'YYYY-MM-DD') AS c FROM defaults`)).rows[0].c);
}

test('SetClosedTo: default closes the books up to the last day of the month before last', async () => {
  await withDb('A', (db) => db.query('UPDATE defaults SET closedto = NULL'));
  const r = await runJob(inst, 'A', { packageName: 'SetClosedTo', now: at(2026, 3, 10, 0, 1) });
  assert.equal(r.history.status, 'success');
  assert.equal(r.history.result, '1');
  // 2026-03-10 − 10 days = 2026-02-28 (last day of Feb) − 1 month = 2026-01-31 (end of month kept)
  assert.equal(await closedTo('A'), '2026-01-31');
});

test('SetClosedTo: never moves closedto back; custom months/days; 0 falls back to the default', async () => {
  await withDb('A', (db) => db.query(`UPDATE defaults SET closedto = '2026-06-30'`));
  await runJob(inst, 'A', { packageName: 'SetClosedTo', now: at(2026, 7, 15), data: { subtract_month: 2, subtract_days: 5 } });
  assert.equal(await closedTo('A'), '2026-06-30');

  await runJob(inst, 'A', { packageName: 'SetClosedTo', now: at(2026, 9, 15), data: { subtract_month: 0, subtract_days: '3' } });
  // 2026-09-15 − 3 days = 09-12, − 1 month (0 → default 1) = 08-12
  assert.equal(await closedTo('A'), '2026-08-12');
});

test('SetClosedTo: negative or non-integer values fail; an unknown key is ignored with a warning', async () => {
  const neg = await runJob(inst, 'A', { packageName: 'SetClosedTo', data: { subtract_days: -1 } });
  assert.equal(neg.history.status, 'failure');
  assert.equal(neg.history.error, 'No integer number for days or month');
  const txt = await runJob(inst, 'A', { packageName: 'SetClosedTo', data: { subtract_month: 'x' } });
  assert.equal(txt.history.status, 'failure');
  assert.match(txt.history.error!, /'subtract_month'/);
  const unknown = await runJob(inst, 'A', { packageName: 'SetClosedTo', data: { months: 1 } });
  assert.equal(unknown.history.status, 'success', unknown.history.error ?? '');
  assert.ok(unknown.log.some((l) => l.startsWith(`WARN BackgroundJob ID ${unknown.job.id}: SetClosedTo: unknown key 'months' in data ignored`)), unknown.log.join('\n'));
});

// ---- SetNumberRange ----

const NUMBER_COLUMNS = [
  'invnumber', 'cnnumber', 'soinumber', 'pqinumber', 'sonumber', 'ponumber', 'pocnumber', 'sqnumber', 'rfqnumber',
  'sdonumber', 'pdonumber', 'sudonumber', 'rdonumber', 's_reclamation_record_number', 'p_reclamation_record_number',
];

async function setNumbers(client: string, values: Record<string, string | null>) {
  await withDb(client, (db) =>
    db.query(`UPDATE defaults SET ${NUMBER_COLUMNS.map((c, i) => `${c} = $${i + 1}`).join(', ')}`, NUMBER_COLUMNS.map((c) => (c in values ? values[c] : values['*']))),
  );
}

async function numbers(client: string): Promise<Record<string, string>> {
  return withDb(client, async (db) => (await db.query(`SELECT ${NUMBER_COLUMNS.join(', ')} FROM defaults`)).rows[0]);
}

test('SetNumberRange: yearly mode keeps prefixes and padding', async () => {
  await setNumbers('B', { '*': '0', invnumber: 'RE2019456', sonumber: 'AB-17', sqnumber: 'ANG' });
  const r = await runJob(inst, 'B', { packageName: 'SetNumberRange', now: at(2024, 12, 31, 23, 59), data: { multiplier: 1000 } });
  assert.equal(r.history.status, 'success');
  assert.equal(r.history.result, '1');
  const n = await numbers('B');
  assert.equal(n.invnumber, 'RE2025000');
  assert.equal(n.sonumber, 'AB-2025000');
  assert.equal(n.sqnumber, 'ANG2025000');
  assert.equal(n.cnnumber, '2025000');

  await setNumbers('B', { '*': '0', invnumber: 'RE2019456' });
  await runJob(inst, 'B', { packageName: 'SetNumberRange', now: at(2025, 1, 1, 0, 5), data: { current_year: 1, digits_year: 2, result: 'done' } });
  const m = await numbers('B');
  assert.equal(m.invnumber, 'RE0002500');
  assert.equal(m.rdonumber, '2500');
});

test('SetNumberRange: monthly mode with strftime and postfix', async () => {
  await setNumbers('B', { '*': '7' });
  await runJob(inst, 'B', { packageName: 'SetNumberRange', now: at(2026, 4, 1, 0, 1), data: { monthly: 1 } });
  assert.equal((await numbers('B')).invnumber, '26-04-000');
  await runJob(inst, 'B', { packageName: 'SetNumberRange', now: at(2026, 4, 1, 0, 1), data: { monthly: true, monthly_strftime: '%Y/%m/', monthly_postfix: 'X' } });
  // PrefixedNumber appends a 0 to a text without digits at the end.
  assert.equal((await numbers('B')).p_reclamation_record_number, '2026/04/X0');
});

test('SetNumberRange: invalid options and an empty number column fail without changes', async () => {
  await setNumbers('B', { '*': '5' });
  const d = await runJob(inst, 'B', { packageName: 'SetNumberRange', data: { digits_year: 3 } });
  assert.equal(d.history.error, 'No valid input for digits_year should be 2 or 4.');
  const m = await runJob(inst, 'B', { packageName: 'SetNumberRange', data: { multiplier: 15 } });
  assert.equal(m.history.error, 'No valid input for multiplier should be 10, 100, .., 1000000');
  const t = await runJob(inst, 'B', { packageName: 'SetNumberRange', data: { multiplier: [1] } });
  assert.match(t.history.error!, /'multiplier'/);

  await setNumbers('B', { '*': '5', sudonumber: null });
  const nul = await runJob(inst, 'B', { packageName: 'SetNumberRange', now: at(2026, 12, 31, 23, 59) });
  assert.equal(nul.history.status, 'failure');
  assert.match(nul.history.error!, /No 'number' set.*sudonumber/);
  assert.equal((await numbers('B')).invnumber, '5');
});

// ---- CloseQuotations ----

async function insertOe(db: Client, o: { type: string; quonumber: string | null; transdate: string; closed?: boolean | null; ordnumber?: string; globalproject_id?: number }) {
  const r = await db.query(
    `INSERT INTO oe (ordnumber, quonumber, transdate, closed, record_type, taxzone_id, currency_id, globalproject_id)
     VALUES ($1, $2, $3, $4, $5, 4, 1, $6) RETURNING id`,
    [o.ordnumber ?? '', o.quonumber, o.transdate, o.closed === undefined ? false : o.closed, o.type, o.globalproject_id ?? null],
  );
  return r.rows[0].id as number;
}

test('CloseQuotations: closes old open quotations, reports their numbers; dry run changes nothing', async () => {
  const ids = await withDb('C', async (db) => ({
    oldSq: await insertOe(db, { type: 'sales_quotation', quonumber: 'A-1', transdate: '2024-05-01' }),
    oldSqNull: await insertOe(db, { type: 'sales_quotation', quonumber: 'A-2', transdate: '2025-06-10', closed: null }),
    newSq: await insertOe(db, { type: 'sales_quotation', quonumber: 'A-3', transdate: '2025-06-11' }),
    oldRfq: await insertOe(db, { type: 'request_quotation', quonumber: 'P-1', transdate: '2023-01-01' }),
    closedRfq: await insertOe(db, { type: 'request_quotation', quonumber: 'P-2', transdate: '2023-01-01', closed: true }),
    order: await insertOe(db, { type: 'sales_order', quonumber: null, ordnumber: 'SO-1', transdate: '2020-01-01' }),
  }));
  const closed = async () =>
    withDb('C', async (db) => Object.fromEntries((await db.query('SELECT id, closed FROM oe')).rows.map((r) => [r.id, r.closed])));

  const dry = await runJob(inst, 'C', { packageName: 'CloseQuotations', now: at(2026, 6, 10, 12), data: { dry_run: 1 } });
  assert.equal(dry.history.result, 'Preisanfragen noch nicht geschlossen: P-1 Angebote noch nicht geschlossen: A-1, A-2');
  assert.equal((await closed())[ids.oldSq], false);

  const r = await runJob(inst, 'C', { packageName: 'CloseQuotations', now: at(2026, 6, 10, 12) });
  assert.equal(r.history.status, 'success');
  assert.equal(r.history.result, 'Preisanfragen geschlossen: P-1 Angebote geschlossen: A-1, A-2');
  const c = await closed();
  assert.equal(c[ids.oldSq], true);
  assert.equal(c[ids.oldSqNull], true);
  assert.equal(c[ids.newSq], false);
  assert.equal(c[ids.oldRfq], true);
  assert.equal(c[ids.order], false);

  const again = await runJob(inst, 'C', { packageName: 'CloseQuotations', now: at(2026, 6, 10, 12), data: { years: 0 } });
  assert.equal(again.history.result, 'Preisanfragen geschlossen:  Angebote geschlossen: A-3');
});

test('CloseQuotations: a quotation without number gets the next number of its range', async () => {
  await withDb('C', async (db) => {
    await db.query(`UPDATE defaults SET sqnumber = 'ANG-0009'`);
    await insertOe(db, { type: 'sales_quotation', quonumber: 'ANG-0010', transdate: '2026-06-10', closed: true });
    await insertOe(db, { type: 'sales_quotation', quonumber: null, transdate: '2020-01-01' });
  });
  const r = await runJob(inst, 'E', { packageName: 'CloseQuotations', now: at(2026, 6, 10, 12) });
  assert.equal(r.history.result, 'Request quotations closed:  Sales quotations closed: ');
  const r2 = await runJob(inst, 'C', { packageName: 'CloseQuotations', now: at(2026, 6, 10, 12) });
  assert.equal(r2.history.result, 'Preisanfragen geschlossen:  Angebote geschlossen: ');
  await withDb('C', async (db) => {
    const q = await db.query(`SELECT quonumber, closed FROM oe WHERE transdate = '2020-01-01' AND record_type = 'sales_quotation'`);
    assert.deepEqual(q.rows, [{ quonumber: 'ANG-0011', closed: true }]);
    assert.equal((await db.query('SELECT sqnumber FROM defaults')).rows[0].sqnumber, 'ANG-0011');
  });
});

test('CloseQuotations: bad years fails naming the key', async () => {
  const r = await runJob(inst, 'C', { packageName: 'CloseQuotations', data: { years: 'many' } });
  assert.equal(r.history.status, 'failure');
  assert.match(r.history.error!, /'years'/);
});

// ---- CloseProjectsBelongingToClosedSalesOrders ----

test('CloseProjectsBelongingToClosedSalesOrders: projects of closed sales orders get the status and are deactivated', async () => {
  const p = await withDb('A', async (db) => {
    const mk = async (num: string, statusName: string) =>
      (
        await db.query(
          `INSERT INTO project (projectnumber, description, project_type_id, project_status_id)
           VALUES ($1, $1, (SELECT id FROM project_types ORDER BY id LIMIT 1), (SELECT id FROM project_statuses WHERE name = $2)) RETURNING id`,
          [num, statusName],
        )
      ).rows[0].id as number;
    const ids = { closedOrder: await mk('P1', 'running'), openOrder: await mk('P2', 'running'), alreadyDone: await mk('P3', 'done'), quotation: await mk('P4', 'running') };
    await insertOe(db, { type: 'sales_order', ordnumber: 'S1', quonumber: null, transdate: '2026-01-01', closed: true, globalproject_id: ids.closedOrder });
    await insertOe(db, { type: 'sales_order', ordnumber: 'S2', quonumber: null, transdate: '2026-01-01', closed: false, globalproject_id: ids.openOrder });
    await insertOe(db, { type: 'sales_order', ordnumber: 'S3', quonumber: null, transdate: '2026-01-01', closed: true, globalproject_id: ids.alreadyDone });
    await insertOe(db, { type: 'sales_quotation', quonumber: 'Q1', transdate: '2026-01-01', closed: true, globalproject_id: ids.quotation });
    return ids;
  });
  const state = () =>
    withDb('A', async (db) =>
      Object.fromEntries(
        (await db.query('SELECT p.id, s.name, p.active FROM project p JOIN project_statuses s ON s.id = p.project_status_id')).rows.map((r) => [r.id, `${r.name}/${r.active}`]),
      ),
    );

  const r = await runJob(inst, 'A', { packageName: 'CloseProjectsBelongingToClosedSalesOrders' });
  assert.equal(r.history.status, 'success');
  assert.equal(r.history.result, '1');
  let s = await state();
  assert.equal(s[p.closedOrder], 'done/false');
  assert.equal(s[p.openOrder], 'running/true');
  assert.equal(s[p.alreadyDone], 'done/true');
  assert.equal(s[p.quotation], 'running/true');

  await withDb('A', (db) => db.query(`UPDATE project SET active = true`));
  await runJob(inst, 'A', { packageName: 'CloseProjectsBelongingToClosedSalesOrders', data: { new_status: 'planning', set_inactive: 0 } });
  s = await state();
  assert.equal(s[p.closedOrder], 'planning/true');
  assert.equal(s[p.alreadyDone], 'planning/true');

  // A key without a value is "given": Perl sees undef and does not deactivate.
  await runJob(inst, 'A', { packageName: 'CloseProjectsBelongingToClosedSalesOrders', data: '---\nset_inactive:\n' });
  s = await state();
  assert.equal(s[p.closedOrder], 'done/true');
});

test('CloseProjectsBelongingToClosedSalesOrders: unknown status and wrong types fail', async () => {
  const r = await runJob(inst, 'A', { packageName: 'CloseProjectsBelongingToClosedSalesOrders', data: { new_status: 'finished' } });
  assert.equal(r.history.status, 'failure');
  assert.equal(r.history.error, "No project status named 'finished' found!");
  const t = await runJob(inst, 'A', { packageName: 'CloseProjectsBelongingToClosedSalesOrders', data: { new_status: ['done'] } });
  assert.match(t.history.error!, /'new_status'/);
});
