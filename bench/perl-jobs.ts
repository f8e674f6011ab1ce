// kivitendo's own Perl packages through the daemon (issue 8, deliverable 5). Prints figures; asserts nothing.
//   npx tsx bench/perl-jobs.ts [--runs=100] [--clients=4] [--samples=5] [--batches=4] [--settle=60] [--hang-limit=12] [--tsx] [--no-perl-daemon]
//   npx tsx bench/perl-jobs.ts --compare=8 [--tsx]   (only section 0)
// On a throwaway kivitendo installation (kivitendo's real tree, see test/harness/kivitendo.ts):
//  0. --compare=N: our daemon (warm: preloaded parent) and kivitendo's task_server.pl running side by
//     side, N samples each, alternating: SIGALRM → history row of the same Perl package (KtsBench);
//  1. the daemon (dist/ single executable, rebuilt if stale; --tsx: sources) idle: VmRSS, RssAnon;
//  2. a `once` job of kivitendo's Test code through Perl (package KtsBench, a subclass of
//     SL::BackgroundJob::Test, so the native Test module does not take it): SIGALRM → history row,
//     cold (a daemon with perl_preload_idle = 0: a cold perl per run) and warm (the default: a child
//     forked by the preloaded Perl parent), side by side; beside them the native Test job;
//  3. --runs Perl runs spread over --clients clients (they run in parallel, up to [task_server]
//     concurrency): throughput, the daemon's and the preloaded parent's RSS after them and
//     --settle seconds later, the largest perl child seen;
//  4. time limit: a package spinning in Perl, job_time_limit --hang-limit (12 s) → failure row, child gone;
//  5. kivitendo's scripts/task_server.pl on the same installation (modules preloaded): SIGALRM →
//     history row, and its RSS (skip with --no-perl-daemon).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import minimist from 'minimist';
import { DAEMON_V8_FLAGS } from '../src/daemon/detach';
import { alive, ensureBinary, spawnCli } from '../test/harness/cli';
import { createKivitendoInstallation, type KivitendoInstallation } from '../test/harness/kivitendo';
import { type BenchServer, machineLine, median, secs, startKivitendoServer, startOurServer } from './lib/sideBySide';

const args = minimist(process.argv.slice(2), { boolean: ['tsx', 'perl-daemon'], default: { 'perl-daemon': true } });
const COMPARE = Number(args.compare ?? 0);
const RUNS = Number(args.runs ?? 100);
const CLIENTS = Number(args.clients ?? 4);
const SAMPLES = Number(args.samples ?? 5);
const SETTLE_S = Number(args.settle ?? 60);
const BATCHES = Number(args.batches ?? 4);
const HANG_LIMIT_S = Number(args['hang-limit'] ?? 12);

const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;

function status(pid: number) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s*(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rss: field('VmRSS'), anon: field('RssAnon') };
}
const rssLine = (pid: number) => {
  const s = status(pid);
  return `VmRSS ${mib(s.rss)}, RssAnon ${mib(s.anon)}`;
};

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid && !/\) Z /.test(stat)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The preloaded Perl parents the daemon started (`perl …/kivitendo-child.pl preload`). */
function preloadParents(pid: number): number[] {
  return childrenOf(pid).filter((c) => {
    try {
      return fs.readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0').includes('preload');
    } catch {
      return false;
    }
  });
}
const parentLine = (pid: number) => {
  const ps = preloadParents(pid);
  return ps.length ? ps.map((p) => `preloaded parent ${p}: ${rssLine(p)}`).join('; ') : 'no preloaded parent';
};

/** Largest VmRSS of the perl processes whose parent is `pid` or its preloaded parent (runs), sampled until stop() (kB). */
function watchChildren(daemon: number) {
  let max = 0;
  let seen = 0;
  const pids = new Set<number>();
  let parents = preloadParents(daemon);
  const timer = setInterval(() => {
    parents = preloadParents(daemon);
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid !== daemon && !parents.includes(ppid)) continue;
        if (parents.includes(Number(e))) continue;
        if (!pids.has(Number(e))) (pids.add(Number(e)), (seen += 1));
        const rss = status(Number(e)).rss;
        if (Number.isFinite(rss)) max = Math.max(max, rss);
      } catch {
        /* gone */
      }
    }
  }, 100);
  return { stop: () => (clearInterval(timer), { max, seen }) };
}

/**
 * Wakes a server and returns the ms until job `id`'s run is recorded (its last_run_at: kivitendo's
 * history has no job id). Looked for on one connection: a connection per look (the harness's query)
 * added its connect and authentication to every sample of both servers, and its CPU beside them.
 */
async function wakeUntilRecorded(inst: KivitendoInstallation, client: string, id: number, wake: () => void): Promise<number> {
  return inst.withClientDb(client, async (db) => {
    const t0 = performance.now();
    wake();
    for (;;) {
      const { rows: [j] } = await db.query('SELECT last_run_at FROM background_jobs WHERE id = $1', [id]);
      if (!j) throw new Error(`job ${id} is gone from background_jobs of client ${client}`);
      if (j.last_run_at) return performance.now() - t0;
      await sleep(5);
    }
  });
}

/** Section 0: ours and task_server.pl at the same time, samples alternating. */
async function compare(inst: KivitendoInstallation, client: string, binary: string | undefined) {
  const latency = async (s: BenchServer) => {
    await s.untilAsleep();
    const [{ id }] = await inst.query<{ id: number }>(client, `INSERT INTO background_jobs (type, package_name, active, data, node_id) VALUES ('once', 'KtsBench', true, '---' || chr(10) || 'result: bench' || chr(10), $1) RETURNING id`, [s.node]);
    return wakeUntilRecorded(inst, client, id, () => s.wake());
  };
  const ours = await startOurServer(inst, binary);
  const theirs = await startKivitendoServer(inst, client);
  try {
    console.log(`side by side (${machineLine()}); our daemon pid ${ours.pid}, task_server.pl pid ${theirs.pid}`);
    // The first run of each loads what it needs (our preloaded parent, their require of the package).
    const firstOurs = await latency(ours);
    const firstTheirs = await latency(theirs);
    const o: number[] = [];
    const t: number[] = [];
    for (let i = 0; i < COMPARE; i++) {
      o.push(await latency(ours));
      t.push(await latency(theirs));
    }
    console.log(`once KtsBench job, SIGALRM → history row, ${COMPARE} samples each, alternating:`);
    // Warm runs take tens of milliseconds: whole milliseconds, not seconds.
    const ms = (x: number) => `${Math.round(x)} ms`;
    console.log(`  kivitendo-task-server (warm)  median ${ms(median(o))} [${o.map(ms).join(', ')}]; first run (starts the parent) ${secs(firstOurs)}`);
    console.log(`  task_server.pl                median ${ms(median(t))} [${t.map(ms).join(', ')}]; first run ${secs(firstTheirs)}`);
    console.log(`  ratio ours / task_server.pl   ${(median(o) / median(t)).toFixed(2)}   (${machineLine()})`);
    console.log(`  our daemon ${rssLine(ours.pid)}; ${parentLine(ours.pid)}; task_server.pl ${rssLine(theirs.pid)}`);
  } finally {
    await ours.stop();
    await theirs.stop();
  }
}

async function main() {
  const names = Array.from({ length: CLIENTS }, (_, i) => `P${i + 1}`);
  const inst = await createKivitendoInstallation({
    clients: names.map((name) => ({ name })),
    // DEBUG1: task_server.pl's "Sleeping" lines tell when SIGALRM wakes it (section 0)
    config: { task_server: { debug: '0', 'job_time_limit.KtsBenchHang': `${HANG_LIMIT_S}s` }, debug: { global_level: COMPARE ? 'DEBUG1' : 'NONE' } },
  });
  for (const n of names) await inst.query(n, 'UPDATE background_jobs SET active = false');
  inst.addJobPackage('KtsBench', 'package SL::BackgroundJob::KtsBench;\nuse strict;\nuse parent qw(SL::BackgroundJob::Test);\n1;\n');
  inst.addJobPackage('KtsBenchHang', [
    'package SL::BackgroundJob::KtsBenchHang;', 'use strict;', 'use parent qw(SL::BackgroundJob::Base);',
    'sub run { SL::DB->client->dbh->do("SELECT 1"); open my $fh, ">", "users/kts-bench-hang.pid" or die; print $fh $$; close $fh; my $i = 0; $i++ while 1 }', '1;', '',
  ].join('\n'));

  const insertOnce = async (client: string, pkg: string, n = 1) =>
    (await inst.query<{ id: number }>(client, `INSERT INTO background_jobs (type, package_name, active, data) SELECT 'once', $1, true, '---' || chr(10) || 'result: bench' || chr(10) FROM generate_series(1, $2) RETURNING id`, [pkg, n])).map((r) => r.id);
  const historyOf = async (client: string, id: number) => {
    // kivitendo's history has no job id; the job row's last_run_at says the run is recorded.
    const [j] = await inst.query(client, 'SELECT last_run_at FROM background_jobs WHERE id = $1', [id]);
    return j?.last_run_at !== null;
  };
  /** SIGALRM → history row of one new once job, ms. */
  const latency = async (pid: number, pkg: string) => {
    const [id] = await insertOnce(names[0], pkg);
    return wakeUntilRecorded(inst, names[0], id, () => process.kill(pid, 'SIGALRM'));
  };

  const binary = args.tsx ? undefined : ensureBinary();
  if (COMPARE) {
    await compare(inst, names[0], binary);
    inst.remove();
    process.exit(0);
  }

  // ---- this server ----
  const pidFileOf = path.join(inst.root, 'users', 'pid', 'config.kivitendo.conf.pid');
  // Cold: a daemon that starts a cold perl per run.
  fs.writeFileSync(path.join(inst.root, 'config', 'cold.conf'), fs.readFileSync(inst.configFile, 'utf8') + '\n[task_server]\nperl_preload_idle = 0\n');
  const cold = spawnCli(['-f', '-c', 'config/cold.conf', 'start', '--kivitendo-dir', inst.root], { binary, env: { NODE_OPTIONS: DAEMON_V8_FLAGS || undefined } });
  cold.child.stderr!.on('data', () => (cold.out.stderr = cold.out.stderr.slice(-4000)));
  for (let i = 0; i < 400 && !fs.existsSync(path.join(inst.root, 'users', 'pid', 'config.cold.conf.pid')); i++) await sleep(50);
  await sleep(1500);
  const perlCold: number[] = [];
  for (let i = 0; i < SAMPLES; i++) perlCold.push(await latency(cold.child.pid!, 'KtsBench'));
  cold.child.kill('SIGTERM');
  await cold.exited;

  const server = spawnCli(['-f', 'start', '--kivitendo-dir', inst.root], { binary, env: { NODE_OPTIONS: DAEMON_V8_FLAGS || undefined } });
  server.child.stderr!.on('data', () => (server.out.stderr = server.out.stderr.slice(-4000)));
  const pid = server.child.pid!;
  for (let i = 0; i < 400 && !fs.existsSync(pidFileOf); i++) await sleep(50);
  await sleep(1500);
  console.log(`daemon: ${binary ? path.relative(process.cwd(), binary) : 'node --import tsx src/main.ts'} (pid ${pid}); kivitendo tree ${inst.src}; ${CLIENTS} clients; ${require('node:os').cpus().length} CPUs`);
  console.log(`idle                                 ${rssLine(pid)}`);

  const native: number[] = [];
  // The first Perl run starts the preloaded parent (it loads kivitendo's modules, as a cold perl does).
  const first = await latency(pid, 'KtsBench');
  const perlWarm: number[] = [];
  for (let i = 0; i < SAMPLES; i++) perlWarm.push(await latency(pid, 'KtsBench'));
  for (let i = 0; i < SAMPLES; i++) native.push(await latency(pid, 'Test'));
  console.log(`once job, SIGALRM → history row:     Perl cold (perl_preload_idle = 0) median ${secs(median(perlCold))} [${perlCold.map(secs).join(', ')}]`);
  console.log(`                                     Perl warm (preloaded parent)    median ${secs(median(perlWarm))} [${perlWarm.map(secs).join(', ')}]; the first run, which starts the parent: ${secs(first)}`);
  console.log(`                                     native Test median ${secs(median(native))} [${native.map(secs).join(', ')}]`);
  console.log(`after ${SAMPLES + 1} Perl + ${SAMPLES} native runs       daemon ${rssLine(pid)}; ${parentLine(pid)}`);

  // ---- many Perl runs, in batches (RSS after each) ----
  const watch = watchChildren(pid);
  const t0 = performance.now();
  let fed = 0;
  for (let b = 1; b <= BATCHES; b++) {
    const target = Math.round((RUNS * b) / BATCHES);
    const batch = target - fed;
    const per = Math.ceil(batch / CLIENTS);
    let left = batch;
    for (const n of names) {
      const k = Math.min(per, left);
      if (k > 0) await insertOnce(n, 'KtsBench', k);
      left -= k;
    }
    fed = target;
    process.kill(pid, 'SIGALRM');
    for (;;) {
      let done = 0;
      for (const n of names) done += Number((await inst.query(n, `SELECT count(*) AS n FROM background_jobs WHERE package_name = 'KtsBench' AND last_run_at IS NOT NULL`))[0].n);
      if (done >= fed + 2 * SAMPLES + 1) break;
      if (server.child.exitCode !== null) throw new Error(`the daemon exited; stderr tail:\n${server.out.stderr}`);
      await sleep(250);
    }
    await sleep(1000);
    console.log(`after ${String(fed).padStart(5)} Perl runs              daemon ${rssLine(pid)}; ${parentLine(pid)}   (${secs(performance.now() - t0)} so far)`);
  }
  const wall = performance.now() - t0;
  const { max, seen } = watch.stop();
  let ok = 0;
  for (const n of names) ok += Number((await inst.query(n, `SELECT count(*) AS n FROM background_job_histories WHERE package_name = 'KtsBench' AND status = 'success' AND result = 'bench'`))[0].n);
  console.log(`${RUNS} Perl runs over ${CLIENTS} clients:      ${secs(wall)} wall, ${(RUNS / (wall / 1000)).toFixed(2)} runs/s, ${ok - 2 * SAMPLES - 1} of ${RUNS} success rows; ${seen} perl run processes seen, largest VmRSS ${mib(max)}`);
  await sleep(SETTLE_S * 1000);
  console.log(`${SETTLE_S} s later                          daemon ${rssLine(pid)}; ${parentLine(pid)}`);

  // ---- time limit ----
  // The limit counts from the start of perl (its module loading included), so it must exceed
  // perl's start-up on this machine for the job's own code to be reached.
  const pidFile = path.join(inst.root, 'users', 'kts-bench-hang.pid');
  const [hangId] = await insertOnce(names[0], 'KtsBenchHang');
  const alarmAt = performance.now();
  process.kill(pid, 'SIGALRM');
  let hangStart = 0;
  while (!(await historyOf(names[0], hangId))) {
    if (!hangStart && fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8')) hangStart = performance.now();
    await sleep(10);
  }
  const rowAt = performance.now();
  const hangPid = hangStart ? Number(fs.readFileSync(pidFile, 'utf8')) : 0;
  const [row] = await inst.query(names[0], `SELECT status, error FROM background_job_histories WHERE package_name = 'KtsBenchHang'`);
  console.log(`time limit ${HANG_LIMIT_S} s, job spinning in Perl: failure row ${secs(rowAt - alarmAt)} after SIGALRM, i.e. ${secs(rowAt - alarmAt - HANG_LIMIT_S * 1000)} after the limit` +
    (hangStart ? ` (the job's own code spun for ${secs(rowAt - hangStart)}; its perl ${alive(hangPid) ? 'STILL ALIVE' : 'gone'})` : ' (perl was stopped while still loading kivitendo)') +
    `; perl processes left (the parent's standby, forked ahead for the next run, counts): ${childrenOf(pid).filter((c) => !preloadParents(pid).includes(c)).length + preloadParents(pid).reduce((n, p) => n + childrenOf(p).length, 0)}, preloaded parent ${preloadParents(pid).length ? 'alive' : 'gone'}; ${row.status}: ${row.error}`);

  server.child.kill('SIGTERM');
  await server.exited;

  // ---- kivitendo's task_server.pl ----
  if (args['perl-daemon']) {
    // Its first iteration runs the job inserted first; after that it sleeps and SIGALRM wakes it.
    const [warm] = await insertOnce(names[0], 'Test');
    const perlStart = performance.now();
    const pl = spawn(inst.perl, ['scripts/task_server.pl', 'debug'], { cwd: inst.root, stdio: ['ignore', 'pipe', 'pipe'] });
    let plOut = '';
    pl.stdout.on('data', (d) => (plOut = (plOut + d).slice(-4000)));
    pl.stderr.on('data', (d) => (plOut = (plOut + d).slice(-4000)));
    while (!(await historyOf(names[0], warm))) {
      if (pl.exitCode !== null) throw new Error(`task_server.pl exited: ${plOut}`);
      await sleep(20);
    }
    console.log(`task_server.pl: start → first job run ${secs(performance.now() - perlStart)}`);
    await sleep(2000 * CLIENTS); // let it finish the iteration over all clients and go to sleep
    const pl_ms: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      pl_ms.push(await latency(pl.pid!, 'Test'));
      await sleep(1500 * CLIENTS);
    }
    console.log(`task_server.pl once Test job, SIGALRM → history row: median ${secs(median(pl_ms))} [${pl_ms.map(secs).join(', ')}]`);
    console.log(`task_server.pl                       ${rssLine(pl.pid!)}`);
    pl.kill('SIGTERM');
    await sleep(500);
    if (pl.exitCode === null) pl.kill('SIGKILL');
  }
  inst.remove();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
