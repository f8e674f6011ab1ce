// "Watching it" (issue 16) against a real PostgreSQL and the real CLI and daemon: `list` reads the
// databases as `check` does; `status` shows the running daemon's own state from its state file;
// /metrics and /healthz are fetched with a real HTTP client from the running daemon.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Client } from 'pg';
import { alive, DEFAULT_PID_FILE, killFromPidFile, lines, runCli, spawnCli, waitFor } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';
import { formatLocalTimestamp } from '../src/clock';
import { freePort, superQuery } from './harness/postgres';

let inst: Installation;
const SECRET = 'kts-test-secret';

const list = (...args: string[]) => runCli(['list', '--kivitendo-dir', inst.root, ...args]);
const dataLines = (stdout: string) => lines(stdout).slice(1, -1);

/** Local wall clock (this process's TZ, as the server's), whole seconds, offset by ms. */
const local = (ms: number) => formatLocalTimestamp(new Date(Math.floor(Date.now() / 1000) * 1000 + ms));
const H = 3600_000;

before(async () => {
  inst = await createInstallation({ clients: [{ name: 'Alpha' }, { name: 'Beta' }, { name: 'Off', taskServerLogin: null }] });
  assert.equal(inst.pg.password, SECRET, 'the harness password, which must never be printed');
  // Alpha: CreatePeriodicInvoices due in 3 h whose last run failed (twice in 24 h), a once job of an
  // unknown package (due now), a CsvImport job (kivitendo's Perl code, absent from this tree), the rest inactive.
  await inst.query('Alpha', `UPDATE background_jobs SET active = (id = 2)`);
  // One reading of the clock for both: kivitendo writes the same value into last_run_at and the
  // history's run_at, and two readings may fall on either side of a second.
  const lastRun = local(-15 * H);
  await inst.query('Alpha', `UPDATE background_jobs SET next_run_at = $1, last_run_at = $2 WHERE id = 2`, [local(3 * H + 12.5 * 60_000), lastRun]);
  await inst.query('Alpha', `INSERT INTO background_job_histories (package_name, run_at, status, error) VALUES
      ('CreatePeriodicInvoices', $1, 'failure', 'old'), ('CreatePeriodicInvoices', $2, 'failure', 'earlier'),
      ('CreatePeriodicInvoices', $3, 'failure', 'do_transaction() failed')`, [local(-39 * H), local(-20 * H), lastRun]);
  await inst.query('Alpha', `INSERT INTO background_jobs (id, type, package_name, active) VALUES (20, 'once', 'NoSuchThing', true)`);
  await inst.query('Alpha', `INSERT INTO background_jobs (id, type, package_name, active, cron_spec, next_run_at) VALUES (21, 'interval', 'CsvImport', true, '*/10 * * * *', $1)`, [local(25 * H)]);
  // Beta: CleanAuthSessions in 1 h, succeeded last time.
  await inst.query('Beta', `UPDATE background_jobs SET active = (id = 5)`);
  await inst.query('Beta', `UPDATE background_jobs SET next_run_at = $1, last_run_at = $2 WHERE id = 5`, [local(H), local(-23 * H)]);
  await inst.query('Beta', `INSERT INTO background_job_histories (package_name, run_at, status, result) SELECT 'CleanAuthSessions', last_run_at, 'success', 'ok' FROM background_jobs WHERE id = 5`);
});
after(() => {
  killFromPidFile(inst.root);
  inst.remove();
});

describe('list', { concurrency: false }, () => {
  test('every active job of every enabled client, sorted by next run, with how it runs here and its last run', async () => {
    const r = await list();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const out = lines(r.stdout);
    assert.match(out[0], /^NEXT\s+LEFT\s+CLIENT\s+JOB\s+PACKAGE\s+RUNS\s+SCHEDULE\s+LAST\s+STATUS\s+TOOK\s+FAILED\/24H$/);
    const rows = dataLines(r.stdout);
    assert.equal(rows.length, 4, r.stdout);
    assert.match(rows[0], /^now\s+due\s+1 Alpha\s+20\s+NoSuchThing\s+cannot run: unknown\s+once\s+-\s+-\s+-\s+0$/);
    assert.match(rows[1], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+in (59 min \d+ s|1 h)\s+2 Beta\s+5\s+CleanAuthSessions\s+native/);
    assert.match(rows[1], /CleanAuthSessions\s+native\s+30 6 \* \* \*\s+\S+ \S+ \(23 h ago\)\s+success\s+-\s+0$/);
    assert.match(rows[2], /^\S+ \S+\s+in 3 h 12 min\s+1 Alpha\s+2\s+CreatePeriodicInvoices\s+native\s+0 3 \* \* \*\s+\S+ \S+ \(15 h ago\)\s+failure\s+-\s+2$/);
    assert.match(rows[3], /^\S+ \S+\s+in 1 d\b.*1 Alpha\s+21\s+CsvImport\s+cannot run: no-module\s+\*\/10 \* \* \* \*/);
    assert.equal(out[out.length - 1], '4 jobs listed.');
    assert.ok(!r.stdout.includes('Off'), 'a client without a task server user is not listed');
    assert.ok(!(r.stdout + r.stderr).includes(SECRET));
  });

  test('--all, --failed, --client=ID|NAME', async () => {
    const all = await list('--all');
    assert.equal(all.code, 0);
    assert.equal(dataLines(all.stdout).length, 4 + 7 + 7, 'the inactive default jobs of both clients too');
    assert.match(dataLines(all.stdout).at(-1)!, /^-\s+inactive\s+/);
    const failed = await list('--failed');
    assert.deepEqual(dataLines(failed.stdout).map((l) => l.split(/\s{2,}/)[4]), ['CreatePeriodicInvoices']);
    for (const c of ['Beta', '2']) {
      const b = await list(`--client=${c}`);
      assert.equal(b.code, 0);
      assert.deepEqual(dataLines(b.stdout).map((l) => / (\d) Beta /.exec(l)?.[1]), ['2']);
    }
    const none = await list('--client=Nope');
    assert.equal(none.code, 1);
    assert.equal(none.stderr, "Error: no enabled client with id or name 'Nope'\n");
    const bad = await runCli(['status', '--json', '--kivitendo-dir', inst.root]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Option json can only be used with list/);
  });

  test('--json for scripts', async () => {
    const r = await list('--json');
    assert.equal(r.code, 0);
    const doc = JSON.parse(r.stdout) as { jobs: Record<string, unknown>[]; problems: string[] };
    assert.deepEqual(doc.problems, []);
    assert.deepEqual(doc.jobs.map((j) => [j.client, j.job_id, j.runs]), [['Alpha', 20, 'cannot run'], ['Beta', 5, 'native'], ['Alpha', 2, 'native'], ['Alpha', 21, 'cannot run']]);
    const cpi = doc.jobs[2];
    assert.equal(cpi.last_status, 'failure');
    assert.equal(cpi.last_error, 'do_transaction() failed');
    assert.equal(cpi.failures_24h, 2);
    assert.ok(Math.abs((cpi.next_run_in_s as number) - (3 * 3600 + 12 * 60 + 30)) < 60, String(cpi.next_run_in_s));
    assert.equal(doc.jobs[3].runs_reason, 'no-module');
    assert.match(doc.jobs[3].runs_detail as string, /SL\/BackgroundJob\/CsvImport\.pm is not in/);
  });

  test('a client whose database cannot be read: the others are listed, one Problem line, exit 1, no password', async () => {
    const auth = await inst.authConnection();
    try {
      await auth.query(`INSERT INTO auth.clients (id, name, dbhost, dbport, dbname, dbuser, dbpasswd, task_server_user_id)
                        VALUES (9, 'Broken', $1, $2, 'no_such_db', $3, 'wrong-secret-123', $4)`, [inst.pg.host, inst.pg.port, inst.pg.user, inst.users.taskserver]);
      const r = await list();
      assert.equal(r.code, 1);
      assert.equal(dataLines(r.stdout).length, 4);
      assert.match(r.stderr, /^Problem: client 9 \(Broken\): database no_such_db not readable: cannot connect to database no_such_db .*\n$/);
      assert.ok(!(r.stdout + r.stderr).includes('wrong-secret-123'));
    } finally {
      await auth.query('DELETE FROM auth.clients WHERE id = 9');
      await auth.end();
    }
  });
});

describe('the running daemon: status, state file, /metrics, /healthz', { concurrency: false }, () => {
  let port: number;
  let server: ReturnType<typeof spawnCli>;
  let pid: number;
  const pidFile = () => DEFAULT_PID_FILE(inst.root);
  const stateFile = () => pidFile().replace(/\.pid$/, '.state.json');
  const http = (p: string) => fetch(`http://127.0.0.1:${port}${p}`);
  const status = () => runCli(['status', '--kivitendo-dir', inst.root]);
  const stderr = () => `daemon stderr: ${server.out.stderr.slice(-2000)}`;

  before(async () => {
    port = await freePort();
    inst.writeConfig({ task_server: { metrics_listen: `127.0.0.1:${port}` } });
    // Only the jobs below run: nothing else is due in either client.
    for (const c of ['Alpha', 'Beta']) await inst.query(c, `UPDATE background_jobs SET active = false WHERE id < 20`);
    await inst.query('Alpha', `DELETE FROM background_jobs WHERE id IN (20, 21)`);
    await inst.query('Alpha', `INSERT INTO background_jobs (id, type, package_name, active, data) VALUES
       (30, 'once', 'Test', true, E'---\\nresult: fine\\n'), (31, 'once', 'Test', true, E'---\\nexception: boom\\n')`);
    server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root]);
    pid = server.child.pid!;
    await waitFor('both Test runs', async () => (await inst.query('Alpha', `SELECT 1 FROM background_job_histories WHERE package_name = 'Test'`)).length === 2, 30_000, stderr);
  });
  after(async () => {
    if (alive(pid)) {
      process.kill(pid, 'SIGTERM');
      await server.exited;
    }
  });

  test('/healthz: 200 while the loop polls', async () => {
    const r = await waitFor('healthz 200', async () => ((await http('/healthz')).status === 200 ? http('/healthz') : undefined), 20_000, stderr);
    assert.equal(await r.text(), 'ok\n');
  });

  test('/metrics: Prometheus text with job runs and failures per client and package, durations, latency, poll, RSS', async () => {
    // The state of the second run reaches the counters when its history row is written; wait for it.
    const text = await waitFor('both runs counted', async () => {
      const t = await (await http('/metrics')).text();
      return /job_failures_total\{[^}]*\} 1/.test(t) ? t : undefined;
    }, 10_000, stderr);
    const r = await http('/metrics');
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(text, /^kivitendo_task_server_job_runs_total\{client_id="1",client="Alpha",package="Test",how="native",status="success"\} 1$/m);
    assert.match(text, /^kivitendo_task_server_job_runs_total\{client_id="1",client="Alpha",package="Test",how="native",status="failure"\} 1$/m);
    assert.match(text, /^kivitendo_task_server_job_failures_total\{client_id="1",client="Alpha",package="Test"\} 1$/m);
    assert.match(text, /^kivitendo_task_server_job_duration_seconds_count\{package="Test",how="native"\} 2$/m);
    assert.match(text, /^kivitendo_task_server_poll_duration_seconds_count [1-9]\d*$/m);
    assert.match(text, /^kivitendo_task_server_clients 2$/m);
    assert.match(text, /^kivitendo_task_server_clients_in_outage 0$/m);
    assert.match(text, /^kivitendo_task_server_auth_db_up 1$/m);
    assert.match(text, /^kivitendo_task_server_healthy 1$/m);
    assert.match(text, /^kivitendo_task_server_last_poll_timestamp_seconds \d+(\.\d+)?$/m);
    assert.match(text, /^kivitendo_task_server_perl_parent_starts_total 0$/m);
    assert.match(text, /^process_resident_memory_bytes [1-9]\d*$/m);
    assert.ok(!text.includes(SECRET));
    assert.equal((await http('/nothing')).status, 404);
  });

  test('status: uptime, node, last poll, jobs running now (client, job, package, how long), memory', async () => {
    // A job that waits for a lock held here is "running now" for as long as the test wants.
    const lock: Client = await inst.clientDb('Alpha');
    try {
      await lock.query('BEGIN');
      await lock.query('LOCK TABLE defaults IN ACCESS EXCLUSIVE MODE');
      await inst.query('Alpha', `INSERT INTO background_jobs (id, type, package_name, active) VALUES (32, 'once', 'SetClosedTo', true)`);
      process.kill(pid, 'SIGALRM');
      const r = await waitFor('status with the running job', async () => {
        const s = await status();
        return /Running now: client 1 \(Alpha\) job 32 SetClosedTo for \d+ s \(native\)/.test(s.stdout) ? s : undefined;
      }, 20_000, stderr);
      assert.equal(r.code, 0);
      const out = lines(r.stdout);
      assert.equal(out[0], `kivitendo-background-jobs running - pid ${pid}`);
      assert.match(out[1], /^  Up \d+ s \(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\), version \d+\.\d+\.\d+, node \S+$/);
      assert.match(out[2], /^  Last poll finished \d+ s ago \(\d of 2 clients polled, \d+\.\d\d s\); \d+ job runs? since start$/);
      assert.ok(out.some((l) => /^  Memory: RSS \d+\.\d MiB, JS heap \d+\.\d MiB/.test(l)), r.stdout);
      assert.ok(out.includes(`  Metrics: http://127.0.0.1:${port}/metrics, health: http://127.0.0.1:${port}/healthz`));
      assert.ok(!out.some((l) => l.includes('Problem')), r.stdout);
      const m = await (await http('/metrics')).text();
      assert.match(m, /^kivitendo_task_server_jobs_running 1$/m);
    } finally {
      await lock.query('COMMIT').catch(() => undefined);
      await lock.end();
    }
    const done = await waitFor('the job finished', async () => {
      const s = await status();
      return s.stdout.includes('Running now: no job') ? s : undefined;
    }, 20_000, stderr);
    assert.equal(done.code, 0);
  });

  test('the state file: next to the pid file, readable by others, no password; list shows how long the last runs took', async () => {
    const st = fs.statSync(stateFile());
    assert.equal(st.mode & 0o777, 0o644);
    assert.equal(path.dirname(stateFile()), path.dirname(pidFile()));
    const text = fs.readFileSync(stateFile(), 'utf8');
    assert.equal(JSON.parse(text).pid, pid);
    assert.ok(!text.includes(SECRET));
    const r = await list('--client=Alpha');
    const test30 = dataLines(r.stdout).find((l) => /\s30\s+Test\s/.test(l));
    // A once job that ran is not scheduled any more; its run took a measured time. Both Test jobs ran
    // in the same second: the history cannot tell them apart (no job id), the daemon's state can.
    assert.match(test30 ?? r.stdout, /^-\s+done\s+1 Alpha\s+30\s+Test\s+native\s+once\s+\S+ \S+ \(\d+ s ago\)\s+success\s+\d+\.\d s\s+1$/);
  });

  test('/healthz 503 with one line while the auth database is down; 200 again after', async () => {
    await superQuery(inst.pg, `ALTER DATABASE ${inst.authDb} ALLOW_CONNECTIONS false`);
    try {
      await superQuery(inst.pg, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [inst.authDb]);
      process.kill(pid, 'SIGALRM');
      const r = await waitFor('healthz 503', async () => {
        const h = await http('/healthz');
        return h.status === 503 ? h : undefined;
      }, 20_000, stderr);
      assert.match(await r.text(), /^auth database unreachable since \S+: .+\n$/);
      // The state file follows within a second (it is rewritten after the poll, at most once a second).
      const s = await waitFor('status with the outage', async () => {
        const st = await status();
        return st.stdout.includes('Outage: auth database') ? st : undefined;
      }, 20_000, stderr);
      assert.equal(s.code, 0, 'LSB: the daemon runs');
      assert.ok(lines(s.stdout).some((l) => /^  Problem: auth database unreachable since/.test(l)), s.stdout);
      assert.ok(lines(s.stdout).some((l) => /^  Outage: auth database unreachable since/.test(l)), s.stdout);
      assert.match(await (await http('/metrics')).text(), /^kivitendo_task_server_auth_db_up 0$/m);
    } finally {
      await superQuery(inst.pg, `ALTER DATABASE ${inst.authDb} ALLOW_CONNECTIONS true`);
    }
    await waitFor('healthz 200 again', async () => (await http('/healthz')).status === 200, 30_000, stderr);
  });

  test('stop: the state file goes with the pid file, the port is closed', async () => {
    const r = await runCli(['stop', '--kivitendo-dir', inst.root]);
    assert.equal(r.code, 0);
    assert.equal(fs.existsSync(pidFile()), false);
    assert.equal(fs.existsSync(stateFile()), false);
    await assert.rejects(http('/healthz'));
  });

  test('metrics_listen on every address is refused at start with one line naming the key', async () => {
    inst.writeConfig({ task_server: { metrics_listen: `0.0.0.0:${port}` } });
    try {
      const r = await runCli(['-f', 'start', '--kivitendo-dir', inst.root]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, new RegExp(`^Error: \\[task_server\\] metrics_listen = 0\\.0\\.0\\.0:${port}: refusing .* on every address; write 127\\.0\\.0\\.1:${port}, or the one address to serve them on\\n$`));
      assert.equal(fs.existsSync(pidFile()), false);
    } finally {
      inst.writeConfig();
    }
  });
});
