// Pure parts of the daemon layer: memory limit parser/check, pid file create/stale/reuse logic,
// ROOT discovery, argument parsing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parseArgs, UsageError } from '../src/cli/args';
import { DEFAULT_KIVITENDO_DIR, kivitendoDir } from '../src/cli/root';
import { memoryLimitExceeded, parseSize, readMemoryUsage, validateMemoryLimits } from '../src/daemon/memoryLimit';
import { acquirePidFile, AlreadyRunning, isDaemonOf, pidState } from '../src/daemon/pidFile';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-units-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sys = (rss: string, vsz: string, hasSection = true) => ({ system: { language: 'de', memoryLimitRss: rss, memoryLimitVsz: vsz, hasSection } });

describe('memory limit (spec §7.7, with fixes)', () => {
  test('sizes: kivitendo forms, plus B optional', () => {
    assert.equal(parseSize('800MB'), 800 * 1024 ** 2);
    assert.equal(parseSize(' 2 gb '), 2 * 1024 ** 3);
    assert.equal(parseSize('512kB'), 512 * 1024);
    assert.equal(parseSize('500M'), 500 * 1024 ** 2, 'fix: 500M is 500 MiB, not 500 bytes');
    assert.equal(parseSize('1G'), 1024 ** 3);
    assert.equal(parseSize('1 GiB'), 1024 ** 3);
    assert.equal(parseSize('1073741824'), 1073741824);
    assert.equal(parseSize(''), undefined);
    assert.equal(parseSize('0'), undefined);
    assert.equal(parseSize(undefined), undefined);
    assert.ok(Number.isNaN(parseSize('abc')!));
    assert.ok(Number.isNaN(parseSize('1.5G')!));
  });

  test('exceeded only when usage > limit; message as kivitendo (vsz type is "size")', () => {
    const usage = { rss: 100 * 1024 ** 2, size: 2 * 1024 ** 3 };
    assert.equal(memoryLimitExceeded(sys('200M', ''), usage), undefined);
    assert.equal(memoryLimitExceeded(sys(String(100 * 1024 ** 2), ''), usage), undefined, 'equal is not exceeded');
    assert.equal(
      memoryLimitExceeded(sys('50M', ''), usage),
      `Exiting due to memory size limit reached for type 'rss': limit ${50 * 1024 ** 2} bytes, usage ${100 * 1024 ** 2} bytes`,
    );
    assert.equal(
      memoryLimitExceeded(sys('', '1G'), usage),
      `Exiting due to memory size limit reached for type 'size': limit ${1024 ** 3} bytes, usage ${2 * 1024 ** 3} bytes`,
      'fix: vsz alone is honoured',
    );
    assert.equal(memoryLimitExceeded(sys('', ''), usage), undefined);
    assert.equal(memoryLimitExceeded(sys('1M', '1M', false), usage), undefined, 'no [system] section: no check');
    assert.equal(memoryLimitExceeded(sys('abc', ''), usage), undefined, 'garbage is rejected at start, ignored here');
  });

  test('garbage limits are a start-up error', () => {
    assert.throws(() => validateMemoryLimits(sys('', 'lots')), /Invalid value 'lots' for \[system\] memory_limit_vsz/);
    validateMemoryLimits(sys('800M', '4G'));
  });

  test('reads VmRSS/VmSize of this process', () => {
    const u = readMemoryUsage();
    assert.ok(u.rss! > 10 * 1024 ** 2 && u.rss! < 4 * 1024 ** 3, String(u.rss));
    assert.ok(u.size! >= u.rss!);
    assert.ok(memoryLimitExceeded(sys('1M', '')), 'a 1 MiB limit is exceeded by any node process');
  });
});

describe('pid file', () => {
  test('created as "PID\\n", held open, removed on release', () => {
    const file = path.join(tmp, 'a.pid');
    const h = acquirePidFile(file);
    assert.equal(fs.readFileSync(file, 'utf8'), `${process.pid}\n`);
    assert.equal(h.replacedStalePid, undefined);
    assert.ok(isDaemonOf(process.pid, file), 'this process holds the file');
    assert.deepEqual(pidState(file), { state: 'running', pid: process.pid });
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('a.pid')), ['a.pid'], 'no temporary files left');
    h.release();
    assert.equal(fs.existsSync(file), false);
    assert.deepEqual(pidState(file), { state: 'none' });
  });

  test('a live process that holds the file: AlreadyRunning; the file stays', async () => {
    const file = path.join(tmp, 'b.pid');
    // Another process holding the file open, with its pid inside.
    const holder = spawn(process.execPath, ['-e', `const fs=require('fs');const fd=fs.openSync(${JSON.stringify(file)},'w');fs.writeSync(fd, process.pid+'\\n');console.log('ok');setInterval(()=>{},1000)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise((r) => holder.stdout.once('data', r));
      assert.throws(() => acquirePidFile(file), (e: unknown) => e instanceof AlreadyRunning && e.pid === holder.pid && e.message === `kivitendo-background-jobs is already running (pid ${holder.pid})`);
      assert.equal(fs.readFileSync(file, 'utf8'), `${holder.pid}\n`);
      assert.deepEqual(pidState(file), { state: 'running', pid: holder.pid });
    } finally {
      holder.kill('SIGKILL');
    }
    await new Promise((r) => holder.once('close', r));
    assert.deepEqual(pidState(file), { state: 'dead', pid: holder.pid });
    const h = acquirePidFile(file);
    assert.equal(h.replacedStalePid, holder.pid);
    h.release();
  });

  test('pid reuse: a live process that does not hold the file is not the daemon', () => {
    const file = path.join(tmp, 'c.pid');
    fs.writeFileSync(file, `${process.ppid}\n`);
    assert.equal(isDaemonOf(process.ppid, file), false);
    const h = acquirePidFile(file);
    assert.equal(h.replacedStalePid, process.ppid);
    h.release();
  });

  test('empty or garbage content: dead; replaced on start', () => {
    const file = path.join(tmp, 'd.pid');
    fs.writeFileSync(file, 'garbage\n');
    assert.deepEqual(pidState(file), { state: 'dead', pid: undefined });
    const h = acquirePidFile(file);
    assert.equal(h.replacedStalePid, null);
    h.release();
  });

  test('release does not remove a pid file that a newer daemon wrote', () => {
    const file = path.join(tmp, 'e.pid');
    const h = acquirePidFile(file);
    fs.unlinkSync(file);
    fs.writeFileSync(file, '12345\n');
    h.release();
    assert.equal(fs.readFileSync(file, 'utf8'), '12345\n');
  });
});

describe('ROOT discovery', () => {
  test('flag > env > program in <dir>/scripts > default', () => {
    const scripts = path.join(tmp, 'kivi', 'scripts');
    fs.mkdirSync(scripts, { recursive: true });
    const prog = path.join(scripts, 'task_server.pl');
    fs.writeFileSync(prog, '', { mode: 0o755 });
    assert.equal(kivitendoDir({ flag: '/a', env: '/b', invokedAs: prog, cwd: '/' }), '/a');
    assert.equal(kivitendoDir({ env: '/b', invokedAs: prog, cwd: '/' }), '/b');
    assert.equal(kivitendoDir({ invokedAs: prog, cwd: '/' }), path.join(tmp, 'kivi'));
    assert.equal(kivitendoDir({ invokedAs: 'scripts/task_server.pl', cwd: path.join(tmp, 'kivi') }), path.join(tmp, 'kivi'));
    assert.equal(kivitendoDir({ invokedAs: 'task_server.pl', cwd: '/', pathEnv: `/nonexistent:${scripts}` }), path.join(tmp, 'kivi'));
    assert.equal(kivitendoDir({ invokedAs: '/usr/bin/kts', realPath: prog, cwd: '/' }), path.join(tmp, 'kivi'));
    assert.equal(kivitendoDir({ invokedAs: '/usr/bin/kts', cwd: '/' }), DEFAULT_KIVITENDO_DIR);
  });
});

describe('argument parsing', () => {
  test('options before and after the command; last -c wins', () => {
    assert.deepEqual(parseArgs(['-c', 'a.conf', 'start', '-f', '--configfile=b.conf']), {
      command: 'start', configFile: 'b.conf', foreground: true, client: undefined, kivitendoDir: undefined, printPidFile: false,
      all: false, failed: false, json: false,
    });
    const r = parseArgs(['--run-job', '7', '--client=Demo', 'debug']);
    assert.equal(r.runJob, 7);
    assert.equal(r.client, 'Demo');
    assert.equal(r.foreground, true);
    assert.throws(() => parseArgs(['start', '--daemon-child=evil']), UsageError);
    // what `ps` shows of a detached daemon names where its output goes
    assert.equal(parseArgs(['start', '--daemon-child=debug-log']).daemonChild, 'debug-log');
    assert.throws(() => parseArgs(['start', '--daemon-child=null']), UsageError);
  });
});
