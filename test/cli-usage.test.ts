// The CLI without a database: usage errors, help/version, status/stop without daemon, config errors.
// Every bad input: one clear line, exit code ≠ 0, nothing written, no stack trace.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { DEFAULT_PID_FILE, lines, readIfExists, runCli } from './harness/cli';
import { FIXTURE_ROOT } from './harness/installation';

const roots: string[] = [];
after(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));

/** A kivitendo ROOT without a database behind it. */
function bareRoot(conf = '[task_server]\n'): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-cli-'));
  roots.push(root);
  fs.cpSync(FIXTURE_ROOT, root, { recursive: true });
  fs.mkdirSync(path.join(root, 'users'), { recursive: true });
  fs.writeFileSync(path.join(root, 'config', 'kivitendo.conf'), conf);
  return root;
}

/** Files below ROOT/users (to prove nothing was written). */
function usersTree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.name !== '.keep') out.push(path.relative(root, p));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(path.join(root, 'users'));
  return out.sort();
}

function assertNoStack(s: string) {
  assert.doesNotMatch(s, /^\s+at /m, 'no stack trace');
  assert.doesNotMatch(s, /node:internal|\.ts:\d+/, 'no source locations');
}

const USAGE_FIRST = /^Usage: kivitendo-background-jobs \[ -c file \] \[ -f \]/;

describe('usage', () => {
  test('help and --help print the usage, exit 0', async () => {
    for (const args of [['help'], ['--help'], ['-h']]) {
      const r = await runCli(args);
      assert.equal(r.code, 0, args.join(' '));
      assert.match(r.stdout, USAGE_FIRST);
      for (const cmd of ['start', 'stop', 'reload', 'restart', 'status', 'check', 'help', 'version', 'debug']) {
        assert.match(r.stdout, new RegExp(`^ ${cmd} `, 'm'), `usage lists ${cmd}`);
      }
      assert.equal(r.stderr, '');
    }
  });

  test('version prints program name and version, exit 0', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
    for (const args of [['version'], ['--version']]) {
      const r = await runCli(args);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `kivitendo-background-jobs - version ${pkg.version}\n`);
    }
  });

  const bad: [string[], RegExp][] = [
    [['bogus'], /^kivitendo-background-jobs: Unknown command: bogus$/],
    [['install'], /^kivitendo-background-jobs: Unknown command: install$/],
    [['--bogus', 'start'], /^kivitendo-background-jobs: Unknown option: bogus$/],
    [['start', '-x'], /^kivitendo-background-jobs: Unknown option: x$/],
    [[], /^kivitendo-background-jobs: Missing command$/],
    [['start', 'stop'], /^kivitendo-background-jobs: Expected one command, got: start stop$/],
    [['--run-job=abc', 'start'], /^kivitendo-background-jobs: Value "abc" invalid for option run-job \(number expected\)$/],
    [['--run-job=0', 'start'], /run-job needs a job ID greater than 0/],
    [['--run-job=5', 'stop'], /run-job can only be used with start or debug/],
    [['--client=Demo', 'start'], /client can only be used together with --run-job/],
    [['-c'], /Option configfile requires an argument|Missing command/],
  ];
  for (const [args, expected] of bad) {
    test(`bad command line: ${JSON.stringify(args)} → one line on stderr + usage, exit 2`, async () => {
      const root = bareRoot();
      const r = await runCli(args, { env: { KIVITENDO_DIR: root } });
      assert.equal(r.code, 2);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr.trim(), expected);
      assert.match(r.stdout, USAGE_FIRST);
      assertNoStack(r.stderr);
      assert.deepEqual(usersTree(root), []);
    });
  }
});

describe('status and stop without a daemon and without a database', () => {
  test('status without pid file: "No kivitendo-background-jobs running", exit 3', async () => {
    const root = bareRoot('[authentication/database]\nhost = 192.0.2.1\n');
    const r = await runCli(['status'], { env: { KIVITENDO_DIR: root } });
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'No kivitendo-background-jobs running\n');
    assert.deepEqual(usersTree(root), []);
  });

  test('status with a stale pid file: dead, exit 1; stop removes it, exit 0', async () => {
    const root = bareRoot();
    fs.mkdirSync(path.join(root, 'users', 'pid'));
    // A pid that is alive but is not the daemon (the test runner itself does not hold the file).
    fs.writeFileSync(DEFAULT_PID_FILE(root), `${process.pid}\n`);
    const s = await runCli(['status'], { env: { KIVITENDO_DIR: root } });
    assert.equal(s.code, 1);
    assert.equal(s.stdout, 'kivitendo-background-jobs dead\n');
    const st = await runCli(['stop'], { env: { KIVITENDO_DIR: root } });
    assert.equal(st.code, 0);
    assert.equal(st.stdout, 'No kivitendo-background-jobs running\n');
    assert.equal(readIfExists(DEFAULT_PID_FILE(root)), undefined, 'stale pid file removed');
  });

  test('--kivitendo-dir wins over KIVITENDO_DIR; --debug prints the pid file path', async () => {
    const a = bareRoot();
    const b = bareRoot();
    const r = await runCli(['--debug', 'status', '--kivitendo-dir', a], { env: { KIVITENDO_DIR: b } });
    assert.equal(r.code, 3);
    assert.equal(lines(r.stdout)[0], `PIDFILE=${DEFAULT_PID_FILE(a)}`);
  });

  test('-c names the pid file: users/pid/<path with / as .>.pid', async () => {
    const root = bareRoot();
    fs.writeFileSync(path.join(root, 'config', 'other.conf'), '[task_server]\n');
    const r = await runCli(['--debug', '-c', 'config/other.conf', 'status'], { env: { KIVITENDO_DIR: root } });
    assert.equal(lines(r.stdout)[0], `PIDFILE=${path.join(root, 'users', 'pid', 'config.other.conf.pid')}`);
  });

  test('a kivitendo directory that does not exist: one line, exit 1', async () => {
    const r = await runCli(['status'], { env: { KIVITENDO_DIR: '/nonexistent/kivitendo' } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Cannot change directory to /nonexistent/kivitendo\n');
  });
});

describe('configuration errors (before any database access)', () => {
  async function startFails(root: string, args: string[] = []) {
    const results = [];
    for (const mode of [['-f', 'start'], ['start']]) {
      const r = await runCli([...args, ...mode], { env: { KIVITENDO_DIR: root } });
      assert.notEqual(r.code, 0, `${mode.join(' ')}: ${r.stdout} ${r.stderr}`);
      assertNoStack(r.stdout + r.stderr);
      assert.deepEqual(usersTree(root), [], 'nothing written');
      results.push(r);
    }
    return results;
  }

  test('missing config file given with -c: one line naming it', async () => {
    const root = bareRoot();
    for (const r of await startFails(root, ['-c', 'config/missing.conf'])) {
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stderr), ["Error: Config file 'config/missing.conf' does not exist"]);
    }
  });

  test('no configuration file at all', async () => {
    const root = bareRoot();
    fs.rmSync(path.join(root, 'config', 'kivitendo.conf.default'));
    fs.rmSync(path.join(root, 'config', 'kivitendo.conf'));
    for (const r of await startFails(root)) {
      assert.equal(r.code, 1);
      assert.equal(lines(r.stderr).length, 1);
      assert.match(r.stderr, /^Error: No configuration file found/);
    }
  });

  test('malformed line: one line naming file and line', async () => {
    const root = bareRoot('[task_server]\nrun_as =\nthis line is nonsense\n');
    for (const r of await startFails(root)) {
      assert.equal(r.code, 1);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr, /^Error in config file '.*config\/kivitendo\.conf' line 3 near: this line is nonsense$/m);
    }
  });

  test('config without [task_server]', async () => {
    const root = bareRoot('[system]\nlanguage = de\n');
    const def = path.join(root, 'config', 'kivitendo.conf.default');
    fs.writeFileSync(def, fs.readFileSync(def, 'utf8').replace(/^\[task_server\]$/m, '[task_server_gone]'));
    for (const r of await startFails(root)) {
      assert.equal(r.code, 1);
      assert.equal(lines(r.stderr).length, 1);
      assert.match(r.stderr, /^Error: Missing section \[task_server\] in config file/);
    }
  });

  test("deprecated [task_server] login: kivitendo's refusal text, exit 2", async () => {
    const root = bareRoot('[task_server]\nlogin = admin\n');
    for (const r of await startFails(root)) {
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^ERROR: The keys 'login' and\/or 'client' are still present in the\nsection \[task_server\] in the configuration file\./);
      assert.match(r.stderr, /The task server will refuse to start until the keys have been removed from\nthe configuration file\.\n$/);
    }
  });

  test('deprecated key with a false value (login = 0) is no refusal', async () => {
    // startup_wait = 0: fail at the unreachable database instead of waiting for it.
    const root = bareRoot('[task_server]\nlogin = 0\nstartup_wait = 0\n[authentication/database]\nhost = 127.0.0.1\nport = 1\n');
    const r = await runCli(['-f', 'start'], { env: { KIVITENDO_DIR: root } });
    assert.equal(r.code, 1); // gets as far as the (unreachable) database
    assert.match(r.stderr, /Authentifizierungsdatenbank/);
  });

  test('invalid memory limit: one line', async () => {
    const root = bareRoot('[system]\nmemory_limit_rss = lots\n');
    for (const r of await startFails(root)) {
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stderr), ["Error: Invalid value 'lots' for [system] memory_limit_rss: expected a size such as 800M, 2G or a number of bytes"]);
    }
  });

  test('unreadable config file (as user nobody)', { skip: process.getuid?.() !== 0 && 'needs root to run as nobody' }, async () => {
    const root = bareRoot('[task_server]\n');
    fs.chmodSync(root, 0o755);
    fs.chmodSync(path.join(root, 'config', 'kivitendo.conf'), 0o600);
    const r = await runCli(['-f', 'start'], { env: { KIVITENDO_DIR: root }, user: 'nobody' });
    assert.equal(r.code, 1);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^Error: Cannot read config file '.*kivitendo\.conf': permission denied$/m);
    assert.deepEqual(usersTree(root), []);
  });
});
