// The kivitendo test installation is right when kivitendo's own scripts/task_server.pl runs a job in
// it: `--run-job=ID debug` executes kivitendo's Test package and writes kivitendo's history row.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../src/config/config';
import { stopPerlParents } from '../src/jobs/perl/preload';
import { insertJob, runJob } from './harness/jobs';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';

let inst: KivitendoInstallation;

before(async () => {
  inst = await createKivitendoInstallation();
});
after(() => {
  stopPerlParents();
  inst?.remove();
});

function taskServerPl(args: string[]) {
  return spawnSync(inst.perl, ['scripts/task_server.pl', ...args], { cwd: inst.root, encoding: 'utf8', timeout: 120_000 });
}

test("kivitendo's task_server.pl --run-job runs kivitendo's Test package in the installation", async () => {
  const id = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', cronSpec: '* * * * *', data: '---\nresult: from perl\n' });
  const r = taskServerPl([`--run-job=${id}`, 'debug']);
  assert.equal(r.status, 0, `task_server.pl failed: ${r.stdout}${r.stderr}`);
  const rows = await inst.query('Demo', 'SELECT status, result, error FROM background_job_histories WHERE package_name = $1', ['Test']);
  assert.deepEqual(rows, [{ status: 'success', result: 'from perl', error: null }]);
  const [job] = await inst.query('Demo', 'SELECT last_run_at FROM background_jobs WHERE id = $1', [id]);
  assert.ok(job.last_run_at, 'kivitendo set last_run_at');
  // kivitendo ran in the copy, not in the shared tree: its session row is in this auth DB.
  const auth = await inst.authConnection();
  const s = await auth.query('SELECT count(*)::int AS n FROM auth.session');
  await auth.end();
  assert.ok(s.rows[0].n >= 1, 'task_server.pl created its session in the test auth DB');
});

test("a Test job with `exception` fails in kivitendo with its own message", async () => {
  const id = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', cronSpec: '* * * * *', data: '---\nexception: boom\n' });
  const r = taskServerPl([`--run-job=${id}`, 'debug']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const [h] = await inst.query('Demo', `SELECT status, error FROM background_job_histories WHERE status = 'failure'`);
  assert.equal(h.status, 'failure');
  assert.match(h.error, /^Oh cruel world: boom at .*SL\/BackgroundJob\/Test\.pm line \d+\.\n$/);

  // Ours writes the same text, natively and through kivitendo's Perl code. Only task_server.pl's path
  // spelling (its @INC holds scripts/..) and, in its daemon, the `, <GEN4> line 21` of the handle its
  // process read last differ (README "Differences").
  const kivitendo = h.error.replace(`${inst.root}/scripts/../`, `${inst.root}/`).replace(/, <\w+> line \d+\.\n$/, '.\n');
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  for (const perlPackages of [[], ['Test']]) {
    const own = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', cronSpec: '* * * * *', data: '---\nexception: boom\n' });
    const ours = await runJob(inst, 'Demo', { jobId: own, config: { ...config, taskServer: { ...config.taskServer, perlPackages } } });
    assert.equal(ours.history.error, kivitendo, perlPackages.length ? 'through Perl' : 'native');
  }
});

test('test-only packages can be placed into the installation without touching the shared tree', () => {
  const file = inst.addJobPackage('KtsHarnessProbe', 'package SL::BackgroundJob::KtsHarnessProbe; 1;\n');
  assert.ok(fs.existsSync(file));
  assert.ok(!fs.existsSync(path.join(inst.src, 'SL', 'BackgroundJob', 'KtsHarnessProbe.pm')));
});
