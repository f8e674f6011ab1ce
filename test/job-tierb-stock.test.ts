// Tier B jobs on master data, stock and files: SetBankAccountsMasterData, InventoryClearAll,
// RemoveInvalidFileEntries.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { Client } from 'pg';
import YAML from 'yaml';
import { createInstallation, type Installation } from './harness/installation';
import { runJob } from './harness/jobs';

let inst: Installation;
before(async () => {
  inst = await createInstallation({ clients: [{ name: 'Bank' }, { name: 'Stock' }, { name: 'Files' }, { name: 'Webdav' }] });
});
after(() => inst.remove());

const withDb = <T>(client: string, fn: (db: Client) => Promise<T>) => inst.withClientDb(client, fn);

const at = (y: number, m: number, d: number, h = 10, mi = 0) => new Date(y, m - 1, d, h, mi, 0);

// ---- SetBankAccountsMasterData ----

interface Vc {
  id: number;
}

async function setUpBank(db: Client) {
  // The links need acc_trans rows that play no part in the job; skip the foreign keys for the setup.
  await db.query(`SET session_replication_role = replica`);
  await db.query(`INSERT INTO bank_accounts (id, chart_id, sortkey, name) VALUES (900, 1, 1, 'Bank')`);
  let bt = 0;
  const customer = async (name: string, extra: { iban?: string; mandate?: string; number?: string | null } = {}) =>
    (
      await db.query<Vc>(
        `INSERT INTO customer (name, customernumber, iban, mandate_date_of_signature, taxzone_id, currency_id, country_id)
         VALUES ($1, $2, $3, $4, 4, 1, 57) RETURNING id`,
        [name, extra.number === undefined ? `K-${name}` : extra.number, extra.iban ?? null, extra.mandate ?? null],
      )
    ).rows[0].id;
  const vendor = async (name: string, iban?: string) =>
    (
      await db.query<Vc>(`INSERT INTO vendor (name, vendornumber, iban, taxzone_id, currency_id, country_id) VALUES ($1, $2, $3, 4, 1, 57) RETURNING id`, [
        name,
        `L-${name}`,
        iban ?? null,
      ])
    ).rows[0].id;
  const paidBy = async (arap: 'ar' | 'ap', vcId: number, transdate: string, account: string | null, bankCode: string | null, paid = true) => {
    const doc = (
      await db.query(
        `INSERT INTO ${arap} (invnumber, ${arap === 'ar' ? 'customer_id' : 'vendor_id'}, transdate, amount, paid, taxzone_id, currency_id)
         VALUES ($1, $2, $3, 100, $4, 4, 1) RETURNING id`,
        [`INV-${arap}-${vcId}-${transdate}`, vcId, transdate, paid ? 100 : 50],
      )
    ).rows[0].id;
    bt += 1;
    await db.query(
      `INSERT INTO bank_transactions (id, remote_bank_code, remote_account_number, transdate, valutadate, amount, local_bank_account_id, currency_id)
       VALUES ($1, $2, $3, $4, $4, 100, 900, 1)`,
      [bt, bankCode, account, transdate],
    );
    await db.query(`INSERT INTO bank_transaction_acc_trans (bank_transaction_id, acc_trans_id, ${arap}_id) VALUES ($1, $2, $3)`, [bt, bt, doc]);
  };
  const ids = {
    plain: await customer('Plain'),
    withIban: await customer('HasIban', { iban: 'DE00OLD' }),
    mandate: await customer('Mandate', { mandate: '2025-01-01' }),
    old: await customer('Old'),
    unpaid: await customer('Unpaid'),
    noNumber: await customer('NoNumber', { number: '' }),
    supplier: await vendor('Supplier'),
  };
  await paidBy('ar', ids.plain, '2026-05-01', 'DE11PLAIN', 'BICPLAIN');
  await paidBy('ar', ids.withIban, '2026-05-01', 'DE22NEW', 'BICNEW');
  await paidBy('ar', ids.mandate, '2026-05-01', 'DE33MANDATE', 'BICM');
  await paidBy('ar', ids.old, '2025-01-01', 'DE44OLD', 'BICO');
  await paidBy('ar', ids.unpaid, '2026-05-01', 'DE55UNPAID', 'BICU', false);
  await paidBy('ar', ids.noNumber, '2026-05-01', 'DE66NONUM', null);
  await paidBy('ap', ids.supplier, '2026-05-01', 'DE77SUP', 'BICSUP');
  await db.query(`UPDATE defaults SET customernumber = '1000'`);
  await db.query(`SET session_replication_role = DEFAULT`);
  return ids;
}

async function bankState(db: Client) {
  const c = await db.query(`SELECT name, iban, bic, customernumber AS number FROM customer ORDER BY name`);
  const v = await db.query(`SELECT name, iban, bic, vendornumber AS number FROM vendor ORDER BY name`);
  return Object.fromEntries([...c.rows, ...v.rows].map((r) => [r.name, `${r.iban ?? '-'}/${r.bic ?? '-'}/${r.number}`]));
}

test('SetBankAccountsMasterData: dry run reports, real run sets IBAN/BIC, overwrite replaces, mandates are kept', async () => {
  await withDb('Bank', setUpBank);
  const now = at(2026, 6, 15);

  const dry = await runJob(inst, 'Bank', { packageName: 'SetBankAccountsMasterData', now, data: { dry_run: 1 } });
  assert.equal(dry.history.status, 'success');
  assert.match(dry.history.result!, /^DRY RUN Updates: Customer: /);
  const before = await withDb('Bank', bankState);
  assert.equal(before.Plain, '-/-/K-Plain');

  const r = await runJob(inst, 'Bank', { packageName: 'SetBankAccountsMasterData', now });
  assert.equal(r.history.status, 'success');
  const [cust, vend] = r.history.result!.replace(/^Updates: Customer: /, '').split('\n Vendors: ');
  assert.deepEqual(cust.split(',').sort(), ['NoNumber -> DE66NONUM', 'Plain -> DE11PLAIN']);
  assert.equal(vend, 'Supplier -> DE77SUP');
  assert.equal(dry.history.result, `DRY RUN ${r.history.result}`);
  const s = await withDb('Bank', bankState);
  assert.equal(s.Plain, 'DE11PLAIN/BICPLAIN/K-Plain');
  assert.equal(s.HasIban, 'DE00OLD/-/K-HasIban');
  assert.equal(s.Mandate, '-/-/K-Mandate');
  assert.equal(s.Old, '-/-/K-Old');
  assert.equal(s.Unpaid, '-/-/K-Unpaid');
  // The customer's save hook draws an empty customer number from the range.
  assert.equal(s.NoNumber, 'DE66NONUM/-/1001');
  assert.equal(s.Supplier, 'DE77SUP/BICSUP/L-Supplier');

  const o = await runJob(inst, 'Bank', { packageName: 'SetBankAccountsMasterData', now, data: { overwrite: 1, months: 24 } });
  assert.match(o.history.result!, /HasIban -> DE22NEW/);
  assert.match(o.history.result!, /Old -> DE44OLD/);
  const s2 = await withDb('Bank', bankState);
  assert.equal(s2.HasIban, 'DE22NEW/BICNEW/K-HasIban');
  assert.equal(s2.Old, 'DE44OLD/BICO/K-Old');
  assert.equal(s2.Mandate, '-/-/K-Mandate');
});

test('SetBankAccountsMasterData: invalid values fail with kivitendo\'s messages or naming the key', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ months: -3 }, /^No valid integer for months$/],
    [{ overwrite: 2 }, /^No valid value for overwrite$/],
    [{ dry_run: 5 }, /^No valid value for dry_run$/],
    [{ months: 'half' }, /'months'/],
  ];
  for (const [data, re] of cases) {
    const r = await runJob(inst, 'Bank', { packageName: 'SetBankAccountsMasterData', data });
    assert.equal(r.history.status, 'failure');
    assert.match(r.history.error!, re);
  }
  // A misspelt key is ignored with a warning, as kivitendo ignores it.
  const stray = await runJob(inst, 'Bank', { packageName: 'SetBankAccountsMasterData', data: { month: 3, dry_run: 1 } });
  assert.equal(stray.history.status, 'success', stray.history.error ?? '');
  assert.ok(stray.log.some((l) => l.startsWith(`WARN BackgroundJob ID ${stray.job.id}: SetBankAccountsMasterData: unknown key 'month' in data ignored`)), stray.log.join('\n'));
});

// ---- InventoryClearAll ----

async function setUpStock(db: Client) {
  await db.query(`INSERT INTO transfer_type (direction, description, sortkey) VALUES ('in', 'stock', 1), ('out', 'used', 2), ('in', 'correction', 3), ('out', 'correction', 4)`);
  const wh = async (name: string) => (await db.query(`INSERT INTO warehouse (description, sortkey, invalid) VALUES ($1, 1, false) RETURNING id`, [name])).rows[0].id as number;
  const bin = async (w: number, name: string) => (await db.query(`INSERT INTO bin (warehouse_id, description) VALUES ($1, $2) RETURNING id`, [w, name])).rows[0].id as number;
  const part = async (num: string, unit: string) =>
    (
      await db.query(
        `INSERT INTO parts (partnumber, description, unit, part_type, classification_id) VALUES ($1, $1, $2, 'part', (SELECT id FROM part_classifications ORDER BY id LIMIT 1)) RETURNING id`,
        [num, unit],
      )
    ).rows[0].id as number;
  const emp = (await db.query(`SELECT id FROM employee WHERE login = 'taskserver'`)).rows[0].id;
  const tt = async (dir: string, desc: string) => (await db.query(`SELECT id FROM transfer_type WHERE direction = $1 AND description = $2`, [dir, desc])).rows[0].id;
  const book = async (w: number, b: number, p: number, qty: string, charge = '', bestbefore: string | null = null) =>
    db.query(
      `INSERT INTO inventory (warehouse_id, bin_id, parts_id, qty, chargenumber, bestbefore, shippingdate, employee_id, trans_id, trans_type_id)
       VALUES ($1, $2, $3, $4, $5, $6, '2026-01-01', $7, nextval('id'), $8)`,
      [w, b, p, qty, charge, bestbefore, emp, Number(qty) > 0 ? await tt('in', 'stock') : await tt('out', 'used')],
    );
  const main = await wh('Hauptlager');
  const other = await wh('Nebenlager');
  const b1 = await bin(main, 'A1');
  const b2 = await bin(other, 'B1');
  const screw = await part('SCREW', 'Stck');
  const oil = await part('OIL', 'L');
  await book(main, b1, screw, '10');
  await book(main, b1, screw, '-4');
  await book(main, b1, screw, '2', 'CH1', '2027-01-01');
  await book(main, b1, oil, '1.5');
  await book(main, b1, oil, '-1.5');
  await book(other, b2, oil, '-2.25');
  return { main, other, b1, b2, screw, oil };
}

async function stockByPart(db: Client) {
  const r = await db.query(`SELECT p.partnumber, i.chargenumber, SUM(i.qty)::text AS qty FROM inventory i JOIN parts p ON p.id = i.parts_id GROUP BY 1, 2 ORDER BY 1, 2`);
  return r.rows.map((x) => `${x.partnumber}/${x.chargenumber}/${x.qty}`);
}

test('InventoryClearAll: refuses a correction_date other than today; dry run; clears a warehouse, then everything', async () => {
  const ids = await withDb('Stock', setUpStock);
  const now = at(2026, 3, 20, 18, 30);

  const missing = await runJob(inst, 'Stock', { packageName: 'InventoryClearAll', now });
  assert.equal(missing.history.error, 'No parameter correction_date given');
  const wrong = await runJob(inst, 'Stock', { packageName: 'InventoryClearAll', now, data: { correction_date: '20.03.2026' } });
  assert.equal(wrong.history.error, 'Parameter correction_date 20.03.2026 is not today 2026-03-20');
  const noWh = await runJob(inst, 'Stock', { packageName: 'InventoryClearAll', now, data: { correction_date: '2026-03-20', warehouse: 'Keller' } });
  assert.equal(noWh.history.error, 'Lager existiert nicht: Keller');

  const dry = await runJob(inst, 'Stock', { packageName: 'InventoryClearAll', now, data: '---\ncorrection_date: 2026-03-20\ndry_run: 1\n' });
  assert.equal(dry.history.status, 'success');
  assert.equal(
    dry.history.result,
    `Lager: 3 Buchungen noch nicht ausgeführt, um alle Lagerplätze zu leeren. Artikel: ${ids.screw} -6 Stck,${ids.screw} -2 Stck,${ids.oil} 2.25 L`,
  );

  const one = await runJob(inst, 'Stock', { packageName: 'InventoryClearAll', now, data: { correction_date: '2026-03-20', warehouse: 'Nebenlager', comment: 'Test' } });
  assert.equal(one.history.result, `Lager: 1 Buchungen ausgeführt, um alle Lagerplätze zu leeren. Artikel: ${ids.oil} 2.25 L`);
  await withDb('Stock', async (db) => {
    const rows = await db.query(
      `SELECT i.qty::text AS qty, t.direction, t.description, to_char(i.shippingdate, 'YYYY-MM-DD') AS d, i.comment, i.warehouse_id, i.bin_id,
              i.chargenumber, i.bestbefore, e.login, i.trans_id IS NOT NULL AS has_trans
         FROM inventory i JOIN transfer_type t ON t.id = i.trans_type_id JOIN employee e ON e.id = i.employee_id
        WHERE t.description = 'correction'`,
    );
    assert.deepEqual(rows.rows, [
      { qty: '2.25000', direction: 'in', description: 'correction', d: '2026-03-20', comment: 'Test', warehouse_id: ids.other, bin_id: ids.b2, chargenumber: '', bestbefore: null, login: 'taskserver', has_trans: true },
    ]);
  });

  const all = await runJob(inst, 'Stock', { packageName: 'InventoryClearAll', now, data: { correction_date: '2026-03-20' } });
  assert.equal(all.history.status, 'success');
  assert.match(all.history.result!, /^Lager: 2 Buchungen ausgeführt/);
  await withDb('Stock', async (db) => {
    assert.deepEqual(await stockByPart(db), ['OIL//0.00000', 'SCREW//0.00000', 'SCREW/CH1/0.00000']);
    const c = await db.query(`SELECT comment, t.direction, qty::text AS qty FROM inventory i JOIN transfer_type t ON t.id = i.trans_type_id WHERE t.description = 'correction' AND i.warehouse_id = $1 ORDER BY i.qty`, [ids.main]);
    assert.deepEqual(c.rows, [
      { comment: 'vor Inventur', direction: 'out', qty: '-6.00000' },
      { comment: 'vor Inventur', direction: 'out', qty: '-2.00000' },
    ]);
    // The parts' onhand follows through kivitendo's trigger.
    const onhand = await db.query(`SELECT onhand::text AS o FROM parts ORDER BY partnumber`);
    assert.deepEqual(onhand.rows.map((r) => r.o), ['0.00000', '0.00000']);
  });

  const bad = await runJob(inst, 'Stock', { packageName: 'InventoryClearAll', now, data: { correction_date: '2026-03-20', dry_run: [1] } });
  assert.match(bad.history.error!, /'dry_run'/);
});

// ---- RemoveInvalidFileEntries ----

async function insertFile(db: Client, name: string, backend: string, versions: number[]) {
  const id = (
    await db.query(
      `INSERT INTO files (id, object_id, object_type, file_name, file_type, mime_type, source, backend)
       VALUES (nextval('files_id_seq'), 1, 'part', $1, 'document', 'text/plain', 'uploaded', $2) RETURNING id`,
      [name, backend],
    )
  ).rows[0].id as number;
  for (const v of versions) {
    await db.query(`INSERT INTO file_versions (guid, file_id, version, file_location, doc_path, backend) VALUES ($1, $2, $3, 'x', 'x', $4)`, [
      `g-${id}-${v}`,
      id,
      v,
      backend,
    ]);
  }
  return id;
}

test('RemoveInvalidFileEntries: deletes rows whose file is missing, records the errors and status in data', async () => {
  inst.writeConfig({ paths: { document_path: './documents' } });
  const clientId = inst.clients.Files.id;
  const ids = await withDb('Files', async (db) => {
    await db.query(`UPDATE defaults SET doc_files = true`);
    return {
      ok: await insertFile(db, 'ok.txt', 'Filesystem', [1, 2]),
      missing: await insertFile(db, 'missing.txt', 'Filesystem', [1]),
      noVersion: await insertFile(db, 'nover.txt', 'Filesystem', []),
      webdav: await insertFile(db, 'dav.txt', 'Webdav', [1]),
    };
  });
  const dir = (id: number) => path.join(inst.root, 'documents', String(clientId), String(id % 1000).padStart(4, '0'), String(id));
  fs.mkdirSync(dir(ids.ok), { recursive: true });
  fs.writeFileSync(path.join(dir(ids.ok), `${ids.ok}_2`), 'content');

  const r = await runJob(inst, 'Files', { packageName: 'RemoveInvalidFileEntries' });
  assert.equal(r.history.status, 'success');
  assert.equal(r.history.result, '1');
  const data = YAML.parse(r.history.data!);
  assert.equal(data.status, 2);
  assert.deepEqual(data.file_errors, [
    `No file found at documents/${clientId}/${String(ids.missing % 1000).padStart(4, '0')}/${ids.missing}/${ids.missing}_1. Expected: missing.txt, file.id: ${ids.missing}`,
    `Could not find a file version for file with id ${ids.noVersion}`,
    'Dateimanagement-Subsystem "Webdav" nicht aktiviert',
  ]);
  assert.equal(r.job.data, r.history.data);
  await withDb('Files', async (db) => {
    assert.deepEqual((await db.query('SELECT id FROM files ORDER BY id')).rows, [{ id: ids.ok }]);
    assert.equal((await db.query('SELECT count(*)::int AS n FROM file_versions WHERE file_id = $1', [ids.missing])).rows[0].n, 0);
  });
});

test('RemoveInvalidFileEntries: a disabled Filesystem backend removes every row (kivitendo behaviour); Webdav is refused', async () => {
  inst.writeConfig({ paths: { document_path: './documents' } });
  await withDb('Webdav', async (db) => {
    await insertFile(db, 'a.txt', 'Filesystem', [1]);
  });
  const r = await runJob(inst, 'Webdav', { packageName: 'RemoveInvalidFileEntries', data: { file_errors: ['earlier'] } });
  assert.equal(r.history.status, 'success');
  assert.deepEqual(YAML.parse(r.history.data!).file_errors, ['earlier', 'Dateimanagement-Subsystem "Filesystem" nicht aktiviert']);
  await withDb('Webdav', async (db) => {
    assert.equal((await db.query('SELECT count(*)::int AS n FROM files')).rows[0].n, 0);
    await db.query(`UPDATE defaults SET doc_webdav = true`);
    await insertFile(db, 'b.txt', 'Webdav', [1]);
    await insertFile(db, 'c.txt', 'Filesystem', [1]);
  });
  const w = await runJob(inst, 'Webdav', { packageName: 'RemoveInvalidFileEntries' });
  assert.equal(w.history.status, 'failure');
  assert.match(w.history.error!, /Webdav storage backend are not supported.*nothing was deleted/);
  await withDb('Webdav', async (db) => assert.equal((await db.query('SELECT count(*)::int AS n FROM files')).rows[0].n, 2));

  const bad = await runJob(inst, 'Webdav', { packageName: 'RemoveInvalidFileEntries', data: { file_errors: 'x' } });
  assert.match(bad.history.error!, /'file_errors'/);
});
