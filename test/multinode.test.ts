// Several servers on the same databases (issue "Scheduler core", tests 1 and 2): real processes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { alive, spawnCli, waitFor } from './harness/cli';
import { createInstallation, renderConfig, type Installation } from './harness/installation';
import { insertJob } from './harness/jobs';

const CLIENTS = ['A', 'B', 'C'];
let inst: Installation;
const servers: ReturnType<typeof spawnCli>[] = [];

/** A config file per server (each its own pid file), all on the same auth DB. */
function nodeConfig(n: number, extra: Record<string, Record<string, string>> = {}): string {
  const base = fs.readFileSync(inst.configFile, 'utf8');
  const file = path.join(inst.root, 'config', `node${n}.conf`);
  fs.writeFileSync(file, base + '\n' + renderConfig({ task_server: { node_id: `node${n}`, debug: '1' }, ...extra }));
  return `config/node${n}.conf`;
}

function startServer(n: number) {
  const s = spawnCli(['-f', '-c', nodeConfig(n), 'start', '--kivitendo-dir', inst.root]);
  servers.push(s);
  return s;
}

const query = <T = Record<string, unknown>>(client: string, sql: string, params: unknown[] = []) => inst.query<T>(client, sql, params);

before(async () => {
  inst = await createInstallation({ clients: CLIENTS.map((name) => ({ name })) });
  for (const c of CLIENTS) await query(c, 'UPDATE background_jobs SET active = false');
});

after(() => {
  for (const s of servers) if (s.child.pid && alive(s.child.pid)) s.child.kill('SIGKILL');
  inst.remove();
});

test('3 servers, 500 once jobs and a per-minute job over 3 clients: each once job runs exactly once, no slot twice', { timeout: 120_000 }, async () => {
  const onceIds: Record<string, number[]> = {};
  for (const [i, c] of CLIENTS.entries()) {
    const n = i === 0 ? 168 : 166;
    const rows = await query<{ id: number }>(
      c,
      `INSERT INTO background_jobs (type, package_name, active, data) SELECT 'once', 'Test', true, '---' || E'\\n' || 'result: once ' || g FROM generate_series(1, $1) g RETURNING id`,
      [n],
    );
    onceIds[c] = rows.map((r) => r.id);
    await query(c, `INSERT INTO background_jobs (type, package_name, active, cron_spec, next_run_at, description) VALUES ('interval', 'Test', true, '* * * * *', now()::timestamp(0), 'per minute')`);
  }
  const started = Date.now();
  const s = [1, 2, 3].map(startServer);
  // Until every once job has run, then past the next minute boundary so the interval job has a second slot.
  await waitFor('all once jobs', async () => {
    let done = 0;
    for (const c of CLIENTS) done += Number((await query<{ n: string }>(c, `SELECT count(*) AS n FROM background_jobs WHERE type = 'once' AND last_run_at IS NOT NULL`))[0].n);
    return done === 500;
  }, 90_000).catch(async (e) => {
    throw new Error(`${e.message}; server stderr: ${s.map((x) => x.out.stderr.slice(-500)).join('\n---\n')}`);
  });
  const nextMinute = Math.ceil((Date.now() + 1) / 60_000) * 60_000;
  await new Promise((r) => setTimeout(r, nextMinute - Date.now() + 2500));
  for (const srv of s) srv.child.kill('SIGTERM');
  await Promise.all(s.map((x) => x.exited));

  for (const c of CLIENTS) {
    const once = await query<{ data: string; n: string }>(
      c,
      `SELECT data, count(*) AS n FROM background_job_histories WHERE package_name = 'Test' AND data LIKE '%once%' GROUP BY data`,
    );
    assert.equal(once.length, onceIds[c].length, `client ${c}: every once job has a history row`);
    assert.ok(once.every((r) => Number(r.n) === 1), `client ${c}: no once job ran twice`);
    const slots = await query<{ minute: string; n: string }>(
      c,
      `SELECT date_trunc('minute', run_at)::text AS minute, count(*) AS n FROM background_job_histories WHERE description = 'per minute' GROUP BY 1 ORDER BY 1`,
    );
    assert.ok(slots.length >= 2, `client ${c}: the per-minute job ran in ${slots.length} slots`);
    assert.ok(slots.every((r) => Number(r.n) === 1), `client ${c}: a slot ran twice: ${JSON.stringify(slots)}`);
  }
  // All three servers took part (the work was shared, not serialised on one node).
  const nodes = s.map((x) => (x.out.stderr.match(/is being executed on node/g) ?? []).length);
  assert.ok(nodes.filter((n) => n > 0).length >= 2, `jobs per server: ${nodes.join(', ')}`);
  void started;
});

test('kill -9 of a server mid-job: another server runs the job; nothing left blocking', { timeout: 60_000 }, async () => {
  // CleanBackgroundJobHistory deletes from background_job_histories; a SHARE lock held here makes
  // it hang mid-job like a slow job would.
  const jobId = await insertJob(inst, 'A', { packageName: 'CleanBackgroundJobHistory', type: 'once' });
  const blocker = await inst.clientDb('A');
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE background_job_histories IN SHARE MODE');
  const first = startServer(4);
  await waitFor('the job to hang on the lock', async () => {
    // Inside a transaction PostgreSQL keeps one snapshot of pg_stat_activity: clear it each time.
    await blocker.query('SELECT pg_stat_clear_snapshot()');
    const r = await blocker.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() AND wait_event_type = 'Lock'`, [`kivitendo-task-server job ${jobId}`]);
    return r.rows.length > 0;
  }, 20_000).catch(async (e) => {
    const act = await blocker.query(`SELECT application_name, state, wait_event_type, left(query, 60) AS q FROM pg_stat_activity WHERE datname = current_database()`);
    throw new Error(`${e.message}; activity: ${JSON.stringify(act.rows)}; server: ${first.out.stderr}`);
  });
  first.child.kill('SIGKILL');
  await first.exited;
  await blocker.query('ROLLBACK');
  await blocker.end();
  const pidFile = path.join(inst.root, 'users', 'pid', 'config.node4.conf.pid');
  assert.ok(fs.existsSync(pidFile), 'the killed server left its pid file');

  const second = startServer(5);
  await waitFor('the job to run on the second server', async () => {
    const r = await query('A', `SELECT status FROM background_job_histories WHERE package_name = 'CleanBackgroundJobHistory'`);
    return r.length > 0;
  }, 20_000);
  // The killed server's stale pid file does not block its restart.
  const again = startServer(4);
  await waitFor('restart of the killed server', () => fs.existsSync(pidFile) && Number(fs.readFileSync(pidFile, 'utf8')) === again.child.pid, 20_000);
  second.child.kill('SIGTERM');
  again.child.kill('SIGTERM');
  await Promise.all([second.exited, again.exited]);
  const rows = await query<{ status: string }>('A', `SELECT status FROM background_job_histories WHERE package_name = 'CleanBackgroundJobHistory'`);
  assert.deepEqual(rows.map((r) => r.status), ['success'], 'ran exactly once, to the end, on the second server');
  assert.ok(!fs.existsSync(pidFile), 'SIGTERM removed the pid file');
});

