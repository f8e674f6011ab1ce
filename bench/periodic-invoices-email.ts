// CreatePeriodicInvoices with e-mail (issue "prints and e-mails its invoices"). Prints figures; asserts nothing.
//   TZ=Europe/Berlin npx tsx bench/periodic-invoices-email.ts [--configs=100] [--skip-perl] [--render-concurrency=N]
// N monthly configs with send_email, each due this month (the real clock: kivitendo's task_server.pl
// runs on it too), one recipient each, template set Standard, ZUGFeRD off:
//  1. this server: native posting, then the invoices rendered by [task_server] render_concurrency
//     Perl processes at once (default: the number of CPUs; --render-concurrency overrides it) and
//     printed and sent in kivitendo's order by one kivitendo Perl process;
//  2. kivitendo's own scripts/task_server.pl --run-job on an identical database.
// Wall time, mails received, peak RSS of this process (it holds the harness, the runner and the job),
// of the Perl process and of the whole process tree below (Perl + latexmk/pdflatex).
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import os from 'node:os';
import minimist from 'minimist';
import { createPrintRig, type PrintRig } from '../test/harness/goldenPrint';
import { machineLine } from './lib/sideBySide';

const args = minimist(process.argv.slice(2));
const CONFIGS = Number(args.configs ?? 100);

function scenarioSql(n: number, start: string): string {
  const sql: string[] = [
    `UPDATE defaults SET invnumber = 'RE-100000', templates = 'templates/kivi_c1', create_zugferd_invoices = 0, email_journal = 1,
       company = 'Bench GmbH', address_street1 = 'Teststr. 1', address_zipcode = '12345', address_city = 'Teststadt', taxnumber = '123/456/7890';`,
    `INSERT INTO customer (id, name, customernumber, taxzone_id, currency_id, country_id, taxincluded) VALUES (200001, 'Bench Kunde', 'B-1', 4, 1, 57, false);`,
    `INSERT INTO parts (id, partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id, obsolete) VALUES
       (200101, 'B-SRV-1', 'Dienst 1', 'Stck', 'service', 19.90, 5, 859, false),
       (200102, 'B-SRV-2', 'Dienst 2', 'psch', 'service', 49.00, 0, 859, false),
       (200103, 'B-PART', 'Teil', 'Stck', 'part', 7.99, 4.2, 859, false);`,
  ];
  const oe: string[] = [];
  const items: string[] = [];
  const cfgs: string[] = [];
  for (let i = 0; i < n; i++) {
    const oeId = 300000 + i;
    oe.push(`(${oeId}, 'AB-B-${i}', '${start}', 200001, false, 4, 1, 'sales_order', 1, 'Vertrag <%current_month_long%> <%current_year%>', 0, 0, false)`);
    for (let k = 0; k < 3; k++) {
      items.push(`(${1_000_000 + i * 3 + k}, ${oeId}, ${k + 1}, ${200101 + k}, 'Position ${k + 1}', ${k + 1}, '${k === 1 ? 'psch' : 'Stck'}', ${[19.9, 49, 7.99][k]}, ${k === 2 ? 0.1 : 0}, 0, 1, 1, 0, 'always')`);
    }
    cfgs.push(`(${400000 + i}, ${oeId}, 'm', 'p', '${start}', true, false, 14, false, false, true, 'kunde${i}@example.invalid',
               'Bench <kivi@example.invalid>', 'Rechnung <%invnumber%> <%current_month_long%> <%current_year%>', '<p>anbei &lt;%invnumber%&gt;</p>')`);
  }
  sql.push(`INSERT INTO oe (id, ordnumber, transdate, customer_id, taxincluded, taxzone_id, currency_id, record_type, employee_id,
            transaction_description, amount, netamount, closed) VALUES ${oe.join(',\n')};`);
  sql.push(`INSERT INTO orderitems (id, trans_id, position, parts_id, description, qty, unit, sellprice, discount, lastcost,
            price_factor, marge_price_factor, ship, recurring_billing_mode) VALUES ${items.join(',\n')};`);
  sql.push(`INSERT INTO periodic_invoices_configs (id, oe_id, periodicity, order_value_periodicity, start_date, active, terminated,
            ar_chart_id, direct_debit, print, send_email, email_recipient_address, email_sender, email_subject, email_body) VALUES ${cfgs.join(',\n')};`);
  return sql.join('\n');
}

/** Direct and indirect children of pid (from /proc/<pid>/task/<tid>/children). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let kids: number[] = [];
    try {
      for (const t of fs.readdirSync(`/proc/${p}/task`)) {
        kids.push(...fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
      }
    } catch {
      kids = [];
    }
    for (const k of kids) {
      out.push(k);
      walk(k);
    }
  };
  walk(pid);
  return out;
}

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Proportional set size: shared pages (a fork's, the preloaded parent's) counted once over the tree. */
function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function comm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * Samples RSS of this process and of the largest perl below `root` every 200 ms, and the tree below
 * `root` as the sum of PSS every second. PSS (smaps_rollup) walks each process's page tables in the
 * kernel: sampled every 50 ms it took half a core, which a run on both cores feels and a serial run
 * on one core does not — the instrument skewed the ratio. Every process here lives for seconds, so
 * these intervals still see each peak.
 */
function sampler(root: () => number | undefined) {
  const peak = { self: 0, perl: 0, tree: 0 };
  let tick = 0;
  const t = setInterval(() => {
    peak.self = Math.max(peak.self, rssKiB(process.pid));
    const r = root();
    if (!r) return;
    const pids = r === process.pid ? descendants(r) : [r, ...descendants(r)];
    for (const p of pids) if (comm(p) === 'perl') peak.perl = Math.max(peak.perl, rssKiB(p));
    if (tick++ % 5 === 0) peak.tree = Math.max(peak.tree, pids.reduce((sum, p) => sum + pssKiB(p), 0));
  }, 200);
  return { peak, stop: () => clearInterval(t) };
}

const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

async function rig(sql: string, config?: Record<string, Record<string, string>>): Promise<PrintRig> {
  const r = await createPrintRig({ sql, config });
  await r.db.query('VACUUM ANALYZE');
  return r;
}

async function main() {
  const now = new Date();
  const start = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-01`;
  const sql = scenarioSql(CONFIGS, start);

  const renderConcurrency = args['render-concurrency'] ? String(args['render-concurrency']) : undefined;
  console.log(`${CONFIGS} configs; ${machineLine()}; render_concurrency ${renderConcurrency ?? `default (${os.cpus().length})`}`);
  const ours = await rig(sql, renderConcurrency ? { task_server: { render_concurrency: renderConcurrency } } : undefined);
  const s1 = sampler(() => process.pid);
  const t0 = performance.now();
  const r = await ours.run(new Date());
  const ms = performance.now() - t0;
  s1.stop();
  const made = (await ours.db.query('SELECT count(*)::int AS n FROM ar')).rows[0].n;
  console.log(`this server: ${CONFIGS} configs with send_email due: ${made} invoices, ${ours.sink.messages.length} mails in ${(ms / 1000).toFixed(1)} s ` +
    `(${(ms / Math.max(1, ours.sink.messages.length)).toFixed(0)} ms per mail); job ${r.history.status}${r.history.error ? ` (${r.history.error.slice(0, 200)})` : ''}`);
  console.log(`  peak RSS: this process ${mib(s1.peak.self)} (harness + runner + job), largest Perl process ${mib(s1.peak.perl)}, child tree (preloaded parent, render and printing processes, LaTeX; PSS) ${mib(s1.peak.tree)}`);
  for (const line of r.log.filter((l) => /render processes|LaTeX: |kts-timing/.test(l))) console.log(`  ${line.replace(/^\S+ /, '')}`);
  const ourSubjects = subjects(ours);
  await ours.close();

  if (args['skip-perl']) return;
  const theirs = await rig(sql);
  let pid: number | undefined;
  const s2 = sampler(() => pid);
  const t1 = performance.now();
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(theirs.inst.perl, ['scripts/task_server.pl', '--run-job=2', 'debug'], { cwd: theirs.inst.root, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KIVI_PRINT_DIR: theirs.printDir } });
    pid = child.pid;
    child.stderr.resume();
    child.on('close', resolve);
  });
  const ms2 = performance.now() - t1;
  s2.stop();
  const made2 = (await theirs.db.query('SELECT count(*)::int AS n FROM ar')).rows[0].n;
  const h = (await theirs.db.query(`SELECT status, error FROM background_job_histories WHERE package_name = 'CreatePeriodicInvoices' ORDER BY id DESC LIMIT 1`)).rows[0];
  console.log(`kivitendo task_server.pl --run-job: ${made2} invoices, ${theirs.sink.messages.length} mails in ${(ms2 / 1000).toFixed(1)} s (exit ${code}); job ${h?.status}${h?.error ? ` (${String(h.error).slice(0, 200)})` : ''}`);
  console.log(`  peak RSS: task_server.pl ${mib(s2.peak.perl)}, its tree (Perl + LaTeX; PSS) ${mib(s2.peak.tree)}`);
  const same = JSON.stringify(subjects(theirs)) === JSON.stringify(ourSubjects);
  console.log(`ratio ours / task_server.pl: ${(ms / ms2).toFixed(2)}; mails sent in the same order with the same subjects: ${same ? 'yes' : 'NO'}   (${machineLine()})`);
  await theirs.close();
}

/** The subjects of the mails in the order the SMTP sink received them. */
function subjects(r: PrintRig): string[] {
  return r.sink.messages.map((m) => `${m.envelopeTo.join(',')} ${m.headers.subject ?? '?'}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
