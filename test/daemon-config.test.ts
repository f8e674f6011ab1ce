// Hardening of configuration and process handling as an admin meets it (issue 10, items 3, 4, 15):
// a kivitendo.conf that exists but cannot be used, a SIGHUP while it is missing or broken, running
// as root without run_as, a pid file naming another program, a mistyped option, broken YAML in
// background_jobs.data, and `stop` by a user who may not signal the daemon. All as processes,
// against the test cluster.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { alive, DEFAULT_PID_FILE, isRoot, killFromPidFile, lines, readIfExists, runCli, spawnCli, waitFor, type CliResult } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';
import { insertJob } from './harness/jobs';

let inst: Installation;
const env = () => ({ KIVITENDO_DIR: inst.root });
const pidFile = () => DEFAULT_PID_FILE(inst.root);
const confFile = () => inst.configFile;

/** The one-line warning `start` and `check` give when jobs would run as root. */
const ROOT_WARNING = /^Warning: \[task_server\] run_as is empty and the task server runs as root: .*set run_as .*www-data/;

before(async () => {
  inst = await createInstallation({ config: { debug: { global_level: 'INFO' } } });
});
after(() => {
  killFromPidFile(inst.root);
  inst.remove();
});

function assertNothingStarted(r: CliResult) {
  assert.doesNotMatch(r.stdout + r.stderr, /^\s+at /m, 'no stack trace');
  assert.equal(readIfExists(pidFile()), undefined, 'no pid file');
  assert.doesNotMatch(r.stdout, /looks okay/);
}

function requireRoot() {
  assert.ok(isRoot, 'this test must run as root (it starts the daemon as root / runs commands as user nobody)');
}

describe('a config/kivitendo.conf that exists but cannot be used is an error naming it (item 3)', { concurrency: false }, () => {
  const cases: [string, () => void, RegExp][] = [
    [
      'a directory',
      () => fs.mkdirSync(confFile()),
      /^Error: Config file '.*config\/kivitendo\.conf' is not a regular file \(it is a directory\)$/,
    ],
    [
      'a dangling symbolic link',
      () => fs.symlinkSync('kivitendo.conf.gone', confFile()),
      /^Error: Config file '.*config\/kivitendo\.conf' is a symbolic link to 'kivitendo\.conf\.gone', which does not exist$/,
    ],
  ];
  for (const [what, make, expected] of cases) {
    test(`kivitendo.conf is ${what}: start -f, start and check refuse in one line (no silent kivitendo.conf.default)`, async () => {
      const good = fs.readFileSync(confFile(), 'utf8');
      fs.rmSync(confFile());
      make();
      try {
        for (const args of [['-f', 'start'], ['start'], ['check']]) {
          const r = await runCli(args, { env: env() });
          assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
          assert.equal(lines(r.stderr).length, 1, `${args.join(' ')}: ${r.stderr}`);
          assert.match(r.stderr.trim(), expected, args.join(' '));
          assertNothingStarted(r);
        }
      } finally {
        fs.rmSync(confFile(), { recursive: true, force: true });
        fs.writeFileSync(confFile(), good);
      }
    });
  }

  test('kivitendo.conf unreadable (mode 000, as user nobody): check refuses in one line naming it', async () => {
    requireRoot();
    fs.chmodSync(inst.root, 0o755);
    fs.chmodSync(confFile(), 0o000);
    try {
      const r = await runCli(['check'], { env: env(), user: 'nobody' });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(lines(r.stderr), [`Error: Cannot read config file '${confFile()}': permission denied`]);
      assertNothingStarted(r);
    } finally {
      fs.chmodSync(confFile(), 0o644);
      fs.chmodSync(inst.root, 0o700);
    }
  });
});

describe('SIGHUP with a missing or broken kivitendo.conf keeps the old configuration (item 3)', { concurrency: false }, () => {
  test('file gone, then a directory in its place: one line each, old config kept; restored: reloaded', async () => {
    const good = fs.readFileSync(confFile(), 'utf8');
    const d = spawnCli(['-f', 'start'], { env: env() });
    try {
      const pid = await waitFor('pid file', () => Number(readIfExists(pidFile())?.trim()) || undefined, 20_000, () => d.out.stderr);
      await waitFor('first poll', () => /first poll finished/.test(d.out.stderr), 20_000, () => d.out.stderr);
      const outcomes = () => lines(d.out.stderr).filter((l) => /Configuration reloaded|Reconfiguration failed/.test(l));

      fs.renameSync(confFile(), `${confFile()}.moved`);
      process.kill(pid, 'SIGHUP');
      await waitFor('reload outcome 1', () => outcomes().length >= 1, 10_000, () => d.out.stderr);
      assert.match(outcomes()[0], /Reconfiguration failed, keeping the previous configuration: Config file '.*config\/kivitendo\.conf' does not exist$/);

      fs.mkdirSync(confFile());
      process.kill(pid, 'SIGHUP');
      await waitFor('reload outcome 2', () => outcomes().length >= 2, 10_000, () => d.out.stderr);
      assert.match(outcomes()[1], /Reconfiguration failed, keeping the previous configuration: Config file '.*config\/kivitendo\.conf' is not a regular file \(it is a directory\)$/);
      fs.rmdirSync(confFile());

      assert.ok(alive(pid));

      fs.renameSync(`${confFile()}.moved`, confFile());
      process.kill(pid, 'SIGHUP');
      await waitFor('reload outcome 3', () => outcomes().length >= 3, 10_000, () => d.out.stderr);
      assert.match(outcomes()[2], /Configuration reloaded$/);
      assert.equal(outcomes().length, 3, 'one line per SIGHUP');

      d.child.kill('SIGTERM');
      assert.equal((await d.exited).code, 0, d.out.stderr);
    } finally {
      d.child.kill('SIGKILL');
      if (!fs.existsSync(confFile()) || fs.statSync(confFile()).isDirectory()) {
        fs.rmSync(confFile(), { recursive: true, force: true });
        fs.writeFileSync(confFile(), good);
      }
    }
  });
});

describe('running as root with run_as empty warns in one line (item 4)', { concurrency: false }, () => {
  test('start (detached), start -f and check warn once; with run_as set they do not', async () => {
    requireRoot();
    const s = await runCli(['start'], { env: env() });
    try {
      assert.equal(s.code, 0, s.stdout + s.stderr);
      assert.equal(lines(s.stderr).length, 1, s.stderr);
      assert.match(s.stderr, ROOT_WARNING);
      const c = await runCli(['check'], { env: env() });
      assert.equal(c.code, 0, c.stdout + c.stderr);
      assert.equal(lines(c.stderr).length, 1, c.stderr);
      assert.match(c.stderr, ROOT_WARNING);
    } finally {
      assert.equal((await runCli(['stop'], { env: env() })).code, 0);
    }

    const d = spawnCli(['-f', 'start'], { env: { ...env(), JOURNAL_STREAM: '8:1' } });
    try {
      await waitFor('first poll', () => /first poll finished/.test(d.out.stderr), 20_000, () => d.out.stderr);
      const warnings = lines(d.out.stderr).filter((l) => /run_as/.test(l));
      assert.equal(warnings.length, 1, d.out.stderr);
      assert.match(warnings[0].replace(/^<4>/, ''), ROOT_WARNING);
      assert.match(warnings[0], /^<4>/, 'a warning priority for journald');
      d.child.kill('SIGTERM');
      assert.equal((await d.exited).code, 0);
    } finally {
      d.child.kill('SIGKILL');
    }

    inst.writeConfig({ debug: { global_level: 'INFO' }, task_server: { run_as: 'root' } });
    try {
      const c = await runCli(['check'], { env: env() });
      assert.equal(c.code, 0, c.stdout + c.stderr);
      assert.doesNotMatch(c.stderr, /run_as/);
    } finally {
      inst.writeConfig({ debug: { global_level: 'INFO' } });
    }
  });
});

describe('small ones (item 15)', { concurrency: false }, () => {
  test('a pid file naming a live process that is not the daemon: start says which program it is', async () => {
    fs.mkdirSync(path.dirname(pidFile()), { recursive: true });
    fs.writeFileSync(pidFile(), `${process.pid}\n`); // the test runner: alive, but not the daemon
    const r = await runCli(['start'], { env: env() });
    try {
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const stale = lines(r.stdout).filter((l) => /stale/.test(l));
      assert.equal(stale.length, 1, r.stdout);
      assert.match(
        stale[0],
        new RegExp(`^Removed stale pid file users/pid/config\\.kivitendo\\.conf\\.pid \\(pid ${process.pid} belongs to another program, not this task server: \\S*node .*\\)$`),
      );
      assert.doesNotMatch(stale[0], /was not running/);
    } finally {
      await runCli(['stop'], { env: env() });
    }
  });

  test('-foreground start: names the bad option instead of "Missing command"', async () => {
    for (const [args, expected] of [
      [['-foreground', 'start'], 'kivitendo-background-jobs: Unknown option: -foreground (long options take two dashes: --foreground)'],
      [['-configfile', 'x.conf', 'start'], 'kivitendo-background-jobs: Unknown option: -configfile (long options take two dashes: --configfile)'],
      [['-fx', 'start'], 'kivitendo-background-jobs: Unknown option: -fx'],
    ] as [string[], string][]) {
      const r = await runCli(args, { env: env() });
      assert.equal(r.code, 2, args.join(' '));
      assert.deepEqual(lines(r.stderr), [expected]);
    }
  });

  test('invalid YAML in background_jobs.data: the history row ends with the parser reason, not a colon', async () => {
    const id = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: 'a: b: c' });
    const r = await runCli([`--run-job=${id}`, 'start'], { env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const [row] = await inst.query<{ status: string; error: string }>('Demo', 'SELECT status, error FROM background_job_histories WHERE package_name = $1 ORDER BY id DESC LIMIT 1', ['Test']);
    assert.equal(row.status, 'failure');
    assert.equal(row.error, `invalid YAML in data of background job ${id} (Test): line 1, column 4: Nested mappings are not allowed in compact mappings`);
  });

  test('"already running" starts with a small letter like every other message', async () => {
    const s = await runCli(['start'], { env: env() });
    try {
      assert.equal(s.code, 0, s.stdout + s.stderr);
      const pid = Number(readIfExists(pidFile())!.trim());
      const again = await runCli(['start'], { env: env() });
      assert.equal(again.stdout, `kivitendo-background-jobs is already running (pid ${pid})\n`);
    } finally {
      await runCli(['stop'], { env: env() });
    }
  });

  test('stop and reload by a user who may not signal the daemon: one line, exit 4 (LSB "insufficient privilege")', async () => {
    requireRoot();
    fs.chmodSync(inst.root, 0o755);
    const s = await runCli(['start'], { env: env() });
    try {
      assert.equal(s.code, 0, s.stdout + s.stderr);
      const pid = Number(readIfExists(pidFile())!.trim());
      for (const cmd of ['stop', 'reload']) {
        const r = await runCli([cmd], { env: env(), user: 'nobody' });
        assert.equal(r.code, 4, `${cmd}: ${r.stdout}${r.stderr}`);
        const sig = cmd === 'stop' ? 'SIGINT' : 'SIGHUP';
        assert.deepEqual(lines(r.stderr), [`Error: Not allowed to send ${sig} to kivitendo-background-jobs (pid ${pid}): it runs as user root (uid 0); run ${cmd} as root or as that user`]);
        assert.ok(alive(pid), 'the daemon is untouched');
        assert.equal(Number(readIfExists(pidFile())!.trim()), pid, 'the pid file is untouched');
      }
    } finally {
      fs.chmodSync(inst.root, 0o700);
      assert.equal((await runCli(['stop'], { env: env() })).code, 0);
    }
  });
});
