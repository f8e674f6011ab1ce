// Graceful stop (issue 10 item 1): SIGTERM, SIGINT and `stop` give a running job its grace period
// ([task_server] shutdown_grace), then stop it with a failure history row; an idle daemon is gone at
// once. The job is UpdateEmployeeBaseData held up by a LOCK TABLE employee of the test's own.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, DEFAULT_PID_FILE, killFromPidFile, lines, readIfExists, runCli, spawnCli, waitFor } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';
import { insertJob } from './harness/jobs';

const GRACE_MS = 3000;
let inst: Installation;
const env = () => ({ KIVITENDO_DIR: inst.root });
const spawned: ReturnType<typeof spawnCli>[] = [];

before(async () => {
  inst = await createInstallation({
    clients: [{ name: 'A' }],
    config: { task_server: { shutdown_grace: `${GRACE_MS / 1000}s` } },
  });
  await inst.query('A', 'UPDATE background_jobs SET active = false');
  // UpdateEmployeeBaseData works on the users assigned to the client.
  const auth = await inst.authConnection();
  await auth.query('INSERT INTO auth.clients_users (client_id, user_id) VALUES ($1, $2)', [inst.clients.A.id, inst.users.taskserver]);
  await auth.end();
});

after(() => {
  for (const s of spawned) if (s.child.pid && alive(s.child.pid)) s.child.kill('SIGKILL');
  killFromPidFile(inst.root);
  inst.remove();
});

const appName = (jobId: number) => `kivitendo-task-server job ${jobId}`;

async function jobBackends(jobId: number) {
  return inst.query<{ pid: number; wait_event_type: string | null }>('A', 'SELECT pid, wait_event_type FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [appName(jobId)]);
}

/** Holds LOCK TABLE employee on a connection of its own; the job's UPDATE employee waits for it. */
async function blockEmployee() {
  const blocker = await inst.clientDb('A');
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE employee');
  return {
    async release() {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end().catch(() => undefined);
    },
  };
}

async function hungJob(wake?: number) {
  const jobId = await insertJob(inst, 'A', { packageName: 'UpdateEmployeeBaseData', type: 'once' });
  if (wake) process.kill(wake, 'SIGALRM');
  await waitFor('the job to wait for the employee lock', async () => (await jobBackends(jobId)).some((b) => b.wait_event_type === 'Lock'), 20_000);
  return jobId;
}

async function jobState(jobId: number) {
  const [job] = await inst.query<{ last_run_at: string | null }>('A', 'SELECT last_run_at::text FROM background_jobs WHERE id = $1', [jobId]);
  const history = await inst.query<{ status: string; error: string | null }>(
    'A',
    `SELECT status, error FROM background_job_histories WHERE package_name = 'UpdateEmployeeBaseData' ORDER BY id`,
  );
  return { job, history };
}

function startForeground() {
  const d = spawnCli(['-f', 'start'], { env: env() });
  spawned.push(d);
  return d;
}

describe('graceful stop', { concurrency: false }, () => {
  test('SIGTERM while a job runs: it may finish within the grace period; success row, then exit 0', { timeout: 60_000 }, async () => {
    await inst.query('A', 'DELETE FROM background_job_histories');
    const d = startForeground();
    await waitFor('first poll', () => /first poll finished/.test(d.out.stderr));
    const lock = await blockEmployee();
    let jobId: number;
    try {
      jobId = await hungJob(d.child.pid!);
      d.child.kill('SIGTERM');
      await sleep(1000);
      assert.ok(alive(d.child.pid!), 'the daemon waits for its running job');
    } finally {
      await lock.release();
    }
    const { code, signal } = await d.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, d.out.stderr);
    const { job, history } = await jobState(jobId);
    assert.deepEqual(history.map((h) => h.status), ['success'], 'the job ran to its end');
    assert.ok(job.last_run_at, 'last_run_at written');
    assert.equal(readIfExists(DEFAULT_PID_FILE(inst.root)), undefined);
  });

  test('SIGINT while a job outlasts the grace period: stopped after it, failure row, backend gone, exit 0', { timeout: 60_000 }, async (t) => {
    await inst.query('A', 'DELETE FROM background_job_histories');
    const d = startForeground();
    await waitFor('first poll', () => /first poll finished/.test(d.out.stderr));
    const lock = await blockEmployee();
    let jobId: number;
    let took: number;
    try {
      jobId = await hungJob(d.child.pid!);
      const t0 = Date.now();
      d.child.kill('SIGINT');
      const { code } = await d.exited;
      took = Date.now() - t0;
      assert.equal(code, 0, d.out.stderr);
      // The failure row is written before the process ends, while the table lock is still held.
      assert.deepEqual(await jobBackends(jobId), [], 'the job backend was terminated');
    } finally {
      await lock.release();
    }
    t.diagnostic(`exited ${took} ms after SIGINT (grace ${GRACE_MS} ms)`);
    assert.ok(took >= GRACE_MS - 100, `waited ${took} ms, grace ${GRACE_MS} ms`);
    assert.ok(took < GRACE_MS + 3000, `exited ${took} ms after SIGINT`);
    const { job, history } = await jobState(jobId);
    assert.equal(history.length, 1, JSON.stringify(history));
    assert.equal(history[0].status, 'failure');
    assert.equal(
      history[0].error,
      `job UpdateEmployeeBaseData (ID ${jobId}) was stopped because the task server shut down; its open transaction was rolled back`,
    );
    assert.ok(job.last_run_at, 'last_run_at written');
  });

  test('`stop` returns once the daemon is gone, after the grace period and the failure row', { timeout: 60_000 }, async () => {
    await inst.query('A', 'DELETE FROM background_job_histories');
    const r = await runCli(['start'], { env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const pid = Number(readIfExists(DEFAULT_PID_FILE(inst.root))!.trim());
    const lock = await blockEmployee();
    let jobId: number;
    try {
      jobId = await hungJob(pid);
      const t0 = Date.now();
      const s = await runCli(['stop'], { env: env() });
      const took = Date.now() - t0;
      assert.equal(s.code, 0, s.stdout + s.stderr);
      assert.ok(!alive(pid), 'gone when stop returns');
      assert.deepEqual(lines(s.stdout), [`Killing ${pid}`, `Waiting for ${pid} to die...`, `Process ${pid} is gone`]);
      assert.ok(took >= GRACE_MS - 100, `stop took ${took} ms`);
    } finally {
      await lock.release();
    }
    const { history } = await jobState(jobId);
    assert.deepEqual(history.map((h) => h.status), ['failure']);
    assert.equal(readIfExists(DEFAULT_PID_FILE(inst.root)), undefined);
  });

  test('idle: SIGTERM and SIGINT end the daemon at once', { timeout: 60_000 }, async (t) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const d = startForeground();
      await waitFor('first poll', () => /first poll finished/.test(d.out.stderr));
      await sleep(300);
      const t0 = Date.now();
      d.child.kill(sig);
      const { code } = await d.exited;
      const took = Date.now() - t0;
      t.diagnostic(`${sig}: gone after ${took} ms`);
      assert.equal(code, 0);
      // Generous bound for a loaded test machine; bench/startup.ts prints the real figure.
      assert.ok(took < 1500, `${sig}: ${took} ms`);
    }
    assert.ok(fs.existsSync(path.join(inst.root, 'users')));
  });

  // The pid file is written before the daemon's start-up is over (the metrics port, the state file).
  // A stop or a reload in between used to meet Node's default action for TERM, INT and HUP: killed
  // by the signal, the pid file left behind. Each signal is sent the moment the pid file names the
  // daemon, several times over, as a `service stop` right after `start` or a systemd reload would.
  test('a stop or reload the moment the pid file appears: TERM and INT stop cleanly, HUP is a reload', { timeout: 120_000 }, async () => {
    const pidFile = DEFAULT_PID_FILE(inst.root);
    for (let round = 0; round < 4; round++) {
      for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
        const d = startForeground();
        for (let i = 0; readIfExists(pidFile)?.trim() !== String(d.child.pid); i++) {
          assert.ok(i < 200_000 && d.child.exitCode === null, `round ${round}, ${sig}: no pid file; ${d.out.stderr}`);
          await new Promise((r) => setImmediate(r));
        }
        d.child.kill(sig);
        if (sig === 'SIGHUP') {
          await waitFor(`round ${round}: the reload`, () => /Reconfiguration requested/.test(d.out.stderr) || d.child.exitCode !== null, 20_000, () => d.out.stderr);
          assert.equal(d.child.exitCode, null, `round ${round}: SIGHUP during start-up ended the daemon: ${d.out.stderr}`);
          d.child.kill('SIGTERM');
        }
        const { code, signal } = await d.exited;
        assert.deepEqual({ code, signal }, { code: 0, signal: null }, `round ${round}, ${sig}: ${d.out.stderr}`);
        assert.equal(readIfExists(pidFile), undefined, `round ${round}, ${sig}: the pid file stayed`);
      }
    }
  });
});
