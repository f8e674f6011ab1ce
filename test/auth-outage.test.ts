// The auth database away at boot and under a detached daemon (issue 10 items 5 and 6), on a
// PostgreSQL cluster of this file's own that it stops and starts:
//  - with kivitendo's shipped global_level = NONE the debug log shows when an outage begins (with
//    its first error) and ends; a detached daemon without a syslog socket leaves its lines there;
//  - start and start -f wait for PostgreSQL instead of exiting 1, say once that they wait, and give
//    up after [task_server] startup_wait; wrong credentials still refuse at once.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, DEFAULT_PID_FILE, killFromPidFile, lines, readIfExists, runCli, spawnCli, waitFor } from './harness/cli';
import { RUN_AS_ROOT_WARNING } from '../src/daemon/privileges';
import { createInstallation, type Installation } from './harness/installation';
import { startPostgres, type PgServer } from './harness/postgres';

let pg: PgServer;
let inst: Installation;
const env = () => ({ KIVITENDO_DIR: inst.root });
const debugLog = () => readIfExists(path.join(inst.root, 'users', 'kivitendo-debug.log')) ?? '';
const pidFile = () => DEFAULT_PID_FILE(inst.root);
/** kivitendo's shipped logging: nothing but level-0 messages; the daemon's debug lines off. */
const QUIET = { debug: { global_level: 'NONE' }, task_server: { debug: '0' } };

before(async () => {
  pg = await startPostgres();
  inst = await createInstallation({ pg, clients: [{ name: 'A' }], config: QUIET });
  await inst.query('A', 'UPDATE background_jobs SET active = false');
});

after(() => {
  killFromPidFile(inst?.root);
  inst?.remove();
  pg?.stop();
});

describe('outages in the default debug log (detached daemon, no syslog socket)', { concurrency: false }, () => {
  test('the outage with its first error, its end naming that error, and the daemon\'s own lines', { timeout: 90_000 }, async () => {
    const socket = ['/dev/log', '/run/systemd/journal/socket'].find((s) => fs.existsSync(s));
    assert.equal(socket, undefined, `this test needs a machine without a syslog socket (found ${socket}): a detached daemon then logs to syslog`);
    fs.rmSync(path.join(inst.root, 'users', 'kivitendo-debug.log'), { force: true });
    const r = await runCli(['start'], { env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const pid = Number(readIfExists(pidFile())!.trim());
    await waitFor('Starting up... in the debug log', () => / \[\d+\] : Starting up\.\.\.$/m.test(debugLog()));

    pg.halt();
    const haltedAt = Date.now();
    while (Date.now() - haltedAt < 2500) {
      process.kill(pid, 'SIGALRM');
      await sleep(200);
    }
    const down = await waitFor('the outage line', () => /^.* \[\d+\] WARNING: The authentication database is unreachable, retrying with backoff: (.+)$/m.exec(debugLog()) ?? undefined);
    assert.equal(debugLog().match(/authentication database is unreachable/g)!.length, 1, 'logged once, not per retry');
    pg.resume();
    const up = await waitFor('the recovery line', () => / \[\d+\] : The authentication database is reachable again \(was: (.+)\)\.$/m.exec(debugLog()) ?? undefined, 20_000);
    assert.equal(up[1], down[1], 'the recovery names the first error of the outage');
    assert.ok(alive(pid));

    const s = await runCli(['stop'], { env: env() });
    assert.equal(s.code, 0);
    assert.match(debugLog(), / \[\d+\] : Quitting\.\.\.$/m);
  });
});

describe('the auth database not up yet at start-up', { concurrency: false }, () => {
  const WAITING = /^Waiting for the authentication database (for up to (\d+) s \(\[task_server\] startup_wait\)|until it is reachable): cannot connect to database \w+ on 127\.0\.0\.1:\d+ as postgres: .+$/;

  /** Runs the CLI with PostgreSQL down; PostgreSQL comes back 3 s after the CLI said it waits. */
  async function startWhileDown(args: string[], untilExit: boolean) {
    pg.halt();
    let d: ReturnType<typeof spawnCli>;
    try {
      d = spawnCli(args, { env: env() });
      await waitFor('the waiting line', () => /Waiting for the authentication database/.test(d.out.stdout), 30_000, () => d.out.stdout + d.out.stderr);
      await sleep(3000); // several retries
      assert.ok(alive(d.child.pid!), `still waiting: ${d.out.stdout}${d.out.stderr}`);
      assert.equal(readIfExists(pidFile()), undefined, 'no pid file while waiting');
    } finally {
      pg.resume();
    }
    if (untilExit) await d.exited;
    return d;
  }

  test('start -f waits (unbounded by default), says so once, and comes up when PostgreSQL does', { timeout: 90_000 }, async () => {
    inst.writeConfig(QUIET);
    const d = await startWhileDown(['-f', 'start'], false);
    await waitFor('the daemon to come up', () => /is up and running/.test(d.out.stderr), 30_000, () => d.out.stdout + d.out.stderr);
    assert.equal(Number(readIfExists(pidFile())!.trim()), d.child.pid);
    const waiting = lines(d.out.stdout).filter((l) => /Waiting/.test(l));
    assert.equal(waiting.length, 1, d.out.stdout);
    assert.match(waiting[0], WAITING);
    assert.match(waiting[0], /until it is reachable/);
    d.child.kill('SIGTERM');
    assert.equal((await d.exited).code, 0);
  });

  test('start (detached) waits up to 60 s by default, says so once, and reports the daemon running', { timeout: 90_000 }, async () => {
    inst.writeConfig(QUIET);
    const d = await startWhileDown(['start'], true);
    const { code } = await d.exited;
    assert.equal(code, 0, d.out.stdout + d.out.stderr);
    const pid = Number(readIfExists(pidFile())!.trim());
    const out = lines(d.out.stdout);
    assert.equal(out[0], 'Starting kivitendo-background-jobs server');
    assert.match(out[1], WAITING);
    assert.equal(WAITING.exec(out[1])![2], '60');
    assert.deepEqual(out.slice(2), [`kivitendo-background-jobs running - pid ${pid}`]);
    // As root with run_as empty, the one-line root warning is all that stderr may hold.
    assert.equal(d.out.stderr, process.getuid?.() === 0 ? RUN_AS_ROOT_WARNING + '\n' : '');
    assert.equal((await runCli(['stop'], { env: env() })).code, 0);
  });

  test('[task_server] startup_wait bounds the wait: exit 1 with the connection error after it', { timeout: 90_000 }, async () => {
    inst.writeConfig({ ...QUIET, task_server: { ...QUIET.task_server, startup_wait: '2s' }, system: { language: 'en' } });
    pg.halt();
    try {
      for (const args of [['-f', 'start'], ['start']]) {
        const t0 = Date.now();
        const r = await runCli(args, { env: env() });
        const took = Date.now() - t0;
        assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.ok(took >= 2000, `${args.join(' ')} gave up after ${took} ms`);
        assert.equal(lines(r.stdout).filter((l) => WAITING.test(l)).length, 1, r.stdout);
        assert.match(r.stdout, /for up to 2 s/);
        assert.deepEqual(lines(r.stderr).map((l) => l.replace(/: cannot connect.*/, '')), ['Error: The connection to the authentication database failed']);
        assert.equal(readIfExists(pidFile()), undefined);
      }
    } finally {
      pg.resume();
    }
  });

  test('wrong credentials refuse at once, without waiting', { timeout: 60_000 }, async () => {
    inst.writeConfig({ ...QUIET, 'authentication/database': { password: 'not-the-password' } });
    for (const args of [['-f', 'start'], ['start']]) {
      const t0 = Date.now();
      const r = await runCli(args, { env: env() });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /Waiting/);
      // Far below the 60 s (start) or unbounded (-f) wait; the bound allows for a loaded machine.
      assert.ok(Date.now() - t0 < 30_000, `${args.join(' ')} took ${Date.now() - t0} ms`);
      assert.match(r.stderr, /password authentication failed/);
    }
    inst.writeConfig(QUIET);
  });
});
