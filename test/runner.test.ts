import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createInstallation, type Installation } from './harness/installation';
import { insertJob, runJob } from './harness/jobs';

let inst: Installation;
before(async () => {
  inst = await createInstallation({ clients: [{ name: 'A' }] });
});
after(() => inst.remove());

test('Test job: success history row with result 1, last_run_at and next_run_at written', async () => {
  const now = new Date(2026, 10, 27, 10, 15, 30);
  const r = await runJob(inst, 'A', { packageName: 'Test', now, cronSpec: '* * * * *' });
  assert.equal(r.history.status, 'success');
  assert.equal(r.history.result, '1');
  assert.equal(r.history.run_at, '2026-11-27 10:15:30');
  assert.equal(r.job.last_run_at, '2026-11-27 10:15:30');
  assert.ok(r.job.next_run_at! > '2026-11-27 10:15:30');
  assert.ok(r.log.some((l) => l.includes('is being executed on node test-node')));
});

test('Test job with exception in data: failure row, description NULL, data kept as text', async () => {
  const data = '---\nexception: boom\n';
  const id = await insertJob(inst, 'A', { packageName: 'Test', data, cronSpec: '0 3 * * *', description: 'desc' });
  const r = await runJob(inst, 'A', { jobId: id });
  assert.equal(r.history.status, 'failure');
  // kivitendo's text: Perl's die names where it died (compared with kivitendo's in perl-harness.test.ts)
  assert.equal(r.history.error, `Oh cruel world: boom at ${inst.root}/SL/BackgroundJob/Test.pm line 15.\n`);
  assert.equal(r.history.result, null);
  assert.equal(r.history.description, null);
  assert.equal(r.history.data, data);
});

test('an unsupported kivitendo package fails with a clear message and is rescheduled', async () => {
  const r = await runJob(inst, 'A', { packageName: 'SyncWebDAV' });
  assert.equal(r.history.status, 'failure');
  assert.match(r.history.error!, /^job package SyncWebDAV is not supported by kivitendo-task-server \d/);
  assert.ok(r.job.next_run_at);
});

test('invalid YAML in data: failure row naming the job', async () => {
  const r = await runJob(inst, 'A', { packageName: 'Test', data: 'a: [unclosed' });
  assert.equal(r.history.status, 'failure');
  assert.match(r.history.error!, /invalid YAML in data of background job \d+ \(Test\)/);
});
