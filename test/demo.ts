// `npm run demo`: the task server on an embedded default — a throwaway PostgreSQL with a demo
// kivitendo auth DB and one client, no kivitendo installation needed. The client has the default
// jobs of a fresh kivitendo database, a `Test` job every minute, a pending `once` job, and a
// monthly recurring invoice due today (CreatePeriodicInvoices). The server runs in the foreground
// with its log on screen; Ctrl-C stops it and removes everything.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BINARY, MAIN, TSX, cliEnv } from './harness/cli';
import { createInstallation } from './harness/installation';
import { insertJob } from './harness/jobs';
import { addDemoSubscription } from './harness/demoData';

async function main() {
  process.stderr.write('demo: starting a throwaway PostgreSQL and a demo kivitendo client ...\n');
  const inst = await createInstallation({ clients: [{ name: 'Demo GmbH' }] });
  inst.writeConfig({ task_server: { debug: '1' }, debug: { global_level: 'INFO DEBUG1 WARN' } });
  await insertJob(inst, 'Demo GmbH', { packageName: 'Test', cronSpec: '* * * * *', nextRunAt: null, description: 'every minute' });
  await insertJob(inst, 'Demo GmbH', { packageName: 'Test', type: 'once', data: '---\nresult: hello from a once job\n' });
  const db = await inst.clientDb('Demo GmbH');
  // Make the shipped CreatePeriodicInvoices job and one subscription due now.
  await addDemoSubscription(db);
  await db.query(`UPDATE background_jobs SET next_run_at = now()::timestamp(0) WHERE package_name = 'CreatePeriodicInvoices'`);
  await db.query(`UPDATE background_jobs SET next_run_at = now()::timestamp(0) + interval '1 second' WHERE package_name = 'Test' AND type = 'interval'`);
  await db.end();

  const useBinary = fs.existsSync(BINARY);
  const [file, args] = useBinary
    ? [BINARY, ['-f', 'start']]
    : [process.execPath, ['--import', TSX, MAIN, '-f', 'start']];
  process.stderr.write(
    `demo: kivitendo ROOT ${inst.root}\ndemo: running ${useBinary ? path.relative(process.cwd(), BINARY) : 'src/main.ts'} -f start (Ctrl-C stops and cleans up)\n\n`,
  );
  const child = spawn(file, [...args, '--kivitendo-dir', inst.root], { stdio: 'inherit', env: cliEnv(), cwd: inst.root });
  let stopping = false;
  const cleanup = async () => {
    const report = await inst.clientDb('Demo GmbH');
    const h = await report.query(`SELECT package_name, status, count(*)::int AS n FROM background_job_histories GROUP BY 1, 2 ORDER BY 1, 2`);
    const ar = await report.query(`SELECT invnumber, transdate, amount FROM ar ORDER BY id`);
    await report.end();
    process.stderr.write('\ndemo: history rows: ' + h.rows.map((r) => `${r.package_name} ${r.status} ×${r.n}`).join(', ') + '\n');
    process.stderr.write('demo: invoices: ' + (ar.rows.map((r) => `${r.invnumber} ${r.transdate} ${r.amount}`).join(', ') || 'none') + '\n');
    inst.remove();
    inst.pg.stop();
  };
  const stop = () => {
    if (stopping) return;
    stopping = true;
    child.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (process.env.KTS_DEMO_SECONDS) setTimeout(stop, Number(process.env.KTS_DEMO_SECONDS) * 1000);
  child.on('exit', async (code) => {
    await cleanup().catch((e) => process.stderr.write(`demo: cleanup: ${(e as Error).message}\n`));
    process.exit(stopping ? 0 : (code ?? 1));
  });
}

main().catch((e) => {
  console.error(`demo: ${(e as Error).message}`);
  process.exit(1);
});
