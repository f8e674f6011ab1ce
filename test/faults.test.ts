// Fault isolation of the running server (issue "Scheduler core"): bad input in one client, a wrong
// client DB password, a job that never ends — while a healthy client's jobs keep running; the memory
// limit; SIGHUP. Real server processes on the shared test cluster.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, spawnCli, waitFor as waitUntil } from './harness/cli';
import { createInstallation, renderConfig, type Installation } from './harness/installation';
import { insertJob } from './harness/jobs';

const WRONG_PASSWORD = 'wr0ng-Pa55word-7f3a';
let inst: Installation;
const servers: ReturnType<typeof spawnCli>[] = [];

const query = <T = Record<string, unknown>>(client: string, sql: string, params: unknown[] = []) => inst.query<T>(client, sql, params);

/** waitFor with the server's stderr in the timeout error. */
function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, server?: ReturnType<typeof spawnCli>): Promise<T> {
  return waitUntil(what, fn, timeoutMs, server && (() => `server stderr:
${server.out.stderr.slice(-3000)}`));
}

/** A config file of its own (so its own pid file), the generated DB settings plus `extra`. */
function configFile(name: string, extra: Record<string, Record<string, string>>): string {
  const base = fs.readFileSync(inst.configFile, 'utf8');
  fs.writeFileSync(path.join(inst.root, 'config', `${name}.conf`), base + '\n' + renderConfig(extra));
  return `config/${name}.conf`;
}

function startServer(config: string) {
  const s = spawnCli(['-f', '-c', config, 'start', '--kivitendo-dir', inst.root]);
  servers.push(s);
  return s;
}

const pidFileOf = (config: string) => path.join(inst.root, 'users', 'pid', `${config.replace(/\//g, '.')}.pid`);

async function history(client: string, where = 'TRUE', params: unknown[] = []) {
  return query<{ package_name: string; status: string; result: string | null; error: string | null; run_at: string; data: string | null }>(
    client,
    `SELECT package_name, status, result, error, run_at::text, data FROM background_job_histories WHERE ${where} ORDER BY id`,
    params,
  );
}

// pg_stat_activity is read on a connection of its own: inside the lock holder's transaction it is a
// snapshot that never changes.

/** Waits until the job's own connection waits for a lock (it hangs on the test's table lock). */
async function waitForHang(client: string, jobId: number, server: ReturnType<typeof spawnCli>) {
  await waitFor('the job to hang on the lock', async () => {
    const r = await query(client, `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() AND wait_event_type = 'Lock'`, [`kivitendo-task-server job ${jobId}`]);
    return r.length > 0;
  }, 20_000, server);
}

async function jobBackendGone(client: string, jobId: number) {
  const r = await query(client, `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, [`kivitendo-task-server job ${jobId}`]);
  return r.length === 0;
}

before(async () => {
  inst = await createInstallation({
    clients: [{ name: 'Healthy' }, { name: 'Faulty' }, { name: 'WrongPw', dbpasswd: WRONG_PASSWORD }, { name: 'Spare' }],
    config: { debug: { global_level: 'NONE' } },
  });
  for (const c of ['Healthy', 'Faulty', 'WrongPw', 'Spare']) await query(c, 'UPDATE background_jobs SET active = false');
});

after(() => {
  for (const s of servers) if (s.child.pid && alive(s.child.pid)) s.child.kill('SIGKILL');
  inst.remove();
});

describe('bad input is isolated: one server, a healthy client, a faulty one, one with a wrong DB password', { concurrency: false }, () => {
  let server: ReturnType<typeof spawnCli>;
  let pid: number;
  const ids: Record<string, number> = {};

  before(async () => {
    const conf = configFile('isolation', { task_server: { job_time_limit: '2s' } });
    ids.perMinute = await insertJob(inst, 'Healthy', { packageName: 'Test', cronSpec: '* * * * *', description: 'per minute' });
    await query('Healthy', `UPDATE background_jobs SET next_run_at = now()::timestamp(0) WHERE id = $1`, [ids.perMinute]);
    ids.badCron = await insertJob(inst, 'Faulty', { packageName: 'Test', cronSpec: '61 * * * *', description: 'bad cron' });
    await query('Faulty', `UPDATE background_jobs SET next_run_at = now()::timestamp(0) WHERE id = $1`, [ids.badCron]);
    ids.badYaml = await insertJob(inst, 'Faulty', { packageName: 'Test', type: 'once', data: 'result: [unclosed' });
    ids.unknown = await insertJob(inst, 'Faulty', { packageName: 'NoSuchJob', type: 'once' });
    ids.unsupported = await insertJob(inst, 'Faulty', { packageName: 'SyncWebDAV', type: 'once' });
    ids.wrongPw = await insertJob(inst, 'WrongPw', { packageName: 'Test', type: 'once', data: '---\nresult: never\n' });
    server = startServer(conf);
    pid = server.child.pid!;
  });

  test('the faulty jobs each get a clear failure row, the per-minute job of the healthy client runs', { timeout: 60_000 }, async () => {
    await waitFor('history rows of the faulty client', async () => (await history('Faulty')).length >= 4, 20_000, server);
    await waitFor('the per-minute job', async () => (await history('Healthy', `result = '1'`)).length >= 1, 20_000, server);
    const rows = await history('Faulty');
    const byPackage = (p: string) => rows.filter((r) => r.package_name === p);
    assert.equal(rows.length, 4, JSON.stringify(rows));
    assert.ok(rows.every((r) => r.status === 'failure'));

    const [cron] = rows.filter((r) => r.error?.includes('cron_spec'));
    assert.match(cron.error!, /^invalid cron_spec '61 \* \* \* \*': .+; the job was not run and waits until its schedule is fixed$/);
    const [badCronJob] = await query<{ next_run_at: string | null; last_run_at: string | null }>('Faulty', 'SELECT next_run_at, last_run_at FROM background_jobs WHERE id = $1', [ids.badCron]);
    assert.equal(badCronJob.next_run_at, null, 'the job with the bad schedule is parked');
    assert.equal(badCronJob.last_run_at, null, 'not marked as run: it did not run');
    assert.match(server.out.stderr, new RegExp(`WARN BackgroundJob ID ${ids.badCron} of client Faulty: invalid cron_spec '61 \\* \\* \\* \\*'`));

    const yaml = rows.filter((r) => r.error?.startsWith('invalid YAML'));
    assert.equal(yaml.length, 1);
    assert.match(yaml[0].error!, new RegExp(`^invalid YAML in data of background job ${ids.badYaml} \\(Test\\): .+`));
    assert.equal(yaml[0].data, 'result: [unclosed', 'the data text is kept as it was');

    assert.deepEqual(byPackage('NoSuchJob').map((r) => r.error), [`unknown job package 'NoSuchJob'`]);
    assert.equal(byPackage('SyncWebDAV').length, 1);
    assert.match(byPackage('SyncWebDAV')[0].error!, /^job package SyncWebDAV is not supported by kivitendo-task-server \d+\.\d+\.\d+/);
    for (const id of [ids.badYaml, ids.unknown, ids.unsupported]) {
      assert.match(server.out.stderr, new RegExp(`WARN BackgroundJob ID ${id} execution error \\(first three lines\\): `));
    }
    // None of them is retried on every sweep.
    process.kill(pid, 'SIGALRM');
    await sleep(1000);
    assert.equal((await history('Faulty')).length, 4);
  });

  test('wrong client DB password: one clear log line, the password never printed, the job not run', async () => {
    const lines = server.out.stderr.split('\n').filter((l) => l.includes('(WrongPw)') && /WARN/.test(l));
    assert.equal(lines.length, 1, `one line for the outage, not one per retry:\n${lines.join('\n')}`);
    assert.match(lines[0], /WARN Exception during execution: client 3 \(WrongPw\): cannot connect to database \w+ on 127\.0\.0\.1:\d+ as postgres: password authentication failed for user "postgres"$/);
    const [job] = await query<{ last_run_at: string | null }>('WrongPw', 'SELECT last_run_at FROM background_jobs WHERE id = $1', [ids.wrongPw]);
    assert.equal(job.last_run_at, null);
    assert.equal((await history('WrongPw')).length, 0);
  });

  test('a hung job is stopped at its time limit; the healthy client runs jobs meanwhile', { timeout: 60_000 }, async (t) => {
    const blocker = await inst.clientDb('Faulty');
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE background_job_histories IN SHARE MODE');
      ids.hung = await insertJob(inst, 'Faulty', { packageName: 'CleanBackgroundJobHistory', type: 'once' });
      process.kill(pid, 'SIGALRM');
      await waitForHang('Faulty', ids.hung, server);
      const hungSince = Date.now();

      // While the Faulty client's runner is stuck, two once jobs of the healthy client run.
      for (const marker of ['during-hang-1', 'during-hang-2']) {
        await insertJob(inst, 'Healthy', { packageName: 'Test', type: 'once', data: `---\nresult: ${marker}\n` });
        process.kill(pid, 'SIGALRM');
        await waitFor(`healthy job ${marker}`, async () => (await history('Healthy', 'result = $1', [marker])).length === 1, 5000, server);
      }
      const stillHanging = !(await jobBackendGone('Faulty', ids.hung));
      t.diagnostic(`two healthy once jobs ran within ${Date.now() - hungSince} ms of the hang`);
      assert.ok(stillHanging, `the healthy jobs ran while the other job hung (${Date.now() - hungSince} ms into the hang)`);

      // The time limit terminates the job's backend; its history INSERT then waits for our lock.
      await waitFor('the time limit to stop the job', () => jobBackendGone('Faulty', ids.hung), 10_000, server);
      const stoppedAfter = Date.now() - hungSince;
      // The hang is seen some time after the job started, so less than the 2 s limit may remain.
      assert.ok(stoppedAfter >= 1000 && stoppedAfter < 5000, `stopped ${stoppedAfter} ms into the hang (limit 2 s)`);
      await sleep(300);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
    }
    const [row] = await waitFor('the history row of the hung job', async () => {
      const r = await history('Faulty', `package_name = 'CleanBackgroundJobHistory'`);
      return r.length ? r : undefined;
    }, 10_000, server);
    assert.equal(row.status, 'failure');
    assert.equal(
      row.error,
      `job CleanBackgroundJobHistory (ID ${ids.hung}) exceeded its time limit of 2 s and was stopped; its open transaction was rolled back`,
    );
    assert.ok(alive(pid));
  });

  test('the faulty client goes on working after all that; the password never appears anywhere', { timeout: 30_000 }, async () => {
    await insertJob(inst, 'Faulty', { packageName: 'Test', type: 'once', data: '---\nresult: faulty-ok\n' });
    process.kill(pid, 'SIGALRM');
    await waitFor('a good job in the faulty client', async () => (await history('Faulty', `result = 'faulty-ok'`)).length === 1, 5000, server);
    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    assert.equal(code, 0);
    const everything = [
      server.out.stdout,
      server.out.stderr,
      fs.readFileSync(path.join(inst.root, 'users', 'kivitendo-debug.log'), 'utf8'),
      JSON.stringify(await history('Faulty')),
      JSON.stringify(await history('Healthy')),
    ].join('\n');
    assert.ok(!everything.includes(WRONG_PASSWORD), 'the wrong password is never printed');
    const outage = server.out.stderr.split('\n').filter((l) => l.includes('(WrongPw)') && /WARN/.test(l));
    assert.equal(outage.length, 1, 'still one line after all the retries of the whole run');
    assert.ok(!everything.includes(inst.pg.password), 'the right one neither');
  });
});

describe('[system] memory_limit_rss', () => {
  test('1MB: exits 0 after its first sweep (its job finished), pid file removed, limit logged', { timeout: 60_000 }, async () => {
    await insertJob(inst, 'Spare', { packageName: 'Test', type: 'once', data: '---\nresult: before-memory-exit\n' });
    const conf = configFile('memory', { system: { memory_limit_rss: '1MB' } });
    const s = startServer(conf);
    const { code, signal } = await s.exited;
    assert.match(s.out.stderr, /INFO The task server for node .+ is up and running\./, 'it did start');
    assert.equal(signal, null);
    assert.equal(code, 0, s.out.stderr);
    assert.ok(!fs.existsSync(pidFileOf(conf)), 'pid file removed');
    assert.match(s.out.stderr, /WARN Exiting due to memory size limit reached for type 'rss': limit 1048576 bytes, usage \d+ bytes/);
    assert.match(s.out.stderr, /Memory usage too high - exiting\./);
    assert.equal(s.out.stderr.match(/Exiting due to memory size limit/g)!.length, 1, 'after the first sweep, not later');
    assert.equal((await history('Spare', `result = 'before-memory-exit'`)).length, 1, 'the job the sweep started ran to its end');
  });

  test('1M means the same (a size suffix without B)', { timeout: 60_000 }, async () => {
    const conf = configFile('memory2', { system: { memory_limit_rss: '1M' } });
    const s = startServer(conf);
    const { code } = await s.exited;
    assert.equal(code, 0, s.out.stderr);
    assert.match(s.out.stderr, /limit 1048576 bytes/);
    assert.ok(!fs.existsSync(pidFileOf(conf)));
  });

  test('a generous limit (2G) does not stop the server', { timeout: 60_000 }, async () => {
    const conf = configFile('memory3', { system: { memory_limit_rss: '2G' } });
    const s = startServer(conf);
    await waitFor('the first sweep', async () => /first poll finished/.test(s.out.stderr), 20_000, s);
    process.kill(s.child.pid!, 'SIGALRM');
    await sleep(800);
    assert.ok(alive(s.child.pid!));
    s.child.kill('SIGTERM');
    assert.equal((await s.exited).code, 0);
    assert.doesNotMatch(s.out.stderr, /memory size limit/);
  });
});

describe('SIGHUP', () => {
  test('a new job_time_limit applies without restart; a broken config is logged and the old one kept', { timeout: 90_000 }, async () => {
    const conf = configFile('hup', { task_server: { job_time_limit: '60s' } });
    const file = path.join(inst.root, conf);
    const good = fs.readFileSync(file, 'utf8');
    const s = startServer(conf);
    const pid = s.child.pid!;
    await waitFor('the first sweep', async () => /first poll finished/.test(s.out.stderr), 20_000, s);

    /** Runs a job that hangs on a table lock; returns the time it was stopped after, and its history error. */
    const hangOnce = async () => {
      const blocker = await inst.clientDb('Spare');
      let jobId: number;
      let stoppedAfter: number;
      try {
        await blocker.query('BEGIN');
        await blocker.query('LOCK TABLE background_job_histories IN SHARE MODE');
        jobId = await insertJob(inst, 'Spare', { packageName: 'CleanBackgroundJobHistory', type: 'once' });
        process.kill(pid, 'SIGALRM');
        await waitForHang('Spare', jobId, s);
        const since = Date.now();
        await waitFor('the time limit to stop the job', () => jobBackendGone('Spare', jobId), 15_000, s);
        stoppedAfter = Date.now() - since;
      } finally {
        await blocker.query('ROLLBACK').catch(() => undefined);
        await blocker.end();
      }
      const [row] = await waitFor('the history row', async () => {
        const r = await query<{ error: string }>('Spare', `SELECT error FROM background_job_histories WHERE package_name = 'CleanBackgroundJobHistory' AND error LIKE $1`, [`%(ID ${jobId})%`]);
        return r.length ? r : undefined;
      }, 10_000, s);
      return { stoppedAfter, error: row.error };
    };

    fs.writeFileSync(file, good + renderConfig({ task_server: { job_time_limit: '1s' } }));
    process.kill(pid, 'SIGHUP');
    await waitFor('reload', async () => /INFO Configuration reloaded/.test(s.out.stderr), 10_000, s);
    const first = await hangOnce();
    assert.match(first.error, /exceeded its time limit of 1 s and was stopped/);
    assert.ok(first.stoppedAfter < 5000, `stopped after ${first.stoppedAfter} ms`);

    fs.writeFileSync(file, good + renderConfig({ task_server: { job_time_limit: 'soon' } }));
    process.kill(pid, 'SIGHUP');
    await waitFor('the reload failure', async () => /Reconfiguration failed/.test(s.out.stderr), 10_000, s);
    assert.match(
      s.out.stderr,
      /ERROR Reconfiguration failed, keeping the previous configuration: Invalid duration 'soon' for \[task_server\] job_time_limit/,
    );
    const second = await hangOnce();
    assert.match(second.error, /exceeded its time limit of 1 s/, 'the previous (reloaded) configuration stays in use');

    // debug off by reload: the daemon's debug lines stop.
    fs.writeFileSync(file, good + renderConfig({ task_server: { job_time_limit: '1s', debug: '0' } }));
    process.kill(pid, 'SIGHUP');
    await waitFor('reload', async () => (s.out.stderr.match(/INFO Configuration reloaded/g) ?? []).length === 2, 10_000, s);
    const mark = s.out.stderr.length;
    process.kill(pid, 'SIGALRM');
    await sleep(800);
    assert.doesNotMatch(s.out.stderr.slice(mark), /DEBUG1/);

    assert.ok(alive(pid), 'the same process throughout');
    assert.equal(fs.readFileSync(pidFileOf(conf), 'utf8'), `${pid}\n`);
    assert.equal((s.out.stderr.match(/is up and running/g) ?? []).length, 1);
    s.child.kill('SIGTERM');
    assert.equal((await s.exited).code, 0);
  });
});
