// kivitendo's mailer side effects: the client's e-mail journal (levels 0, 1, 2; sent and
// send_failed; inside the sender's transaction), and the IMAP sent-folder warning.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import type { Client } from 'pg';
import { loadConfig } from '../src/config/config';
import type { DbParams } from '../src/config/config';
import { clientJournal, journalWriter, lazyJournal } from '../src/db/emailJournal';
import { notifyFailure } from '../src/mail/failureNotification';
import { createMailer, MailError, resetImapWarning } from '../src/mail/mailer';
import { createInstallation, type Installation } from './harness/installation';
import { runJob } from './harness/jobs';
import { freePort } from './harness/postgres';
import { startSmtpSink, type SmtpSink } from './harness/smtpSink';

let inst: Installation;
let sink: SmtpSink;
let deadPort: number;

before(async () => {
  inst = await createInstallation({
    users: [{ login: 'taskserver' }, { login: 'stockkeeper', settings: { email: 'stock@example.com' } }],
    clients: [{ name: 'Journal' }, { name: 'Stock' }, { name: 'Direct' }, { name: 'Off' }],
  });
  sink = await startSmtpSink();
  deadPort = await freePort(); // nothing listens there
});
after(async () => {
  await sink.close();
  inst.remove();
});

function configure(extra: Record<string, Record<string, string>> = {}, port = sink.port) {
  inst.writeConfig({ mail_delivery: { method: 'smtp', host: sink.host, port: String(port) }, ...extra });
}

beforeEach(() => {
  sink.messages.length = 0;
  sink.acceptAll();
  configure();
  resetImapWarning();
});

const withDb = <T>(client: string, fn: (db: Client) => Promise<T>) => inst.withClientDb(client, fn);

interface JournalRow {
  id: number;
  sender_id: number | null;
  from: string;
  recipients: string;
  sent_on: string;
  subject: string;
  body: string;
  headers: string;
  status: string;
  extended_status: string;
  record_type: string | null;
}

const journal = (client: string) =>
  withDb(client, async (db) => (await db.query<JournalRow>('SELECT * FROM email_journal ORDER BY id')).rows);
const attachments = (client: string, journalId: number) =>
  withDb(client, async (db) =>
    (await db.query('SELECT position, name, mime_type, content, file_id FROM email_journal_attachments WHERE email_journal_id = $1 ORDER BY position', [journalId])).rows,
  );
const employeeId = (client: string, login: string) =>
  withDb(client, async (db) => (await db.query<{ id: number }>('SELECT id FROM employee WHERE login = $1', [login])).rows[0].id);
const clearJournal = (client: string) => withDb(client, (db) => db.query('DELETE FROM email_journal'));
const setLevel = (client: string, level: number | null) => withDb(client, (db) => db.query('UPDATE defaults SET email_journal = $1', [level]));

function clientParams(client: string): DbParams {
  return { host: inst.pg.host, port: inst.pg.port, database: inst.clients[client].dbname, user: inst.pg.user, password: inst.pg.password };
}

const at = (y: number, m: number, d: number, h = 10, mi = 0) => new Date(y, m - 1, d, h, mi, 0);

async function failedHistory(client: string) {
  await withDb(client, (db) =>
    db.query(
      `INSERT INTO background_job_histories (package_name, run_at, status, result, error, data, description)
       VALUES ('SelfTest', '2026-05-11 09:00:00', 'failure', NULL, 'boom', NULL, NULL)`,
    ),
  );
}

const REPORT = { recipients: ['ops@example.com', 'Boss <boss@example.com>'], from: 'Kivi <kivi@example.com>', subject: 'Failed jobs' };

test('a job\'s mail is journaled as sent (reference data: level 2), sender = the task server\'s employee', async () => {
  await failedHistory('Journal');
  const r = await runJob(inst, 'Journal', { packageName: 'FailedBackgroundJobsReport', now: at(2026, 5, 11, 12, 0), data: REPORT });
  assert.equal(r.history.status, 'success', r.history.error ?? '');
  const [mail] = await sink.waitFor(1);

  const rows = await journal('Journal');
  assert.equal(rows.length, 1);
  const j = rows[0];
  assert.equal(j.status, 'sent');
  assert.equal(j.sender_id, await employeeId('Journal', 'taskserver'));
  assert.equal(j.from, 'Kivi <kivi@example.com>');
  assert.equal(j.recipients, 'ops@example.com, boss@example.com');
  assert.equal(j.subject, 'Failed jobs');
  assert.equal(j.body, mail.body.replace(/\r\n/g, '\n'));
  assert.equal(j.sent_on, '2026-05-11 12:00:00');
  assert.equal(j.record_type, null);
  // The server's reply to the message, without the code, as Net::SMTP reports it.
  assert.match(j.extended_status, /^[^\d].*\n$/);
  const lines = j.headers.split('\r\n');
  assert.deepEqual(lines.map((l) => l.split(':')[0]), ['Subject', 'Message-ID', 'X-Mailer', 'From', 'To', 'Content-Type']);
  assert.equal(lines[0], 'Subject: Failed jobs');
  assert.equal(lines[1], `Message-ID: ${mail.headers['message-id']}`);
  assert.equal(lines[3], 'From: "Kivi" <kivi@example.com>');
  assert.equal(lines[4], 'To: ops@example.com, "Boss" <boss@example.com>');
  assert.equal(lines[5], 'Content-Type: text/plain; charset="UTF-8"');
  assert.deepEqual(await attachments('Journal', j.id), []);
});

test('rejected by the server → send_failed with the server\'s error; the kivitendo list "a b" is two recipients', async () => {
  await clearJournal('Stock');
  await withDb('Stock', (db) =>
    db.query(
      `INSERT INTO parts (partnumber, description, unit, part_type, classification_id, rop, onhand)
       VALUES ('P-LOW', 'low', 'Stck', 'part', (SELECT id FROM part_classifications ORDER BY id LIMIT 1), 5, 1)`,
    ),
  );
  configure({
    check_below_minimum_stock: {
      send_email_to: 'stockkeeper',
      email_from: 'kivi@example.com',
      email_subject: 'Stock is low',
      email_template: 'templates/mail/below_minimum_stock/error_email.html',
    },
  });
  sink.rejectWith(554, 'Transaction failed: no thanks');
  const r = await runJob(inst, 'Stock', { packageName: 'CheckBelowMinimumStock', data: { email: 'extra@example.com' } });
  assert.equal(r.history.status, 'failure');
  assert.match(r.history.error!, /no thanks/);
  assert.equal(sink.messages.length, 0);

  const [j] = await journal('Stock');
  assert.equal(j.status, 'send_failed');
  assert.match(j.extended_status, /^SMTP delivery failed \(127\.0\.0\.1:\d+\): .*554 Transaction failed: no thanks/);
  assert.equal(j.recipients, 'stock@example.com, extra@example.com');
  assert.match(j.headers, /\r\nTo: stock@example\.com, extra@example\.com\r\nContent-Type: text\/html; charset="UTF-8"$/);
  assert.match(j.body, /<table>/);
});

test('no connection → send_failed before anything was built; a bad list → send_failed with what was built', async () => {
  await clearJournal('Journal');
  configure({}, deadPort);
  await failedHistory('Journal');
  const r = await runJob(inst, 'Journal', { packageName: 'FailedBackgroundJobsReport', now: at(2026, 5, 11, 12, 0), data: REPORT });
  assert.equal(r.history.status, 'failure');
  let rows = await journal('Journal');
  assert.equal(rows.length, 1);
  assert.equal(rows[0].status, 'send_failed');
  assert.match(rows[0].extended_status, /^SMTP delivery failed/);
  assert.equal(rows[0].headers, '');
  assert.equal(rows[0].recipients, '');
  assert.equal(rows[0].subject, 'Failed jobs');

  configure();
  const bad = await runJob(inst, 'Journal', {
    packageName: 'FailedBackgroundJobsReport',
    now: at(2026, 5, 11, 12, 0),
    data: { ...REPORT, recipients: ['ops@example.com', 'and some words'] },
  });
  assert.equal(bad.history.status, 'failure');
  assert.equal(sink.messages.length, 0);
  rows = await journal('Journal');
  assert.equal(rows.length, 2);
  assert.equal(rows[1].status, 'send_failed');
  assert.match(rows[1].extended_status, /faulty list of email addresses \(To\): too much text/);
  assert.match(rows[1].headers, /^Subject: Failed jobs\r\nMessage-ID: <[^>]+>\r\nX-Mailer: [^\r]+\r\nFrom: "Kivi" <kivi@example\.com>$/);
});

test('email_journal = 0 or NULL → no row; the mail is still sent', async () => {
  for (const level of [0, null]) {
    await setLevel('Off', level);
    await failedHistory('Off');
    const r = await runJob(inst, 'Off', { packageName: 'FailedBackgroundJobsReport', now: at(2026, 5, 11, 12, 0), data: REPORT });
    assert.equal(r.history.status, 'success', r.history.error ?? '');
    assert.deepEqual(await journal('Off'), []);
    assert.equal(await withDb('Off', async (db) => journalWriter(db, 'taskserver')), undefined);
  }
  assert.equal(sink.messages.length, 2);
});

test('attachments: level 1 keeps name and type with a blank as content, level 2 the content too', async () => {
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  const pdf = Buffer.from('%PDF-1.4 fake');
  const msg = {
    from: 'kivi@example.com',
    to: 'a@example.com b@example.com',
    bcc: 'hidden@example.com',
    subject: 'Invoice',
    html: '<p>Hi</p>',
    attachments: [
      { filename: 'Rechnung RE-1.pdf', content: pdf, contentType: 'application/pdf', fileId: 7 },
      { filename: 'notes.txt', content: '' },
    ],
  };
  for (const level of [1, 2]) {
    await setLevel('Direct', level);
    await clearJournal('Direct');
    await withDb('Direct', async (db) => {
      const hook = await journalWriter(db, 'taskserver', () => at(2026, 1, 2, 3, 4));
      await createMailer(config, undefined, { journal: hook }).send(msg);
    });
    const [j] = await journal('Direct');
    assert.equal(j.status, 'sent');
    assert.equal(j.sent_on, '2026-01-02 03:04:00');
    assert.equal(j.recipients, 'a@example.com, b@example.com, hidden@example.com');
    // Over SMTP the Bcc is envelope only, in the journal's headers as in the mail.
    assert.doesNotMatch(j.headers, /Bcc/);
    assert.match(j.headers, /\r\nContent-Type: text\/html; charset="UTF-8"$/);
    const atts = await attachments('Direct', j.id);
    assert.deepEqual(
      atts.map((a) => [a.position, a.name, a.mime_type, a.file_id]),
      [
        [1, 'Rechnung RE-1.pdf', 'application/pdf', 7],
        [2, 'notes.txt', 'text/plain', 0],
      ],
    );
    assert.deepEqual(atts[0].content, level === 2 ? pdf : Buffer.from(' '));
    assert.deepEqual(atts[1].content, Buffer.from(' '));
  }
  const mails = await sink.waitFor(2);
  assert.deepEqual(mails[0].envelopeTo.sort(), ['a@example.com', 'b@example.com', 'hidden@example.com']);
  await setLevel('Direct', 2);
});

test('the row is written inside the sender\'s transaction: a rollback takes it away, as in kivitendo', async () => {
  await clearJournal('Direct');
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  const msg = { from: 'kivi@example.com', to: 'x@example.com', subject: 'Tx', text: 'body' };
  await withDb('Direct', async (db) => {
    const mailer = createMailer(config, undefined, { journal: lazyJournal(db, 'taskserver') });
    await db.query('BEGIN');
    await mailer.send(msg);
    await db.query('ROLLBACK');
    await db.query('BEGIN');
    await mailer.send({ ...msg, subject: 'Kept' });
    await db.query('COMMIT');
  });
  assert.deepEqual((await journal('Direct')).map((j) => j.subject), ['Kept']);
  assert.equal(sink.messages.length, 2);

  // A journal that cannot be written fails the send even though the mail went out (kivitendo dies too).
  await withDb('Direct', async (db) => {
    const mailer = createMailer(config, undefined, { journal: lazyJournal(db, 'taskserver') });
    await db.query('BEGIN');
    await db.query('SELECT 1/0').catch(() => undefined);
    await assert.rejects(mailer.send(msg), (e: Error) => !(e instanceof MailError) && /e-mail journal failed \(the mail was sent\)/.test(e.message));
    await db.query('ROLLBACK');
  });
});

test('the failure notification is journaled in the client\'s DB', async () => {
  await clearJournal('Direct');
  configure({
    'task_server/notify_on_failure': {
      send_email_to: 'ops@example.com',
      email_from: 'ts@example.com',
      email_subject: 'Task server failure',
      email_template: 'templates/design40_webpages/task_server/failure_notification_email.txt',
    },
  });
  const config = loadConfig(inst.root, 'config/kivitendo.conf');
  const client = { id: inst.clients.Direct.id, name: 'Direct', dbhost: inst.pg.host, dbport: String(inst.pg.port), dbname: inst.clients.Direct.dbname, dbuser: inst.pg.user, dbpasswd: inst.pg.password, is_default: false, task_server_user_id: null };
  const logs: string[] = [];
  const outcome = await notifyFailure({
    config,
    client: client as never,
    exception: 'something broke',
    lookupUserEmail: async () => undefined,
    log: { debug: (m: string) => logs.push(m), warn: (m: string) => logs.push(m) },
    mailer: createMailer(config, undefined, { journal: clientJournal(clientParams('Direct'), 'taskserver') }),
  });
  assert.equal(outcome, 'sent', logs.join('\n'));
  const [j] = await journal('Direct');
  assert.equal(j.status, 'sent');
  assert.equal(j.subject, 'Task server failure');
  assert.equal(j.recipients, 'ops@example.com');
  assert.equal(j.sender_id, await employeeId('Direct', 'taskserver'));
});

test('IMAP sent folder: one warning per process when enabled, the mail is sent anyway', async () => {
  await failedHistory('Journal');
  const run = () => runJob(inst, 'Journal', { packageName: 'FailedBackgroundJobsReport', now: at(2026, 5, 11, 12, 0), data: REPORT });
  const warning = /copying sent mails to IMAP is not supported by kivitendo-task-server/;

  configure({ sent_emails_in_imap: { enabled: '0', hostname: 'imap.example.com' } });
  assert.equal((await run()).log.filter((l) => warning.test(l)).length, 0);

  // The per-sender section comes first and switches it off for this From.
  configure({ sent_emails_in_imap: { enabled: '1' }, 'sent_emails_in_imap/email/Kivi <kivi@example.com>': { enabled: '0' } });
  assert.equal((await run()).log.filter((l) => warning.test(l)).length, 0);

  configure({ sent_emails_in_imap: { enabled: '1', hostname: 'imap.example.com' } });
  const first = await run();
  assert.equal(first.history.status, 'success', first.history.error ?? '');
  assert.equal(first.log.filter((l) => warning.test(l)).length, 1);
  const second = await run();
  assert.equal(second.history.status, 'success');
  assert.equal(second.log.filter((l) => warning.test(l)).length, 0);
  assert.equal(sink.messages.length, 4);
  // The journal still says sent: nothing was copied, and kivitendo's row would not record a copy either.
  assert.equal((await journal('Journal')).at(-1)!.status, 'sent');
});
