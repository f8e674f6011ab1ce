// PostgreSQL going away under a running server (issue "Scheduler core"): a real server process on a
// cluster of its own, which this file restarts and stops; the shared cluster is not touched.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, DEFAULT_PID_FILE, spawnCli, waitFor as waitUntil } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';
import { startPostgres, type PgServer } from './harness/postgres';

let pg: PgServer;
let inst: Installation;
let server: ReturnType<typeof spawnCli>;
let pid: number;

async function query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  const db = await inst.clientDb('A');
  try {
    return (await db.query(sql, params)).rows as T[];
  } finally {
    await db.end();
  }
}

/** waitFor that treats a failing probe (PostgreSQL still down) as "not yet", with the server's stderr on timeout. */
function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  return waitUntil(what, () => fn().catch(() => undefined), timeoutMs, () => `server stderr:
${server.out.stderr.slice(-3000)}`);
}

/** Inserts a once Test job with a marker result and wakes the server; resolves with the job id. */
async function onceJob(marker: string, wake = true): Promise<number> {
  const [row] = await query<{ id: number }>(
    `INSERT INTO background_jobs (type, package_name, active, data) VALUES ('once', 'Test', true, $1) RETURNING id`,
    [`---\nresult: ${marker}\n`],
  );
  if (wake) process.kill(pid, 'SIGALRM');
  return row.id;
}

const ran = (marker: string) => async () =>
  (await query(`SELECT 1 FROM background_job_histories WHERE result = $1 AND status = 'success'`, [marker])).length > 0;

const count = (re: RegExp) => (server.out.stderr.match(new RegExp(re.source, 'gm')) ?? []).length;

function assertSameServer() {
  assert.ok(alive(pid), `the server process ${pid} is still running`);
  assert.equal(fs.readFileSync(DEFAULT_PID_FILE(inst.root), 'utf8'), `${pid}\n`, 'the pid file still names the same process');
  assert.equal(count(/The task server for node .* is up and running/), 1, 'the scheduler was not restarted inside the process');
}

before(async () => {
  pg = await startPostgres();
  inst = await createInstallation({ pg, clients: [{ name: 'A' }] });
  await query('UPDATE background_jobs SET active = false');
  server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root]);
  pid = server.child.pid!;
  await onceJob('before', false);
  // The first sweep polls every client; no wake-up needed (and none before the handler is installed).
  await waitFor('the first job before any outage', ran('before'), 20_000);
});

after(() => {
  if (server && alive(pid)) server.child.kill('SIGKILL');
  inst?.remove();
  pg?.stop();
});

describe('PostgreSQL outages', { concurrency: false }, () => {
  test('pg_ctl restart: a once job woken right after runs within 5 s; the same process goes on', { timeout: 60_000 }, async (t) => {
    const outagesBefore = { auth: count(/authentication database is unreachable/), client: count(/Exception during execution/) };
    pg.restart();
    const back = Date.now();
    await onceJob('after-restart');
    await waitFor('the job after the restart', ran('after-restart'), 5000);
    const took = Date.now() - back;
    t.diagnostic(`the job ran ${took} ms after PostgreSQL was back`);
    assert.ok(took <= 5000, `ran ${took} ms after PostgreSQL was back`);
    assertSameServer();
    // The server may have slept through the restart (nothing was due), then there is no outage to
    // report; else one line for the auth DB and/or one for the client, whichever it met first.
    const outageLines = server.out.stderr.split('\n').filter((l) => /unreachable|Exception during execution/.test(l)).join('\n');
    assert.ok(count(/authentication database is unreachable/) - outagesBefore.auth <= 1, outageLines);
    assert.ok(count(/Exception during execution/) - outagesBefore.client <= 1, outageLines);
  });

  test('stopped for 3 s while woken every 200 ms: the outage is logged once, not per retry; recovery within 5 s', { timeout: 60_000 }, async (t) => {
    const before = { down: count(/authentication database is unreachable/), up: count(/authentication database is reachable again/) };
    pg.halt();
    const stopped = Date.now();
    while (Date.now() - stopped < 3000) {
      process.kill(pid, 'SIGALRM');
      await sleep(200);
    }
    assert.ok(alive(pid), 'the server survived the outage');
    pg.resume();
    const back = Date.now();
    await onceJob('after-halt');
    await waitFor('the job after the outage', ran('after-halt'), 5000);
    const took = Date.now() - back;
    t.diagnostic(`the job ran ${took} ms after PostgreSQL was back`);
    assert.ok(took <= 5000, `ran ${took} ms after PostgreSQL was back`);
    assertSameServer();
    assert.equal(count(/authentication database is unreachable/) - before.down, 1, `one outage line:\n${server.out.stderr}`);
    assert.equal(count(/authentication database is reachable again/) - before.up, 1, 'one recovery line');
    assert.match(server.out.stderr, /WARN The authentication database is unreachable, retrying with backoff: .+/);
  });

  test('auth DB unreachable for 6 s with nothing but the backoff: recovers on its own', { timeout: 60_000 }, async (t) => {
    const down = count(/authentication database is unreachable/);
    pg.halt();
    process.kill(pid, 'SIGALRM'); // the server notices now; everything after is its own retrying
    await sleep(6000);
    assert.ok(alive(pid), 'the server survived');
    pg.resume();
    const back = Date.now();
    await onceJob('after-long-outage', false);
    // No wake-up: the backoff (at most 2 s) retries the auth DB, then polls every client again.
    await waitFor('the job after the long outage', ran('after-long-outage'), 5000);
    t.diagnostic(`the job ran ${Date.now() - back} ms after PostgreSQL was back`);
    assert.ok(Date.now() - back <= 5000);
    assertSameServer();
    assert.equal(count(/authentication database is unreachable/) - down, 1, server.out.stderr);
  });

  test('restart while a job runs: the interrupted job runs again after the restart, to its end', { timeout: 60_000 }, async (t) => {
    // CleanBackgroundJobHistory deletes from background_job_histories: our SHARE lock makes it hang.
    const blocker = await inst.clientDb('A');
    blocker.on('error', () => undefined); // the restart terminates this connection too
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE background_job_histories IN SHARE MODE');
    const [{ id }] = await query<{ id: number }>(`INSERT INTO background_jobs (type, package_name, active) VALUES ('once', 'CleanBackgroundJobHistory', true) RETURNING id`);
    process.kill(pid, 'SIGALRM');
    await waitFor('the job to hang', async () =>
      (await query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() AND wait_event_type = 'Lock'`, [`kivitendo-task-server job ${id}`])).length > 0, 10_000);
    pg.restart();
    const back = Date.now();
    await blocker.end().catch(() => undefined);
    // No wake-up: the broken run put the client into backoff, whose retry finds the job still due.
    const [row] = await waitFor('the job to run again', async () => {
      const r = await query<{ status: string }>(`SELECT status FROM background_job_histories WHERE package_name = 'CleanBackgroundJobHistory' AND status = 'success'`);
      return r.length ? r : undefined;
    }, 5000);
    t.diagnostic(`the interrupted job ran again ${Date.now() - back} ms after PostgreSQL was back`);
    assert.equal(row.status, 'success');
    const rows = await query<{ status: string }>(`SELECT status FROM background_job_histories WHERE package_name = 'CleanBackgroundJobHistory'`);
    assert.deepEqual(rows.map((r) => r.status), ['success'], 'the interrupted run left no row (its connection died with the server)');
    assertSameServer();
  });

  test('SIGTERM after the outages: clean exit 0, pid file removed', { timeout: 30_000 }, async () => {
    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    assert.equal(code, 0);
    assert.ok(!fs.existsSync(DEFAULT_PID_FILE(inst.root)));
    const rows = await query<{ status: string }>(`SELECT status FROM background_job_histories WHERE package_name = 'Test'`);
    assert.deepEqual(rows.map((r) => r.status), ['success', 'success', 'success', 'success'], 'each job ran exactly once');
  });
});
