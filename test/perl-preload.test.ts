// The preloaded Perl parent: kivitendo's modules loaded once, one forked child per run (Minion's and
// Resque's model). Through the real daemon and SIGALRM on kivitendo's real tree: runs reuse the
// parent, each run is a fresh child that exits, the time limit kills the child's group and spares
// the parent, a parent killed mid-run gives a clear failure row and the next run gets a new parent,
// the parent stops itself after [task_server] perl_preload_idle, SIGHUP replaces it, and 0 switches
// it off.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { alive, lines, runCli, spawnCli, waitFor as waitUntil } from './harness/cli';
import { renderConfig } from './harness/installation';
import { insertJob } from './harness/jobs';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';

let inst: KivitendoInstallation;
type Server = ReturnType<typeof spawnCli>;
const servers: Server[] = [];
const IDLE_S = 12;

interface History { id: number; status: string; result: string | null; error: string | null }
const rowsOf = (pkg: string) => inst.query<History>('Demo', 'SELECT id, status, result, error FROM background_job_histories WHERE package_name = $1 ORDER BY id', [pkg]);

function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, server?: Server): Promise<T> {
  return waitUntil(what, fn, timeoutMs, server && (() => `server stderr:\n${server.out.stderr.slice(-4000)}`));
}

/** Waits for the nth history row (1-based) of a package. */
async function nthRow(pkg: string, n: number, server: Server, timeoutMs = 90_000): Promise<History> {
  const rows = await waitFor(`history row ${n} of ${pkg}`, async () => {
    const r = await rowsOf(pkg);
    return r.length >= n ? r : undefined;
  }, timeoutMs, server);
  return rows[n - 1];
}

/** The preloaded parent and the forked child of a job's run, from the daemon's log. */
function forkOf(server: Server, jobId: number): { parent: number; child: number } {
  const re = new RegExp(`BackgroundJob ID ${jobId}: forked by the preloaded Perl parent (\\d+) as Perl process (\\d+)`);
  const m = lines(server.out.stderr).map((l) => re.exec(l)).find(Boolean);
  assert.ok(m, `the run of job ${jobId} was forked by the preloaded parent:\n${server.out.stderr.slice(-3000)}`);
  return { parent: Number(m[1]), child: Number(m[2]) };
}

const HANG = `package SL::BackgroundJob::KtsPreloadHang;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run {
  SL::DB->client->dbh->do('SELECT 1');
  my $kid = fork();
  if (!$kid) { exec 'sleep', '1000'; }
  open my $fh, '>', 'users/kts-preload-hang.pids' or die; print $fh "$$ $kid\\n"; close $fh;
  $SIG{TERM} = 'IGNORE';
  my $i = 0; $i++ while 1;
}
1;
`;

// Which backend a run's client connection is, and under which name.
const WHO = `package SL::BackgroundJob::KtsPreloadWho;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run { return join ' ', SL::DB->client->dbh->selectrow_array("SELECT pg_backend_pid(), current_setting('application_name')") }
1;
`;
const STANDBY = 'kivitendo-task-server perl standby';

// A kivitendo module that only loads where a client is set up (it dies in the parent); each
// process that tries to load it notes its pid first.
const NEEDS_CLIENT = `package SL::KtsNeedsClient;
use strict;
open my $fh, '>>', 'users/kts-needs-client.loads' or die; print $fh "$$\\n"; close $fh;
die "no client\\n" unless $::auth && $::auth->client;
1;
`;
const NEEDS_CLIENT_JOB = `package SL::BackgroundJob::KtsPreloadNeedsClient;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run { require SL::KtsNeedsClient; return 'loaded' }
1;
`;

// Requires, as it runs, a kivitendo class that nothing loaded before (the parent, Test): did its
// process have it from its parent already?
const LEARN = `package SL::BackgroundJob::KtsPreloadLearn;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run { my $had = $INC{'SL/DB/TimeRecordingArticle.pm'} ? 'inherited' : 'loaded'; require SL::DB::TimeRecordingArticle; return $had }
1;
`;

/** Rows in auth.session (runs destroy their own session; the standby makes none). */
async function authSessions(): Promise<number> {
  const auth = await inst.authConnection();
  try {
    return (await auth.query<{ n: number }>('SELECT count(*)::int AS n FROM auth.session')).rows[0].n;
  } finally {
    await auth.end();
  }
}

/** Backends of the standby (the next run's child, waiting) in the client's and in the auth database. */
async function standbyBackends(): Promise<{ client: number[]; auth: number[] }> {
  const sql = 'SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database() ORDER BY pid';
  const client = (await inst.query<{ pid: number }>('Demo', sql, [STANDBY])).map((r) => r.pid);
  const authDb = await inst.authConnection();
  try {
    return { client, auth: (await authDb.query<{ pid: number }>(sql, [STANDBY])).rows.map((r) => r.pid) };
  } finally {
    await authDb.end();
  }
}

before(async () => {
  inst = await createKivitendoInstallation({
    config: {
      task_server: { perl_packages: 'Test', perl_preload_idle: `${IDLE_S}s`, 'job_time_limit.KtsPreloadHang': '8s', 'job_time_limit.KtsPreloadHangLong': '10m' },
      debug: { global_level: 'NONE' },
    },
  });
  await inst.query('Demo', 'UPDATE background_jobs SET active = false');
  inst.addJobPackage('KtsPreloadHang', HANG);
  inst.addJobPackage('KtsPreloadHangLong', HANG.replace('KtsPreloadHang;', 'KtsPreloadHangLong;'));
  inst.addJobPackage('KtsPreloadWho', WHO);
  inst.addJobPackage('KtsPreloadLearn', LEARN);
  inst.addJobPackage('KtsPreloadNeedsClient', NEEDS_CLIENT_JOB);
  fs.writeFileSync(path.join(inst.root, 'SL', 'KtsNeedsClient.pm'), NEEDS_CLIENT);
});

after(() => {
  for (const s of servers) if (s.child.pid && alive(s.child.pid)) s.child.kill('SIGKILL');
  inst?.remove();
});

describe('the preloaded Perl parent (daemon, SIGALRM)', { concurrency: false }, () => {
  let server: Server;
  const alarm = () => process.kill(server.child.pid!, 'SIGALRM');
  const pidFile = () => path.join(inst.root, 'users', 'kts-preload-hang.pids');
  const hangPids = async () => (await waitFor('the hang package to start', async () => fs.existsSync(pidFile()) && fs.readFileSync(pidFile(), 'utf8').trim(), 60_000, server)).split(' ').map(Number);
  let firstParent = 0;

  before(async () => {
    server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root]);
    servers.push(server);
    await waitFor('the daemon to poll', async () => server.out.stderr.includes('is up and running'), 30_000, server);
  });
  after(async () => {
    if (!server) return;
    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    assert.equal(code, 0, server.out.stderr.slice(-3000));
    // SIGKILLed on the daemon's way out; tearing down ~200 MiB takes the kernel a moment.
    if (firstParent) await waitFor('no preloaded parent to outlive the daemon', async () => !alive(firstParent), 3000);
  });

  test('a second run reuses the parent; each run is a fresh child that exits after its run', { timeout: 180_000 }, async () => {
    const a = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: first\n' });
    alarm();
    const r1 = await nthRow('Test', 1, server);
    assert.deepEqual({ status: r1.status, result: r1.result }, { status: 'success', result: 'first' });
    const f1 = forkOf(server, a);
    const b = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: second\n' });
    alarm();
    const r2 = await nthRow('Test', 2, server);
    assert.deepEqual({ status: r2.status, result: r2.result }, { status: 'success', result: 'second' });
    const f2 = forkOf(server, b);
    assert.equal(f2.parent, f1.parent, 'the same preloaded parent');
    assert.notEqual(f2.child, f1.child, 'a fresh child per run');
    // The row is written once a child has reported and closed its output; its exit (the kernel
    // tearing down a fork of a 200 MiB parent) follows within moments.
    await waitFor('each child to exit after its run: its memory went back to the OS', async () => !alive(f1.child) && !alive(f2.child), 5000, server);
    assert.ok(alive(f1.parent), 'the parent waits for the next run');
    assert.match(server.out.stderr, new RegExp(`Preloaded Perl parent ${f1.parent} started: kivitendo's modules loaded in \\d+ ms`));
    // Its backends carried the job (PGAPPNAME per run), and no session row of the runs is left.
    assert.equal(await authSessions(), 0);
    firstParent = f1.parent;
  });

  test('the standby sets up the last run\'s client ahead; its run takes over both connections under the job\'s name, a lost one is replaced', { timeout: 120_000 }, async () => {
    const who = async (n: number) => {
      const id = await insertJob(inst, 'Demo', { packageName: 'KtsPreloadWho', type: 'once' });
      alarm();
      const row = await nthRow('KtsPreloadWho', n, server);
      assert.equal(row.status, 'success', row.error ?? '');
      const [pid, ...app] = row.result!.split(' ');
      return { id, pid: Number(pid), app: app.join(' ') };
    };
    const ready = () => waitFor('the standby to connect to both databases', async () => {
      const b = await standbyBackends();
      return b.client.length === 1 && b.auth.length === 1 && b;
    }, 30_000, server);
    const ahead = await ready();
    const first = await who(1);
    assert.deepEqual(first, { id: first.id, pid: ahead.client[0], app: `kivitendo-task-server job ${first.id} perl` }, 'the run used the standby\'s client connection, renamed after its job');

    // Connections lost while the standby waits (a database restart, idle_session_timeout): the run connects afresh.
    const lost = await ready();
    await inst.query('Demo', 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [STANDBY]);
    await waitFor('the standby\'s backends to end', async () => {
      const b = await standbyBackends();
      return !b.client.includes(lost.client[0]) && !b.auth.includes(lost.auth[0]);
    }, 10_000, server);
    const second = await who(2);
    assert.notEqual(second.pid, lost.client[0]);
    assert.equal(second.app, `kivitendo-task-server job ${second.id} perl`);
    // The standby writes nothing: no session row of it or of the runs is left.
    assert.equal(await authSessions(), 0);
  });

  test('kivitendo modules a run loaded are loaded by the parent for the runs after it', { timeout: 120_000 }, async () => {
    for (const [n, expected] of [[1, 'loaded'], [2, 'inherited'], [3, 'inherited']] as const) {
      const id = await insertJob(inst, 'Demo', { packageName: 'KtsPreloadLearn', type: 'once' });
      alarm();
      const row = await nthRow('KtsPreloadLearn', n, server);
      assert.deepEqual({ status: row.status, result: row.result }, { status: 'success', result: expected }, `run ${n}: ${row.error ?? ''}`);
      assert.equal(forkOf(server, id).parent, firstParent, 'the same parent');
    }
  });

  test('a module that does not load in the parent is tried there once, not after every run', { timeout: 120_000 }, async () => {
    const loads = path.join(inst.root, 'users', 'kts-needs-client.loads');
    fs.rmSync(loads, { force: true });
    for (const n of [1, 2, 3]) {
      const id = await insertJob(inst, 'Demo', { packageName: 'KtsPreloadNeedsClient', type: 'once' });
      alarm();
      const row = await nthRow('KtsPreloadNeedsClient', n, server);
      assert.deepEqual({ status: row.status, result: row.result }, { status: 'success', result: 'loaded' }, `run ${n}: ${row.error ?? ''}`);
      assert.equal(forkOf(server, id).parent, firstParent, 'the same parent');
    }
    await new Promise((r) => setTimeout(r, 1000)); // a try after the last run would come now
    // Each run loaded it in its own process; the parent tried once, after the first run.
    const pids = fs.readFileSync(loads, 'utf8').trim().split('\n');
    assert.equal(pids.filter((p) => p === String(firstParent)).length, 1, pids.join(' '));
    assert.equal(pids.length, 4, pids.join(' '));
    assert.ok(alive(firstParent), 'the parent lives on');
  });

  test('the time limit kills the forked child\'s group and its backends; the parent survives and takes the next run', { timeout: 120_000 }, async () => {
    fs.rmSync(pidFile(), { force: true });
    const id = await insertJob(inst, 'Demo', { packageName: 'KtsPreloadHang', type: 'once' });
    alarm();
    const [perlPid, kidPid] = await hangPids();
    const app = `kivitendo-task-server job ${id} perl`;
    assert.ok((await inst.query('Demo', 'SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [app])).length >= 1, 'the forked child\'s backend carries its job in application_name');
    const row = await nthRow('KtsPreloadHang', 1, server);
    assert.equal(row.error, `job package KtsPreloadHang (ID ${id}) exceeded its time limit of 8 s and was stopped; its Perl process was killed and its database backends terminated`);
    assert.ok(!alive(perlPid) && !alive(kidPid), 'the forked child and what it started are gone');
    assert.deepEqual(await inst.query('Demo', 'SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [app]), []);
    assert.equal(forkOf(server, id).parent, firstParent);
    assert.ok(alive(firstParent), 'the parent survived');
    const next = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: after the limit\n' });
    alarm();
    assert.equal((await nthRow('Test', 3, server)).result, 'after the limit');
    assert.equal(forkOf(server, next).parent, firstParent);
  });

  test('the parent killed mid-run: a failure row saying so, and the next run gets a new parent', { timeout: 180_000 }, async () => {
    fs.rmSync(pidFile(), { force: true });
    const id = await insertJob(inst, 'Demo', { packageName: 'KtsPreloadHangLong', type: 'once' });
    alarm();
    const [perlPid, kidPid] = await hangPids();
    assert.equal(forkOf(server, id).parent, firstParent);
    process.kill(firstParent, 'SIGKILL');
    const row = await nthRow('KtsPreloadHangLong', 1, server, 30_000);
    try {
      assert.equal(row.status, 'failure');
      assert.equal(row.error, `job package KtsPreloadHangLong: kivitendo's Perl process was killed because the preloaded Perl parent (pid ${firstParent}) died (killed by SIGKILL) during the run`);
      assert.ok(!alive(perlPid), 'the forked child died with its parent');
    } finally {
      try {
        process.kill(kidPid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const next = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: after the parent died\n' });
    alarm();
    const r = await nthRow('Test', 4, server);
    assert.deepEqual({ status: r.status, result: r.result }, { status: 'success', result: 'after the parent died' });
    const f = forkOf(server, next);
    assert.notEqual(f.parent, firstParent, 'a new parent');
    firstParent = f.parent;
  });

  test(`the parent stops itself after perl_preload_idle (${IDLE_S} s) without a run; the next run starts a new one`, { timeout: 180_000 }, async () => {
    const parent = firstParent;
    assert.ok(alive(parent));
    await waitFor('the idle parent to exit', async () => !alive(parent), (IDLE_S + 20) * 1000, server);
    const next = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: after idle\n' });
    alarm();
    assert.equal((await nthRow('Test', 5, server)).result, 'after idle');
    const f = forkOf(server, next);
    assert.notEqual(f.parent, parent);
    firstParent = f.parent;
  });

  test('SIGHUP (kivitendo may have been upgraded on disk): the parent is replaced by a fresh one at the next run', { timeout: 180_000 }, async () => {
    const parent = firstParent;
    assert.ok(alive(parent));
    process.kill(server.child.pid!, 'SIGHUP');
    await waitFor('the old parent to exit', async () => !alive(parent), 30_000, server);
    const next = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: after reload\n' });
    alarm();
    assert.equal((await nthRow('Test', 6, server)).result, 'after reload');
    const f = forkOf(server, next);
    assert.notEqual(f.parent, parent);
    firstParent = f.parent;
  });
});

describe('perl_preload_idle = 0', () => {
  test('a cold perl per run, no parent', { timeout: 120_000 }, async () => {
    fs.writeFileSync(path.join(inst.root, 'config', 'cold.conf'), fs.readFileSync(inst.configFile, 'utf8') + '\n' + renderConfig({ task_server: { perl_preload_idle: '0' } }));
    const id = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: cold\n', active: false });
    const r = await runCli(['-c', 'config/cold.conf', `--run-job=${id}`, 'start', '--kivitendo-dir', inst.root], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    const [row] = (await rowsOf('Test')).filter((h) => h.result === 'cold');
    assert.equal(row?.status, 'success', r.stderr);
    assert.doesNotMatch(r.stderr, /preloaded Perl parent/i);
    assert.match(r.stderr, new RegExp(`BackgroundJob ID ${id}: Perl process \\d+ finished after`));
  });
});
