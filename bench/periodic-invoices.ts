// CreatePeriodicInvoices benchmark (issue "CreatePeriodicInvoices"). Prints figures; asserts nothing.
//   TZ=Europe/Berlin npx tsx bench/periodic-invoices.ts [--configs=1000] [--noop=10000]
// 1. N active monthly configs with 3 items each (19 %), one month due: wall time of one run,
//    invoices per second, peak RSS of this process.
// 2. M active configs whose current month is already billed (the daily 03:00 no-op): wall time.
// Perl reference (spec): 83.8 s / 11.9 invoices/s / 274 MiB; no-op 24.2 s.
import minimist from 'minimist';
import { runJob } from '../test/harness/jobs';
import { prepareGolden } from '../test/harness/golden';

const args = minimist(process.argv.slice(2));
const CONFIGS = Number(args.configs ?? 1000);
const NOOP = Number(args.noop ?? 10000);

/** Customers, parts, orders with 3 items, configs; `billedUpTo` = a period already billed (no-op case). */
function scenarioSql(n: number, billedUpTo: string | null): string {
  const sql: string[] = [`UPDATE defaults SET invnumber = 'RE-100000';`];
  sql.push(`INSERT INTO customer (id, name, customernumber, taxzone_id, currency_id, country_id, taxincluded)
            VALUES (200001, 'Bench Kunde', 'B-1', 4, 1, 57, false);`);
  sql.push(`INSERT INTO parts (id, partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id, obsolete) VALUES
            (200101, 'B-SRV-1', 'Dienst 1', 'Stck', 'service', 19.90, 5, 859, false),
            (200102, 'B-SRV-2', 'Dienst 2', 'psch', 'service', 49.00, 0, 859, false),
            (200103, 'B-PART', 'Teil', 'Stck', 'part', 7.99, 4.2, 859, false);`);
  const oe: string[] = [];
  const items: string[] = [];
  const cfgs: string[] = [];
  const pis: string[] = [];
  for (let i = 0; i < n; i++) {
    const oeId = 300000 + i;
    oe.push(`(${oeId}, 'AB-B-${i}', '2014-01-20', 200001, false, 4, 1, 'sales_order', 1, 'Vertrag <%current_month_long%> <%current_year%>', 0, 0, false)`);
    for (let k = 0; k < 3; k++) {
      items.push(`(${1_000_000 + i * 3 + k}, ${oeId}, ${k + 1}, ${200101 + k}, 'Position ${k + 1}', ${k + 1}, '${k === 1 ? 'psch' : 'Stck'}', ${[19.9, 49, 7.99][k]}, ${k === 2 ? 0.1 : 0}, 0, 1, 1, 0, 'always')`);
    }
    cfgs.push(`(${400000 + i}, ${oeId}, 'm', 'p', '2014-03-01', NULL, true, false, NULL, NULL, 14, false, false, false)`);
    if (billedUpTo) pis.push(`(${600000 + i}, ${400000 + i}, 50001, '${billedUpTo}')`);
  }
  sql.push(`INSERT INTO oe (id, ordnumber, transdate, customer_id, taxincluded, taxzone_id, currency_id, record_type, employee_id,
            transaction_description, amount, netamount, closed) VALUES ${oe.join(',\n')};`);
  sql.push(`INSERT INTO orderitems (id, trans_id, position, parts_id, description, qty, unit, sellprice, discount, lastcost,
            price_factor, marge_price_factor, ship, recurring_billing_mode) VALUES ${items.join(',\n')};`);
  sql.push(`INSERT INTO periodic_invoices_configs (id, oe_id, periodicity, order_value_periodicity, start_date, end_date, active,
            terminated, extend_automatically_by, first_billing_date, ar_chart_id, direct_debit, print, send_email) VALUES ${cfgs.join(',\n')};`);
  if (billedUpTo) {
    sql.push(`INSERT INTO ar (id, invnumber, transdate, gldate, customer_id, taxincluded, amount, netamount, paid, duedate, invoice,
              taxzone_id, currency_id, type, storno, employee_id) VALUES
              (50001, 'RE-050001', '2014-03-01', '2014-03-01', 200001, false, 0, 0, 0, '2014-03-01', true, 4, 1, 'invoice', false, 1);`);
    sql.push(`INSERT INTO periodic_invoices (id, config_id, ar_id, period_start_date) VALUES ${pis.join(',\n')};`);
  }
  return sql.join('\n');
}

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);

async function timed(name: string, n: number, billedUpTo: string | null) {
  const { inst, db } = await prepareGolden(scenarioSql(n, billedUpTo));
  await db.query('VACUUM ANALYZE');
  const rssBefore = process.memoryUsage().rss;
  peakRss = rssBefore;
  const t0 = performance.now();
  const r = await runJob(inst, 'G', { jobId: 2, now: new Date(2014, 2, 15, 3, 0, 0) });
  const ms = performance.now() - t0;
  const made = Number((await db.query('SELECT count(*) FROM ar WHERE id < 50000')).rows[0].count);
  await db.end();
  inst.remove();
  return { name, ms, made, status: r.history.status, error: r.history.error, peakRss, rssBefore };
}

async function main() {
  const a = await timed('due', CONFIGS, null);
  console.log(`${CONFIGS} monthly configs × 3 items, one month due: ${a.made} invoices in ${(a.ms / 1000).toFixed(2)} s = ${(a.made / (a.ms / 1000)).toFixed(1)} invoices/s`);
  console.log(`  job status ${a.status}${a.error ? ` (${a.error})` : ''}; peak RSS ${(a.peakRss / 2 ** 20).toFixed(0)} MiB (before the run ${(a.rssBefore / 2 ** 20).toFixed(0)} MiB; the process includes the harness)`);
  const b = await timed('noop', NOOP, '2014-03-01');
  console.log(`${NOOP} active configs, current month billed (no-op): ${(b.ms / 1000).toFixed(3)} s, ${b.made} invoices, status ${b.status}`);
  console.log('Perl reference: 83.8 s / 11.9 invoices/s / 274 MiB; no-op 24.2 s');
  clearInterval(sampler);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
