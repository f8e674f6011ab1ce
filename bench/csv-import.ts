// CSV import of 1,000 customers as kivitendo's web UI hands it over (issue 8 benchmark): the CSV as
// a session file, the profile, the `once` CsvImport job, SIGALRM — then the time until the first
// progress and until data.progress.finished, through our daemon and through kivitendo's
// scripts/task_server.pl on the same installation and database. Prints figures; asserts nothing.
//   npx tsx bench/csv-import.ts [--rows=1000] [--samples=3] [--tsx] [--poll=100]
// Both servers run at the same time (a node id each, see bench/lib/sideBySide.ts) and the samples
// alternate — ours, kivitendo's, ours, … — so that the load of a shared machine hits both alike.
// Our daemon is the single executable (dist/, rebuilt if stale; --tsx: the sources), its Perl runs
// forked by the preloaded parent (warmed by a first import that is not counted); task_server.pl
// runs in the foreground (`debug`) with its modules loaded by a first job, and is woken only while
// it sleeps (it ignores SIGALRM while it works).
import minimist from 'minimist';
import { ensureBinary } from '../test/harness/cli';
import { createKivitendoInstallation, type KivitendoInstallation } from '../test/harness/kivitendo';
import { createCsvImportJob, createWebSession, csvImportFinished, jobData } from '../test/harness/webui';
import { type BenchServer, machineLine, median, secs, startKivitendoServer, startOurServer } from './lib/sideBySide';
import { setTimeout as sleep } from 'node:timers/promises';

const args = minimist(process.argv.slice(2), { boolean: ['tsx'] });
const ROWS = Number(args.rows ?? 1000);
const SAMPLES = Number(args.samples ?? 3);
const POLL_MS = Number(args.poll ?? 100);


let batch = 0;
function customersCsv(): { csv: string; prefix: string } {
  batch += 1;
  const prefix = `B${batch}-`;
  const lines = ['customernumber;name;street;zipcode;city;email'];
  for (let i = 0; i < ROWS; i++) lines.push(`${prefix}${i};Kunde ${batch}/${i} GmbH;Straße ${i};${10000 + i};Stadt ${i % 100};k${batch}x${i}@example.com`);
  return { csv: lines.join('\r\n') + '\r\n', prefix };
}

/** One import: job created for the server's node, SIGALRM to it, then data polled until finished. */
async function oneImport(inst: KivitendoInstallation, server: BenchServer) {
  const { csv, prefix } = customersCsv();
  const sessionId = await createWebSession(inst);
  const { jobId } = await createCsvImportJob(inst, 'Demo', { csv, login: 'taskserver', sessionId, test: 0 });
  await inst.query('Demo', 'UPDATE background_jobs SET node_id = $1 WHERE id = $2', [server.node, jobId]);
  await server.untilAsleep();
  const t0 = performance.now();
  server.wake();
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
      `SIGALRM → first progress in data: median ${secs(median(runs.map((r) => r.firstProgress)))} [${runs.map((r) => secs(r.firstProgress)).join(', ')}]; ${(ROWS / (median(totals) / 1000)).toFixed(0)} customers/s`,
  );
}

async function main() {
  // DEBUG1: task_server.pl's "Sleeping" lines tell when SIGALRM wakes it
  const inst = await createKivitendoInstallation({ config: { task_server: { debug: '0' }, debug: { global_level: 'DEBUG1' } } });
  try {
    await inst.query('Demo', 'UPDATE background_jobs SET active = false');
    console.log(`CSV import of ${ROWS} customers, ${SAMPLES} sample(s) each, alternating, data polled every ${POLL_MS} ms`);
    const binary = args.tsx ? undefined : ensureBinary();
    const ours = await startOurServer(inst, binary);
    const theirs = await startKivitendoServer(inst, 'Demo');
    try {
      console.log(`side by side (${machineLine()})`);
      // not counted: the first run starts our preloaded parent, and loads CsvImport's modules into task_server.pl
      const firstOurs = await oneImport(inst, ours);
      const firstTheirs = await oneImport(inst, theirs);
      console.log(`first imports (not counted): ours ${secs(firstOurs.total)} (first progress ${secs(firstOurs.firstProgress)}, starts the preloaded parent), task_server.pl ${secs(firstTheirs.total)} (${secs(firstTheirs.firstProgress)})`);
      const o = [];
      const t = [];
      for (let i = 0; i < SAMPLES; i++) {
        o.push(await oneImport(inst, ours));
        t.push(await oneImport(inst, theirs));
      }
      report(`kivitendo-task-server (${binary ? 'binary' : 'sources'})`, o);
      report('task_server.pl', t);
      console.log(`ratio ours / task_server.pl: finished ${(median(o.map((r) => r.total)) / median(t.map((r) => r.total))).toFixed(2)}, first progress ${(median(o.map((r) => r.firstProgress)) / median(t.map((r) => r.firstProgress))).toFixed(2)}   (${machineLine()})`);
    } finally {
      await ours.stop();
      await theirs.stop();
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
