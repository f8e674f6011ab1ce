// A client database that does not match its installation — the upgrades of a code update not yet
// applied (kivitendo applies them at the client's next login), a 4.1.1 installation whose client DB
// is still at 4.0.0's level, a database with an upgrade the installation has never seen — gets
// kivitendo's own Perl packages instead of native modules, and check and the log say so (the log
// once, not per run). When the client catches up, its native modules come back.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { lines, runCli } from './harness/cli';
import { insertJob, runJob } from './harness/jobs';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';
import { releaseClientTags } from './harness/postgres';

let inst: KivitendoInstallation;
const tags411 = releaseClientTags('4.1.1');
const tags400 = releaseClientTags('4.0.0');
const newIn411 = tags411.filter((t) => !tags400.includes(t));
const goneIn411 = tags400.filter((t) => !tags411.includes(t));
const FUTURE = 'kts_upgrade_of_a_newer_kivitendo';
let version: string;

before(async () => {
  inst = await createKivitendoInstallation({
    clients: [{ name: 'Cur' }, { name: 'Lag', release: '4.0.0' }, { name: 'Behind' }, { name: 'Newer' }],
    config: { task_server: { perl_preload_idle: '0' } },
  });
  version = fs.readFileSync(path.join(inst.root, 'VERSION'), 'utf8').trim();
  for (const c of ['Cur', 'Lag', 'Behind', 'Newer']) await inst.query(c, `UPDATE background_jobs SET active = false WHERE package_name <> 'CreatePeriodicInvoices'`);
  await inst.query('Behind', 'DELETE FROM schema_info WHERE tag = ANY($1)', [newIn411.slice(-3)]);
  await inst.query('Newer', 'INSERT INTO schema_info (tag, login) VALUES ($1, NULL)', [FUTURE]);
});
after(() => inst?.remove());

describe('client databases that do not match the installation', { concurrency: false }, () => {
  test('the fixtures: 4.1.1 adds upgrades to 4.0.0 and drops none', () => {
    assert.ok(newIn411.length >= 40, `${newIn411.length} upgrades new in 4.1.1`);
    assert.deepEqual(goneIn411, []);
  });

  test('check says per client whether its database matches and how each job runs, and why', { timeout: 120_000 }, async () => {
    const r = await runCli(['check', '--kivitendo-dir', inst.root]);
    const out = lines(r.stdout);
    assert.equal(r.code, 0, `a lagging client database is reported, not a problem: ${r.stdout}${r.stderr}`);
    const pending = (n: number) =>
      `database does not match kivitendo ${version}: ${n} database upgrades of kivitendo ${version} pending (kivitendo applies them at the next login to this client)`;
    assert.ok(out.includes(`Client 1 (Cur): database matches kivitendo ${version}`), r.stdout);
    assert.ok(out.includes(`Client 2 (Lag): ${pending(newIn411.length)}`), r.stdout);
    assert.ok(out.includes(`Client 3 (Behind): ${pending(3)}`), r.stdout);
    assert.ok(out.includes(`Client 4 (Newer): database does not match kivitendo ${version}: 1 upgrade applied that kivitendo ${version} does not know (a newer kivitendo's?): ${FUTURE}`), r.stdout);
    const cpi = (client: number) => out[out.findIndex((l) => l.startsWith(`Client ${client} (`) && /: database (matches|does not match)/.test(l)) + 1];
    assert.match(cpi(1), /^ {2}job \d+ CreatePeriodicInvoices: native \(verified for kivitendo 4\.1\.0 and 4\.1\.1\)$/);
    assert.equal(
      cpi(2).replace(/job \d+/, 'job N'),
      `  job N CreatePeriodicInvoices: kivitendo's Perl code (SL/BackgroundJob/CreatePeriodicInvoices.pm): native module verified for kivitendo 4.1.0 and 4.1.1, this client's database lags behind kivitendo ${version} (${newIn411.length} upgrades pending)`,
    );
    assert.match(cpi(4), new RegExp(`native module verified for kivitendo 4\\.1\\.0 and 4\\.1\\.1, this client's database has 1 upgrade kivitendo \\S+ does not know \\(${FUTURE}\\)$`));
  });

  test("a lagging client runs kivitendo's Perl package; the log says its state once, not per run; once upgraded, native again", { timeout: 300_000 }, async () => {
    const id = await insertJob(inst, 'Behind', { packageName: 'Test', type: 'interval', cronSpec: '0 4 * * *', data: '---\nresult: lagging\n' });
    const first = await runJob(inst, 'Behind', { jobId: id });
    assert.equal(first.history.status, 'success', first.history.error ?? '');
    assert.equal(first.history.result, 'lagging');
    const stateLine = (log: string[]) => log.filter((l) => l.includes(`Client 3 (Behind): kivitendo ${version}: database does not match`));
    assert.equal(stateLine(first.log).length, 1, first.log.join('\n'));
    assert.ok(first.log.some((l) => l.includes("Behind): Test: kivitendo's Perl code (SL/BackgroundJob/Test.pm): native module verified for kivitendo 4.0.0, 4.1.0 and 4.1.1, this client's database lags behind")), first.log.join('\n'));
    const second = await runJob(inst, 'Behind', { jobId: id });
    assert.equal(second.history.status, 'success');
    assert.deepEqual(stateLine(second.log), [], 'said once, not per run');
    assert.ok(!second.log.some((l) => l.includes(': Test: ')), `the route is not repeated:\n${second.log.join('\n')}`);
    // The client's first login after the update applies the upgrades.
    for (const tag of newIn411.slice(-3)) await inst.query('Behind', 'INSERT INTO schema_info (tag, login) VALUES ($1, NULL)', [tag]);
    const third = await runJob(inst, 'Behind', { jobId: id });
    assert.ok(third.log.some((l) => l.includes(`Client 3 (Behind): kivitendo ${version}: database matches kivitendo ${version}`)), third.log.join('\n'));
    assert.ok(third.log.some((l) => l.includes('Behind): Test: native (verified for kivitendo 4.0.0, 4.1.0 and 4.1.1)')), third.log.join('\n'));
  });

  test("a 4.1.1 installation with a client database at 4.0.0's level and one with an unknown upgrade: jobs run through kivitendo's Perl", { timeout: 300_000 }, async () => {
    for (const client of ['Lag', 'Newer']) {
      const id = await insertJob(inst, client, { packageName: 'Test', type: 'once', data: `---\nresult: ${client}\n` });
      const r = await runJob(inst, client, { jobId: id });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
      assert.equal(r.history.result, client);
      assert.ok(r.log.some((l) => l.includes(`${client}): Test: kivitendo's Perl code (SL/BackgroundJob/Test.pm): native module verified`)), r.log.join('\n'));
      assert.ok(r.log.some((l) => l.includes(`${client}): kivitendo ${version}: database does not match`)), r.log.join('\n'));
    }
  });

  test("a release the server knows nothing of (3.9.2): every package runs through kivitendo's Perl, and a failure of the Perl glue names the release in one line", { timeout: 300_000 }, async () => {
    // The admin installs an older kivitendo in place (VERSION is a symlink into the shared tree here).
    fs.rmSync(path.join(inst.root, 'VERSION'));
    fs.writeFileSync(path.join(inst.root, 'VERSION'), '3.9.2\n');
    const glue = "kivitendo-task-server's Perl glue is verified for kivitendo 4.0.0, 4.1.0 and 4.1.1, this installation is kivitendo 3.9.2";
    const r = await runCli(['check', '--kivitendo-dir', inst.root]);
    const out = lines(r.stdout);
    assert.ok(out.some((l) => l.startsWith('kivitendo installation ') && l.endsWith(`client database upgrades; ${glue}`)), r.stdout);
    assert.ok(out.includes('Client 1 (Cur): database matches kivitendo 3.9.2'), r.stdout);
    assert.ok(out.some((l) => / {2}job \d+ CreatePeriodicInvoices: kivitendo's Perl code \(SL\/BackgroundJob\/CreatePeriodicInvoices\.pm\): native module verified for kivitendo 4\.1\.0 and 4\.1\.1, this installation is kivitendo 3\.9\.2$/.test(l)), r.stdout);
    inst.addJobPackage('KtsExitsEarly', 'package SL::BackgroundJob::KtsExitsEarly;\nuse parent qw(SL::BackgroundJob::Base);\nsub run { exit 3 }\n1;\n');
    const own = await runJob(inst, 'Cur', { packageName: 'Test', data: { exception: 'the package says no' } });
    assert.match(own.history.error ?? '', /^Oh cruel world: the package says no at \S+Test\.pm line \d+\.\n$/, "the package's own exception stays kivitendo's text");
    const early = await runJob(inst, 'Cur', { packageName: 'KtsExitsEarly' });
    assert.equal(early.history.status, 'failure');
    assert.match(early.history.error ?? '', new RegExp(`exited with code 3 without reporting a result.* \\(${glue.replace(/[.()]/g, '\\$&')}\\)$`));
    assert.equal((early.history.error ?? '').split('\n').length, 1);
  });
});
