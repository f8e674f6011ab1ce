// Pre-flight failures with a real auth database: each gives one clear line (or kivitendo's refusal
// text), an exit code ≠ 0, writes nothing and shows no stack trace — in the foreground (start -f) and
// through the detached start, whose parent reports the child's verdict.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_PID_FILE, isRoot, killFromPidFile, lines, readIfExists, runCli, spawnCli, waitFor, type CliResult } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';
import { freePort } from './harness/postgres';

let inst: Installation;
const env = () => ({ KIVITENDO_DIR: inst.root });

before(async () => {
  inst = await createInstallation();
});
after(() => {
  killFromPidFile(inst.root);
  inst.remove();
});

function assertClean(r: CliResult) {
  assert.doesNotMatch(r.stdout + r.stderr, /^\s+at /m, 'no stack trace');
  assert.equal(fs.existsSync(path.join(inst.root, 'users', 'pid')), false, 'users/pid not created');
}

/** Runs `-f start` and `start`; returns both results after the common assertions. */
async function bothStarts(opts: { user?: string } = {}): Promise<CliResult[]> {
  const out: CliResult[] = [];
  for (const args of [['-f', 'start'], ['start']]) {
    fs.rmSync(path.join(inst.root, 'users', 'pid'), { recursive: true, force: true });
    const r = await runCli(args, { env: env(), user: opts.user });
    assert.notEqual(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assertClean(r);
    if (args.length === 1) assert.equal(lines(r.stdout)[0], 'Starting kivitendo-background-jobs server');
    out.push(r);
  }
  return out;
}

describe('pre-flight refusals', { concurrency: false }, () => {
  test('auth database unreachable (startup_wait = 0): one line (German for language = de), exit 1', async () => {
    const port = await freePort();
    // Without startup_wait = 0 start-up waits for it (test/auth-outage.test.ts).
    const noWait = { task_server: { startup_wait: '0' } };
    inst.writeConfig({ 'authentication/database': { port: String(port) }, ...noWait });
    for (const r of await bothStarts()) {
      assert.equal(r.code, 1);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^Error: Die Verbindung zur Authentifizierungsdatenbank schlug fehl: cannot connect to database ${inst.authDb} on 127\\.0\\.0\\.1:${port} as postgres: .*ECONNREFUSED`));
    }
    inst.writeConfig({ 'authentication/database': { port: String(port) }, system: { language: 'en' }, ...noWait });
    const r = await runCli(['-f', 'start'], { env: env() });
    assert.match(r.stderr, /^Error: The connection to the authentication database failed: /);
  });

  test('wrong database password: one line, the password is never shown', async () => {
    const secret = 'Very-Secret-Pw-4711';
    inst.writeConfig({ 'authentication/database': { password: secret } });
    for (const r of await bothStarts()) {
      assert.equal(r.code, 1);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr, /password authentication failed for user "postgres"/);
      assert.ok(!(r.stdout + r.stderr).includes(secret), 'password not echoed');
      assert.ok(!(r.stdout + r.stderr).includes(inst.pg.password), 'real password not echoed');
    }
    const c = await runCli(['check'], { env: env() });
    assert.equal(c.code, 1);
    assert.ok(!(c.stdout + c.stderr).includes(secret));
    assert.match(c.stderr, /^Problem: Auth database .* is not reachable: .*password authentication failed/m);
  });

  test('pending auth DB upgrade: kivitendo refusal text, exit 2; check reports it', async () => {
    inst.writeConfig();
    const script = path.join(inst.root, 'sql', 'Pg-upgrade2-auth', 'zz_kts_test_upgrade.sql');
    fs.writeFileSync(script, '-- @tag: zz_kts_test_upgrade\n-- @description: test\n-- @depends:\nSELECT 1;\n');
    try {
      for (const r of await bothStarts()) {
        assert.equal(r.code, 2);
        assert.equal(
          r.stderr,
          "The authentication database requires an upgrade. Please login to\nkivitendo's administration interface in order to apply it. The task\nserver cannot start until the upgrade has been applied.\n",
        );
      }
      const c = await runCli(['check'], { env: env() });
      assert.equal(c.code, 1);
      assert.match(c.stderr, /^Problem: Auth database upgrades pending: zz_kts_test_upgrade$/m);
      // status and stop do not need the database at all
      assert.equal((await runCli(['status'], { env: env() })).code, 3);
      assert.equal((await runCli(['stop'], { env: env() })).code, 0);
    } finally {
      fs.rmSync(script);
    }
  });

  test('malformed upgrade control file: one line naming the file', async () => {
    const script = path.join(inst.root, 'sql', 'Pg-upgrade2-auth', 'zz_broken.sql');
    fs.writeFileSync(script, '-- @tag: zz_broken\n-- @description: x\n-- @colour: blue\n');
    try {
      for (const r of await bothStarts()) {
        assert.equal(r.code, 1);
        assert.deepEqual(lines(r.stderr), [`Error in database control file '${script}': Unknown control key 'colour'`]);
      }
    } finally {
      fs.rmSync(script);
    }
  });

  test('run_as user that does not exist: kivitendo text, exit 1', async () => {
    inst.writeConfig({ task_server: { run_as: 'no_such_user_kts' } });
    for (const r of await bothStarts()) {
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stderr), ['Error: Cannot drop privileges to no_such_user_kts: user does not exist']);
    }
    inst.writeConfig();
  });

  test('users/pid not writable (as user nobody): one line, exit 1', { skip: !isRoot && 'needs root to run as nobody' }, async () => {
    inst.writeConfig();
    fs.chmodSync(inst.root, 0o755);
    for (const r of await bothStarts({ user: 'nobody' })) {
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stderr), [`Error: Cannot create directory ${path.join(inst.root, 'users', 'pid')}: permission denied`]);
    }
    fs.mkdirSync(path.join(inst.root, 'users', 'pid'));
    const r = await runCli(['-f', 'start'], { env: env(), user: 'nobody' });
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stderr), [`Error: Cannot create pid file ${DEFAULT_PID_FILE(inst.root)}: permission denied`]);
    assert.deepEqual(fs.readdirSync(path.join(inst.root, 'users', 'pid')), []);
    fs.rmdirSync(path.join(inst.root, 'users', 'pid'));
  });
});

describe('privilege drop', () => {
  test('run_as = nobody (started as root): the daemon runs as nobody with its groups', { skip: !isRoot && 'needs root' }, async () => {
    inst.writeConfig({ task_server: { run_as: 'nobody', debug: '1' } });
    fs.chmodSync(inst.root, 0o755);
    fs.mkdirSync(path.join(inst.root, 'users', 'pid'), { recursive: true });
    execFileSync('chown', ['-R', 'nobody', path.join(inst.root, 'users')]);
    const d = spawnCli(['-f', 'start'], { env: env() });
    try {
      const pid = await waitFor('pid file', () => Number(readIfExists(DEFAULT_PID_FILE(inst.root))?.trim()) || undefined);
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const uid = execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim();
      const groups = execFileSync('id', ['-G', 'nobody'], { encoding: 'utf8' }).trim().split(/\s+/).sort();
      assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
      assert.deepEqual(/^Groups:\s*(.*)$/m.exec(status)![1].trim().split(/\s+/).sort(), groups);
      assert.equal(fs.statSync(DEFAULT_PID_FILE(inst.root)).uid, Number(uid), 'pid file created after the drop');
      d.child.kill('SIGTERM');
      assert.equal((await d.exited).code, 0);
      assert.equal(readIfExists(DEFAULT_PID_FILE(inst.root)), undefined);
    } finally {
      d.child.kill('SIGKILL');
      inst.writeConfig();
      execFileSync('chown', ['-R', 'root', path.join(inst.root, 'users')]);
      fs.rmSync(path.join(inst.root, 'users', 'pid'), { recursive: true, force: true });
    }
  });
});
