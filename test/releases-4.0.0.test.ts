// kivitendo 4.0.0, the previous stable release, as an admin runs it: a throwaway installation of
// 4.0.0's own tree (../shared/kivitendo-erp-4.0.0) with databases from 4.0.0's schema dumps. Two
// twin clients with identical data: this server runs a job on "Ours", kivitendo 4.0.0's own
// scripts/task_server.pl runs it on "Perl", and the rows are compared. Native modules verified for
// 4.0.0 run natively; CreatePeriodicInvoices (verified for 4.1.x only) runs through 4.0.0's own
// package and posts exactly what task_server.pl posts; forced native it fails naming the column.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/config';
import { lines, runCli } from './harness/cli';
import { renderConfig } from './harness/installation';
import { insertJob, runJob } from './harness/jobs';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';
import { assertTwinsEqual, createPeriodicOrder, rowsWithoutMoments, runWithKivitendoOn } from './harness/twins';

let inst: KivitendoInstallation;
const TWINS = ['Ours', 'Perl'] as const;

before(async () => {
  inst = await createKivitendoInstallation({
    release: '4.0.0',
    clients: [{ name: 'Ours' }, { name: 'Perl' }, { name: 'Forced' }],
    // A cold perl per run: no preloaded parent outlives the test.
    config: { task_server: { perl_preload_idle: '0' } },
  });
});
after(() => inst?.remove());

const both = async (sql: string, params: unknown[] = []) => {
  for (const c of [...TWINS, 'Forced']) await inst.query(c, sql, params);
};

const runTheirs = (id: number) => runWithKivitendoOn(inst, 'Perl', id);
const rows = (client: string, table: string) => rowsWithoutMoments(inst, client, table);
const assertEqualTwins = (tables: string[]) => assertTwinsEqual(inst, 'Ours', 'Perl', tables);
const createOrder = (client: string) => createPeriodicOrder(inst, client);

describe('kivitendo 4.0.0', { concurrency: false }, () => {
  test('check names the installation\'s version, each client database\'s state and how each job runs and why', { timeout: 120_000 }, async () => {
    const r = await runCli(['check', '--kivitendo-dir', inst.root]);
    const out = lines(r.stdout);
    assert.ok(out.includes(`kivitendo installation ${inst.root}: kivitendo 4.0.0, 677 client database upgrades`), r.stdout + r.stderr);
    assert.ok(out.includes('Client 1 (Ours): database matches kivitendo 4.0.0'), r.stdout);
    const [cpi] = await inst.query('Ours', `SELECT id FROM background_jobs WHERE package_name = 'CreatePeriodicInvoices'`);
    const [selfTest] = await inst.query('Ours', `SELECT id FROM background_jobs WHERE package_name = 'SelfTest'`);
    assert.ok(
      out.includes(`  job ${cpi.id} CreatePeriodicInvoices: kivitendo's Perl code (SL/BackgroundJob/CreatePeriodicInvoices.pm): native module verified for kivitendo 4.1.0 and 4.1.1, this installation is kivitendo 4.0.0`),
      r.stdout,
    );
    assert.ok(out.includes(`  job ${selfTest.id} SelfTest: native (verified for kivitendo 4.0.0, 4.1.0 and 4.1.1)`), r.stdout);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('the seven other default jobs and Test run natively and write what 4.0.0\'s task_server.pl writes', { timeout: 600_000 }, async () => {
    // Something for each job to do: old history rows, a finished once job, expired validity tokens.
    await both(`INSERT INTO background_job_histories (package_name, run_at, status, result, error)
                VALUES ('Test', date_trunc('day', now()) - interval '100 days', 'success', '1', NULL), ('Test', date_trunc('day', now()) - interval '100 days', 'failure', NULL, 'boom'),
                       ('Test', date_trunc('day', now()) - interval '3 days', 'success', '1', NULL)`);
    await both(`INSERT INTO background_jobs (type, package_name, active, last_run_at, cron_spec) VALUES ('once', 'Test', false, date_trunc('day', now()) - interval '2 days', NULL)`);
    await both(`INSERT INTO validity_tokens (scope, token, valid_until) VALUES ('login', 'expired', date_trunc('day', now()) - interval '1 day'), ('login', 'valid', date_trunc('day', now()) + interval '2 days')`);
    const testJob = await insertJob(inst, 'Ours', { packageName: 'Test', type: 'interval', cronSpec: '0 4 * * *', data: '---\nresult: twin\n' });
    assert.equal(await insertJob(inst, 'Perl', { packageName: 'Test', type: 'interval', cronSpec: '0 4 * * *', data: '---\nresult: twin\n' }), testJob);
    const jobs = await inst.query<{ id: number; package_name: string }>('Ours', `SELECT id, package_name FROM background_jobs WHERE active AND package_name <> 'CreatePeriodicInvoices' ORDER BY id`);
    assert.deepEqual(jobs.map((j) => j.package_name), [
      'CleanBackgroundJobHistory', 'BackgroundJobCleanup', 'SelfTest', 'CleanAuthSessions', 'CreateOrUpdateFileFullTexts', 'UpdateEmployeeBaseData', 'ValidityTokenCleanup', 'Test',
    ]);
    for (const j of jobs) {
      const ours = await runJob(inst, 'Ours', { jobId: j.id });
      assert.ok(ours.log.some((l) => l.includes(`: ${j.package_name}: native (verified for kivitendo 4.0.0, 4.1.0 and 4.1.1)`)), `${j.package_name} ran natively:\n${ours.log.join('\n')}`);
      const theirs = await runTheirs(j.id);
      const [o] = (await rows('Ours', 'background_job_histories')).slice(-1);
      const [p] = (await rows('Perl', 'background_job_histories')).slice(-1);
      assert.deepEqual(o, p, `${j.package_name}: the history row 4.0.0's task_server.pl writes\n${theirs}`);
    }
    await assertEqualTwins(['background_job_histories', 'background_jobs', 'validity_tokens', 'employee']);
  });

  test("a package without a native module (ConvertTimeRecordings) and Test forced to Perl run through 4.0.0's own code, as its task_server.pl runs them", { timeout: 600_000 }, async () => {
    const conf = path.join(inst.root, 'config', 'perl.conf');
    fs.writeFileSync(conf, fs.readFileSync(inst.configFile, 'utf8') + '\n' + renderConfig({ task_server: { perl_packages: 'Test', perl_preload_idle: '0' } }));
    for (const [pkg, data] of [['ConvertTimeRecordings', null], ['Test', '---\nresult: through Perl\n']] as const) {
      const id = await insertJob(inst, 'Ours', { packageName: pkg, type: 'once', data });
      assert.equal(await insertJob(inst, 'Perl', { packageName: pkg, type: 'once', data }), id);
      const ours = await runJob(inst, 'Ours', { jobId: id, config: loadConfig(inst.root, 'config/perl.conf') });
      assert.ok(ours.log.some((l) => l.includes(`: ${pkg}: kivitendo's Perl code (SL/BackgroundJob/${pkg}.pm`)), ours.log.join('\n'));
      await runTheirs(id);
    }
    await assertEqualTwins(['background_job_histories', 'background_jobs']);
    const [last] = (await rows('Ours', 'background_job_histories')).slice(-1);
    assert.equal(last.result, 'through Perl');
  });

  test("CreatePeriodicInvoices runs 4.0.0's own package and posts what 4.0.0's task_server.pl posts (2 invoices, 6 acc_trans rows)", { timeout: 600_000 }, async () => {
    for (const c of TWINS) createOrder(c);
    const [job] = await inst.query('Ours', `SELECT id FROM background_jobs WHERE package_name = 'CreatePeriodicInvoices'`);
    const ours = await runJob(inst, 'Ours', { jobId: job.id });
    assert.ok(
      ours.log.some((l) => l.includes(": CreatePeriodicInvoices: kivitendo's Perl code (SL/BackgroundJob/CreatePeriodicInvoices.pm): native module verified for kivitendo 4.1.0 and 4.1.1, this installation is kivitendo 4.0.0")),
      ours.log.join('\n'),
    );
    assert.equal(ours.history.status, 'success', ours.history.error ?? '');
    await runTheirs(job.id);
    assert.equal((await inst.query('Ours', 'SELECT count(*)::int AS n FROM ar'))[0].n, 2);
    assert.equal((await inst.query('Ours', 'SELECT count(*)::int AS n FROM acc_trans'))[0].n, 6);
    await assertEqualTwins(['ar', 'invoice', 'acc_trans', 'periodic_invoices', 'record_links', 'oe', 'orderitems', 'periodic_invoices_configs', 'background_job_histories']);
  });

  test('CreatePeriodicInvoices forced native on 4.0.0 ([task_server] force_native_packages): a failure row naming the missing column and kivitendo 4.0.0, nothing posted', { timeout: 300_000 }, async () => {
    createOrder('Forced');
    const conf = path.join(inst.root, 'config', 'forced.conf');
    fs.writeFileSync(conf, fs.readFileSync(inst.configFile, 'utf8') + '\n' + renderConfig({ task_server: { force_native_packages: 'CreatePeriodicInvoices' } }));
    const [job] = await inst.query('Forced', `SELECT id FROM background_jobs WHERE package_name = 'CreatePeriodicInvoices'`);
    const r = await runJob(inst, 'Forced', { jobId: job.id, config: loadConfig(inst.root, 'config/forced.conf') });
    assert.equal(r.history.status, 'failure');
    assert.match(r.history.error ?? '', /^job package CreatePeriodicInvoices: the SQL of kivitendo-task-server \S+ does not fit this client's database \(kivitendo 4\.0\.0, database matches kivitendo 4\.0\.0\): column "tax_point_start" of relation "ar" does not exist \(SQLSTATE 42703\)/);
    assert.equal((await inst.query('Forced', 'SELECT count(*)::int AS n FROM ar'))[0].n, 0);
  });
});
