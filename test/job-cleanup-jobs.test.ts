// Tier A clean-up jobs: BackgroundJobCleanup, CleanBackgroundJobHistory, ValidityTokenCleanup,
// CleanAuthSessions, UpdateEmployeeBaseData — rows set up as the spec names them, run through the runner.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { REPO } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';
import { runJob } from './harness/jobs';

let inst: Installation;
before(async () => {
  inst = await createInstallation({
    users: [
      { login: 'taskserver' },
      { login: 'anna', settings: { name: 'Anna Arm' } },
      { login: 'bert', settings: { name: 'Bert Bein' } },
      { login: 'carl', settings: { name: 'Carl Copf' } },
    ],
    clients: [{ name: 'A' }, { name: 'B' }, { name: 'C' }, { name: 'D' }, { name: 'Perl' }, { name: 'Ours' }],
  });
});
after(() => inst.remove());

const q = (client: string, sql: string, params: unknown[] = []) => inst.query(client, sql, params);

const NOW = new Date(2026, 2, 10, 12, 0, 0); // 2026-03-10 12:00:00 local

describe('BackgroundJobCleanup', () => {
  test('deletes once rows run more than a day ago; keeps never-run once rows, recent ones and interval rows', async () => {
    await q('A', `INSERT INTO background_jobs (type, package_name, last_run_at, active, description) VALUES
      ('once', 'Test', '2026-03-09 11:59:59', true, 'old once'),
      ('once', 'Test', '2026-03-09 12:00:00', true, 'exactly a day'),
      ('once', 'Test', '2026-03-10 08:00:00', true, 'recent once'),
      ('once', 'Test', NULL, true, 'never run'),
      ('interval', 'Test', '2020-01-01 00:00:00', true, 'old interval')`);
    const r = await runJob(inst, 'A', { packageName: 'BackgroundJobCleanup', now: NOW });
    assert.equal(r.history.status, 'success', r.history.error ?? '');
    assert.equal(r.history.result, '1');
    const left = (await q('A', `SELECT description FROM background_jobs WHERE package_name = 'Test' ORDER BY description`)).map((x) => x.description);
    assert.deepEqual(left, ['exactly a day', 'never run', 'old interval', 'recent once']);
  });

  test('an unknown key in data is ignored with a warning naming it (kivitendo ignores it)', async () => {
    const r = await runJob(inst, 'A', { packageName: 'BackgroundJobCleanup', now: NOW, data: { days: 3 } });
    assert.equal(r.history.status, 'success', r.history.error ?? '');
    assert.ok(r.log.includes(`WARN BackgroundJob ID ${r.job.id}: BackgroundJobCleanup: unknown key 'days' in data ignored (kivitendo's BackgroundJobCleanup does not read it either)`), r.log.join('\n'));
  });
});

describe('CleanBackgroundJobHistory', () => {
  async function seed() {
    await q('B', 'DELETE FROM background_job_histories');
    await q('B', `INSERT INTO background_job_histories (package_name, run_at, status, result) VALUES
      ('S', '2026-02-23 23:59:59', 'success', 's-old'),
      ('S', '2026-02-24 00:00:00', 'success', 's-keep'),
      ('F', '2025-12-09 23:59:59', 'failure', 'f-old'),
      ('F', '2025-12-10 00:00:00', 'failure', 'f-keep'),
      ('X', '2000-01-01 00:00:00', 'running', 'other-status')`);
  }
  const results = async () => (await q('B', `SELECT result FROM background_job_histories WHERE package_name IN ('S','F','X') ORDER BY result`)).map((x) => x.result);

  test('defaults: 14 days for success, 90 for failure, counted from today 00:00; other states kept', async () => {
    await seed();
    const r = await runJob(inst, 'B', { packageName: 'CleanBackgroundJobHistory', now: NOW });
    assert.equal(r.history.status, 'success', r.history.error ?? '');
    assert.equal(r.history.result, '1');
    assert.deepEqual(await results(), ['f-keep', 'other-status', 's-keep']);
  });

  test('retention settings in data; 0 falls back to the default; digit strings accepted', async () => {
    await seed();
    const r = await runJob(inst, 'B', { packageName: 'CleanBackgroundJobHistory', now: NOW, data: { retention_success: '13', retention_failure: 0 } });
    assert.equal(r.history.status, 'success', r.history.error ?? '');
    // 13 days: 2026-02-25 00:00 is the cut-off, so s-keep (02-24) goes too.
    assert.deepEqual(await results(), ['f-keep', 'other-status']);
  });

  test('a wrong type fails naming the key, nothing deleted; a misspelt key is ignored with a warning, defaults apply', async () => {
    await seed();
    const r1 = await runJob(inst, 'B', { packageName: 'CleanBackgroundJobHistory', now: NOW, data: { retention_success: 'two weeks' } });
    assert.equal(r1.history.status, 'failure');
    assert.equal(r1.history.error, "CleanBackgroundJobHistory: key 'retention_success' in data must be an integer, got 'two weeks'");
    assert.deepEqual(await results(), ['f-keep', 'f-old', 'other-status', 's-keep', 's-old']);
    const r2 = await runJob(inst, 'B', { packageName: 'CleanBackgroundJobHistory', now: NOW, data: { retention_sucess: 5 } });
    assert.equal(r2.history.status, 'success', r2.history.error ?? '');
    assert.ok(r2.log.includes(`WARN BackgroundJob ID ${r2.job.id}: CleanBackgroundJobHistory: unknown key 'retention_sucess' in data ignored (kivitendo's CleanBackgroundJobHistory does not read it either)`), r2.log.join('\n'));
    assert.deepEqual(await results(), ['f-keep', 'other-status', 's-keep']);
  });
});

describe('ValidityTokenCleanup', () => {
  test('deletes tokens whose valid_until is before now, keeps the rest', async () => {
    await q('C', `INSERT INTO validity_tokens (scope, token, valid_until) VALUES
      ('s', 'expired', '2026-03-10 11:59:59'), ('s', 'now', '2026-03-10 12:00:00'), ('s', 'future', '2026-03-11 00:00:00')`);
    const r = await runJob(inst, 'C', { packageName: 'ValidityTokenCleanup', now: NOW });
    assert.equal(r.history.status, 'success', r.history.error ?? '');
    assert.equal(r.history.result, '1');
    assert.deepEqual((await q('C', 'SELECT token FROM validity_tokens ORDER BY token')).map((x) => x.token), ['future', 'now']);
  });
});

describe('CleanAuthSessions', () => {
  test('removes sessions older than session_timeout with their content and session_files dirs, in the auth DB', async () => {
    const auth = await inst.authConnection();
    try {
      // kivitendo writes mtime with the database's now(); the default session_timeout is 480 min.
      await auth.query(`INSERT INTO auth.session (id, mtime) VALUES
        ('oldsession1', now() - interval '480 minutes 1 second'), ('freshsession', now() - interval '479 minutes'), ('old../x', now() - interval '70 days')`);
      await auth.query(`INSERT INTO auth.session_content (session_id, sess_key, sess_value) VALUES
        ('oldsession1', 'k', 'v'), ('freshsession', 'k', 'v'), ('old../x', 'k', 'v')`);
      const files = path.join(inst.root, 'users', 'session_files');
      for (const d of ['oldsession1', 'freshsession', 'oldx']) {
        fs.mkdirSync(path.join(files, d, 'sub'), { recursive: true });
        fs.writeFileSync(path.join(files, d, 'sub', 'f.csv'), 'x');
      }
      const r = await runJob(inst, 'A', { packageName: 'CleanAuthSessions', now: NOW });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
      assert.equal(r.history.result, '1');
      assert.deepEqual((await auth.query('SELECT id FROM auth.session ORDER BY id')).rows.map((x) => x.id), ['freshsession']);
      assert.deepEqual((await auth.query('SELECT session_id FROM auth.session_content')).rows.map((x) => x.session_id), ['freshsession']);
      assert.ok(!fs.existsSync(path.join(files, 'oldsession1')));
      assert.ok(!fs.existsSync(path.join(files, 'oldx')), 'the id is reduced to alphanumerics for the directory');
      assert.ok(fs.existsSync(path.join(files, 'freshsession', 'sub', 'f.csv')));
    } finally {
      await auth.query('DELETE FROM auth.session_content');
      await auth.query('DELETE FROM auth.session');
      await auth.end();
    }
  });

  test('[authentication] session_timeout is honoured', async () => {
    inst.writeConfig({ authentication: { session_timeout: '60' } });
    const auth = await inst.authConnection();
    try {
      await auth.query(`INSERT INTO auth.session (id, mtime) VALUES ('a', now() - interval '60 minutes 1 second'), ('b', now() - interval '59 minutes')`);
      const r = await runJob(inst, 'A', { packageName: 'CleanAuthSessions', now: NOW });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
      assert.deepEqual((await auth.query('SELECT id FROM auth.session ORDER BY id')).rows.map((x) => x.id), ['b']);
    } finally {
      await auth.query('DELETE FROM auth.session');
      await auth.end();
      inst.writeConfig();
    }
  });

  test("expiry is measured with the database's clock, which wrote mtime, not the task server's", async () => {
    // The auth DB's sessions run in UTC while the task server's TZ is Europe/Berlin (the test
    // runner's), and the task server's clock is a day ahead: neither may expire a fresh session.
    inst.writeConfig({ authentication: { session_timeout: '60' } });
    const auth = await inst.authConnection();
    await auth.query(`ALTER DATABASE ${inst.authDb} SET timezone = 'UTC'`);
    const utc = await inst.authConnection();
    try {
      await utc.query(`INSERT INTO auth.session (id, mtime) VALUES ('fresh', now() - interval '30 minutes'), ('stale', now() - interval '61 minutes')`);
      const aDayAhead = new Date(Date.now() + 24 * 3600_000);
      const r = await runJob(inst, 'A', { packageName: 'CleanAuthSessions', now: aDayAhead });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
      assert.deepEqual((await auth.query('SELECT id FROM auth.session ORDER BY id')).rows.map((x) => x.id), ['fresh']);
    } finally {
      await utc.end();
      await auth.query('DELETE FROM auth.session');
      await auth.query(`ALTER DATABASE ${inst.authDb} RESET timezone`);
      await auth.end();
      inst.writeConfig();
    }
  });
});

describe('UpdateEmployeeBaseData', () => {
  test('creates/updates employees of the users assigned to this client only', async () => {
    const auth = await inst.authConnection();
    try {
      const clientD = inst.clients['D'].id;
      const clientA = inst.clients['A'].id;
      await auth.query('INSERT INTO auth.clients_users (client_id, user_id) VALUES ($1, $2), ($1, $3), ($4, $5)', [
        clientD, inst.users['anna'], inst.users['bert'], clientA, inst.users['carl'],
      ]);
      await q('D', `INSERT INTO employee (login, name, deleted, sales) VALUES ('bert', 'Old Name', true, false), ('carl', 'Carl Old', true, false)`);
      const r = await runJob(inst, 'D', { packageName: 'UpdateEmployeeBaseData', now: NOW });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
      assert.equal(r.history.result, '1');
      const rows = await q('D', `SELECT login, name, deleted, sales FROM employee WHERE login IN ('anna','bert','carl') ORDER BY login`);
      assert.deepEqual(rows, [
        { login: 'anna', name: 'Anna Arm', deleted: false, sales: true },
        { login: 'bert', name: 'Bert Bein', deleted: false, sales: false },
        { login: 'carl', name: 'Carl Old', deleted: true, sales: false },
      ]);
      // A second run changes nothing and creates no duplicates.
      await runJob(inst, 'D', { packageName: 'UpdateEmployeeBaseData', now: NOW });
      assert.equal((await q('D', `SELECT COUNT(*)::int AS n FROM employee WHERE login = 'anna'`))[0].n, 1);
    } finally {
      await auth.query('DELETE FROM auth.clients_users');
      await auth.end();
    }
  });

  test('the employee rows written are those kivitendo writes (kivitendo run on a twin client); login is unique, so one row per user', async () => {
    // SL::DB::Manager::Employee::update_entries_for_authorized_users maps the employee rows by login
    // and updates the one found or creates one. employee.login has a unique index in kivitendo's
    // schema, so "the one found" is the only one. The same rows in two clients: kivitendo's own
    // Perl runs on one, this server on the other; every column must come out the same.
    const source = process.env.KIVITENDO_SOURCE ?? path.join(REPO, '..', 'shared', 'kivitendo-erp');
    assert.ok(fs.existsSync(path.join(source, 'SL', 'DB', 'Manager', 'Employee.pm')), `kivitendo's source is missing at ${source} (set KIVITENDO_SOURCE)`);
    const auth = await inst.authConnection();
    try {
      for (const c of ['Perl', 'Ours']) {
        await auth.query('INSERT INTO auth.clients_users (client_id, user_id) VALUES ($1, $2), ($1, $3), ($1, $4)', [inst.clients[c].id, inst.users['anna'], inst.users['bert'], inst.users['taskserver']]);
        await q(c, `INSERT INTO employee (login, name, deleted, sales, deleted_email) VALUES ('anna', 'Anna 1', true, false, 'a@example.com'), ('zoe', 'Zoe', true, false, NULL)`);
        await assert.rejects(q(c, `INSERT INTO employee (login, name) VALUES ('anna', 'Anna 2')`), /employee_login_key/, 'kivitendo allows one employee row per login');
      }
      const r = spawnSync('perl', [
        path.join(REPO, 'test', 'harness', 'kivitendo-eval.pl'), source, inst.configFile, String(inst.clients['Perl'].id), 'taskserver',
        'require SL::DB::Employee; SL::DB::Manager::Employee->update_entries_for_authorized_users',
      ], { encoding: 'utf8' });
      assert.equal(r.status, 0, `kivitendo's Perl failed (are kivitendo's Perl modules installed? DEBIAN-PACKAGES.txt): ${r.stdout}${r.stderr}`);
      const run = await runJob(inst, 'Ours', { packageName: 'UpdateEmployeeBaseData', now: NOW });
      assert.equal(run.history.status, 'success', run.history.error ?? '');
      const rows = async (c: string) =>
        (await q(c, `SELECT * FROM employee ORDER BY id`)).map(({ itime, mtime, ...rest }) => (void itime, void mtime, rest));
      const kivitendo = await rows('Perl');
      assert.deepEqual(
        kivitendo.map((e) => `${e.login}:${e.name}:${e.deleted}:${e.sales}`),
        ['unittests:Unit Tester:false:true', 'taskserver:Task Server:false:true', 'anna:Anna Arm:false:false', 'zoe:Zoe:true:false', 'bert:Bert Bein:false:true'],
      );
      assert.deepEqual(await rows('Ours'), kivitendo);
    } finally {
      await auth.query('DELETE FROM auth.clients_users');
      await auth.end();
    }
  });
});
