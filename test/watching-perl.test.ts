// `status` and `list` with kivitendo's own Perl packages (issue 16), on kivitendo's real tree
// through the real daemon: a running Perl job shows its Perl pid, the preloaded parent its pid,
// RSS and runs, then how long it has been idle; `list` says the package runs through Perl.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { alive, lines, runCli, spawnCli, waitFor } from './harness/cli';
import { insertJob } from './harness/jobs';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';

let inst: KivitendoInstallation;
let server: ReturnType<typeof spawnCli> | undefined;

// Waits until the test creates users/kts-watch.release, so the run lasts as long as the test needs.
const SLEEPER = `package SL::BackgroundJob::KtsWatchSleep;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run {
  select(undef, undef, undef, 0.1) until -e 'users/kts-watch.release';
  return 'released';
}
1;
`;

before(async () => {
  inst = await createKivitendoInstallation({ config: { task_server: { perl_preload_idle: '5m' }, debug: { global_level: 'NONE' } } });
  await inst.query('Demo', 'UPDATE background_jobs SET active = false');
  inst.addJobPackage('KtsWatchSleep', SLEEPER);
});
after(async () => {
  if (server?.child.pid && alive(server.child.pid)) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  inst?.remove();
});

test('status shows a running Perl job with its pid and the preloaded parent; list says perl', { timeout: 300_000 }, async () => {
  const jobId = await insertJob(inst, 'Demo', { packageName: 'KtsWatchSleep', type: 'once' });
  const l = await runCli(['list', '--kivitendo-dir', inst.root]);
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stdout, new RegExp(`^now\\s+due\\s+1 Demo\\s+${jobId}\\s+KtsWatchSleep\\s+perl\\s+once\\s`, 'm'));

  server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root]);
  const detail = () => `daemon stderr:\n${server!.out.stderr.slice(-3000)}`;
  const status = () => runCli(['status', '--kivitendo-dir', inst.root]);
  const running = await waitFor('status with the Perl pid', async () => {
    const s = await status();
    const m = new RegExp(`Running now: client 1 \\(Demo\\) job ${jobId} KtsWatchSleep for \\d+.* \\(Perl pid (\\d+)\\)`).exec(s.stdout);
    return m && /Preloaded Perl parent: pid \d+, RSS \d+\.\d MiB, 1 run in it/.test(s.stdout) ? { s, perlPid: Number(m[1]) } : undefined;
  }, 240_000, detail);
  assert.ok(alive(running.perlPid), `the Perl pid ${running.perlPid} status names is a live process`);
  const parent = Number(/Preloaded Perl parent: pid (\d+)/.exec(running.s.stdout)![1]);
  assert.notEqual(parent, running.perlPid);
  assert.ok(alive(parent));

  fs.writeFileSync(path.join(inst.root, 'users', 'kts-watch.release'), '');
  const idle = await waitFor('the parent idle after the run', async () => {
    const s = await status();
    return s.stdout.includes('Running now: no job') && /Preloaded Perl parent: pid \d+, RSS \d+\.\d MiB, idle for \d+ s/.test(s.stdout) ? s : undefined;
  }, 60_000, detail);
  assert.equal(lines(idle.stdout)[0], `kivitendo-background-jobs running - pid ${server.child.pid}`);
  const after = await runCli(['list', '--kivitendo-dir', inst.root]);
  assert.match(after.stdout, new RegExp(`^-\\s+done\\s+1 Demo\\s+${jobId}\\s+KtsWatchSleep\\s+perl\\s+once\\s+\\S+ \\S+ \\(.* ago\\)\\s+success\\s+\\d`, 'm'));
});
