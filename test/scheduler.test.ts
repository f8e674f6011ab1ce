import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { loadConfig } from '../src/config/config';
import { memoryLogger } from '../src/log/logger';
import { Scheduler, runSingleJob, type FailureEvent } from '../src/scheduler/scheduler';
import { createInstallation, type Installation } from './harness/installation';
import { waitFor } from './harness/cli';
import { insertJob } from './harness/jobs';

let inst: Installation;
before(async () => {
  inst = await createInstallation({
    clients: [{ name: 'A' }, { name: 'B' }, { name: 'Off', taskServerLogin: null }, { name: 'Broken', dbpasswd: 'wrong-secret' }],
  });
  // Only our test jobs: the default jobs would run too when due.
  for (const name of ['A', 'B', 'Off']) {
    const db = await inst.clientDb(name);
    await db.query('UPDATE background_jobs SET active = false');
    await db.end();
  }
});
after(() => inst.remove());

const histories = (client: string, packageName = 'Test') =>
  inst.query(client, 'SELECT * FROM background_job_histories WHERE package_name = $1 ORDER BY id', [packageName]);


test('a once job runs right after SIGALRM-style wake-up, in enabled clients only; a broken client affects only itself', async () => {
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  const log = memoryLogger();
  const events: FailureEvent[] = [];
  const s = new Scheduler({ config, log, nodeId: 'n1', onFailure: async (e) => void events.push(e) });
  const running = s.run();
  await s.firstPoll;
  const a = await insertJob(inst, 'A', { packageName: 'Test', type: 'once' });
  const off = await insertJob(inst, 'Off', { packageName: 'Test', type: 'once' });
  const t0 = Date.now();
  s.wake();
  const rows = await waitFor('the once job', async () => (await histories('A')).length > 0 && histories('A'), 5000);
  const latency = Date.now() - t0;
  assert.equal(rows.length, 1);
  assert.equal(rows[0].status, 'success');
  assert.ok(latency < 2000, `once job took ${latency} ms`);
  await s.stop(1000);
  assert.equal(await running, 'stopped');
  assert.deepEqual(await histories('Off'), []);
  const brokenEvents = events.filter((e) => e.kind === 'client-outage');
  assert.equal(brokenEvents.length, 1, 'one outage event for the broken client, not one per sweep');
  assert.ok(!log.lines.join('\n').includes('wrong-secret'), 'password never logged');
  void a;
  void off;
});

test('an interval job starts within a second of being due', async () => {
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  const s = new Scheduler({ config, log: memoryLogger(), nodeId: 'n1' });
  const due = new Date(Date.now() + 1500);
  const pad = (n: number) => String(n).padStart(2, '0');
  const text = `${due.getFullYear()}-${pad(due.getMonth() + 1)}-${pad(due.getDate())} ${pad(due.getHours())}:${pad(due.getMinutes())}:${pad(due.getSeconds())}`;
  await insertJob(inst, 'B', { packageName: 'Test', cronSpec: '* * * * *', nextRunAt: text });
  const running = s.run();
  const rows = await waitFor('the interval job', async () => (await histories('B')).length > 0 && histories('B'), 5000);
  const ranAt = Date.now();
  await s.stop(1000);
  await running;
  const dueMs = new Date(due).setMilliseconds(0);
  assert.ok(ranAt - dueMs < 1000 + 300, `started ${ranAt - dueMs} ms after due`);
  assert.equal(rows[0].status, 'success');
});

test('--run-job runs one id only in the named client', async () => {
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  const id = await insertJob(inst, 'A', { packageName: 'Test', cronSpec: '0 3 * * *', active: false });
  const before = (await histories('A')).length;
  const ran = await runSingleJob({ config, log: memoryLogger(), nodeId: 'n1' }, id, 'A');
  assert.equal(ran, 1);
  assert.equal((await histories('A')).length, before + 1);
  await assert.rejects(runSingleJob({ config, log: memoryLogger(), nodeId: 'n1' }, id, 'Nope'), /no enabled client with id or name 'Nope'/);
});

test('failure notification: one mail per failed job run, one per client outage, never the password', async () => {
  const { startSmtpSink } = await import('./harness/smtpSink');
  const sink = await startSmtpSink();
  const { loadConfig: load } = await import('../src/config/config');
  inst.writeConfig({
    mail_delivery: { method: 'smtp', host: '127.0.0.1', port: String(sink.port), security: 'none' },
    'task_server/notify_on_failure': { send_email_to: 'admin@example.com' },
  });
  try {
    const config = load(inst.root, 'config/kivitendo.conf');
    await insertJob(inst, 'A', { packageName: 'Test', type: 'once', data: '---\nexception: mail me\n' });
    const s = new Scheduler({ config, log: memoryLogger(), nodeId: 'n1' });
    const running = s.run();
    await s.firstPoll;
    await waitFor('two mails', async () => sink.messages.length >= 2 && sink.messages, 8000);
    await new Promise((r) => setTimeout(r, 1500)); // further sweeps must not mail the outage again
    await s.stop(1000);
    await running;
    const bodies = sink.messages.map((m) => m.body);
    const jobMails = bodies.filter((b) => b.includes('Oh cruel world: mail me'));
    const outageMails = bodies.filter((b) => b.includes('Broken'));
    assert.equal(jobMails.length, 1, bodies.join('\n----\n'));
    assert.equal(outageMails.length, 1, bodies.join('\n----\n'));
    assert.ok(!sink.messages.some((m) => m.raw.includes('wrong-secret') || m.raw.includes(inst.pg.password)));
    assert.equal(sink.messages[0].headers['subject'], 'kivitendo Task-Server: Hintergrundjob fehlgeschlagen');
    // The reference data has defaults.email_journal = 2: the job's failure mail is journaled.
    const db = await inst.clientDb('A');
    const journal = await db.query(`SELECT status, subject, recipients FROM email_journal`);
    await db.end();
    assert.deepEqual(journal.rows, [{ status: 'sent', subject: "kivitendo Task-Server: Hintergrundjob fehlgeschlagen", recipients: "admin@example.com" }]);
  } finally {
    inst.writeConfig();
    await sink.close();
  }
});

test('credentials fixed in the admin screen are picked up without a restart', async () => {
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  const log = memoryLogger();
  const s = new Scheduler({ config, log, nodeId: 'n1' });
  const running = s.run();
  await s.firstPoll;
  assert.ok(log.lines.some((l) => l.includes('(Broken)') && l.includes('password authentication failed')));
  await insertJob(inst, 'Broken', { packageName: 'Test', type: 'once', data: '---\nresult: reachable again\n' });
  const auth = await inst.authConnection();
  await auth.query(`UPDATE auth.clients SET dbpasswd = $1 WHERE name = 'Broken'`, [inst.pg.password]);
  await auth.end();
  const rows = await waitFor('the job of the repaired client', async () => {
    const r = await histories('Broken');
    return r.length > 0 && r;
  }, 10_000);
  await s.stop(1000);
  await running;
  assert.equal(rows[0].result, 'reachable again');
  assert.ok(log.lines.some((l) => l.includes('client 4 (Broken) is reachable again')));
});
