// `check` says per client how each active job runs here: natively, through kivitendo's Perl code
// (its module loaded once to find missing Perl modules), or not at all and why.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { lines, runCli } from './harness/cli';
import { renderConfig } from './harness/installation';
import { insertJob } from './harness/jobs';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';

let inst: KivitendoInstallation;
const ids: Record<string, number> = {};

before(async () => {
  inst = await createKivitendoInstallation({ config: { task_server: { perl_packages: 'Test' } } });
  await inst.query('Demo', `UPDATE background_jobs SET active = false WHERE package_name <> 'CleanBackgroundJobHistory'`);
  inst.addJobPackage('KtsCheckMissing', 'package SL::BackgroundJob::KtsCheckMissing;\nuse Kts::Check::Absent;\n1;\n');
  for (const name of ['Test', 'ConvertTimeRecordings', 'KtsCheckMissing', 'KtsCheckUnknown']) ids[name] = await insertJob(inst, 'Demo', { packageName: name, type: 'once' });
  ids.inactive = await insertJob(inst, 'Demo', { packageName: 'SyncWebDAV', active: false });
});
after(() => inst?.remove());

const jobLines = (stdout: string) => lines(stdout).filter((l) => l.startsWith('  job '));

test('check lists each active job: native, Perl (forced or not), or cannot run with the reason', { timeout: 60_000 }, async () => {
  const r = await runCli(['check', '--kivitendo-dir', inst.root]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const [cleanup] = await inst.query('Demo', `SELECT id FROM background_jobs WHERE package_name = 'CleanBackgroundJobHistory'`);
  assert.deepEqual(jobLines(r.stdout), [
    `  job ${cleanup.id} CleanBackgroundJobHistory: native (verified for kivitendo 4.0.0, 4.1.0 and 4.1.1)`,
    `  job ${ids.Test} Test: kivitendo's Perl code (SL/BackgroundJob/Test.pm, forced by [task_server] perl_packages)`,
    `  job ${ids.ConvertTimeRecordings} ConvertTimeRecordings: kivitendo's Perl code (SL/BackgroundJob/ConvertTimeRecordings.pm)`,
    `  job ${ids.KtsCheckMissing} KtsCheckMissing: cannot run: job package KtsCheckMissing: kivitendo's Perl code needs the Perl module Kts::Check::Absent, which is not installed`,
    `  job ${ids.KtsCheckUnknown} KtsCheckUnknown: cannot run: unknown job package 'KtsCheckUnknown'`,
  ]);
  assert.deepEqual(lines(r.stderr).filter((l) => l.startsWith('Problem:')), [
    `Problem: Client 1 (Demo): active job ${ids.KtsCheckMissing} KtsCheckMissing cannot run: job package KtsCheckMissing: kivitendo's Perl code needs the Perl module Kts::Check::Absent, which is not installed`,
    `Problem: Client 1 (Demo): active job ${ids.KtsCheckUnknown} KtsCheckUnknown cannot run: unknown job package 'KtsCheckUnknown'`,
  ]);
});

test('check with perl = 0 and with a perl that does not exist', { timeout: 60_000 }, async () => {
  const conf = (name: string, ts: Record<string, string>) => {
    fs.writeFileSync(path.join(inst.root, 'config', `${name}.conf`), fs.readFileSync(inst.configFile, 'utf8') + '\n' + renderConfig({ task_server: ts }));
    return `config/${name}.conf`;
  };
  const off = await runCli(['-c', conf('off', { perl: '0' }), 'check', '--kivitendo-dir', inst.root]);
  const offLines = jobLines(off.stdout);
  assert.ok(offLines.includes(`  job ${ids.Test} Test: native (verified for kivitendo 4.0.0, 4.1.0 and 4.1.1)`), offLines.join('\n'));
  assert.match(offLines.find((l) => l.includes('ConvertTimeRecordings'))!, /cannot run: job package ConvertTimeRecordings is not supported by kivitendo-task-server \S+ natively, and running kivitendo's Perl code is switched off \(\[task_server\] perl = 0\)$/);
  const missing = await runCli(['-c', conf('noperl', { perl: '/nonexistent/perl' }), 'check', '--kivitendo-dir', inst.root]);
  assert.ok(jobLines(missing.stdout).includes(`  job ${ids.ConvertTimeRecordings} ConvertTimeRecordings: cannot run: job package ConvertTimeRecordings: perl cannot be started: '/nonexistent/perl' not found (install perl or set [task_server] perl)`), missing.stdout);
});
