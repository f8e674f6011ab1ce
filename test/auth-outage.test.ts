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
