// An error in the server's own SQL (SQLSTATE class 42: the schema lacks a column or table the native
// module writes) is never a success: the run fails with one line naming the package, PostgreSQL's
// message with the column, and the client's kivitendo; nothing is written. A data error while saving
// a record stays kivitendo's "success with an empty result".
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { loadGolden, prepareGolden } from './harness/golden';
import type { Installation } from './harness/installation';
import { runJob } from './harness/jobs';

const made: Installation[] = [];
after(() => made.forEach((i) => i.remove()));

test('CreatePeriodicInvoices on a schema without ar.tax_point_start: a failure row naming the column and the kivitendo version, not "success"', async () => {
  const { sql, now } = loadGolden('01-monthly-net');
  const { inst, db } = await prepareGolden(sql);
  made.push(inst);
  try {
    // The database still claims every 4.1.1 upgrade, so the native module is routed; its INSERT fails.
    await db.query('ALTER TABLE ar DROP COLUMN tax_point_start');
    const before = (await db.query('SELECT count(*)::int AS n FROM ar')).rows[0].n;
    const r = await runJob(inst, 'G', { jobId: 2, now });
    assert.equal(r.history.status, 'failure', `history: ${JSON.stringify(r.history)}`);
    assert.match(
      r.history.error ?? '',
      /^job package CreatePeriodicInvoices: the SQL of kivitendo-task-server \S+ does not fit this client's database \(kivitendo 4\.1\.1, database matches kivitendo 4\.1\.1\): column "tax_point_start" of relation "ar" does not exist \(SQLSTATE 42703\)\. This is a bug of the task server, not of the data; the run's transaction was rolled back\. Until it is fixed, run kivitendo's own package: \[task_server\] perl_packages = CreatePeriodicInvoices$/,
    );
    assert.equal(r.history.result, null);
    assert.equal((await db.query('SELECT count(*)::int AS n FROM ar')).rows[0].n, before, 'rolled back: no invoice written');
    assert.equal((await db.query('SELECT count(*)::int AS n FROM periodic_invoices')).rows[0].n, 0);
  } finally {
    await db.end();
  }
});

test('a data error while saving an invoice is still kivitendo\'s "success" with an empty result (not class 42)', async () => {
  const { sql, now } = loadGolden('01-monthly-net');
  const { inst, db } = await prepareGolden(sql);
  made.push(inst);
  try {
    // A CHECK that every invoice violates: SQLSTATE 23514, a data error inside the object save.
    await db.query(`ALTER TABLE ar ADD CONSTRAINT kts_no_invoices CHECK (invnumber IS NULL) NOT VALID`);
    const r = await runJob(inst, 'G', { jobId: 2, now });
    assert.equal(r.history.status, 'success', r.history.error ?? '');
    assert.equal(r.history.result, null);
    assert.ok(r.log.some((l) => l.includes('kts_no_invoices')), r.log.join('\n'));
  } finally {
    await db.end();
  }
});

test('SelfTest: a table the native checks read is missing: the run fails naming it (kivitendo would report a broken check module)', async () => {
  const { inst, db } = await prepareGolden('');
  made.push(inst);
  try {
    await db.query('ALTER TABLE acc_trans RENAME TO acc_trans_elsewhere');
    const r = await runJob(inst, 'G', { packageName: 'SelfTest', data: { modules: 'Transactions' } });
    assert.equal(r.history.status, 'failure');
    assert.match(r.history.error ?? '', /^job package SelfTest: .*relation "acc_trans" does not exist \(SQLSTATE 42P01\)/);
  } finally {
    await db.end();
  }
});
