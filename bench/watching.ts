// "Watching it" (issue 16): `list` over many clients and `status` of a running daemon, with the real
// CLI (the single executable from dist/, rebuilt if stale; --tsx: node --import tsx src/main.ts).
// Prints figures; asserts nothing.
//   npx tsx bench/watching.ts [--clients=100] [--jobs=10] [--history=200] [--samples=5] [--tsx]
// The daemon's RSS with the metrics endpoint on vs off: bench/memory.ts --metrics (see README).
import { performance } from 'node:perf_hooks';
import minimist from 'minimist';
import { ensureBinary, runCli, spawnCli, waitFor } from '../test/harness/cli';
import { createInstallation } from '../test/harness/installation';
import { connect, superQuery } from '../test/harness/postgres';

const args = minimist(process.argv.slice(2), { boolean: ['tsx'] });
const CLIENTS = Number(args.clients ?? 100);
const JOBS = Number(args.jobs ?? 10);
const HISTORY = Number(args.history ?? 200);
const SAMPLES = Number(args.samples ?? 5);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const s = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

async function main() {
  const inst = await createInstallation({ clients: [{ name: 'C0' }], config: { task_server: { debug: '0' } } });
  const pg = inst.pg;
  // One client DB with JOBS jobs (kivitendo's defaults plus Test jobs, nothing due for a day) and
  // HISTORY history rows, copied CLIENTS times.
  await inst.withClientDb('C0', async (db) => {
    await db.query(`UPDATE background_jobs SET next_run_at = localtimestamp + interval '1 day'`);
    const have = Number((await db.query('SELECT count(*) AS n FROM background_jobs')).rows[0].n);
    await db.query(`INSERT INTO background_jobs (type, package_name, active, cron_spec, next_run_at) SELECT 'interval', 'Test', true, '*/5 * * * *', localtimestamp + interval '1 day' FROM generate_series(1, $1)`, [Math.max(0, JOBS - have)]);
    await db.query(`INSERT INTO background_job_histories (package_name, run_at, status, error)
      SELECT (ARRAY['Test','CleanAuthSessions','CreatePeriodicInvoices'])[1 + i % 3], localtimestamp - (i || ' minutes')::interval, CASE WHEN i % 7 = 0 THEN 'failure' ELSE 'success' END, NULL
        FROM generate_series(1, $1) i`, [HISTORY]);
  });
  const template = `kts_watch_template_${process.pid}`;
  await superQuery(pg, `CREATE DATABASE ${template} TEMPLATE ${inst.clients.C0.dbname}`);
  const auth = await inst.authConnection();
  const t0 = Date.now();
  const dbs: string[] = [];
  for (let i = 1; i <= CLIENTS; i++) {
    const name = `kts_watch_${process.pid}_${i}`;
    await superQuery(pg, `CREATE DATABASE ${name} TEMPLATE ${template}`);
    dbs.push(name);
    await auth.query(
      `INSERT INTO auth.clients (id, name, dbhost, dbport, dbname, dbuser, dbpasswd, task_server_user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [1000 + i, `W${i}`, pg.host, pg.port, name, pg.user, pg.password, inst.users.taskserver],
    );
  }
  await auth.query(`DELETE FROM auth.clients WHERE name = 'C0'`);
  await auth.end();
  console.log(`(set-up: ${CLIENTS} client databases with ${JOBS} jobs and ${HISTORY} history rows each in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);

  const binary = args.tsx ? undefined : ensureBinary();
  const cli = (a: string[]) => runCli([...a, '--kivitendo-dir', inst.root], { binary });
  console.log(`CLI: ${binary ?? 'node --import tsx src/main.ts'}`);

  // list: wall time, connections opened (pg_stat_database.sessions) and at most open at once.
  const monitor = await connect(pg, 'postgres');
  const sessions = async () => Number((await monitor.query('SELECT sum(sessions) AS n FROM pg_stat_database')).rows[0].n);
  let peak = 0;
  let busy = false;
  const sampler = setInterval(async () => {
    if (busy) return;
    busy = true;
    const r = await monitor.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'kivitendo-task-server list'`).catch(() => undefined);
    busy = false;
    if (r) peak = Math.max(peak, r.rows[0].n);
  }, 10);
  const walls: number[] = [];
  let opened = 0;
  let lines = 0;
  for (let i = 0; i < SAMPLES; i++) {
    const before = await sessions();
    const t = performance.now();
    const r = await cli(['list']);
    walls.push(performance.now() - t);
    if (r.code !== 0) throw new Error(`list failed: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200)); // pg_stat_database is updated when sessions end
    opened = (await sessions()) - before;
    lines = r.stdout.trimEnd().split('\n').length - 3;
  }
  clearInterval(sampler);
  console.log(`list, ${CLIENTS} clients × ${JOBS} jobs (${lines} lines): wall median ${s(median(walls))} [${walls.map(s).join(', ')}]; connections opened per run ${opened}, at most ${peak} at once`);
  const json = performance.now();
  await cli(['list', '--json', '--all']);
  console.log(`list --json --all: ${s(performance.now() - json)}`);

  // status: without a daemon, then with a running one (pid file + state file).
  const none: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now();
    await cli(['status']);
    none.push(performance.now() - t);
  }
  const server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root], { binary });
  server.child.stderr!.on('data', () => (server.out.stderr = server.out.stderr.slice(-4000)));
  await waitFor('the first poll', async () => (await cli(['status'])).stdout.includes('Last poll finished'), 60_000, () => server.out.stderr);
  const running: number[] = [];
  let text = '';
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now();
    text = (await cli(['status'])).stdout;
    running.push(performance.now() - t);
  }
  console.log(`status, no daemon: median ${s(median(none))}; running daemon (${CLIENTS} clients): median ${s(median(running))} [${running.map(s).join(', ')}]`);
  console.log(text.replace(/^/gm, '    ').trimEnd());
  server.child.kill('SIGTERM');
  await server.exited;

  await monitor.end();
  for (const d of [...dbs, template]) await superQuery(pg, `DROP DATABASE IF EXISTS ${d}`);
  inst.remove();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
