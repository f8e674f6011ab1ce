// The single executable (dist/kivitendo-task-server, built if missing or older than src/): runs
// without node_modules, finds ROOT from its own location (also through a task_server.pl symlink),
// and works with the SysV boot script. The systemd unit passes `systemd-analyze verify`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { alive, cliEnv, DEFAULT_PID_FILE, ensureBinary, killFromPidFile, lines, readIfExists, REPO, runCli, waitFor } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';
import { freePort } from './harness/postgres';

let inst: Installation;
let exe: string;

before(async () => {
  const built = ensureBinary();
  inst = await createInstallation();
  fs.mkdirSync(path.join(inst.root, 'scripts'));
  exe = path.join(inst.root, 'scripts', 'kivitendo-task-server');
  fs.copyFileSync(built, exe);
  fs.chmodSync(exe, 0o755);
});
after(() => {
  killFromPidFile(inst.root);
  inst.remove();
});

describe('single executable', { concurrency: false }, () => {
  test('no node_modules anywhere above the copy', () => {
    for (let d = path.dirname(exe); d !== '/'; d = path.dirname(d)) {
      assert.equal(fs.existsSync(path.join(d, 'node_modules')), false, d);
    }
  });

  test('--help, version: exit 0, no warnings on stderr', async () => {
    const h = await runCli(['--help'], { binary: exe });
    assert.equal(h.code, 0);
    assert.match(h.stdout, /^Usage: kivitendo-background-jobs /);
    assert.equal(h.stderr, '', 'no experimental SEA warning');
    const v = await runCli(['version'], { binary: exe });
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^kivitendo-background-jobs - version \d+\.\d+\.\d+\n$/);
    assert.equal(v.stderr, '');
  });

  test('finds ROOT as the parent of its scripts/ folder (no KIVITENDO_DIR)', async () => {
    const r = await runCli(['--debug', 'status'], { binary: exe, cwd: '/' });
    assert.equal(r.code, 3);
    assert.deepEqual(lines(r.stdout), [`PIDFILE=${DEFAULT_PID_FILE(inst.root)}`, 'No kivitendo-background-jobs running']);
  });

  test('invoked as ROOT/scripts/task_server.pl (symlink to a binary elsewhere) it finds ROOT too', async () => {
    const elsewhere = fs.mkdtempSync(path.join(path.dirname(inst.root), 'kts-bin-'));
    try {
      const real = path.join(elsewhere, 'kivitendo-task-server');
      fs.symlinkSync(exe, real);
      const link = path.join(inst.root, 'scripts', 'task_server.pl');
      fs.symlinkSync(real, link);
      const r = await runCli(['--debug', 'status'], { binary: link, cwd: '/' });
      assert.equal(lines(r.stdout)[0], `PIDFILE=${DEFAULT_PID_FILE(inst.root)}`);
      fs.unlinkSync(link);
    } finally {
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  test('list with the binary: the client\'s jobs, one line each, no daemon needed', async () => {
    const r = await runCli(['list'], { binary: exe });
    assert.equal(r.code, 0, r.stderr);
    const out = lines(r.stdout);
    assert.match(out[0], /^NEXT\s+LEFT\s+CLIENT\s+JOB\s+PACKAGE\s+RUNS\s+SCHEDULE/);
    assert.equal(out.at(-1), '8 jobs listed.');
    assert.ok(out.slice(1, -1).every((l) => /\s1 Demo\s+\d\s+\w+\s+native\s/.test(l)), r.stdout);
  });

  test('start / status / stop with the binary', async () => {
    const s = await runCli(['start'], { binary: exe });
    assert.equal(s.code, 0, s.stdout + s.stderr);
    const pid = Number(readIfExists(DEFAULT_PID_FILE(inst.root))!.trim());
    assert.ok(alive(pid));
    assert.equal(fs.readlinkSync(`/proc/${pid}/exe`), fs.realpathSync(exe));
    process.kill(pid, 'SIGALRM');
    const st = await runCli(['status'], { binary: exe });
    assert.equal(lines(st.stdout)[0], `kivitendo-background-jobs running - pid ${pid}`);
    assert.match(st.stdout, /^  Memory: RSS \d+\.\d MiB/m);
    const stop = await runCli(['stop'], { binary: exe });
    assert.equal(stop.code, 0);
    assert.ok(!alive(pid));
    assert.equal(readIfExists(DEFAULT_PID_FILE(inst.root)), undefined);
  });

  test('/metrics and /healthz served by the binary (prom-client inside the bundle)', async () => {
    const port = await freePort();
    inst.writeConfig({ task_server: { metrics_listen: `127.0.0.1:${port}` } });
    try {
      assert.equal((await runCli(['start'], { binary: exe })).code, 0);
      const health = await waitFor('healthz 200', async () => {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        return r.status === 200 ? r.text() : undefined;
      });
      assert.equal(health, 'ok\n');
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, /^kivitendo_task_server_clients 1$/m);
      assert.match(metrics, /^process_resident_memory_bytes \d+$/m);
      assert.equal((await runCli(['stop'], { binary: exe })).code, 0);
    } finally {
      inst.writeConfig();
    }
  });
});

describe('boot templates', { concurrency: false }, () => {
  function sysv(script: string, arg: string) {
    return spawnSync('sh', [script, arg], { encoding: 'utf8', env: cliEnv(), cwd: '/' });
  }

  test('SysV script: start, status, stop, status against the real binary', async () => {
    const script = path.join(inst.root, 'init.d-kivitendo-task-server');
    const text = fs.readFileSync(path.join(REPO, 'boot', 'system-v', 'kivitendo-task-server'), 'utf8');
    assert.match(text, /^### BEGIN INIT INFO$/m);
    fs.writeFileSync(script, text.replace(/^DAEMON=.*$/m, `DAEMON="${exe}"`).replace('/etc/default/kivitendo-task-server', '/nonexistent'));
    const start = sysv(script, 'start');
    assert.equal(start.status, 0, start.stdout + start.stderr);
    assert.equal(lines(start.stdout)[0], 'Starting the kivitendo task server');
    assert.equal(lines(start.stdout)[1], 'Starting kivitendo-background-jobs server');
    const pid = Number(readIfExists(DEFAULT_PID_FILE(inst.root))!.trim());
    assert.ok(alive(pid));
    const status = sysv(script, 'status');
    assert.equal(status.status, 0);
    assert.equal(status.stdout, 'The kivitendo task server is running\n');
    const reload = sysv(script, 'reload');
    assert.equal(reload.status, 0);
    assert.ok(alive(pid));
    const stop = sysv(script, 'stop');
    assert.equal(stop.status, 0, stop.stdout + stop.stderr);
    assert.equal(lines(stop.stdout)[0], 'Stopping the kivitendo task server');
    await waitFor('daemon gone', () => !alive(pid));
    const after = sysv(script, 'status');
    assert.equal(after.status, 3);
    assert.equal(after.stdout, 'The kivitendo task server is not running\n');
    const usage = sysv(script, 'bogus');
    assert.equal(usage.status, 1);
    assert.match(usage.stdout, /^Usage: \/etc\/init\.d\/kivitendo-task-server \{start\|stop\|restart\|reload\|status\}$/m);
    // A missing executable
    fs.writeFileSync(script, text.replace(/^DAEMON=.*$/m, 'DAEMON="/nonexistent/kivitendo-task-server"'));
    const missing = sysv(script, 'start');
    assert.equal(missing.status, 1);
    assert.equal(missing.stdout, 'kivitendo task server executable not found\n');
  });

  const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
  /** The unit with these lines, pointed at the binary, passes `systemd-analyze verify` without warnings. */
  function verifyUnit(file: string, required: string[]) {
    const unit = fs.readFileSync(path.join(REPO, 'boot', 'systemd', file), 'utf8');
    assert.match(unit, /^ExecStart=\/var\/www\/kivitendo-erp\/scripts\/kivitendo-task-server -f start$/m);
    for (const line of required) assert.match(unit, new RegExp(`^${line}$`, 'm'), line);
    const copy = path.join(inst.root, file);
    fs.writeFileSync(copy, unit.replaceAll('/var/www/kivitendo-erp/scripts/kivitendo-task-server', exe));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warnings');
  }

  test('systemd unit passes systemd-analyze verify', { skip: !analyze && 'systemd-analyze not installed' }, () => {
    verifyUnit('kivitendo-task-server.service', ['Type=simple', 'Restart=always', 'User=www-data', 'ProtectSystem=full', 'ProtectHome=yes', 'PrivateTmp=yes', 'KillSignal=SIGTERM', 'WantedBy=multi-user.target']);
  });

  test('systemd Type=notify unit (watchdog) passes systemd-analyze verify', { skip: !analyze && 'systemd-analyze not installed' }, () => {
    verifyUnit('kivitendo-task-server-notify.service', ['Type=notify', 'NotifyAccess=all', 'WatchdogSec=2min', 'Restart=always', 'User=www-data', 'KillSignal=SIGTERM', 'WantedBy=multi-user.target']);
  });

  test('upstart job: respawn, foreground start', () => {
    const conf = fs.readFileSync(path.join(REPO, 'boot', 'upstart', 'kivitendo-task-server.conf'), 'utf8');
    assert.match(conf, /^respawn$/m);
    assert.match(conf, /^exec \/var\/www\/kivitendo-erp\/scripts\/kivitendo-task-server -f start$/m);
  });
});
