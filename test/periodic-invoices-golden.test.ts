// The golden scenarios of shared/golden/periodic-invoices: the rows kivitendo's Perl job wrote,
// compared column by column (minus the volatile columns the golden README excludes).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { goldenScenarios, loadGolden, runScenario } from './harness/golden';

describe('CreatePeriodicInvoices golden scenarios', () => {
  const names = goldenScenarios();
  test('the golden scenarios are present', () => {
    assert.ok(names.length >= 9, `found ${names.length} scenarios`);
  });
  for (const name of names) {
    test(name, async () => {
      const { sql, expected, now } = loadGolden(name);
      const { result, diff, db, inst } = await runScenario(sql, expected.tables, now);
      try {
        assert.equal(result.history.status, expected.job.status, `job error: ${result.history.error}`);
        assert.equal(result.history.result, expected.job.result);
        assert.deepEqual(diff, [], `${name}: ${diff.length} differences:\n${diff.slice(0, 40).join('\n')}`);
        // acc_trans.gldate is PostgreSQL's current date of the transaction (excluded from the golden files).
        const g = await db.query(`SELECT count(*)::int AS n FROM acc_trans WHERE gldate <> CURRENT_DATE AND trans_id < 50000`);
        assert.equal(g.rows[0].n, 0);
      } finally {
        await db.end();
        inst.remove();
      }
    });
  }
});
