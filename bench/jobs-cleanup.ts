// Benchmarks of the tier A clean-up jobs and SelfTest (issue "tier A jobs"). Prints figures; asserts nothing.
//   npx tsx bench/jobs-cleanup.ts [--history=1000000] [--once=100000] [--acctrans=100000]
// 1. CleanBackgroundJobHistory over N history rows (half of them old enough to go): wall time, peak RSS
// 2. BackgroundJobCleanup over N once rows (half old, a quarter recent, a quarter never run): wall time, peak RSS
// 3. SelfTest (Transactions) over a client DB with N acc_trans rows in the current year: wall time
// Rows are generated inside PostgreSQL (generate_series); the jobs delete set-based, so the peak RSS
// of this process must not grow with N.
import minimist from 'minimist';
import { createInstallation } from '../test/harness/installation';
import { runJob } from '../test/harness/jobs';

const args = minimist(process.argv.slice(2));
const HISTORY = Number(args.history ?? 1_000_000);
const ONCE = Number(args.once ?? 100_000);
const ACC_TRANS = Number(args.acctrans ?? 100_000);

const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
const maxRss = () => process.resourceUsage().maxRSS; // KB, peak over the process lifetime

async function main() {
  const inst = await createInstallation({ clients: [{ name: 'H' }, { name: 'O' }, { name: 'S' }] });
  const now = new Date();
  try {
    {
      const db = await inst.clientDb('H');
      await db.query(
        `INSERT INTO background_job_histories (package_name, run_at, status, result, data)
         SELECT 'Test', now()::timestamp - (g % 200) * interval '1 day', CASE WHEN g % 3 = 0 THEN 'failure' ELSE 'success' END, '1', '--- {}\n'
           FROM generate_series(1, $1) g`,
        [HISTORY],
      );
      await db.query('ANALYZE background_job_histories');
      const rssBefore = maxRss();
      const t0 = performance.now();
      const r = await runJob(inst, 'H', { packageName: 'CleanBackgroundJobHistory', now });
      const ms = performance.now() - t0;
      const left = (await db.query('SELECT COUNT(*)::int AS n FROM background_job_histories')).rows[0].n;
      await db.end();
      console.log(
        `CleanBackgroundJobHistory: ${HISTORY} history rows → ${left} left (${r.history.status}); wall ${ms.toFixed(0)} ms; ` +
          `peak RSS ${mb(maxRss())} (before the run ${mb(rssBefore)})`,
      );
    }
    {
      const db = await inst.clientDb('O');
      await db.query(
        `INSERT INTO background_jobs (type, package_name, active, last_run_at, data)
         SELECT 'once', 'Test', true,
                CASE WHEN g % 4 = 0 THEN NULL WHEN g % 4 = 1 THEN now()::timestamp - interval '1 hour' ELSE now()::timestamp - interval '3 days' END,
                NULL
           FROM generate_series(1, $1) g`,
        [ONCE],
      );
      await db.query('ANALYZE background_jobs');
      const rssBefore = maxRss();
      const t0 = performance.now();
      const r = await runJob(inst, 'O', { packageName: 'BackgroundJobCleanup', now });
      const ms = performance.now() - t0;
      const left = (await db.query(`SELECT COUNT(*)::int AS n FROM background_jobs WHERE type = 'once'`)).rows[0].n;
      await db.end();
      console.log(
        `BackgroundJobCleanup: ${ONCE} once rows → ${left} left (${r.history.status}); wall ${ms.toFixed(0)} ms; ` +
          `peak RSS ${mb(maxRss())} (before the run ${mb(rssBefore)})`,
      );
    }
    {
      const db = await inst.clientDb('S');
      const year = now.getUTCFullYear();
      const pairs = Math.ceil(ACC_TRANS / 2);
      // Balanced two-line gl transactions spread over the year, booked on the same day as entered.
      await db.query(
        `INSERT INTO gl (id, reference, transdate, gldate, itime)
         SELECT 1000000 + g, 'B' || g, d, d, d FROM (SELECT g, make_date($2, 1, 1) + (g % 365) AS d FROM generate_series(1, $1) g) x`,
        [pairs, year],
      );
      await db.query(
        `INSERT INTO acc_trans (trans_id, chart_id, amount, transdate, gldate, itime, chart_link, taxkey, tax_id)
         SELECT 1000000 + g, CASE WHEN s = 1 THEN (SELECT id FROM chart WHERE accno = '1200') ELSE (SELECT id FROM chart WHERE accno = '1000') END,
                CASE WHEN s = 1 THEN 10 ELSE -10 END, d, d, d, '', 0, (SELECT id FROM tax WHERE taxkey = 0 ORDER BY id LIMIT 1)
           FROM (SELECT g, make_date($2, 1, 1) + (g % 365) AS d FROM generate_series(1, $1) g) x, generate_series(1, 2) s`,
        [pairs, year],
      );
      await db.query('ANALYZE');
      await db.end();
      inst.writeConfig({ self_test: { modules: 'Transactions', send_email_to: '' } });
      const t0 = performance.now();
      const r = await runJob(inst, 'S', { packageName: 'SelfTest', now });
      const ms = performance.now() - t0;
      console.log(`SelfTest (Transactions): ${pairs * 2} acc_trans rows; wall ${ms.toFixed(0)} ms (${r.history.status}${r.history.error ? ': ' + r.history.error : ''})`);
    }
  } finally {
    inst.remove();
    const pg = await (await import('../test/harness/postgres')).getPostgres();
    pg.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
