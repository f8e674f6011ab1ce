// CSV import of 1,000 customers as kivitendo's web UI hands it over (issue 8 benchmark): the CSV as
// a session file, the profile, the `once` CsvImport job, SIGALRM — then the time until
// data.progress.finished, through our daemon and through kivitendo's scripts/task_server.pl on the
// same installation and database. Prints figures; asserts nothing.
//   npx tsx bench/csv-import.ts [--rows=1000] [--samples=1] [--tsx] [--poll=100]
// Our daemon is the single executable (dist/, rebuilt if stale; --tsx: the sources). task_server.pl
// runs in the foreground (`debug`), its modules loaded once; it is woken only while it sleeps (it
// ignores SIGALRM while it works), so a warm-up job is run first and each SIGALRM is sent after its
// "Sleeping" debug line.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import minimist from 'minimist';
import { ensureBinary, readIfExists } from '../test/harness/cli';
import { createKivitendoInstallation, type KivitendoInstallation } from '../test/harness/kivitendo';
import { createCsvImportJob, createWebSession, csvImportFinished, jobData, startOurDaemon } from '../test/harness/webui';

const args = minimist(process.argv.slice(2), { boolean: ['tsx'] });
const ROWS = Number(args.rows ?? 1000);
const SAMPLES = Number(args.samples ?? 1);
const POLL_MS = Number(args.poll ?? 100);

const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let batch = 0;
function customersCsv(): { csv: string; prefix: string } {
  batch += 1;
  const prefix = `B${batch}-`;
  const lines = ['customernumber;name;street;zipcode;city;email'];
  for (let i = 0; i < ROWS; i++) lines.push(`${prefix}${i};Kunde ${batch}/${i} GmbH;Straße ${i};${10000 + i};Stadt ${i % 100};k${batch}x${i}@example.com`);
  return { csv: lines.join('\r\n') + '\r\n', prefix };
}

/** One import: job created, SIGALRM to pid, then data polled until finished. */
async function oneImport(inst: KivitendoInstallation, pid: number) {
  const { csv, prefix } = customersCsv();
  const sessionId = await createWebSession(inst);
  const { jobId } = await createCsvImportJob(inst, 'Demo', { csv, login: 'taskserver', sessionId, test: 0 });
  const t0 = performance.now();
  process.kill(pid, 'SIGALRM');
  let firstProgress: number | undefined;
  for (;;) {
    const data = await jobData(inst, 'Demo', jobId);
    if (data?.progress && firstProgress === undefined) firstProgress = performance.now() - t0;
    if (data && csvImportFinished(data)) {
      const total = performance.now() - t0;
      if (data.errors) throw new Error(`import failed: ${JSON.stringify(data.errors)}`);
      const [{ n }] = await inst.query('Demo', `SELECT count(*)::int AS n FROM customer WHERE customernumber LIKE $1 || '%'`, [prefix]);
      if (n !== ROWS) throw new Error(`${n} of ${ROWS} customers saved`);
      return { total, firstProgress: firstProgress ?? total };
    }
    if (performance.now() - t0 > 30 * 60_000) throw new Error(`job ${jobId} not finished after 30 min: ${JSON.stringify(data)}`);
    await sleep(POLL_MS);
  }
}

function report(name: string, runs: { total: number; firstProgress: number }[]) {
  const totals = runs.map((r) => r.total);
  console.log(
    `${name.padEnd(16)} SIGALRM → progress.finished: median ${secs(median(totals))} [${totals.map(secs).join(', ')}]; ` +
      `SIGALRM → first progress in data: median ${secs(median(runs.map((r) => r.firstProgress)))}; ${(ROWS / (median(totals) / 1000)).toFixed(0)} customers/s`,
  );
}

async function main() {
  // task_server.pl's debug lines ("Sleeping") tell when it sleeps, the only time SIGALRM wakes it
  const inst = await createKivitendoInstallation({ config: { task_server: { debug: '1' }, debug: { global_level: 'DEBUG1' } } });
  const debugLog = path.join(inst.root, 'users', 'kivitendo-debug.log');
  // (ours logs the same line to the same file: count the lines of one pid)
  const sleepingLines = (pid: number) => (readIfExists(debugLog) ?? '').split(`[${pid}] debug1: task server: Sleeping`).length - 1;
  try {
    await inst.query('Demo', 'UPDATE background_jobs SET active = false');
    console.log(`CSV import of ${ROWS} customers, ${SAMPLES} sample(s) each, data polled every ${POLL_MS} ms`);

    // ---- our daemon ----
    const binary = args.tsx ? undefined : ensureBinary();
    const daemon = await startOurDaemon(inst, { binary });
    const ours = [];
    for (let i = 0; i < SAMPLES; i++) ours.push(await oneImport(inst, daemon.pid));
    report(`kivitendo-task-server (${binary ? 'binary' : 'sources'})`, ours);
    await daemon.stop();

    // ---- kivitendo's task_server.pl ----
    const [{ id: warm }] = await inst.query('Demo', `INSERT INTO background_jobs (type, package_name, active, data) VALUES ('once', 'Test', true, '') RETURNING id`);
    const pl = spawn(inst.perl, ['scripts/task_server.pl', 'debug'], { cwd: inst.root, stdio: ['ignore', 'pipe', 'pipe'] });
    let plOut = '';
    pl.stdout.on('data', (d) => (plOut = (plOut + d).slice(-4000)));
    pl.stderr.on('data', (d) => (plOut = (plOut + d).slice(-4000)));
    try {
      for (;;) {
        const [job] = await inst.query('Demo', `SELECT last_run_at FROM background_jobs WHERE id = $1`, [warm]);
        if (job.last_run_at) break;
        if (pl.exitCode !== null) throw new Error(`task_server.pl exited: ${plOut}`);
        await sleep(50);
      }
      const asleep = async (after: number) => {
        while (sleepingLines(pl.pid!) <= after) {
          if (pl.exitCode !== null) throw new Error(`task_server.pl exited: ${plOut}`);
          await sleep(50);
        }
        await sleep(300); // from the debug line to sleep()
      };
      await asleep(0);
      const theirs = [];
      for (let i = 0; i < SAMPLES; i++) {
        const before = sleepingLines(pl.pid!);
        theirs.push(await oneImport(inst, pl.pid!));
        await asleep(before);
      }
      report('task_server.pl', theirs);
    } finally {
      pl.kill('SIGTERM');
      await sleep(500);
      if (pl.exitCode === null) pl.kill('SIGKILL');
    }
  } finally {
    inst.remove();
  }
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
