// The Perl path under a production admin's bad day: one run must not hurt another run, the daemon
// or the disk. Each test runs the real daemon (or --run-job, or the Perl path in this process) on
// kivitendo's real tree with test packages that misbehave on purpose:
// - a package printing 300 MB without a newline: the daemon's memory stays flat, the log says what
//   was cut, the run is recorded;
// - kivitendo's temp-file pattern (File::Temp under users/, UNLINK => 1): users/ is as it was;
// - a run that reported its result just before the shutdown stopped it: its result stands;
// - the preloaded parent's folder is gone after --run-job and after a daemon stop; an unusable
//   TMPDIR falls back to a cold perl;
// - 1,000 runs killed at random right after their fork leak no listener, socket or descriptor;
// - job_time_limit = 0 means no limit, 700h is refused naming key and value;
// - a CreatePeriodicInvoices print step that cannot start perl leaves the run's own connection;
// - systemctl stop with the unit's KillMode/KillSignal gives a running Perl job its grace;
// - a preloaded parent slow to fork is retired without killing the run in it;
// - check loads packages as run_as and bounded, and warns about printing configs with perl = 0.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/config';
import { allClients, loadUserById } from '../src/db/auth';
import { runPerlAction } from '../src/jobs/perl/child';
import { perlParentPids, perlParentRuns, stopPerlParents } from '../src/jobs/perl/preload';
import { memoryLogger } from '../src/log/logger';
import { alive, ensureBinary, isRoot, runCli, spawnCli, waitFor as waitUntil } from './harness/cli';
import { createPrintRig, loadPrintScenario, normaliseRun } from './harness/goldenPrint';
import { insertJob } from './harness/jobs';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';

let inst: KivitendoInstallation;
type Server = ReturnType<typeof spawnCli>;
const servers: Server[] = [];
const tmpDirs: string[] = [];

interface History { id: number; status: string; result: string | null; error: string | null }
const rowsOf = (pkg: string) => inst.query<History>('Demo', 'SELECT id, status, result, error FROM background_job_histories WHERE package_name = $1 ORDER BY id', [pkg]);

function privateTmp(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-hardening-tmp-'));
  fs.chmodSync(dir, 0o777);
  tmpDirs.push(dir);
  return dir;
}

/** What the server left in a TMPDIR (tsx, which runs the sources here, keeps its cache there). */
const ours = (dir: string) => fs.readdirSync(dir).filter((f) => !f.startsWith('tsx-'));

function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, server?: Server): Promise<T> {
  return waitUntil(what, fn, timeoutMs, server && (() => `server stderr:\n${server.out.stderr.slice(-4000)}`));
}

async function rowOf(pkg: string, server: Server, timeoutMs = 120_000): Promise<History> {
  return (await waitFor(`a history row of ${pkg}`, async () => (await rowsOf(pkg))[0], timeoutMs, server))!;
}

function vmHwmKiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

const pkg = (name: string, body: string) => `package SL::BackgroundJob::${name};
use strict;
use parent qw(SL::BackgroundJob::Base);
${body}
1;
`;

const LONG_LINE = pkg('KtsLongLine', `sub run {
  my $chunk = 'x' x (1 << 20);
  print STDOUT $chunk for 1 .. 300;
  print STDOUT "\\nafter the long line\\n";
  return 'printed 300 MB';
}`);

// kivitendo's pattern (SL::Helper::CreatePDF::merge_pdfs): a temp file under users/, UNLINK => 1.
const TEMP_FILE = pkg('KtsTempFile', `use File::Temp ();
sub run {
  my ($fh, $name) = File::Temp::tempfile('kivitendo-printXXXXXX', SUFFIX => '.pdf', DIR => $::lx_office_conf{paths}->{userspath}, UNLINK => 1);
  print $fh "%PDF-1.4\\n"; close $fh;
  return -f $name ? 'temp file written' : 'no temp file';
}`);

// Reports its result, then lingers in the milliseconds (here: seconds) before the process ends.
const LINGER = pkg('KtsLinger', `sub run {
  no warnings 'redefine';
  *POSIX::_exit = sub { sleep 60; CORE::exit(0) };
  open my $fh, '>', 'users/kts-linger.ready' or die; close $fh;
  return 'done before the stop';
}`);

const SLEEP = pkg('KtsSleep', `sub run {
  my ($self, $job) = @_;
  open my $fh, '>', 'users/kts-sleep.' . $job->id or die; close $fh;
  sleep($job->data_as_hash->{sleep} // 4);
  return 'slept through the stop';
}`);

/** The daemon and every process below it: what systemd's control-group kill reaches. */
function processTree(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parentOf.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parentOf) if (ppid === tree[i]) tree.push(pid);
  return tree;
}

before(async () => {
  inst = await createKivitendoInstallation({
    config: { task_server: { perl_packages: 'Test', shutdown_grace: '0s' }, debug: { global_level: 'NONE' } },
  });
  await inst.query('Demo', 'UPDATE background_jobs SET active = false');
  inst.addJobPackage('KtsLongLine', LONG_LINE);
  inst.addJobPackage('KtsTempFile', TEMP_FILE);
  inst.addJobPackage('KtsLinger', LINGER);
  inst.addJobPackage('KtsSleep', SLEEP);
});

after(() => {
  for (const s of servers) if (s.child.pid && alive(s.child.pid)) s.child.kill('SIGKILL');
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  inst?.remove();
});

describe('a misbehaving package hurts only itself (daemon)', { concurrency: false }, () => {
  let server: Server;
  let tmp: string;
  const alarm = () => process.kill(server.child.pid!, 'SIGALRM');

  before(async () => {
    tmp = privateTmp();
    server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root], { env: { TMPDIR: tmp } });
    servers.push(server);
    await waitFor('the daemon to poll', () => server.out.stderr.includes('is up and running'), 30_000, server);
  });

  test('300 MB without a newline: the daemon stays flat, the line is cut in the log, the run is recorded', { timeout: 240_000 }, async (t) => {
    const id = await insertJob(inst, 'Demo', { packageName: 'KtsLongLine', type: 'once' });
    alarm();
    const row = await rowOf('KtsLongLine', server, 200_000);
    assert.deepEqual({ status: row.status, result: row.result }, { status: 'success', result: 'printed 300 MB' });
    const hwm = vmHwmKiB(server.child.pid!);
    t.diagnostic(`daemon VmHWM after a 300 MB line: ${(hwm / 1024).toFixed(1)} MiB`);
    assert.ok(hwm < 250 * 1024, `the daemon's peak RSS stayed below 250 MiB while the package printed 300 MB (VmHWM ${hwm} kB)`);
    assert.match(server.out.stderr, new RegExp(`BackgroundJob ID ${id} perl stdout: x{1000,}.*\\[line cut: \\d+ more bytes dropped\\]`));
    assert.match(server.out.stderr, new RegExp(`BackgroundJob ID ${id} perl stdout: after the long line`));
  });

  test("kivitendo's temp files (File::Temp under users/, UNLINK) are removed after the run", { timeout: 120_000 }, async () => {
    const users = path.join(inst.root, 'users');
    const before = fs.readdirSync(users).sort();
    await insertJob(inst, 'Demo', { packageName: 'KtsTempFile', type: 'once' });
    alarm();
    const row = await rowOf('KtsTempFile', server);
    assert.deepEqual({ status: row.status, result: row.result }, { status: 'success', result: 'temp file written' });
    assert.deepEqual(fs.readdirSync(users).sort(), before, 'users/ is as it was');
  });

  test('a run that reported its result before the stop keeps it; the preloaded parent leaves no folder behind', { timeout: 120_000 }, async () => {
    const ready = path.join(inst.root, 'users', 'kts-linger.ready');
    await insertJob(inst, 'Demo', { packageName: 'KtsLinger', type: 'once' });
    alarm();
    await waitFor('the package to report', () => fs.existsSync(ready), 90_000, server);
    // Its result line is written right after run() returns; the process lingers for 60 s.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(ours(tmp).length, 1, 'the preloaded parent has its folder while it runs');
    server.child.kill('SIGTERM'); // shutdown_grace = 0s: stop the running job at once
    const { code } = await server.exited;
    assert.equal(code, 0, server.out.stderr.slice(-3000));
    const row = await rowOf('KtsLinger', server);
    assert.deepEqual({ status: row.status, result: row.result, error: row.error }, { status: 'success', result: 'done before the stop', error: null });
    assert.deepEqual(ours(tmp), [], 'nothing left in TMPDIR after the daemon stopped');
  });
});

describe('the preloaded parent and TMPDIR (--run-job)', () => {
  test('--run-job leaves no folder in TMPDIR', { timeout: 180_000 }, async () => {
    const tmp = privateTmp();
    const id = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: run-job\n' });
    const r = await runCli([`--run-job=${id}`, '--kivitendo-dir', inst.root, 'start'], { env: { TMPDIR: tmp }, timeoutMs: 150_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /forked by the preloaded Perl parent/);
    assert.deepEqual(ours(tmp), []);
  });

  test('a TMPDIR that does not exist: the run starts a cold perl and succeeds', { timeout: 300_000 }, async () => {
    const id = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: cold fallback\n' });
    // The single executable: tsx, which runs the sources, would create the missing TMPDIR itself.
    const missing = path.join(privateTmp(), 'missing');
    const r = await runCli([`--run-job=${id}`, '--kivitendo-dir', inst.root, 'start'], { binary: ensureBinary(), env: { TMPDIR: missing }, timeoutMs: 150_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Preloaded Perl parent cannot be started: .*ENOENT.*; runs start a cold perl/);
    assert.ok(!fs.existsSync(missing));
    const rows = await inst.query<History>('Demo', `SELECT status, result, error FROM background_job_histories WHERE result = 'cold fallback'`);
    assert.deepEqual(rows.map((x) => [x.status, x.result, x.error]), [['success', 'cold fallback', null]]);
  });
});

describe('durations', () => {
  test('job_time_limit = 0 means no limit; 700h is refused in one line naming key and value', { timeout: 180_000 }, async () => {
    const id = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', data: '---\nresult: no limit\n' });
    const conf = (extra: string) => {
      const file = path.join(inst.root, 'config', `limit-${Date.now()}.conf`);
      fs.writeFileSync(file, fs.readFileSync(inst.configFile, 'utf8').replace('[task_server]', `[task_server]\n${extra}`));
      return path.relative(inst.root, file);
    };
    const refused = await runCli([`--run-job=${id}`, '--kivitendo-dir', inst.root, '-c', conf('job_time_limit = 700h'), 'start']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Invalid duration '700h' for \[task_server\] job_time_limit: at most 596h/);
    assert.equal(refused.stderr.trim().split('\n').filter((l) => /700h/.test(l)).length, 1);
    const r = await runCli([`--run-job=${id}`, '--kivitendo-dir', inst.root, '-c', conf('job_time_limit = 0'), 'start'], { timeoutMs: 150_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /exceeded its time limit/);
    const rows = await inst.query<History>('Demo', `SELECT status, result FROM background_job_histories WHERE result = 'no limit'`);
    assert.deepEqual(rows.map((x) => [x.status, x.result]), [['success', 'no limit']]);
  });
});

/** The Perl path in this process, as the runner calls it, on the installation's Demo client. */
async function inProcess() {
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  const auth = await inst.authConnection();
  const client = (await allClients(auth)).find((c) => c.name === 'Demo')!;
  const user = (await loadUserById(auth, client.task_server_user_id, { language: 'de', kivitendoDir: inst.root }))!;
  await auth.end();
  const log = memoryLogger();
  const run = (jobId: number, onSpawn?: (pid: number) => void) =>
    runPerlAction({ config, log, client, user, action: 'run_job', request: { job_id: jobId }, jobId, timeLimitMs: 120_000, onSpawn }).then(
      (r) => ((r as { result: string }).result === 'leak' ? 'ok' : (r as { result: string }).result),
      (e: Error) => e.message,
    );
  return { run, log };
}

describe('1,000 runs killed at random right after their fork leak nothing', () => {
  test('listeners, socket files, descriptors and the parent\'s run table are back where they were', { timeout: 600_000 }, async () => {
    const tmp = privateTmp();
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    // The daemon's loop keeps a real server's event loop busy; the idle parent itself does not.
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      const { run: runJob, log } = await inProcess();
      const jobId = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', active: false, data: '---\nresult: leak\n' });
      const run = (kill: boolean) =>
        runJob(jobId, kill ? (pid) => setTimeout(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }, Math.floor(Math.random() * 15)) : undefined);
      // A first run starts the parent; then measure.
      assert.equal(await run(false), 'ok', log.lines.join('\n'));
      const fds = () => fs.readdirSync('/proc/self/fd').length;
      const sockets = () => fs.readdirSync(tmp).flatMap((d) => fs.readdirSync(path.join(tmp, d))).filter((f) => f.endsWith('.sock')).length;
      const fdsBefore = fds();
      assert.equal(perlParentRuns(), 0);
      const outcomes = new Map<string, number>();
      for (let batch = 0; batch < 40; batch++) {
        const results = await Promise.all(Array.from({ length: 25 }, () => run(true)));
        for (const r of results) {
          const kind = r === 'ok' ? 'ok' : /killed by SIGKILL/.test(r) ? 'killed' : r.slice(0, 80);
          outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
        }
      }
      assert.ok((outcomes.get('killed') ?? 0) >= 900, `most runs were killed early: ${JSON.stringify([...outcomes])}`);
      assert.equal(perlParentRuns(), 0, 'no run entry left in the parent');
      assert.equal(sockets(), 0, 'no socket file left');
      assert.ok(fds() <= fdsBefore + 2, `descriptors: ${fdsBefore} before, ${fds()} after 1,000 runs`);
      assert.equal(await run(false), 'ok', 'the parent still takes runs');
    } finally {
      clearInterval(keepAlive);
      stopPerlParents();
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    }
  });
});

describe("a print/e-mail step that cannot run at all (CreatePeriodicInvoices)", () => {
  test("fails its invoices but spares the run's own connection: the summary mail is sent and journaled", { timeout: 300_000 }, async () => {
    const rig = await createPrintRig({
      sql: loadPrintScenario('01-print-one').sql,
      config: { task_server: { perl: '/nonexistent/perl' }, periodic_invoices: { send_email_to: 'boss@example.com', email_from: 'kivi <kivi@example.com>' } },
    });
    try {
      const r = await rig.run(new Date(2014, 2, 15, 3, 0, 0));
      assert.equal(r.history.status, 'failure');
      assert.match(r.history.error!, /RE-1001 schlug fehl: .*perl cannot be started: '\/nonexistent\/perl' not found/);
      const [summary] = await rig.sink.waitFor(1);
      assert.deepEqual(summary.envelopeTo, ['boss@example.com']);
      assert.equal(summary.headers.from, '"kivi" <kivi@example.com>', "the display name quoted, as kivitendo writes it");
      const journal = (await rig.db.query(`SELECT status FROM email_journal`)).rows;
      assert.deepEqual(journal, [{ status: 'sent' }], `the summary mail's email_journal row is there: ${r.log.join('\n').slice(-3000)}`);
      assert.equal((await rig.db.query('SELECT count(*)::int AS n FROM ar')).rows[0].n, 1, 'the invoice stays posted');
    } finally {
      await rig.close();
    }
  });
});

describe("systemctl stop with the shipped unit's settings", () => {
  test('KillMode and KillSignal of the unit give a running Perl job its shutdown_grace', { timeout: 240_000 }, async () => {
    const unit = fs.readFileSync(path.join(__dirname, '..', 'boot', 'systemd', 'kivitendo-task-server.service'), 'utf8');
    const setting = (key: string) => new RegExp(`^${key}=(\\S+)`, 'm').exec(unit)?.[1];
    const killMode = setting('KillMode') ?? 'control-group';
    const killSignal = (setting('KillSignal') ?? 'SIGTERM') as NodeJS.Signals;
    const timeoutStop = Number(setting('TimeoutStopSec') ?? '90');
    const conf = path.join(inst.root, 'config', 'unit-stop.conf');
    const text = fs.readFileSync(inst.configFile, 'utf8');
    assert.match(text, /^shutdown_grace = 0s$/m);
    fs.writeFileSync(conf, text.replace(/^shutdown_grace = 0s$/m, 'shutdown_grace = 20s'));
    assert.ok(timeoutStop > 20 + 5, `TimeoutStopSec (${timeoutStop}) leaves room for a 20 s grace`);
    const server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root, '-c', 'config/unit-stop.conf']);
    servers.push(server);
    await waitFor('the daemon to poll', () => server.out.stderr.includes('is up and running'), 30_000, server);
    const id = await insertJob(inst, 'Demo', { packageName: 'KtsSleep', type: 'once' });
    process.kill(server.child.pid!, 'SIGALRM');
    await waitFor('the package to start', () => fs.existsSync(path.join(inst.root, 'users', `kts-sleep.${id}`)), 90_000, server);
    // What systemd does on stop: KillSignal to the main process (mixed) or to every process of the unit (control-group).
    const targets = killMode === 'mixed' || killMode === 'process' ? [server.child.pid!] : processTree(server.child.pid!);
    for (const pid of targets) {
      try {
        process.kill(pid, killSignal);
      } catch {
        /* gone */
      }
    }
    const { code } = await server.exited;
    assert.equal(code, 0, server.out.stderr.slice(-3000));
    const [row] = await inst.query<History>('Demo', `SELECT status, result, error FROM background_job_histories WHERE package_name = 'KtsSleep' AND data IS NULL ORDER BY id DESC LIMIT 1`);
    assert.deepEqual(row && { status: row.status, result: row.result, error: row.error }, { status: 'success', result: 'slept through the stop', error: null }, `KillMode=${killMode}`);
  });
});

describe('a preloaded parent that does not fork in time', () => {
  test('is retired gently: the new run starts a cold perl, the run in it finishes, then the parent goes', { timeout: 240_000 }, async () => {
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      const { run, log } = await inProcess();
      const warm = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', active: false, data: '---\nresult: warm\n' });
      assert.equal(await run(warm), 'warm', log.lines.join('\n'));
      const [parent] = perlParentPids();
      // Longer than the 10 s fork timeout: the run is still in the parent when it is retired.
      const sleeper = await insertJob(inst, 'Demo', { packageName: 'KtsSleep', type: 'once', active: false, data: '---\nsleep: 16\n' });
      const inParent = run(sleeper);
      await waitFor('the sleeping run to start', () => fs.existsSync(path.join(inst.root, 'users', `kts-sleep.${sleeper}`)), 90_000);
      process.kill(parent, 'SIGSTOP'); // a parent that does not answer (swapped out, stuck)
      const other = await insertJob(inst, 'Demo', { packageName: 'Test', type: 'once', active: false, data: '---\nresult: cold\n' });
      assert.equal(await run(other), 'cold', log.lines.join('\n'));
      assert.match(log.lines.join('\n'), /did not fork within 10 s; it takes no new runs/);
      process.kill(parent, 'SIGCONT');
      assert.equal(await inParent, 'slept through the stop', 'the run in the retired parent finished');
      await waitFor('the retired parent to go', () => !alive(parent), 10_000);
    } finally {
      clearInterval(keepAlive);
      stopPerlParents();
    }
  });
});

describe('check', () => {
  test("as root it loads kivitendo's job packages as run_as, and bounds the time they take to load", { timeout: 240_000 }, async () => {
    assert.ok(isRoot, 'this test needs root (check started as root with [task_server] run_as set)');
    const seen = privateTmp();
    const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    fs.chmodSync(inst.root, 0o755);
    inst.addJobPackage('KtsWhoAmI', pkg('KtsWhoAmI', `BEGIN { open my $fh, '>', '${seen}/uid' or die "$!"; print $fh $<; close $fh }\nsub run { 'ok' }`));
    inst.addJobPackage('KtsHangOnLoad', pkg('KtsHangOnLoad', 'BEGIN { sleep 1000 }\nsub run { 1 }'));
    const ids = [];
    for (const name of ['KtsWhoAmI', 'KtsHangOnLoad']) ids.push(await insertJob(inst, 'Demo', { packageName: name, type: 'once', nextRunAt: '2099-01-01 00:00:00' }));
    const conf = path.join(inst.root, 'config', 'check-run-as.conf');
    const text = fs.readFileSync(inst.configFile, 'utf8');
    assert.match(text, /^run_as = $/m);
    fs.writeFileSync(conf, text.replace(/^run_as = $/m, 'run_as = nobody'));
    try {
      const started = Date.now();
      const r = await runCli(['-c', 'config/check-run-as.conf', 'check', '--kivitendo-dir', inst.root], { timeoutMs: 180_000 });
      assert.equal(fs.readFileSync(path.join(seen, 'uid'), 'utf8'), String(nobody), 'the package was loaded as run_as (nobody)');
      assert.match(r.stdout, new RegExp(`job ${ids[0]} KtsWhoAmI: kivitendo's Perl code`));
      assert.match(r.stderr, new RegExp(`Problem: .*job ${ids[1]} KtsHangOnLoad cannot run: job package KtsHangOnLoad: loading it took longer than 60 s; stopped`));
      assert.ok(Date.now() - started < 150_000, 'check ended within its bound');
    } finally {
      await inst.query('Demo', `UPDATE background_jobs SET active = false WHERE package_name IN ('KtsWhoAmI', 'KtsHangOnLoad')`);
    }
  });

  test('warns about periodic invoice configurations that print or e-mail when [task_server] perl = 0', { timeout: 120_000 }, async () => {
    const rig = await createPrintRig({ sql: loadPrintScenario('01-print-one').sql, config: { task_server: { perl: '0' } } });
    try {
      await rig.db.query(`UPDATE background_jobs SET active = true WHERE package_name = 'CreatePeriodicInvoices'`);
      const r = await runCli(['check', '--kivitendo-dir', rig.inst.root]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /Problem: Client \d+ \(G\): 1 active periodic invoice configuration print or e-mail their invoices, but the Perl path is switched off \(\[task_server\] perl = 0\)/);
    } finally {
      await rig.close();
    }
  });
});

describe("an e-mailed periodic invoice in the invoice's language, with the file management on (CreatePeriodicInvoices)", () => {
  test("the mail's PDF comes from invoice_<lang>.tex, is named in that language and is stored in the file management", { timeout: 600_000 }, async () => {
    const sql = `${loadPrintScenario('02-email-contact-and-invoice-mail').sql}
      INSERT INTO language (id, description, template_code, article_code) VALUES (900, 'English', 'en', 'en');
      UPDATE oe SET language_id = 900 WHERE id = 100201;
      UPDATE defaults SET doc_storage = true, doc_files = true, doc_files_rootpath = './documents';`;
    const rig = await createPrintRig({
      sql,
      // kivitendo's Filesystem backend needs [paths] document_path to be a folder (relative to the installation).
      config: { paths: { document_path: 'documents' } },
      prepare(i) {
        const dir = path.join(i.root, 'templates', 'kivi_c1');
        const tex = fs.readFileSync(path.join(dir, 'invoice.tex'), 'utf8');
        fs.writeFileSync(path.join(dir, 'invoice_en.tex'), tex.replace('\\begin{document}', '\\begin{document}\nKTSENGLISHTEMPLATE'));
      },
    });
    try {
      const r = await rig.run(new Date(2014, 2, 15, 3, 0, 0));
      assert.equal(r.history.status, 'success', `${r.history.error}\n${r.log.join('\n').slice(-3000)}`);
      const run = await normaliseRun(rig);
      const mails = run.get('mails.json') as { attachments: { filename: string; pdftotext?: string }[] }[];
      assert.ok(mails.length >= 1);
      for (const m of mails) {
        assert.deepEqual(m.attachments.map((a) => a.filename), ['Invoice RE-1001.pdf'], 'the attachment is named in the invoice language');
        assert.match(String(run.get(m.attachments[0].pdftotext!)), /KTSENGLISHTEMPLATE/, 'the PDF comes from invoice_en.tex');
      }
      const files = (await rig.db.query(`SELECT object_type, file_name, mime_type FROM files f JOIN ar ON ar.id = f.object_id WHERE ar.invnumber = 'RE-1001'`)).rows;
      assert.equal(files.length, 1, JSON.stringify(files));
      assert.deepEqual([files[0].object_type, files[0].mime_type], ['invoice', 'application/pdf']);
      const stored = (function walk(dir: string): string[] {
        return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
      })(path.join(rig.inst.root, 'documents'));
      // kivitendo's Filesystem backend names the file by id and version (documents/<client>/…/<id>_<version>).
      assert.ok(stored.some((f) => fs.readFileSync(f).subarray(0, 5).toString('latin1') === '%PDF-'), `a PDF under documents/: ${stored.join(', ')}`);
    } finally {
      await rig.close();
    }
  });
});
