// kivitendo's own Perl job packages run by the real daemon, one fresh perl process per run, in a
// throwaway installation on kivitendo's real tree: once jobs + SIGALRM as the web UI does it.
// Test-only packages (SL/BackgroundJob/KtsTest*.pm) provoke progress writes, hangs, crashes, missing
// modules, compile errors and output noise.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { alive, ensureBinary, lines, runCli, spawnCli, waitFor as waitUntil } from './harness/cli';
import { renderConfig } from './harness/installation';
import { insertJob, runJob } from './harness/jobs';
import { loadConfig } from '../src/config/config';
import { KILL_GRACE_MS } from '../src/jobs/perl/child';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';

let inst: KivitendoInstallation;
const servers: ReturnType<typeof spawnCli>[] = [];
type Server = ReturnType<typeof spawnCli>;

interface History { id: number; package_name: string; status: string; result: string | null; error: string | null; data: string | null }
const history = (where = 'TRUE', params: unknown[] = []) =>
  inst.query<History>('Demo', `SELECT id, package_name, status, result, error, data FROM background_job_histories WHERE ${where} ORDER BY id`, params);

function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, server?: Server): Promise<T> {
  return waitUntil(what, fn, timeoutMs, server && (() => `server stderr:\n${server.out.stderr.slice(-4000)}`));
}

/** Waits for the one history row of a job (by its unique package name). */
async function rowOf(pkg: string, server: Server, timeoutMs = 60_000): Promise<History> {
  const [row] = await waitFor(`the history row of ${pkg}`, async () => {
    const r = await history('package_name = $1', [pkg]);
    return r.length ? r : undefined;
  }, timeoutMs, server);
  return row;
}

const PACKAGES: Record<string, string> = {
  // Writes progress into background_jobs.data while it runs, as CsvImport does, then waits for the
  // test to have seen it.
  KtsTestProgress: `package SL::BackgroundJob::KtsTestProgress;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run {
  my ($self, $job) = @_;
  my $data = $job->data_as_hash;
  $data->{progress} = { step => 1, finished => 0 };
  $job->update_attributes(data => SL::YAML::Dump($data));
  for (1 .. 300) { last if -e "users/kts-progress-seen"; select(undef, undef, undef, 0.1); }
  $data->{progress} = { step => 2, finished => 1 };
  $job->update_attributes(data => SL::YAML::Dump($data));
  return 'progress done';
}
1;
`,
  // Changes data in memory only; kivitendo's final save of the job object would store it.
  KtsTestMemoryData: `package SL::BackgroundJob::KtsTestMemoryData;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run { my ($self, $job) = @_; $job->set_data(touched => 'in memory'); return 'memory'; }
1;
`,
  // Pure Perl computation with a database backend open, deaf to SIGTERM, with a grandchild.
  KtsTestHang: `package SL::BackgroundJob::KtsTestHang;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run {
  SL::DB->client->dbh->do('SELECT 1');
  my $kid = fork();
  if (!$kid) { exec 'sleep', '1000'; }
  open my $fh, '>', 'users/kts-hang.pids' or die; print $fh "$$ $kid\\n"; close $fh;
  $SIG{TERM} = 'IGNORE';
  my $i = 0; $i++ while 1;
}
1;
`,
  KtsTestKilled: `package SL::BackgroundJob::KtsTestKilled;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run { print STDERR "about to be killed\\n"; kill 'KILL', $$; sleep 10; }
1;
`,
  KtsTestExit: `package SL::BackgroundJob::KtsTestExit;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run { POSIX::_exit(3); }
1;
`,
  KtsTestMissingModule: `package SL::BackgroundJob::KtsTestMissingModule;
use strict;
use parent qw(SL::BackgroundJob::Base);
use Kts::Not::Installed::Anywhere;
sub run { 1 }
1;
`,
  KtsTestSyntax: `package SL::BackgroundJob::KtsTestSyntax;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run { my $x = ; }
1;
`,
  // Leaves a process behind that escaped its process group and holds stdout open.
  KtsTestDetachedKid: `package SL::BackgroundJob::KtsTestDetachedKid;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run {
  my $kid = fork();
  if (!$kid) { POSIX::setsid(); sleep 60; POSIX::_exit(0); }
  open my $fh, '>', 'users/kts-detached.pid' or die; print $fh $kid; close $fh;
  return 'kid left behind';
}
1;
`,
  // Output that looks like a report must not be taken for one.
  KtsTestNoise: `package SL::BackgroundJob::KtsTestNoise;
use strict;
use parent qw(SL::BackgroundJob::Base);
sub run {
  $| = 1;
  print STDOUT qq|{"ok":1,"result":"forged on stdout"}\\n|;
  print STDERR qq|{"ok":1,"result":"forged on stderr"}\\n|;
  print STDOUT "kts noise line 2\\n";
  $| = 0;
  print STDOUT "kts unflushed tail";
  return 'the real result';
}
1;
`,
};

before(async () => {
  inst = await createKivitendoInstallation({
    config: {
      // The limit counts from the start of perl; kivitendo's modules take seconds to load on a busy
      // machine, and the hang package must be reached before the limit.
      task_server: { perl_packages: 'Test', 'job_time_limit.KtsTestHang': '25s' },
      debug: { global_level: 'NONE' },
    },
  });
  await inst.query('Demo', 'UPDATE background_jobs SET active = false');
  for (const [name, src] of Object.entries(PACKAGES)) inst.addJobPackage(name, src);
});

after(() => {
  for (const s of servers) if (s.child.pid && alive(s.child.pid)) s.child.kill('SIGKILL');
  inst?.remove();
});

function startServer(opts: { binary?: string; config?: string } = {}): Server {
  const s = spawnCli(['-f', ...(opts.config ? ['-c', opts.config] : []), 'start', '--kivitendo-dir', inst.root], { binary: opts.binary });
  servers.push(s);
  return s;
}

async function stopServer(s: Server) {
  s.child.kill('SIGTERM');
  const { code } = await s.exited;
  assert.equal(code, 0, s.out.stderr.slice(-3000));
}

describe('the built executable runs a Test job through kivitendo\'s Perl code ([task_server] perl_packages = Test)', () => {
  test('once job + SIGALRM → kivitendo\'s Test package ran in perl; success row with its result', { timeout: 180_000 }, async () => {
    const binary = ensureBinary();
    const server = startServer({ binary });
    try {
      await waitFor('the daemon to poll', async () => server.out.stderr.includes('is up and running'), 30_000, server);
      const id = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: from kivitendo perl\n' });
      process.kill(server.child.pid!, 'SIGALRM');
      const row = await rowOf('Test', server);
      assert.deepEqual({ status: row.status, result: row.result, error: row.error }, { status: 'success', result: 'from kivitendo perl', error: null });
      // kivitendo's Test package logs through $::lxdebug into the installation's debug log.
      const debugLog = fs.readFileSync(path.join(inst.root, 'users', 'kivitendo-debug.log'), 'utf8');
      assert.match(debugLog, new RegExp(`Test job ID ${id} is being executed on node `));
      assert.match(server.out.stderr, new RegExp(`BackgroundJob ID ${id}: Perl process \\d+ finished after \\d+ ms \\(exit 0\\)`));
      const [job] = await inst.query('Demo', 'SELECT last_run_at, next_run_at FROM background_jobs WHERE id = $1', [id]);
      assert.ok(job.last_run_at && job.next_run_at, 'the server rescheduled the job');
      // The Perl process left nothing behind: no session row of the run.
      const auth = await inst.authConnection();
      const s = await auth.query('SELECT count(*)::int AS n FROM auth.session');
      await auth.end();
      assert.equal(s.rows[0].n, 0);
    } finally {
      await stopServer(server);
    }
  });
});

describe('kivitendo Perl packages through the daemon (sources)', { concurrency: false }, () => {
  let server: Server;
  before(async () => {
    server = startServer();
    await waitFor('the daemon to poll', async () => server.out.stderr.includes('is up and running'), 30_000, server);
  });
  after(async () => {
    if (server) await stopServer(server);
  });
  const alarm = () => process.kill(server.child.pid!, 'SIGALRM');

  test('progress the package writes into background_jobs.data is visible at once and never overwritten', { timeout: 120_000 }, async () => {
    const id = await insertJob(inst, 'Demo', { packageName: 'KtsTestProgress', type: 'once', data: '---\nprofile_id: 7\n' });
    alarm();
    const seen = await waitFor('progress step 1 in background_jobs.data', async () => {
      const [j] = await inst.query('Demo', 'SELECT data FROM background_jobs WHERE id = $1', [id]);
      return /step: 1/.test(j.data ?? '') ? j.data : undefined;
    }, 60_000, server);
    assert.match(seen, /profile_id: 7/);
    fs.writeFileSync(path.join(inst.root, 'users', 'kts-progress-seen'), '');
    const row = await rowOf('KtsTestProgress', server);
    assert.equal(row.status, 'success', row.error ?? '');
    assert.equal(row.result, 'progress done');
    assert.match(row.data!, /finished: 1/);
    const [j] = await inst.query('Demo', 'SELECT data, last_run_at FROM background_jobs WHERE id = $1', [id]);
    assert.equal(j.data, row.data, 'the row keeps what the package wrote last');
    assert.match(String(j.data), /step: 2/);
    assert.ok(j.last_run_at);
  });

  test('data changed only in memory is written back, as kivitendo\'s final save would', { timeout: 60_000 }, async () => {
    const id = await insertJob(inst, 'Demo', { packageName: 'KtsTestMemoryData', type: 'once', data: '---\nkeep: 1\n' });
    alarm();
    const row = await rowOf('KtsTestMemoryData', server);
    assert.equal(row.result, 'memory');
    assert.match(row.data!, /touched: in memory/);
    const [j] = await inst.query('Demo', 'SELECT data FROM background_jobs WHERE id = $1', [id]);
    assert.equal(j.data, row.data);
    assert.match(String(j.data), /keep: 1/);
  });

  test('a package stuck in Perl computation is stopped at its time limit: process group and backends gone, the client goes on', { timeout: 90_000 }, async () => {
    const id = await insertJob(inst, 'Demo', { packageName: 'KtsTestHang', type: 'once' });
    const after = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: after the hang\n' });
    await inst.query('Demo', `UPDATE background_jobs SET next_run_at = now() - interval '1 hour' WHERE id = $1`, [id]);
    alarm();
    const pidFile = path.join(inst.root, 'users', 'kts-hang.pids');
    const [perlPid, kidPid] = (await waitFor('the hang package to start', async () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim(), 60_000, server))
      .split(' ').map(Number);
    const app = `kivitendo-task-server job ${id} perl`;
    assert.equal((await inst.query('Demo', 'SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [app])).length >= 1, true, 'its backend carries the job in application_name');
    const row = await rowOf('KtsTestHang', server);
    assert.equal(row.status, 'failure');
    assert.equal(row.error, `job package KtsTestHang (ID ${id}) exceeded its time limit of 25 s and was stopped; its Perl process was killed and its database backends terminated`);
    assert.ok(!alive(perlPid), 'the perl process is gone (it ignored SIGTERM: SIGKILL after the grace)');
    assert.ok(!alive(kidPid), 'what it started is gone too (process group)');
    assert.deepEqual(await inst.query('Demo', 'SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [app]), []);
    const next = await waitFor('the next job of the client', async () => (await history('result = $1', ['after the hang']))[0], 60_000, server);
    assert.equal(next.status, 'success');
    assert.ok(after > id);
  });

  test('a process that escaped the group and holds stdout does not keep the run from ending', { timeout: 90_000 }, async () => {
    await insertJob(inst, 'Demo', { packageName: 'KtsTestDetachedKid', type: 'once' });
    alarm();
    const row = await rowOf('KtsTestDetachedKid', server);
    const kid = Number(fs.readFileSync(path.join(inst.root, 'users', 'kts-detached.pid'), 'utf8'));
    try {
      assert.deepEqual({ status: row.status, result: row.result }, { status: 'success', result: 'kid left behind' });
      assert.ok(alive(kid), 'the escaped process still runs (it holds stdout), and the run ended anyway');
    } finally {
      process.kill(kid, 'SIGKILL');
    }
  });

  test('faults: each a failure row with one line naming the package and the cause', { timeout: 180_000 }, async () => {
    const ids: Record<string, number> = {};
    for (const name of ['KtsTestKilled', 'KtsTestExit', 'KtsTestMissingModule', 'KtsTestSyntax', 'KtsTestNoise', 'KtsTestNoFile']) {
      ids[name] = await insertJob(inst, 'Demo', { packageName: name, type: 'once' });
    }
    alarm();
    const killed = await rowOf('KtsTestKilled', server, 90_000);
    assert.equal(killed.error, "job package KtsTestKilled: kivitendo's Perl process was killed by SIGKILL (the kernel's OOM killer sends SIGKILL: out of memory?) before it reported a result; last output: about to be killed");
    const exited = await rowOf('KtsTestExit', server, 90_000);
    assert.equal(exited.error, "job package KtsTestExit: kivitendo's Perl process exited with code 3 without reporting a result");
    const missing = await rowOf('KtsTestMissingModule', server, 90_000);
    assert.equal(missing.error, "job package KtsTestMissingModule cannot run: kivitendo's Perl code needs the Perl module Kts::Not::Installed::Anywhere, which is not installed");
    const syntax = await rowOf('KtsTestSyntax', server, 90_000);
    assert.match(syntax.error!, /^job package KtsTestSyntax does not compile: syntax error at \S+\/SL\/BackgroundJob\/KtsTestSyntax\.pm line 4, near "= ;"$/);
    const noise = await rowOf('KtsTestNoise', server, 90_000);
    assert.deepEqual({ status: noise.status, result: noise.result }, { status: 'success', result: 'the real result' });
    const out = lines(server.out.stderr);
    assert.ok(out.some((l) => l.includes(`BackgroundJob ID ${ids.KtsTestNoise} perl stdout: {"ok":1,"result":"forged on stdout"}`)), 'stdout is logged with the job id');
    assert.ok(out.some((l) => l.includes(`BackgroundJob ID ${ids.KtsTestNoise} perl stderr: {"ok":1,"result":"forged on stderr"}`)), 'stderr is logged with the job id');
    assert.ok(out.some((l) => l.includes(`BackgroundJob ID ${ids.KtsTestNoise} perl stdout: kts noise line 2`)));
    assert.ok(out.some((l) => l.includes(`BackgroundJob ID ${ids.KtsTestNoise} perl stdout: kts unflushed tail`)), 'buffered output is flushed before the child exits');
    const noFile = await rowOf('KtsTestNoFile', server, 30_000);
    assert.equal(noFile.error, "unknown job package 'KtsTestNoFile'");
    for (const r of [killed, exited, missing, syntax, noFile]) {
      assert.equal(r.status, 'failure');
      assert.ok(!r.error!.includes('\n'), `one line: ${r.error}`);
    }
    assert.ok(alive(server.child.pid!), 'the daemon survived all of it');
  });
});

describe('no perl', () => {
  test('[task_server] perl names a missing binary: failure row naming package and cause; perl = 0: not supported', { timeout: 60_000 }, async () => {
    const conf = renderConfigFile(inst, 'noperl', { task_server: { perl: '/nonexistent/bin/perl' } });
    const id = await insertJob(inst, 'Demo', { packageName: 'ConvertTimeRecordings', type: 'once' });
    const r1 = await runOnce(conf, id);
    assert.equal(r1.code, 0, r1.stderr);
    const [h1] = await history('package_name = $1', ['ConvertTimeRecordings']);
    assert.equal(h1.error, "job package ConvertTimeRecordings needs kivitendo's Perl code, but perl cannot be started: '/nonexistent/bin/perl' not found (install perl or set [task_server] perl)");
    const off = renderConfigFile(inst, 'perloff', { task_server: { perl: '0' } });
    await runOnce(off, id);
    const rows = await history('package_name = $1', ['ConvertTimeRecordings']);
    assert.equal(rows.length, 2);
    assert.match(rows[1].error!, /^job package ConvertTimeRecordings is not supported by kivitendo-task-server \S+ natively, and running kivitendo's Perl code is switched off \(\[task_server\] perl = 0\)$/);
  });
});

/** A config file of its own: the installation's plus `extra`. */
function renderConfigFile(i: KivitendoInstallation, name: string, extra: Record<string, Record<string, string>>): string {
  fs.writeFileSync(path.join(i.root, 'config', `${name}.conf`), fs.readFileSync(i.configFile, 'utf8') + '\n' + renderConfig(extra));
  return `config/${name}.conf`;
}

function runOnce(config: string, id: number) {
  return runCli(['-c', config, `--run-job=${id}`, 'start', '--kivitendo-dir', inst.root], { timeoutMs: 60_000 });
}

describe('shutdown', () => {
  // The daemon aborts the scheduler's shutdown signal when its grace period after SIGTERM is over;
  // here the runner gets that signal directly (the daemon's grace handling is tested with it).
  test('the shutdown signal while a Perl job hangs: process group and backends gone, failure row', { timeout: 120_000 }, async () => {
    const pidFile = path.join(inst.root, 'users', 'kts-hang.pids');
    fs.rmSync(pidFile, { force: true });
    const config = loadConfig(inst.root, renderConfigFile(inst, 'longlimit', { task_server: { 'job_time_limit.KtsTestHang': '10m' } }));
    const id = await insertJob(inst, 'Demo', { packageName: 'KtsTestHang', type: 'once', active: false });
    const shutdown = new AbortController();
    const run = runJob(inst, 'Demo', { jobId: id, config, shutdown: shutdown.signal });
    const [perlPid, kidPid] = (await waitFor('the hang package to start', async () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim(), 60_000))
      .split(' ').map(Number);
    const abortedAt = Date.now();
    shutdown.abort();
    const { history: row, log } = await run;
    const took = Date.now() - abortedAt;
    assert.equal(row.error, `job package KtsTestHang (ID ${id}) was stopped because the task server shut down; its Perl process was killed and its database backends terminated`);
    assert.ok(took >= KILL_GRACE_MS && took < KILL_GRACE_MS + 5000, `SIGTERM ignored: SIGKILL after the ${KILL_GRACE_MS} ms grace (took ${took} ms)`);
    assert.ok(!alive(perlPid) && !alive(kidPid), 'the Perl process and what it started are gone');
    assert.deepEqual(await inst.query('Demo', 'SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [`kivitendo-task-server job ${id} perl`]), []);
    assert.ok(log.some((l) => l.includes(`BackgroundJob ID ${id}: job package KtsTestHang (ID ${id}) was stopped because the task server shut down`)), log.join('\n'));
  });

  test('the server killed with SIGKILL while a Perl job runs: the kernel kills the perl child too', { timeout: 120_000 }, async () => {
    const pidFile = path.join(inst.root, 'users', 'kts-hang.pids');
    fs.rmSync(pidFile, { force: true });
    const server = startServer({ config: renderConfigFile(inst, 'longlimit', { task_server: { 'job_time_limit.KtsTestHang': '10m' } }) });
    await waitFor('the daemon to poll', async () => server.out.stderr.includes('is up and running'), 30_000, server);
    await insertJob(inst, 'Demo', { packageName: 'KtsTestHang', type: 'once' });
    process.kill(server.child.pid!, 'SIGALRM');
    const [perlPid, kidPid] = (await waitFor('the hang package to start', async () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim(), 60_000, server))
      .split(' ').map(Number);
    try {
      server.child.kill('SIGKILL');
      await server.exited;
      await waitFor('the orphaned perl to die', async () => !alive(perlPid), 5000);
    } finally {
      // What perl started itself is beyond PR_SET_PDEATHSIG.
      try {
        process.kill(kidPid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
});
