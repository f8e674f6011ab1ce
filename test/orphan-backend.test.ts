// kill -9 of a server mid-job (issue 10 item 2): the killed server's job backend lives on in
// PostgreSQL (it waits for a lock and does not notice its client is gone), while its advisory lock
// died with the control connection. The next server must terminate that orphan before it runs the
// job, so that no job ever has two live backends.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { alive, spawnCli, waitFor } from './harness/cli';
import { createInstallation, renderConfig, type Installation } from './harness/installation';
import { insertJob } from './harness/jobs';

let inst: Installation;
const servers: ReturnType<typeof spawnCli>[] = [];
const appName = (jobId: number) => `kivitendo-task-server job ${jobId}`;

function startServer(n: number) {
  const base = fs.readFileSync(inst.configFile, 'utf8');
  fs.writeFileSync(path.join(inst.root, 'config', `node${n}.conf`), base + '\n' + renderConfig({ task_server: { node_id: `node${n}` } }));
  const s = spawnCli(['-f', '-c', `config/node${n}.conf`, 'start', '--kivitendo-dir', inst.root]);
  servers.push(s);
  return s;
}

// Only this client's database: job ids are per database, and other test files' job 9 may run beside it.
const jobBackends = (jobId: number) =>
  inst.query<{ pid: number; wait_event_type: string | null }>('A', 'SELECT pid, wait_event_type FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [appName(jobId)]);

before(async () => {
  inst = await createInstallation({ clients: [{ name: 'A' }] });
  await inst.query('A', 'UPDATE background_jobs SET active = false');
  const auth = await inst.authConnection();
  await auth.query('INSERT INTO auth.clients_users (client_id, user_id) VALUES ($1, $2)', [inst.clients.A.id, inst.users.taskserver]);
  await auth.end();
});

after(() => {
  for (const s of servers) if (s.child.pid && alive(s.child.pid)) s.child.kill('SIGKILL');
  inst.remove();
});

test('kill -9 mid-job, second server: the orphaned backend is terminated before the job runs again', { timeout: 90_000 }, async () => {
  const blocker = await inst.clientDb('A');
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE employee');
  let orphan: number;
  const jobId = await insertJob(inst, 'A', { packageName: 'UpdateEmployeeBaseData', type: 'once' });
  try {
    const first = startServer(1);
    [{ pid: orphan }] = await waitFor('the job to wait for the employee lock', async () => {
      const r = await jobBackends(jobId);
      return r.length === 1 && r[0].wait_event_type === 'Lock' && r;
    }, 20_000, () => first.out.stderr);
    first.child.kill('SIGKILL');
    await first.exited;
    // The advisory lock (on the killed server's idle control connection) is gone at once; the job's
    // backend, waiting for our table lock, is not.
    await waitFor('the claim to die with the control connection', async () =>
      (await inst.query('A', `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = $1`, [jobId])).length === 0, 10_000);
    assert.deepEqual((await jobBackends(jobId)).map((b) => b.pid), [orphan], 'the orphan still runs');

    const second = startServer(2);
    const [mine] = await waitFor('the second server\'s job backend', async () => {
      const r = (await jobBackends(jobId)).filter((b) => b.pid !== orphan);
      return r.length > 0 && r;
    }, 20_000, () => second.out.stderr);
    const live = (await jobBackends(jobId)).map((b) => b.pid);
    assert.deepEqual(live, [mine.pid], `one live backend for job ${jobId}, not the orphan ${orphan} beside it`);
    assert.match(
      second.out.stderr,
      new RegExp(`WARN BackgroundJob ID ${jobId} \\(UpdateEmployeeBaseData\\) of client A still ran in database backend ${orphan} of a task server that is gone; terminated it before running the job again`),
    );
  } finally {
    await blocker.query('ROLLBACK');
    await blocker.end();
  }
  const rows = await waitFor('the job to run to its end', async () => {
    const r = await inst.query<{ status: string }>('A', `SELECT status FROM background_job_histories WHERE package_name = 'UpdateEmployeeBaseData'`);
    return r.length > 0 && r;
  }, 20_000);
  assert.deepEqual(rows.map((r) => r.status), ['success']);
  for (const s of servers) if (alive(s.child.pid!)) s.child.kill('SIGTERM');
  await Promise.all(servers.map((s) => s.exited));
});
