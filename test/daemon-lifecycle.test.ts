// The daemon as a process: start/status/stop, pid file, signals, stale pid files, reload, check.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RUN_AS_ROOT_WARNING } from '../src/daemon/privileges';
import { alive, DEFAULT_PID_FILE, isRoot, killFromPidFile, lines, readIfExists, runCli, spawnCli, waitFor } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';

let inst: Installation;
const env = () => ({ KIVITENDO_DIR: inst.root });
const pidFile = () => DEFAULT_PID_FILE(inst.root);
const debugLog = () => path.join(inst.root, 'users', 'kivitendo-debug.log');

before(async () => {
  inst = await createInstallation({
    clients: [{ name: 'Demo' }, { name: 'Off', taskServerLogin: null }],
    config: { debug: { global_level: 'INFO' } },
  });
});
after(() => {
  killFromPidFile(inst.root);
  inst.remove();
});

function pidFromFile(): number {
  const content = readIfExists(pidFile());
  assert.ok(content, 'pid file exists');
  assert.match(content, /^\d+\n$/, 'pid file content is "PID\\n"');
  return Number(content.trim());
}

describe('start / status / stop (detached)', { concurrency: false }, () => {
  let pid: number;

  test('status before start: not running, exit 3', async () => {
    const r = await runCli(['status'], { env: env() });
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'No kivitendo-background-jobs running\n');
  });

  test('start: returns once the daemon is up, pid file "PID\\n" of a live process', async () => {
    const r = await runCli(['start'], { env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // As root with run_as empty (this test's config) `start` warns in one line (issue 10.4).
    assert.equal(r.stderr, isRoot ? RUN_AS_ROOT_WARNING + '\n' : '');
    pid = pidFromFile();
    assert.deepEqual(lines(r.stdout), ['Starting kivitendo-background-jobs server', `kivitendo-background-jobs running - pid ${pid}`]);
    assert.ok(alive(pid));
    assert.notEqual(pid, process.pid);
    // The detached daemon runs with a small V8 young generation (flat RSS, README).
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    assert.ok(environ.some((v) => v.startsWith('NODE_OPTIONS=') && v.includes('--max-semi-space-size=1')), 'NODE_OPTIONS of the daemon');
  });

  test('status: running - pid N, exit 0, then what the daemon does', async () => {
    const r = await runCli(['status'], { env: env() });
    assert.equal(r.code, 0);
    // The first line stays task_server.pl's; the daemon's own state follows (test/watching.test.ts).
    assert.equal(lines(r.stdout)[0], `kivitendo-background-jobs running - pid ${pid}`);
    assert.match(lines(r.stdout)[1], /^  Up \d+ s \(since /);
  });

  test('the first poll finishes and is logged (debug = 1 is enough)', async () => {
    await waitFor('first poll line in the debug log', () => /task server: first poll finished in \d+ ms/.test(readIfExists(debugLog()) ?? ''));
  });

  test('start again: already running (pid N), exit 0, pid file untouched', async () => {
    const before = fs.statSync(pidFile());
    const r = await runCli(['start'], { env: env() });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `kivitendo-background-jobs is already running (pid ${pid})\n`);
    const after = fs.statSync(pidFile());
    assert.equal(after.mtimeMs, before.mtimeMs);
    assert.equal(pidFromFile(), pid);
  });

  test('start -f while running: one line, exit 1, nothing changed', async () => {
    const r = await runCli(['-f', 'start'], { env: env() });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, `kivitendo-background-jobs is already running (pid ${pid})\n`);
    assert.equal(r.stderr, '');
    assert.equal(pidFromFile(), pid);
    assert.ok(alive(pid));
  });

  test('SIGALRM (the web UI wake-up) does not kill the daemon', async () => {
    for (let i = 0; i < 3; i++) {
      process.kill(pid, 'SIGALRM');
      await sleep(100);
    }
    await sleep(500);
    assert.ok(alive(pid));
    assert.equal((await runCli(['status'], { env: env() })).code, 0);
  });

  test('reload: SIGHUP, "Requested reconfiguration", keeps running; a broken config is not fatal', async () => {
    const r = await runCli(['reload'], { env: env() });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'Requested reconfiguration\n');
    await waitFor('reload logged', () => /\] info: Configuration reloaded$/m.test(readIfExists(debugLog()) ?? ''));
    assert.match(readIfExists(debugLog())!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (\d+) \[\1\] info: The task server for node .+ is up and running\.$/m);
    const good = fs.readFileSync(inst.configFile, 'utf8');
    fs.appendFileSync(inst.configFile, 'garbage line\n');
    try {
      process.kill(pid, 'SIGHUP');
      await waitFor('reload failure logged', () => /Reconfiguration failed, keeping the previous configuration: Error in config file/.test(readIfExists(debugLog()) ?? ''));
      assert.ok(alive(pid));
    } finally {
      fs.writeFileSync(inst.configFile, good);
    }
  });

  test('check: configuration, auth DB, clients with due jobs, daemon state; exit 0', async () => {
    const r = await runCli(['check'], { env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = r.stdout;
    assert.match(out, /^Configuration looks okay/m);
    assert.match(out, /^Auth database .* ok$/m);
    assert.match(out, /^Auth database upgrades: none pending$/m);
    assert.match(out, /^Client 1 \(Demo\): task server user taskserver, database .* reachable, \d+ jobs? due$/m);
    assert.match(out, /^Client 2 \(Off\): task server disabled/m);
    assert.match(out, new RegExp(`^kivitendo-background-jobs running - pid ${pid}$`, 'm'));
    assert.doesNotMatch(out + r.stderr, new RegExp(inst.pg.password));
  });

  test('stop: Killing N, pid file removed, process gone, exit 0', async () => {
    const r = await runCli(['stop'], { env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(lines(r.stdout)[0], `Killing ${pid}`);
    assert.ok(!alive(pid));
    assert.equal(readIfExists(pidFile()), undefined);
    const s = await runCli(['status'], { env: env() });
    assert.equal(s.code, 3);
  });

  test('stop when not running: message, exit 0', async () => {
    const r = await runCli(['stop'], { env: env() });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'No kivitendo-background-jobs running\n');
  });

  test('restart when not running: starts; restart when running: new pid', async () => {
    const r1 = await runCli(['restart'], { env: env() });
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    assert.equal(lines(r1.stdout)[0], 'No kivitendo-background-jobs running');
    const first = pidFromFile();
    const r2 = await runCli(['restart'], { env: env() });
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    assert.equal(lines(r2.stdout)[0], `Killing ${first}`);
    const second = pidFromFile();
    assert.notEqual(second, first);
    assert.ok(!alive(first));
    assert.equal((await runCli(['stop'], { env: env() })).code, 0);
  });
});

describe('foreground daemon (start -f)', { concurrency: false }, () => {
  test('SIGTERM: graceful stop, pid file removed, exit 0', async () => {
    const d = spawnCli(['-f', 'start'], { env: env() });
    const pid = await waitFor('pid file', () => readIfExists(pidFile()) && Number(readIfExists(pidFile())!.trim()));
    assert.equal(pid, d.child.pid);
    await waitFor('Starting up', () => d.out.stderr.includes('Starting up...'));
    process.kill(pid, 'SIGALRM'); // must not terminate
    await sleep(300);
    assert.ok(alive(pid));
    d.child.kill('SIGTERM');
    const { code, signal } = await d.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, d.out.stderr);
    assert.match(d.out.stderr, /Quitting\.\.\./);
    assert.equal(readIfExists(pidFile()), undefined);
    assert.doesNotMatch(d.out.stderr, /^\s+at /m);
  });

  test('SIGINT works the same; `debug` is start -f; under journald stderr lines carry <N> priorities', async () => {
    const d = spawnCli(['debug'], { env: { ...env(), JOURNAL_STREAM: '8:12345' } });
    await waitFor('pid file', () => readIfExists(pidFile()));
    await waitFor('first poll', () => /first poll finished/.test(d.out.stderr));
    d.child.kill('SIGINT');
    const { code } = await d.exited;
    assert.equal(code, 0);
    assert.equal(readIfExists(pidFile()), undefined);
    const errLines = lines(d.out.stderr);
    assert.ok(errLines.every((l) => /^<[0-7]>/.test(l)), d.out.stderr);
    assert.ok(errLines.includes('<6>Starting up...'));
    assert.ok(errLines.includes('<7>task server: first poll finished in ' + /first poll finished in (\d+ ms)/.exec(d.out.stderr)![1]));
  });

  test('memory limit (memory_limit_rss = 1M): exits 0 after the first sweep, pid file removed', async () => {
    const good = fs.readFileSync(inst.configFile, 'utf8');
    fs.appendFileSync(inst.configFile, '\n[system]\nmemory_limit_rss = 1M\n');
    try {
      const d = spawnCli(['-f', 'start'], { env: env() });
      const { code } = await d.exited;
      assert.equal(code, 0, d.out.stderr);
      assert.match(d.out.stderr, /Exiting due to memory size limit reached for type 'rss': limit 1048576 bytes, usage \d+ bytes/);
      assert.equal(readIfExists(pidFile()), undefined);
    } finally {
      fs.writeFileSync(inst.configFile, good);
    }
  });

  test('stale pid file (dead pid): starts anyway and says so in one line', async () => {
    fs.mkdirSync(path.dirname(pidFile()), { recursive: true });
    // A pid that is certainly not running: beyond pid_max.
    fs.writeFileSync(pidFile(), '4194305\n');
    const r = await runCli(['start'], { env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(lines(r.stdout).filter((l) => /stale/.test(l)).length, 1);
    assert.match(r.stdout, /^Removed stale pid file users\/pid\/config\.kivitendo\.conf\.pid \(pid 4194305 was not running\)$/m);
    const pid = pidFromFile();
    assert.ok(alive(pid));
    assert.equal((await runCli(['stop'], { env: env() })).code, 0);
  });

  test('stale pid file whose pid is alive but another program (pid reuse): starts', async () => {
    fs.mkdirSync(path.dirname(pidFile()), { recursive: true });
    fs.writeFileSync(pidFile(), `${process.pid}\n`); // the test runner: alive, but not holding the file
    const s = await runCli(['status'], { env: env() });
    assert.equal(s.code, 1);
    assert.equal(s.stdout, 'kivitendo-background-jobs dead\n');
    const r = await runCli(['start'], { env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^Removed stale pid file .* \\(pid ${process.pid} belongs to another program, not this task server: .+\\)$`, 'm'));
    assert.notEqual(pidFromFile(), process.pid);
    assert.equal((await runCli(['stop'], { env: env() })).code, 0);
  });
});
