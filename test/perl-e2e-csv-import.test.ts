// CSV import of customers end to end, as kivitendo's web UI does it (SL/Controller/CsvImport.pm):
// profile + settings and the CSV as a session file, the `once` CsvImport job with create_job's
// data, SIGALRM to the running daemon, then polling `data` every 500 ms until progress.finished or
// errors. The package is kivitendo's own SL::BackgroundJob::CsvImport, run by OUR daemon through
// the Perl path; every case is also run by kivitendo's scripts/task_server.pl on a second
// installation, and the rows both write must be the same.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from './harness/cli';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';
import {
  createCsvImportJob,
  createWebSession,
  csvImportFinished,
  jobData,
  pollAsThePageDoes,
  runIsOver,
  runWithKivitendoTaskServer,
  startOurDaemon,
  wakeUpTaskServer,
  yamlShape,
  type RunningDaemon,
} from './harness/webui';

const LOGIN = 'taskserver';
let ours: KivitendoInstallation;
let ref: KivitendoInstallation;
let daemon: RunningDaemon | undefined;

async function prepare(inst: KivitendoInstallation) {
  // The reference data's interval jobs would run first; this test is about the web UI's job.
  await inst.query('Demo', `UPDATE background_jobs SET active = false`);
}

before(async () => {
  ours = await createKivitendoInstallation();
  ref = await createKivitendoInstallation();
  await prepare(ours);
  await prepare(ref);
  daemon = await startOurDaemon(ours);
});

after(async () => {
  if (daemon) await daemon.stop();
  ours?.remove();
  ref?.remove();
});

const daemonDetail = () => (daemon ? `daemon stderr: ${daemon.out.stderr.slice(-4000)}` : 'no daemon');

interface Outcome {
  jobId: number;
  data: Record<string, any>;
  seen: Record<string, any>[];
  history: Record<string, any>;
  /** YAML formatting of background_jobs.data and of the history row's data */
  yaml: { job: string | null; history: string | null };
  job: Record<string, any>;
  customers: Record<string, any>[];
  report?: Record<string, any>;
  reportRows: Record<string, any>[];
  reportStatus: Record<string, any>[];
}

/** Everything the job left behind, with the installation-specific ids left out for comparison. */
async function outcome(inst: KivitendoInstallation, prefix: string, jobId: number, data: Record<string, any>, seen: Record<string, any>[]): Promise<Outcome> {
  const q = (sql: string, p: unknown[] = []) => inst.query('Demo', sql, p);
  const [{ data: historyData, ...history }] = await q(
    `SELECT package_name, status, result, error, data FROM background_job_histories WHERE package_name = 'CsvImport' ORDER BY id DESC LIMIT 1`,
  );
  const [{ data: jobText }] = await q(`SELECT data FROM background_jobs WHERE id = $1`, [jobId]);
  const yaml = { job: yamlShape(jobText), history: yamlShape(historyData) };
  const [job] = await q(`SELECT type, active, last_run_at IS NOT NULL AS has_run FROM background_jobs WHERE id = $1`, [jobId]);
  const customers = await q(
    `SELECT customernumber, name, street, zipcode, city, email, taxzone_id, currency_id, country_id IS NOT NULL AS has_country, taxincluded, obsolete, discount
       FROM customer WHERE customernumber LIKE $1 || '%' ORDER BY customernumber, name`,
    [prefix],
  );
  const report = data.report_id
    ? (await q(`SELECT type, file, numrows, numheaders, test_mode, session_id = $2 AS own_session FROM csv_import_reports WHERE id = $1`, [data.report_id, data.session_id]))[0]
    : undefined;
  const reportRows = data.report_id ? await q(`SELECT row, col, value FROM csv_import_report_rows WHERE csv_import_report_id = $1 ORDER BY row, col`, [data.report_id]) : [];
  const reportStatus = data.report_id ? await q(`SELECT row, type, value FROM csv_import_report_status WHERE csv_import_report_id = $1 ORDER BY row, type, value`, [data.report_id]) : [];
  return { jobId, data, seen, history, yaml, job, customers, report, reportRows, reportStatus };
}

/** The web UI's import/test button, then our daemon woken by SIGALRM, polled as the page does. */
async function importThroughOurDaemon(prefix: string, csv: string, test: 0 | 1, timeoutMs = 50_000): Promise<Outcome> {
  const sessionId = await createWebSession(ours);
  const { jobId } = await createCsvImportJob(ours, 'Demo', { csv, login: LOGIN, sessionId, test });
  wakeUpTaskServer(ours.root);
  const polled = await pollAsThePageDoes(ours, 'Demo', jobId, csvImportFinished, {
    timeoutMs,
    detail: daemonDetail,
    givenUp: runIsOver(ours, 'Demo', jobId, 'CsvImport'),
  });
  // The run's bookkeeping (history row, last_run_at) follows the package's last write to data.
  await waitFor('the history row of our run', async () => (await ours.query('Demo', `SELECT 1 FROM background_jobs WHERE id = $1 AND last_run_at IS NOT NULL`, [jobId])).length > 0, 30_000, daemonDetail);
  return outcome(ours, prefix, jobId, (await jobData(ours, 'Demo', jobId))!, polled.seen);
}

/** The same hand-over processed by kivitendo's task_server.pl (--run-job), for comparison. */
async function importThroughTaskServerPl(prefix: string, csv: string, test: 0 | 1): Promise<Outcome> {
  const sessionId = await createWebSession(ref);
  const { jobId } = await createCsvImportJob(ref, 'Demo', { csv, login: LOGIN, sessionId, test });
  const r = runWithKivitendoTaskServer(ref, jobId);
  assert.equal(r.code, 0, `task_server.pl --run-job=${jobId}: ${r.stdout}${r.stderr}`);
  const data = (await jobData(ref, 'Demo', jobId))!;
  return outcome(ref, prefix, jobId, data, [data]);
}

/** data without the per-installation ids (profile, report, session, employee). */
function comparableData(d: Record<string, any>) {
  const { profile_id, report_id, session_id, employee_id, ...rest } = d;
  return { ...rest, has_report: report_id !== undefined };
}

function assertSameAsTaskServerPl(o: Outcome, r: Outcome) {
  assert.deepEqual(o.history, r.history, 'history row as task_server.pl writes it');
  assert.deepEqual(o.yaml, r.yaml, "the YAML text of data (job and history) is formatted as kivitendo's task_server.pl writes it");
  assert.deepEqual(comparableData(o.data), comparableData(r.data), 'background_jobs.data as task_server.pl leaves it');
  assert.deepEqual(o.customers, r.customers, 'customer table as after task_server.pl');
  assert.deepEqual(o.report, r.report, 'csv_import_reports row');
  assert.deepEqual(o.reportRows, r.reportRows, 'csv_import_report_rows');
  assert.deepEqual(o.reportStatus, r.reportStatus, 'csv_import_report_status');
}

describe('CSV import of customers through our daemon', { concurrency: false, timeout: 20 * 60_000 }, () => {
  test('import: progress.finished, the customers are saved, the report rows exist; same rows as task_server.pl', async () => {
    const csv = [
      'customernumber;name;street;zipcode;city;email',
      '10001;Müller & Söhne GmbH;Hauptstraße 1;10115;Berlin;info@mueller.example',
      '10002;Schmidt KG;Nebenweg 2;50667;Köln;',
      '10003;Weiß Handel;Am Markt 3;80331;München;weiss@example.com',
    ].join('\r\n') + '\r\n';
    const r = await importThroughTaskServerPl('1000', csv, 0);
    const o = await importThroughOurDaemon('1000', csv, 0);
    assert.equal(o.data.progress?.finished, 1, JSON.stringify(o.data));
    assert.equal(o.data.errors, undefined);
    assert.ok(o.data.report_id > 0, 'report_id in data');
    assert.deepEqual(o.data.progress.plan, { 'parsing csv': 1, 'building data': 2, 'saving data': 3, 'building report': 4 });
    assert.deepEqual(o.history, { package_name: 'CsvImport', status: 'success', result: 'Der Import wurde ohne Fehler beendet.', error: null });
    assert.deepEqual(o.job, { type: 'once', active: true, has_run: true });
    assert.deepEqual(
      o.customers.map((c) => [c.customernumber, c.name, c.street, c.city, c.email, c.taxzone_id, c.has_country]),
      [
        ['10001', 'Müller & Söhne GmbH', 'Hauptstraße 1', 'Berlin', 'info@mueller.example', 4, true],
        ['10002', 'Schmidt KG', 'Nebenweg 2', 'Köln', null, 4, true],
        ['10003', 'Weiß Handel', 'Am Markt 3', 'München', 'weiss@example.com', 4, true],
      ],
    );
    assert.deepEqual(o.report, { type: 'customers_vendors', file: '', numrows: 3, numheaders: 1, test_mode: false, own_session: true });
    // header row 0 plus three data rows, six columns each
    assert.equal(o.reportRows.length, 4 * 6);
    assert.deepEqual(o.reportRows.filter((r) => r.row === 0).map((r) => r.value), ['customernumber', 'name', 'street', 'zipcode', 'city', 'email']);
    assert.deepEqual(o.reportRows.filter((r) => r.row === 1).map((r) => r.value), ['10001', 'Müller & Söhne GmbH', 'Hauptstraße 1', '10115', 'Berlin', 'info@mueller.example']);
    assertSameAsTaskServerPl(o, r);
  });

  test('a CSV the parser rejects: data.errors as the page reads it, nothing saved; same as task_server.pl', async () => {
    const csv = 'customernumber;name;city\r\n20001;"Kaputt"er Name;Berlin\r\n20002;Gut AG;Bonn\r\n';
    const r = await importThroughTaskServerPl('2000', csv, 0);
    const o = await importThroughOurDaemon('2000', csv, 0);
    assert.ok(Array.isArray(o.data.errors) && o.data.errors.length === 1, JSON.stringify(o.data));
    // The result page: "There was an error parsing the csv file: #1 in line #2." from [2] and [4].
    const [first] = o.data.errors;
    assert.equal(first[1], 2023);
    assert.equal(first[2], 'EIQ - QUO character not allowed');
    assert.equal(first[4], 2);
    assert.equal(o.data.progress?.finished, undefined, 'not finished: the page shows the error');
    assert.equal(o.data.report_id, undefined);
    assert.deepEqual(o.history, { package_name: 'CsvImport', status: 'success', result: 'Der Import wurde mit Fehlern beendet.', error: null });
    assert.deepEqual(o.customers, [], 'no customer of the rejected file');
    // kivitendo's YAML keeps the error's Perl class; our write-back must not have rewritten it.
    const [raw] = await ours.query('Demo', `SELECT data FROM background_jobs WHERE id = $1`, [o.jobId]);
    assert.match(raw.data, /!!perl\/array:SL::Helper::Csv::Error/);
    assertSameAsTaskServerPl(o, r);
  });

  test('a row error: in the report, that row not saved, the others are; same as task_server.pl', async () => {
    const csv = 'customernumber;name;city\r\n30001;;Berlin\r\n30002;Gut AG;Bonn\r\n';
    const r = await importThroughTaskServerPl('3000', csv, 0);
    const o = await importThroughOurDaemon('3000', csv, 0);
    assert.equal(o.data.progress?.finished, 1, JSON.stringify(o.data));
    assert.deepEqual(o.reportStatus, [{ row: 1, type: 'errors', value: 'Fehler: Name fehlt' }]);
    assert.deepEqual(o.reportRows.filter((r) => r.row === 1).map((r) => r.value), ['30001', null, 'Berlin']);
    assert.ok(!o.customers.some((c) => c.customernumber === '30001'), 'the row with the error is not saved');
    assert.ok(o.customers.some((c) => c.customernumber === '30002' && c.name === 'Gut AG'), 'the good row is saved');
    assertSameAsTaskServerPl(o, r);
  });

  test('test: 1 (the page\'s "test" button): report in test mode, nothing saved; same as task_server.pl', async () => {
    const before = await ours.query('Demo', `SELECT count(*)::int AS n FROM customer`);
    const csv = 'customernumber;name;city\r\n40001;Nur Test GmbH;Hamburg\r\n40002;Auch Test;Bremen\r\n';
    const r = await importThroughTaskServerPl('4000', csv, 1);
    const o = await importThroughOurDaemon('4000', csv, 1);
    assert.equal(o.data.progress?.finished, 1, JSON.stringify(o.data));
    assert.equal(o.data.test, 1);
    assert.deepEqual(o.data.progress.plan, { 'parsing csv': 1, 'building data': 2, 'building report': 3 });
    assert.equal(o.report?.test_mode, true);
    assert.equal(o.report?.numrows, 2);
    assert.deepEqual(o.reportRows.filter((r) => r.row === 1).map((r) => r.value), ['40001', 'Nur Test GmbH', 'Hamburg']);
    const afterCount = await ours.query('Demo', `SELECT count(*)::int AS n FROM customer`);
    assert.equal(afterCount[0].n, before[0].n, 'no customer saved in test mode');
    assertSameAsTaskServerPl(o, r);
  });

  test('a larger import: the page sees the phases while the job runs, not only the end', async () => {
    // kivitendo saves customer by customer (about 20/s on this 2-core machine under load)
    const rows = Array.from({ length: 200 }, (_, i) => `${50000 + i};Kunde ${i};Stadt ${i % 50}`);
    const csv = ['customernumber;name;city', ...rows].join('\r\n') + '\r\n';
    const o = await importThroughOurDaemon('5', csv, 0, 150_000);
    assert.equal(o.data.progress?.finished, 1);
    const running = o.seen.filter((d) => d.progress?.phase && !d.progress.finished);
    assert.ok(running.length >= 1, `the page saw progress before the end: ${JSON.stringify(o.seen.map((d) => d.progress))}`);
    assert.equal(o.customers.length, 200);
    assert.equal(o.report?.numrows, 200);
  });
});
