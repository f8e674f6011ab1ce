// Memory of the running daemon over thousands of job runs (issue "Scheduler core": RSS growth
// ≤ 10 % from 10 to 5,000 runs). Prints figures; asserts nothing.
//   npx tsx bench/memory.ts [--runs=1000,5000,10000] [--batch=500] [--clients=4] [--tsx] [--node-options='--max-semi-space-size=1'] [--metrics]
// --metrics: with [task_server] metrics_listen on, /metrics scraped after every batch (as Prometheus
// would every few seconds), to compare the RSS with the endpoint on and off.
// Starts the real daemon (`start -f`; the single executable from dist/, rebuilt if stale, or with
// --tsx `node --import tsx src/main.ts`) on a throwaway PostgreSQL and feeds it `once` Test jobs in
// batches: insert a batch into every client, SIGALRM, wait until all ran. VmRSS comes from
// /proc/<pid>/status after a short settle; the daemon gets no --expose-gc, so the figures include
// whatever the V8 heap has not collected yet.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import minimist from 'minimist';
import { DAEMON_V8_FLAGS } from '../src/daemon/detach';
import { ensureBinary, spawnCli } from '../test/harness/cli';
import { freePort } from '../test/harness/postgres';
import { createInstallation } from '../test/harness/installation';

const args = minimist(process.argv.slice(2), { boolean: ['tsx', 'metrics'], string: ['node-options'] });
const CHECKPOINTS = String(args.runs ?? '1000,5000,10000').split(',').map(Number).filter((n) => n > 0).sort((a, b) => a - b);
const BATCH = Number(args.batch ?? 500);
const CLIENTS = Number(args.clients ?? 4);
const BASELINE = 10;

const kib = (n: number) => `${(n / 1024).toFixed(1)} MiB`;

function status(pid: number): { rss: number; hwm: number; anon: number; file: number } {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s*(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM'), anon: field('RssAnon'), file: field('RssFile') };
}

/**
 * RSS while the process idles after a batch, kB: median of 10 reads 300 ms apart (and their range).
 * An idle daemon allocates next to nothing, so V8 rarely collects then: a reading shows wherever
 * the last batch left the heap, which is why single figures jump by some MiB.
 */
async function settledRss(pid: number): Promise<{ rss: number; range: string }> {
  await sleep(1000);
  const reads: number[] = [];
  for (let i = 0; i < 10; i++) {
    reads.push(status(pid).rss);
    await sleep(300);
  }
  reads.sort((a, b) => a - b);
  return { rss: reads[5], range: `${(reads[0] / 1024).toFixed(1)}–${(reads[9] / 1024).toFixed(1)}` };
}

async function main() {
  const names = Array.from({ length: CLIENTS }, (_, i) => `M${i + 1}`);
  const metricsPort = args.metrics ? await freePort() : undefined;
  const inst = await createInstallation({
    clients: names.map((name) => ({ name })),
    config: { task_server: { debug: '0', ...(metricsPort ? { metrics_listen: `127.0.0.1:${metricsPort}` } : {}) } },
  });
  let scrapes = 0;
  const scrape = async () => {
    if (!metricsPort) return;
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    if (!text.includes('kivitendo_task_server_job_runs_total')) throw new Error('/metrics without job runs');
    scrapes += 1;
  };
  const dbs = await Promise.all(names.map((n) => inst.clientDb(n)));
  for (const db of dbs) await db.query('UPDATE background_jobs SET active = false');

  const binary = args.tsx ? undefined : ensureBinary();
  // NODE_OPTIONS reaches the single executable too; e.g. a small V8 young generation shows how much
  // of the growth is the heap sizing itself up rather than retained objects.
  // Default: the V8 flags the daemon is shipped with (detached start and boot templates);
  // --node-options= (empty) shows V8's defaults.
  const nodeOptions = args['node-options'] ?? DAEMON_V8_FLAGS;
  const server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root], { binary, env: { NODE_OPTIONS: nodeOptions || undefined } });
  const pid = server.child.pid!;
  // Output is not needed, but it must be drained; keep only the tail for error messages.
  server.child.stderr!.on('data', () => (server.out.stderr = server.out.stderr.slice(-4000)));
  console.log(`daemon: ${binary ? path.relative(process.cwd(), binary) : 'node --import tsx src/main.ts'} (pid ${pid}), ${CLIENTS} client DBs, batches of ${BATCH} once jobs${nodeOptions ? `, NODE_OPTIONS=${nodeOptions}` : ', V8 defaults'}, metrics endpoint ${metricsPort ? `on (127.0.0.1:${metricsPort}, scraped after every batch)` : 'off'}`);

  let total = 0;
  const done = async () => {
    let n = 0;
    for (const db of dbs) n += Number((await db.query(`SELECT count(*) AS n FROM background_jobs WHERE type = 'once' AND last_run_at IS NOT NULL`)).rows[0].n);
    return n;
  };
  /** Inserts `count` once jobs spread over the clients, wakes the daemon, waits until all ran. */
  const feed = async (count: number) => {
    const per = Math.ceil(count / CLIENTS);
    let left = count;
    for (const db of dbs) {
      const n = Math.min(per, left);
      left -= n;
      if (n > 0) await db.query(`INSERT INTO background_jobs (type, package_name, active) SELECT 'once', 'Test', true FROM generate_series(1, $1)`, [n]);
    }
    total += count;
    process.kill(pid, 'SIGALRM');
    const until = Date.now() + 60_000 + count * 50;
    while ((await done()) < total) {
      if (Date.now() > until) throw new Error(`the daemon did not finish ${total} runs; stderr tail:\n${server.out.stderr}`);
      if (server.child.exitCode !== null) throw new Error(`the daemon exited (${server.child.exitCode}); stderr tail:\n${server.out.stderr}`);
      await sleep(100);
    }
    await scrape();
  };

  // Up and idle, then the baseline after the first runs (code paths loaded, pools warm).
  for (let i = 0; i < 200 && !fs.existsSync(path.join(inst.root, 'users', 'pid', 'config.kivitendo.conf.pid')); i++) await sleep(50);
  await sleep(1000);
  const idle = status(pid).rss;
  await feed(BASELINE);
  const { rss: base, range: baseRange } = await settledRss(pid);
  console.log(`idle after start        RSS ${kib(idle)}`);
  const split = () => {
    const st = status(pid);
    return `RssAnon ${kib(st.anon)} + RssFile ${kib(st.file)}`;
  };
  const baseAnon = status(pid).anon;
  console.log(`after ${String(BASELINE).padStart(6)} runs       RSS ${kib(base)} (${baseRange})   baseline; ${split()}`);

  const started = Date.now();
  const rows: { runs: number; rss: number }[] = [];
  for (const target of CHECKPOINTS) {
    while (total < target) await feed(Math.min(BATCH, target - total));
    const { rss, range } = await settledRss(pid);
    rows.push({ runs: total, rss });
    const growth = ((rss - base) / base) * 100;
    const rate = (total - BASELINE) / ((Date.now() - started) / 1000);
    const anonGrowth = ((status(pid).anon - baseAnon) / baseAnon) * 100;
    console.log(`after ${String(total).padStart(6)} runs       RSS ${kib(rss)} (${range})   growth ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} %   (${rate.toFixed(0)} runs/s so far); ${split()}, anon growth ${anonGrowth.toFixed(1)} %`);
  }
  const { hwm } = status(pid);
  console.log(`peak RSS (VmHWM)        ${kib(hwm)}`);
  const histories = (await Promise.all(dbs.map((db) => db.query(`SELECT count(*) AS n FROM background_job_histories WHERE status = 'success'`)))).reduce((s, r) => s + Number(r.rows[0].n), 0);
  console.log(`history rows (success)  ${histories} of ${total} runs${metricsPort ? `; /metrics scraped ${scrapes} times` : ''}`);
  // From the first checkpoint on the heap has reached its working size: growth after that is retention.
  if (rows.length >= 2) {
    const [a, b] = [rows[0], rows[rows.length - 1]];
    console.log(`growth ${a.runs} → ${b.runs} runs: ${(((b.rss - a.rss) / a.rss) * 100).toFixed(1)} %`);
  }

  server.child.kill('SIGTERM');
  const { code } = await server.exited;
  console.log(`SIGTERM: exit ${code}`);
  for (const db of dbs) await db.end();
  inst.remove();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
