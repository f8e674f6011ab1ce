// Scheduler benchmarks (issue "Scheduler core"). Prints figures; asserts nothing.
//   npx tsx bench/scheduler.ts [--clients=1000] [--runs=200]
// 1. due → started latency of interval jobs (p50, p99 over N runs)
// 2. once job + wake-up (SIGALRM path) → history row
// 3. one poll sweep over many client DBs with the default jobs and nothing due: wall time, connections
// Memory over thousands of runs is measured on the real process by bench/memory.ts.
import minimist from 'minimist';
import { formatLocalTimestamp } from '../src/clock';
import { loadConfig } from '../src/config/config';
import { memoryLogger } from '../src/log/logger';
import { Scheduler } from '../src/scheduler/scheduler';
import { createInstallation } from '../test/harness/installation';
import { connect, superQuery, type PgServer } from '../test/harness/postgres';

const args = minimist(process.argv.slice(2));
const RUNS = Number(args.runs ?? 200);
const CLIENTS = Number(args.clients ?? 1000);

function percentile(values: number[], p: number) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function latency() {
  const CLIENTS_FOR_LATENCY = 4;
  const perClient = Math.ceil(RUNS / CLIENTS_FOR_LATENCY);
  const names = Array.from({ length: CLIENTS_FOR_LATENCY }, (_, i) => `L${i}`);
  const inst = await createInstallation({ clients: names.map((name) => ({ name })) });
  // Jobs due at whole seconds (kivitendo's resolution), one per client per second, known to the
  // scheduler from its first poll on; the start instant comes from the Test job's log line.
  const first = new Date(Date.now() + 3000);
  first.setMilliseconds(0);
  const due = new Map<string, number>();
  for (const [ci, name] of names.entries()) {
    const db = await inst.clientDb(name);
    await db.query('UPDATE background_jobs SET active = false');
    for (let i = 0; i < perClient; i++) {
      const at = new Date(first.getTime() + i * 1000);
      const r = await db.query(
        `INSERT INTO background_jobs (type, package_name, cron_spec, active, next_run_at) VALUES ('interval', 'Test', '0 0 1 1 *', true, $1) RETURNING id`,
        [formatLocalTimestamp(at)],
      );
      due.set(`${ci}:${r.rows[0].id}`, at.getTime());
    }
    await db.end();
  }
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  const latencies: number[] = [];
  const log = memoryLogger();
  const started = (m: string) => {
    const id = /Test job ID (\d+) is being executed/.exec(m)?.[1];
    if (!id) return;
    // job ids are per client; the first job id ≥ the due time still unseen identifies it
    for (const [key, at] of due) {
      if (key.endsWith(`:${id}`) && at <= Date.now() + 5) {
        latencies.push(Date.now() - at);
        due.delete(key);
        return;
      }
    }
  };
  const s = new Scheduler({ config, log: { ...log, notice: started }, nodeId: "bench" });
  const loop = s.run();
  while (due.size > 0 && Date.now() < first.getTime() + perClient * 1000 + 10_000) await new Promise((r) => setTimeout(r, 100));
  console.log(
    `interval job due → started, ${latencies.length} runs over ${CLIENTS_FOR_LATENCY} clients: p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms, max ${Math.max(...latencies)} ms` +
      (due.size ? ` (${due.size} never started!)` : ''),
  );

  const db = await inst.clientDb('L0');
  const once: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    const r = await db.query(`INSERT INTO background_jobs (type, package_name, active) VALUES ('once', 'Test', true) RETURNING id`);
    s.wake();
    for (;;) {
      const h = await db.query(`SELECT 1 FROM background_jobs WHERE id = $1 AND last_run_at IS NOT NULL`, [r.rows[0].id]);
      if (h.rows.length) break;
      await new Promise((res) => setTimeout(res, 1));
    }
    once.push(performance.now() - t0);
  }
  console.log(`once job + wake-up (the SIGALRM path) → history row written, 50 runs: p50 ${percentile(once, 50).toFixed(1)} ms, p99 ${percentile(once, 99).toFixed(1)} ms`);
  await s.stop(1000);
  await loop;
  await db.end();
  inst.remove();
}

/** A small template with kivitendo's background_jobs tables and its 8 default jobs. */
async function makeSweepTemplate(pg: PgServer, source: string) {
  await superQuery(pg, `DROP DATABASE IF EXISTS kts_sweep_template`);
  await superQuery(pg, `CREATE DATABASE kts_sweep_template TEMPLATE template0`);
  const src = await connect(pg, source);
  const jobs = (await src.query('SELECT * FROM background_jobs ORDER BY id')).rows;
  await src.end();
  const t = await connect(pg, 'kts_sweep_template');
  await t.query(`CREATE TABLE background_jobs (id serial PRIMARY KEY, type varchar(255), package_name varchar(255), last_run_at timestamp,
    next_run_at timestamp, data text, active boolean, cron_spec varchar(255), node_id text, description text)`);
  await t.query(`CREATE TABLE background_job_histories (id serial PRIMARY KEY, package_name varchar(255), run_at timestamp,
    status varchar(255), result text, error text, data text, description text)`);
  for (const j of jobs) {
    await t.query(`INSERT INTO background_jobs (type, package_name, next_run_at, active, cron_spec) VALUES ($1, $2, now() + interval '1 day', true, $3)`, [
      j.type, j.package_name, j.cron_spec,
    ]);
  }
  await t.end();
}

async function sweep() {
  const inst = await createInstallation({ clients: [{ name: 'C0' }] });
  const pg = inst.pg;
  await makeSweepTemplate(pg, inst.clients.C0.dbname);
  const auth = await inst.authConnection();
  const t0 = Date.now();
  for (let i = 1; i <= CLIENTS; i++) {
    const name = `kts_sweep_${i}`;
    await superQuery(pg, `DROP DATABASE IF EXISTS ${name}`);
    await superQuery(pg, `CREATE DATABASE ${name} TEMPLATE kts_sweep_template`);
    await auth.query(
      `INSERT INTO auth.clients (id, name, dbhost, dbport, dbname, dbuser, dbpasswd, task_server_user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [1000 + i, name, pg.host, pg.port, name, pg.user, pg.password, inst.users.taskserver],
    );
  }
  await auth.query(`DELETE FROM auth.clients WHERE name = 'C0'`);
  console.log(`(set-up: ${CLIENTS} client databases in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  let maxConnections = 0;
  const monitor = await connect(pg, 'postgres');
  const sampler = setInterval(async () => {
    const r = await monitor.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'kivitendo-task-server%'`);
    maxConnections = Math.max(maxConnections, r.rows[0].n);
  }, 20);
  const s = new Scheduler({ config, log: memoryLogger(), nodeId: 'bench' });
  const started = performance.now();
  const loop = s.run();
  await s.firstPoll;
  const wall = performance.now() - started;
  console.log(`first (cold) poll sweep over ${CLIENTS} client DBs, nothing due: ${(wall / 1000).toFixed(2)} s (${s.stats.polls} polls)`);
  // Steady state: a minute later every client has been re-polled once, in per-second batches.
  const polls0 = s.stats.polls;
  const sweeps0 = s.stats.sweeps;
  // Every sweep after the first, with its wall time (polls only; runners go on in the background).
  const sweepTimes: number[] = [];
  let lastSweeps = s.stats.sweeps;
  const steadyStart = performance.now();
  while (performance.now() - steadyStart < 61_000) {
    await new Promise((r) => setTimeout(r, 20));
    if (s.stats.sweeps !== lastSweeps) {
      sweepTimes.push(s.stats.lastSweepMs);
      lastSweeps = s.stats.sweeps;
    }
  }
  const sweepMs = sweepTimes.reduce((a, b) => a + b, 0);
  const maxSweep = Math.max(0, ...sweepTimes);
  clearInterval(sampler);
  console.log(
    `steady state over 61 s: ${s.stats.sweeps - sweeps0} sweeps, ${s.stats.polls - polls0} polls (every client once a minute), ` +
      `longest sweep ${maxSweep.toFixed(0)} ms, ${((sweepMs / 61_000) * 100).toFixed(1)} % of the time polling; at most ${maxConnections} connections open (sampled every 20 ms)`,
  );
  await s.stop(1000);
  await loop;
  await monitor.end();
  for (let i = 1; i <= CLIENTS; i++) await superQuery(pg, `DROP DATABASE IF EXISTS kts_sweep_${i}`);
  await auth.end();
  inst.remove();
}

async function main() {
  if (args.only !== 'sweep') await latency();
  if (args.only !== 'latency') await sweep();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
