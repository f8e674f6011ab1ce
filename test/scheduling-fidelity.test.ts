// Scheduling as kivitendo does it (issue 10, items 8 and 9), with the daemon as a process and,
// where the web UI is involved, kivitendo's own Perl classes saving the job.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, REPO, spawnCli, waitFor as waitUntil } from './harness/cli';
import { createInstallation, renderConfig, type Installation } from './harness/installation';
import { insertJob } from './harness/jobs';
import { ADVISORY_NAMESPACE } from '../src/db/backgroundJobs';

/** kivitendo's source (read and run, never copied): ../shared/kivitendo-erp beside the repository. */
const KIVITENDO_SOURCE = process.env.KIVITENDO_SOURCE ?? path.join(REPO, '..', 'shared', 'kivitendo-erp');

let inst: Installation;
let server: ReturnType<typeof spawnCli>;

const query = <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => inst.query<T>('A', sql, params);

function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  return waitUntil(what, fn, timeoutMs, () => `server stderr:\n${server.out.stderr.slice(-3000)}`);
}

const historyOf = (description: string) =>
  query<{ status: string; error: string | null; result: string | null }>(
    `SELECT status, error, result FROM background_job_histories WHERE package_name = 'Test' AND data LIKE $1 ORDER BY id`,
    [`%${description}%`],
  );

const jobRow = (id: number) =>
  query<{ last_run_at: string | null; next_run_at: string | null; cron_spec: string | null }>(
    'SELECT last_run_at, next_run_at::text, cron_spec FROM background_jobs WHERE id = $1',
    [id],
  ).then((r) => r[0]);

/** Saves job `id` through kivitendo's web UI code path (SL::Controller::BackgroundJob::create_or_update). */
function saveInWebUi(id: number, columns: Record<string, string>): string {
  const script = path.join(REPO, 'test', 'harness', 'webui-save-background-job.pl');
  assert.ok(fs.existsSync(path.join(KIVITENDO_SOURCE, 'SL', 'DB', 'BackgroundJob.pm')), `kivitendo's source is missing at ${KIVITENDO_SOURCE} (set KIVITENDO_SOURCE)`);
  const r = spawnSync('perl', [script, KIVITENDO_SOURCE, String(id), ...Object.entries(columns).map(([k, v]) => `${k}=${v}`)], {
    encoding: 'utf8',
    env: {
      ...process.env,
      KTS_DB_NAME: inst.clients.A.dbname,
      KTS_DB_HOST: inst.pg.host,
      KTS_DB_PORT: String(inst.pg.port),
      KTS_DB_USER: inst.pg.user,
      KTS_DB_PASSWORD: inst.pg.password,
    },
  });
  assert.ok(r.status === 0 || r.status === 3, `kivitendo's Perl could not save job ${id} (are kivitendo's Perl modules installed? DEBIAN-PACKAGES.txt): exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

before(async () => {
  inst = await createInstallation({ clients: [{ name: 'A' }] });
  await query('UPDATE background_jobs SET active = false');
  // The client's only other job is due in three hours: without the `once` job, the daemon has no
  // reason to look at this client before then (apart from its minute re-poll).
  await query(`INSERT INTO background_jobs (type, package_name, active, cron_spec, next_run_at, description)
               VALUES ('interval', 'Test', true, '0 0 * * *', now()::timestamp(0) + interval '3 hours', 'later')`);
  const conf = path.join(inst.root, 'config', 'fidelity.conf');
  fs.writeFileSync(conf, fs.readFileSync(inst.configFile, 'utf8') + '\n' + renderConfig({ task_server: { debug: '1' } }));
  server = spawnCli(['-f', '-c', 'config/fidelity.conf', 'start', '--kivitendo-dir', inst.root]);
  await waitUntil('the daemon to be up', () => server.out.stderr.includes('is up and running'), 20_000, () => server.out.stderr);
  await sleep(500); // past its first sweep
});

after(() => {
  if (server?.child.pid && alive(server.child.pid)) server.child.kill('SIGKILL');
  inst?.remove();
});

describe('once jobs, as kivitendo selects them', { concurrency: false }, () => {
  test('a once job with a cron_spec and next_run_at NULL runs right after SIGALRM (kivitendo: due)', async () => {
    const id = await insertJob(inst, 'A', { packageName: 'Test', type: 'once', cronSpec: '0 3 * * *', nextRunAt: null, data: '---\nresult: once with spec\n' });
    const t0 = Date.now();
    process.kill(server.child.pid!, 'SIGALRM');
    const rows = await waitFor('the once job with a cron_spec', async () => {
      const r = await historyOf('once with spec');
      return r.length > 0 && r;
    }, 5000);
    assert.ok(Date.now() - t0 < 3000, `ran ${Date.now() - t0} ms after SIGALRM`);
    assert.deepEqual(rows, [{ status: 'success', error: null, result: 'once with spec' }]);
    const row = await jobRow(id);
    assert.ok(row.last_run_at, 'last_run_at written');
  });

  test('a once job with an invalid cron_spec is parked without running, and runs once its schedule is fixed in the web UI', async () => {
    const id = await insertJob(inst, 'A', { packageName: 'Test', type: 'once', cronSpec: '61 * * * *', nextRunAt: null, data: '---\nresult: fixed later\n' });
    process.kill(server.child.pid!, 'SIGALRM');
    const [parked] = await waitFor('the failure row of the bad schedule', async () => {
      const r = await historyOf('fixed later');
      return r.length > 0 && r;
    }, 5000);
    assert.equal(parked.status, 'failure');
    assert.match(parked.error!, /^invalid cron_spec '61 \* \* \* \*': .+; the job was not run and waits until its schedule is fixed$/);
    // Not marked as run (a once job with last_run_at never runs again, also after a save in the
    // web UI, and BackgroundJobCleanup would delete it a day later); never due by itself.
    assert.deepEqual(await jobRow(id), { last_run_at: null, next_run_at: 'infinity', cron_spec: '61 * * * *' });
    process.kill(server.child.pid!, 'SIGALRM');
    await sleep(1500);
    assert.equal((await historyOf('fixed later')).length, 1, 'a parked job is not retried on every sweep');

    // kivitendo's web UI loads the parked row and refuses the bad schedule, as it does for any job.
    assert.equal(saveInWebUi(id, { cron_spec: '61 * * * *' }), 'invalid: The execution schedule is invalid.');
    // The admin fixes it ('' = no schedule: a once job then runs at once) and saves.
    assert.match(saveInWebUi(id, { cron_spec: '' }), /^saved next_run_at=\d{4}-\d\d-\d\dT\d\d:\d\d:00$/);
    process.kill(server.child.pid!, 'SIGALRM');
    const rows = await waitFor('the repaired once job', async () => {
      const r = await historyOf('fixed later');
      return r.length > 1 && r;
    }, 5000);
    assert.deepEqual(rows[1], { status: 'success', error: null, result: 'fixed later' });
    assert.ok((await jobRow(id)).last_run_at, 'now it has run');
  });

  test('an interval job with an invalid cron_spec is parked (next_run_at NULL) without being marked as run, and runs after a web UI save', async () => {
    const id = await insertJob(inst, 'A', { packageName: 'Test', cronSpec: '0 0 31 2 *', data: '---\nresult: interval fixed later\n' });
    await query(`UPDATE background_jobs SET next_run_at = now()::timestamp(0) - interval '1 minute' WHERE id = $1`, [id]);
    process.kill(server.child.pid!, 'SIGALRM');
    const [parked] = await waitFor('the failure row of the bad interval schedule', async () => {
      const r = await historyOf('interval fixed later');
      return r.length > 0 && r;
    }, 5000);
    assert.match(parked.error!, /^invalid cron_spec '0 0 31 2 \*': Impossible last day for provided months\.; the job was not run/);
    assert.deepEqual(await jobRow(id), { last_run_at: null, next_run_at: null, cron_spec: '0 0 31 2 *' });
    // Saved with a valid schedule it is due at the schedule's next minute; make that now.
    assert.match(saveInWebUi(id, { cron_spec: '* * * * *' }), /^saved next_run_at=/);
    await query(`UPDATE background_jobs SET next_run_at = now()::timestamp(0) WHERE id = $1`, [id]);
    process.kill(server.child.pid!, 'SIGALRM');
    const rows = await waitFor('the repaired interval job', async () => {
      const r = await historyOf('interval fixed later');
      return r.length > 1 && r;
    }, 5000);
    assert.equal(rows[1].status, 'success');
  });

  test('a due job that another server is running does not make this one re-poll the client in a loop', async () => {
    const id = await insertJob(inst, 'A', { packageName: 'Test', type: 'once', data: '---\nresult: held elsewhere\n' });
    // Another server's claim: the advisory lock on job id, held on a connection of its own.
    const other = await inst.clientDb('A');
    try {
      await other.query('SELECT pg_advisory_lock($1, $2)', [ADVISORY_NAMESPACE, id]);
      const from = server.out.stderr.length;
      process.kill(server.child.pid!, 'SIGALRM');
      await sleep(3000);
      const polls = server.out.stderr.slice(from).split('Running for client ID 1 (A)').length - 1;
      assert.ok(polls <= 3, `${polls} polls of the client in 3 s while the job was held elsewhere`);
      assert.equal((await historyOf('held elsewhere')).length, 0, 'not run while held elsewhere');
    } finally {
      await other.end(); // the other server is gone: its claim with it
    }
    process.kill(server.child.pid!, 'SIGALRM');
    const rows = await waitFor('the job once the other claim is gone', async () => {
      const r = await historyOf('held elsewhere');
      return r.length > 0 && r;
    }, 5000);
    assert.deepEqual(rows, [{ status: 'success', error: null, result: 'held elsewhere' }]);
  });
});
