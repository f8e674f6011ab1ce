// A task server started by kivitendo's web UI inherits the web request's environment
// (SL::System::TaskServer runs `scripts/task_server.pl start` with system() inside the request):
// HTTP_COOKIE with the session of the user who clicked, REQUEST_METHOD, REMOTE_ADDR, ... Whoever
// started the server, a job must never run in, nor end, that user's session: the user waiting for
// a CSV import stays logged in and the uploaded file stays. Without a browser: the daemon is started
// with such an environment, as the web UI's system() starts it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dropWebRequestEnvironment, webRequestVariables } from '../src/daemon/environment';
import { stopPerlParents } from '../src/jobs/perl/preload';
import { DEFAULT_PID_FILE, killFromPidFile, readIfExists, runCli, waitFor } from './harness/cli';
import { runJob } from './harness/jobs';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';
import { createCsvImportJob, createWebSession, csvImportFinished, pollAsThePageDoes, runIsOver, wakeUpTaskServer } from './harness/webui';

const LOGIN = 'taskserver';
const CSV = 'customernumber;name;city\nWEB-1;Webkunde Eins;Berlin\nWEB-2;Webkunde Zwei;Hamburg\n';

/** What Apache hands a CGI/FastCGI script for a logged-in user's POST, as the web UI's system() passes it on. */
function webRequestEnv(sessionId: string): Record<string, string> {
  return {
    HTTP_COOKIE: `kivitendo_session_id=${sessionId}`,
    HTTP_HOST: '127.0.0.1:8080',
    HTTP_USER_AGENT: 'Mozilla/5.0',
    HTTP_PROXY: 'http://192.0.2.66:3128',
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: 'POST',
    REQUEST_URI: '/controller.pl?action=TaskServer/start',
    QUERY_STRING: 'action=TaskServer/start',
    SCRIPT_NAME: '/controller.pl',
    SCRIPT_FILENAME: '/var/www/kivitendo-erp/controller.pl',
    SERVER_SOFTWARE: 'Apache/2.4',
    SERVER_NAME: '127.0.0.1',
    SERVER_PORT: '8080',
    REMOTE_ADDR: '192.0.2.7',
    REMOTE_PORT: '54321',
    CONTENT_TYPE: 'application/x-www-form-urlencoded',
    CONTENT_LENGTH: '42',
    // what an admin sets on purpose stays
    TZ: 'Europe/Berlin',
    https_proxy: 'http://proxy.example:3128',
    KTS_TEST_MARKER: 'kept',
  };
}

/** A logged-in user's session as kivitendo's login writes it: auth.session, its content, a session file. */
async function loggedInUser(inst: KivitendoInstallation): Promise<{ sessionId: string; file: string }> {
  const sessionId = await createWebSession(inst);
  const auth = await inst.authConnection();
  try {
    for (const [key, value] of [['login', LOGIN], ['client_id', String(inst.clients.Demo.id)]]) {
      await auth.query(`INSERT INTO auth.session_content (session_id, sess_key, sess_value, auto_restore) VALUES ($1, $2, $3, false)`, [sessionId, key, `--- ${value}\n`]);
    }
  } finally {
    await auth.end();
  }
  const dir = path.join(inst.root, 'users', 'session_files', sessionId);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'kept-upload.csv');
  fs.writeFileSync(file, CSV);
  return { sessionId, file };
}

/** The user's session as the next page view finds it. */
async function sessionState(inst: KivitendoInstallation, sessionId: string) {
  const auth = await inst.authConnection();
  try {
    const s = await auth.query(`SELECT ip_address FROM auth.session WHERE id = $1`, [sessionId]);
    const c = await auth.query(`SELECT sess_key FROM auth.session_content WHERE session_id = $1 ORDER BY sess_key`, [sessionId]);
    const all = await auth.query(`SELECT count(*)::int AS n FROM auth.session`);
    return { row: s.rows[0] ?? null, keys: c.rows.map((r) => r.sess_key), sessions: all.rows[0].n as number };
  } finally {
    await auth.end();
  }
}

describe('the web request environment (pure)', () => {
  test('CGI and HTTP variables go; PATH, LANG, TZ, PERL5LIB and proxy settings stay', () => {
    const env: NodeJS.ProcessEnv = { ...webRequestEnv('0123456789abcdef0123456789abcdef'), PATH: '/usr/bin', LANG: 'de_DE.UTF-8', PERL5LIB: '/opt/perl', SSL_CERT_FILE: '/etc/ssl/certs/ca.pem', SSL_PROTOCOL: 'TLSv1.3' };
    const dropped = dropWebRequestEnvironment(env);
    assert.ok(dropped.includes('HTTP_COOKIE') && dropped.includes('REQUEST_METHOD') && dropped.includes('REMOTE_ADDR'), dropped.join(','));
    // in a web request HTTP_PROXY is the request's "Proxy:" header (httpoxy), not an admin's setting
    assert.ok(dropped.includes('HTTP_PROXY') && dropped.includes('SSL_PROTOCOL'));
    assert.deepEqual(Object.keys(env).sort(), ['KTS_TEST_MARKER', 'LANG', 'PATH', 'PERL5LIB', 'SSL_CERT_FILE', 'TZ', 'https_proxy']);
  });

  test("outside a web request an admin's HTTP_PROXY stays", () => {
    assert.deepEqual(webRequestVariables({ HTTP_PROXY: 'http://proxy:3128', PATH: '/bin' }), []);
    assert.deepEqual(webRequestVariables({ HTTP_PROXY: 'http://proxy:3128', HTTP_COOKIE: 'x=1' }), ['HTTP_PROXY', 'HTTP_COOKIE']);
  });
});

describe('a task server started from a web request', () => {
  let inst: KivitendoInstallation;

  before(async () => {
    inst = await createKivitendoInstallation();
    // The reference data's interval jobs would run first; this is about the web UI's job.
    await inst.query('Demo', `UPDATE background_jobs SET active = false`);
  });

  after(async () => {
    stopPerlParents();
    if (inst) {
      await runCli(['stop'], { env: { KIVITENDO_DIR: inst.root }, cwd: inst.root, timeoutMs: 60_000 }).catch(() => undefined);
      killFromPidFile(inst.root);
      inst.remove();
    }
  });

  test('a CSV import completes and the user who started the server stays logged in', async () => {
    const user = await loggedInUser(inst);
    const before = await sessionState(inst, user.sessionId);

    // `start` as the web UI's system() runs it: in the installation, with the request's environment.
    const started = await runCli(['start'], { env: { KIVITENDO_DIR: inst.root, ...webRequestEnv(user.sessionId) }, cwd: inst.root, timeoutMs: 90_000 });
    assert.equal(started.code, 0, `start: ${started.stdout}${started.stderr}`);
    const pid = parseInt(readIfExists(DEFAULT_PID_FILE(inst.root)) ?? '', 10);
    assert.ok(pid > 0, 'pid file written');

    // The daemon itself carries none of the request.
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    const names = environ.map((e) => e.slice(0, e.indexOf('=')));
    const leaked = Object.keys(webRequestEnv(user.sessionId)).filter((n) => !['TZ', 'https_proxy', 'KTS_TEST_MARKER'].includes(n) && names.includes(n));
    assert.deepEqual(leaked, [], `the daemon's environment: ${names.join(' ')}`);
    assert.ok(environ.includes('KTS_TEST_MARKER=kept') && environ.includes('TZ=Europe/Berlin') && environ.includes('https_proxy=http://proxy.example:3128'), names.join(' '));

    // The import page: the uploaded file in the user's session, the job, the wake-up, the polling.
    for (const testRun of [1, 0] as const) {
      const { jobId, fileName } = await createCsvImportJob(inst, 'Demo', { csv: CSV, login: LOGIN, sessionId: user.sessionId, test: testRun });
      wakeUpTaskServer(inst.root);
      const polled = await pollAsThePageDoes(inst, 'Demo', jobId, csvImportFinished, {
        timeoutMs: 120_000,
        givenUp: runIsOver(inst, 'Demo', jobId, 'CsvImport'),
        detail: () => readIfExists(path.join(inst.root, 'users', 'kivitendo-debug.log'))?.slice(-3000) ?? '',
      });
      assert.ok(polled.data.progress?.finished, `import (test=${testRun}) finished: ${JSON.stringify(polled.data)}`);
      assert.ok(fs.existsSync(path.join(inst.root, fileName)), `the uploaded file ${fileName} is still there after test=${testRun}`);
      await waitFor('the run to be recorded', async () => (await inst.query('Demo', `SELECT 1 FROM background_jobs WHERE id = $1 AND last_run_at IS NOT NULL`, [jobId])).length > 0, 30_000);
      const [h] = await inst.query('Demo', `SELECT status, error FROM background_job_histories WHERE package_name = 'CsvImport' ORDER BY id DESC LIMIT 1`);
      assert.equal(h.status, 'success', `history: ${h.error}`);
    }

    const customers = await inst.query('Demo', `SELECT customernumber, name FROM customer WHERE customernumber LIKE 'WEB-%' ORDER BY customernumber`);
    assert.deepEqual(customers, [{ customernumber: 'WEB-1', name: 'Webkunde Eins' }, { customernumber: 'WEB-2', name: 'Webkunde Zwei' }]);

    const afterwards = await sessionState(inst, user.sessionId);
    assert.deepEqual(afterwards.row, before.row, "the user's auth.session row is untouched");
    assert.deepEqual(afterwards.keys, before.keys, "the user's session content is untouched");
    assert.equal(afterwards.sessions, before.sessions, 'no session left behind by the runs');
    assert.ok(fs.existsSync(user.file), "the user's session files are still there");

    const stopped = await runCli(['stop'], { env: { KIVITENDO_DIR: inst.root, ...webRequestEnv(user.sessionId) }, cwd: inst.root, timeoutMs: 60_000 });
    assert.equal(stopped.code, 0, `stop: ${stopped.stdout}${stopped.stderr}`);
  });

  test("a Perl run that inherits HTTP_COOKIE anyway creates, uses and destroys only a session of its own", async () => {
    const user = await loggedInUser(inst);
    const before = await sessionState(inst, user.sessionId);
    // The runner in this process: its perl inherits this environment (the daemon's start-up clean-up
    // is not involved), so only the Perl side stands between the cookie and the user's session.
    const saved = { ...process.env };
    Object.assign(process.env, webRequestEnv(user.sessionId));
    let result;
    try {
      const { jobId } = await createCsvImportJob(inst, 'Demo', { csv: CSV.replace(/WEB-/g, 'ENV-'), login: LOGIN, sessionId: user.sessionId, test: 1 });
      result = await runJob(inst, 'Demo', { jobId });
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
    assert.equal(result.history.status, 'success', `history: ${result.history.error}`);
    const afterwards = await sessionState(inst, user.sessionId);
    assert.deepEqual(afterwards, before, "the user's session, its content and the number of sessions are unchanged");
    assert.ok(fs.existsSync(user.file), "the user's session files are still there");
  });
});
