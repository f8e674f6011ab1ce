// systemd's Type=notify protocol as the real daemon speaks it: a receiver bound to a Unix datagram
// socket (as systemd's $NOTIFY_SOCKET) gets READY=1 after pre-flight, WATCHDOG=1 at half of
// WATCHDOG_USEC while the scheduler loop polls, STATUS= lines and STOPPING=1 on SIGTERM. There is no
// systemd in the test container; the receiver is Perl (Node cannot bind a datagram Unix socket).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_PID_FILE, spawnCli, waitFor } from './harness/cli';
import { createInstallation, type Installation } from './harness/installation';

const RECEIVER = String.raw`use strict; use Socket; my $p = shift; my $addr = $p; $addr =~ s/^\@/\0/;
socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!"; bind($s, pack_sockaddr_un($addr)) or die "bind: $!";
$| = 1; print "listening\n";
while (defined(recv($s, my $buf, 65536, 0))) { $buf =~ s/\n/|/g; print "$buf\n"; }`;

let inst: Installation;
let dir: string;

before(async () => {
  inst = await createInstallation();
  await inst.query('Demo', 'UPDATE background_jobs SET active = false');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-notify-'));
});
after(() => {
  inst.remove();
  fs.rmSync(dir, { recursive: true, force: true });
});

for (const [name, socket] of [['a socket file', () => path.join(dir, 'notify')], ['an abstract socket (@name)', () => `@kts-notify-${process.pid}`]] as const) {
  test(`READY=1, WATCHDOG=1, STATUS=, STOPPING=1 on ${name}`, async () => {
    const receiver = spawn('perl', ['-e', RECEIVER, socket()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let got = '';
    receiver.stdout.setEncoding('utf8').on('data', (d) => (got += d));
    receiver.stderr.setEncoding('utf8').on('data', (d) => (got += `receiver: ${d}`));
    try {
      await waitFor('the receiver', () => got.includes('listening\n') || got.includes('receiver:'));
      assert.equal(got, 'listening\n');
      const server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root], { env: { NOTIFY_SOCKET: socket(), WATCHDOG_USEC: '1000000' } });
      const pid = server.child.pid!;
      const msgs = () => got.split('\n').filter((l) => l && l !== 'listening');
      await waitFor('READY=1 and three WATCHDOG=1', () => msgs().filter((m) => m === 'WATCHDOG=1').length >= 3, 20_000, () => got + server.out.stderr);
      assert.equal(msgs()[0], `READY=1|MAINPID=${pid}|STATUS=running`);
      assert.ok(fs.existsSync(DEFAULT_PID_FILE(inst.root)), 'READY=1 comes after the pid file');
      assert.ok(msgs().some((m) => /^STATUS=1 clients, 0 jobs running, 0 in outage$/.test(m)), got);
      process.kill(pid, 'SIGTERM');
      assert.equal((await server.exited).code, 0);
      assert.ok(msgs().includes('STOPPING=1|STATUS=stopping'), got);
      assert.ok(!server.out.stderr.includes('Cannot notify systemd'), server.out.stderr);
    } finally {
      receiver.kill();
    }
  });
}
