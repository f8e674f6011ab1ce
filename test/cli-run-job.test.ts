// --run-job=ID [--client=ID|NAME]: one job now, in the foreground, then exit.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DEFAULT_PID_FILE, killFromPidFile, lines, readIfExists, runCli } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';

let inst: Installation;
let jobId: number;
const env = () => ({ KIVITENDO_DIR: inst.root });

before(async () => {
  inst = await createInstallation({ clients: [{ name: 'A' }, { name: 'B' }] });
  const db = await inst.clientDb('A');
  const r = await db.query(`SELECT id FROM background_jobs WHERE package_name = 'CleanBackgroundJobHistory'`);
  jobId = r.rows[0].id;
  await db.end();
});
after(() => {
  killFromPidFile(inst.root);
  inst.remove();
});

async function historyCount(client: string): Promise<number> {
  const db = await inst.clientDb(client);
  try {
    const r = await db.query(`SELECT count(*)::int AS n FROM background_job_histories WHERE package_name = 'CleanBackgroundJobHistory'`);
    return r.rows[0].n;
  } finally {
    await db.end();
  }
}

test('--run-job --client=A runs the job only in client A; no pid file involved; exit 0', async () => {
  const r = await runCli([`--run-job=${jobId}`, '--client=A', 'start'], { env: env() });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(await historyCount('A'), 1);
  assert.equal(await historyCount('B'), 0);
  assert.equal(readIfExists(DEFAULT_PID_FILE(inst.root)), undefined);
});

test('--run-job while the daemon runs works (spec §14.7 fixed)', async () => {
  assert.equal((await runCli(['start'], { env: env() })).code, 0);
  try {
    const r = await runCli([`--run-job=${jobId}`, '--client', String(inst.clients.B.id), 'debug'], { env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok((await historyCount('B')) >= 1);
  } finally {
    assert.equal((await runCli(['stop'], { env: env() })).code, 0);
  }
});

test('unknown job id: one line, exit 1', async () => {
  const r = await runCli(['--run-job=987654', 'start'], { env: env() });
  assert.equal(r.code, 1);
  // ([task_server] debug = 1 in the test config: the debug lines come first)
  assert.deepEqual(lines(r.stderr).filter((l) => !/ DEBUG1 /.test(l)), ['Error: No background job with ID 987654 found in any enabled client']);
});

test('unknown client: one line, exit 1', async () => {
  const r = await runCli([`--run-job=${jobId}`, '--client=Nope', 'start'], { env: env() });
  assert.equal(r.code, 1);
  assert.deepEqual(lines(r.stderr).filter((l) => !/ DEBUG1 /.test(l)), ["Error: no enabled client with id or name 'Nope'"]);
});
