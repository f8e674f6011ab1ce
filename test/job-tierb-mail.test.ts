// Tier B jobs that send mail: FailedBackgroundJobsReport, CheckBelowMinimumStock,
// SendFollowUpReminder — through a local SMTP sink, with the fixture's own templates.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import type { Client } from 'pg';
import { createInstallation, type Installation } from './harness/installation';
import { runJob } from './harness/jobs';
import { freePort } from './harness/postgres';
import { startSmtpSink, type SmtpSink } from './harness/smtpSink';

let inst: Installation;
let sink: SmtpSink;
let deadPort: number;
let extraConfig: Record<string, Record<string, string>> = {};

before(async () => {
  inst = await createInstallation({
    users: [
      { login: 'taskserver' },
      { login: 'anna', settings: { email: ' anna@example.com ', name: 'Anna' } },
      { login: 'bert', settings: { email: '', name: 'Bert' } },
      { login: 'stockkeeper', settings: { email: 'stock@example.com' } },
    ],
    clients: [{ name: 'Fail' }, { name: 'Stock' }, { name: 'Fu' }],
  });
  sink = await startSmtpSink();
  deadPort = await freePort(); // nothing listens there
});
after(async () => {
  await sink.close();
  inst.remove();
});

function configure(extra: Record<string, Record<string, string>> = {}, port?: number) {
  extraConfig = extra;
  inst.writeConfig({ mail_delivery: { method: 'smtp', host: sink.host, port: String(port ?? sink.port) }, ...extraConfig });
}

beforeEach(() => {
  sink.messages.length = 0;
  sink.acceptAll();
  configure();
});

const withDb = <T>(client: string, fn: (db: Client) => Promise<T>) => inst.withClientDb(client, fn);

const at = (y: number, m: number, d: number, h = 10, mi = 0) => new Date(y, m - 1, d, h, mi, 0);

// ---- FailedBackgroundJobsReport ----

test('FailedBackgroundJobsReport: mails the failures of the last 24 hours to all recipients', async () => {
  await withDb('Fail', (db) =>
    db.query(
      `INSERT INTO background_job_histories (package_name, run_at, status, result, error, data, description) VALUES
         ('SelfTest', '2026-05-10 09:00:00', 'failure', NULL, 'too old', NULL, NULL),
         ('CreatePeriodicInvoices', '2026-05-10 12:30:00', 'failure', NULL, 'no printer', NULL, 'invoices'),
         ('Test', '2026-05-11 08:15:00', 'success', '1', NULL, NULL, NULL),
         ('CheckBelowMinimumStock', '2026-05-11 09:45:00', 'failure', NULL, 'stock low', NULL, 'stock')`,
    ),
  );
  const data = { recipients: ['ops@example.com', 'boss@example.com'], from: 'kivi@example.com', subject: 'Failed jobs' };
  const r = await runJob(inst, 'Fail', { packageName: 'FailedBackgroundJobsReport', now: at(2026, 5, 11, 12, 0), data });
  assert.equal(r.history.status, 'success', r.history.error ?? '');
  assert.equal(r.history.result, '1');
  const [mail] = await sink.waitFor(1);
  assert.equal(sink.messages.length, 1);
  assert.equal(mail.headers.subject, 'Failed jobs');
  assert.equal(mail.headers.to, 'ops@example.com, boss@example.com');
  assert.deepEqual(mail.envelopeTo.sort(), ['boss@example.com', 'ops@example.com']);
  assert.match(mail.headers['content-type'], /text\/plain/);
  assert.match(mail.body, /since 10\.05\.2026 12:00/);
  assert.match(mail.body, /\* CreatePeriodicInvoices \(invoices\) at 10\.05\.2026 12:30: no printer/);
  assert.match(mail.body, /\* CheckBelowMinimumStock \(stock\) at 11\.05\.2026 09:45: stock low/);
  assert.doesNotMatch(mail.body, /too old|Test /);
  assert.ok(mail.body.indexOf('CreatePeriodicInvoices') < mail.body.indexOf('CheckBelowMinimumStock'));

  // Nothing failed in the last day: no mail.
  const quiet = await runJob(inst, 'Fail', { packageName: 'FailedBackgroundJobsReport', now: at(2026, 5, 20, 12, 0), data });
  assert.equal(quiet.history.status, 'success');
  assert.equal(sink.messages.length, 1);
});

test('FailedBackgroundJobsReport: missing settings, wrong types, missing template, dead mail server', async () => {
  const base = { recipients: ['ops@example.com'], from: 'kivi@example.com', subject: 'S' };
  const now = at(2026, 5, 11, 12, 0);
  const run = (data: Record<string, unknown>) => runJob(inst, 'Fail', { packageName: 'FailedBackgroundJobsReport', now, data });
  assert.equal((await run({ from: 'a@b.c', subject: 'S' })).history.error, 'No »recipients« specified');
  assert.equal((await run({ recipients: ['x@y.z'], subject: 'S' })).history.error, 'No »from« specified');
  assert.equal((await run({ recipients: ['x@y.z'], from: 'a@b.c' })).history.error, 'No »subject« specified');
  assert.match((await run({ ...base, recipients: 'ops@example.com' })).history.error!, /'recipients'.*list/);
  // An unknown key is only a warning (kivitendo ignores it); the run goes on to kivitendo's own check.
  const stray = await run({ from: 'a@b.c', subject: 'S', cc: 'x' });
  assert.equal(stray.history.error, 'No »recipients« specified');
  assert.ok(stray.log.some((l) => l.startsWith(`WARN BackgroundJob ID ${stray.job.id}: FailedBackgroundJobsReport: unknown key 'cc' in data ignored`)), stray.log.join('\n'));

  const tpl = await run({ ...base, template: 'templates/nowhere/email.txt' });
  assert.equal(tpl.history.status, 'failure');
  assert.match(tpl.history.error!, /^FailedBackgroundJobsReport: template templates\/nowhere\/email\.txt .*cannot read template/);
  assert.doesNotMatch(tpl.history.error!, /\n/);

  configure({}, deadPort);
  const dead = await run(base);
  assert.equal(dead.history.status, 'failure');
  assert.match(dead.history.error!, /^FailedBackgroundJobsReport: sending the report failed: /);
  assert.doesNotMatch(dead.history.error!, /\n/);
  assert.equal(sink.messages.length, 0);
});

// ---- CheckBelowMinimumStock ----

async function setUpParts(db: Client) {
  const part = (num: string, rop: number, onhand: string) =>
    db.query(
      `INSERT INTO parts (partnumber, description, unit, part_type, classification_id, rop, onhand)
       VALUES ($1, $2, 'Stck', 'part', (SELECT id FROM part_classifications ORDER BY id LIMIT 1), $3, $4)`,
      [num, `Part ${num} <b>`, rop, onhand],
    );
  await part('P-OK', 5, '10');
  await part('P-LOW', 5, '2');
  await part('P-ZERO', 1.5, '0');
}

const STOCK_CONFIG = {
  check_below_minimum_stock: {
    send_email_to: 'stockkeeper',
    email_from: 'kivi@example.com',
    email_subject: 'Stock is low',
    email_template: 'templates/mail/below_minimum_stock/error_email.html',
  },
};

test('CheckBelowMinimumStock: no parts below their reorder point → success with NULL, no mail', async () => {
  configure(STOCK_CONFIG);
  const r = await runJob(inst, 'Stock', { packageName: 'CheckBelowMinimumStock' });
  assert.equal(r.history.status, 'success');
  assert.equal(r.history.result, null);
  assert.equal(sink.messages.length, 0);
});

test('CheckBelowMinimumStock: mails the HTML report to the login\'s address (+ email) and fails with the list', async () => {
  await withDb('Stock', setUpParts);
  configure(STOCK_CONFIG);
  const r = await runJob(inst, 'Stock', { packageName: 'CheckBelowMinimumStock', data: { email: 'extra@example.com' } });
  assert.equal(r.history.status, 'failure');
  assert.equal(
    r.history.error,
    'Missing parts:\nPartnumber\t- Name\t- Onhand\t- ROP\nP-LOW\t- Part P-LOW <b>\t- 2.00000\t- 5\nP-ZERO\t- Part P-ZERO <b>\t- 0.00000\t- 1.5\n',
  );
  const [mail] = await sink.waitFor(1);
  assert.equal(mail.headers.subject, 'Stock is low');
  assert.deepEqual(mail.envelopeTo.sort(), ['extra@example.com', 'stock@example.com']);
  assert.equal(mail.headers.to, 'stock@example.com, extra@example.com');
  assert.match(mail.headers['content-type'], /text\/html/);
  assert.match(mail.body, /\(2 parts, test template\)/);
  assert.match(mail.body, /<th>Artikelnummer<\/th><th>Mindestlagerbestand<\/th><th>Auf Lager<\/th>/);
  assert.match(mail.body, /<a href="\?action=Part\/edit&amp;part\.id=\d+">P-LOW<\/a><\/td><td>5<\/td><td>2\.00000<\/td>/);
  assert.doesNotMatch(mail.body, /P-OK/);
});

test('CheckBelowMinimumStock: mail_to overrides the login; a text template gives a text mail', async () => {
  fs.writeFileSync(path.join(inst.root, 'templates', 'mail', 'below.txt'), 'Parts: [% FOREACH p = PARTS %][% p.partnumber %] [% END %]\n');
  configure({ check_below_minimum_stock: { ...STOCK_CONFIG.check_below_minimum_stock, email_template: 'templates/mail/below.txt' } });
  const r = await runJob(inst, 'Stock', { packageName: 'CheckBelowMinimumStock', data: { mail_to: 'direct@example.com', email: 'not-an-address' } });
  assert.equal(r.history.status, 'failure');
  const [mail] = await sink.waitFor(1);
  assert.deepEqual(mail.envelopeTo, ['direct@example.com']);
  assert.match(mail.headers['content-type'], /text\/plain/);
  assert.match(mail.body, /Parts: P-LOW P-ZERO/);
});

test('CheckBelowMinimumStock: mailer error is appended; missing template and unknown login fail with one line', async () => {
  configure(STOCK_CONFIG, deadPort);
  const dead = await runJob(inst, 'Stock', { packageName: 'CheckBelowMinimumStock' });
  assert.equal(dead.history.status, 'failure');
  assert.match(dead.history.error!, /^Missing parts:\n[\s\S]*\t- 1\.5\nEmailfehler: .+$/);

  configure({ check_below_minimum_stock: { ...STOCK_CONFIG.check_below_minimum_stock, email_template: 'templates/mail/gone.html' } });
  const tpl = await runJob(inst, 'Stock', { packageName: 'CheckBelowMinimumStock' });
  assert.match(tpl.history.error!, /^CheckBelowMinimumStock: template templates\/mail\/gone\.html .*cannot read template[^\n]*$/);

  configure({ check_below_minimum_stock: { ...STOCK_CONFIG.check_below_minimum_stock, send_email_to: 'nobody' } });
  const login = await runJob(inst, 'Stock', { packageName: 'CheckBelowMinimumStock' });
  assert.match(login.history.error!, /send_email_to names the login 'nobody', which does not exist/);

  // Without any recipient no mail is attempted; the job still fails with the list.
  configure({ check_below_minimum_stock: { ...STOCK_CONFIG.check_below_minimum_stock, send_email_to: '' } });
  const none = await runJob(inst, 'Stock', { packageName: 'CheckBelowMinimumStock' });
  assert.match(none.history.error!, /^Missing parts:[\s\S]*\t- 1\.5\n$/);

  const bad = await runJob(inst, 'Stock', { packageName: 'CheckBelowMinimumStock', data: { mail_to: ['a@b.c'] } });
  assert.match(bad.history.error!, /'mail_to'/);
  assert.equal(sink.messages.length, 0);
});

// ---- SendFollowUpReminder ----

const FU_CONFIG = { follow_up_reminder: { email_from: 'kivi@example.com', email_subject: 'Your follow-ups', email_template: '' } };

async function setUpFollowUps(db: Client) {
  const emp = async (login: string, name: string | null, deleted = false) =>
    (await db.query(`INSERT INTO employee (login, name, deleted) VALUES ($1, $2, $3) RETURNING id`, [login, name, deleted])).rows[0].id as number;
  const e = {
    anna: await emp('anna', 'Anna A.'),
    bert: await emp('bert', 'Bert B.'),
    carl: await emp('carl', 'Carl', true),
    dora: await emp('dora', 'Dora'),
    creator: await emp('creator', null),
  };
  const fu = async (date: string, subject: string, forIds: number[], done = false) => {
    const note = (await db.query(`INSERT INTO notes (subject, body, created_by) VALUES ($1, 'b', $2) RETURNING id`, [subject, e.creator])).rows[0].id;
    const id = (await db.query(`INSERT INTO follow_ups (follow_up_date, note_id, created_by) VALUES ($1, $2, $3) RETURNING id`, [date, note, e.creator])).rows[0].id;
    for (const emp of forIds) await db.query(`INSERT INTO follow_up_created_for_employees (follow_up_id, employee_id) VALUES ($1, $2)`, [id, emp]);
    if (done) await db.query(`INSERT INTO follow_up_done (follow_up_id, employee_id) VALUES ($1, $2)`, [id, e.anna]);
    return id as number;
  };
  await db.query(`UPDATE defaults SET global_bcc = 'archive@example.com'`);
  return {
    e,
    due: await fu('2026-02-02', 'Call customer', [e.anna, e.bert, e.carl, e.dora]),
    older: await fu('2026-01-15', 'Send offer', [e.anna]),
    done: await fu('2026-02-01', 'Already done', [e.anna], true),
    future: await fu('2026-03-01', 'Later', [e.anna]),
  };
}

test('SendFollowUpReminder: one HTML mail per employee with an e-mail address, BCC to global_bcc', async () => {
  const f = await withDb('Fu', setUpFollowUps);
  configure(FU_CONFIG);
  const r = await runJob(inst, 'Fu', { packageName: 'SendFollowUpReminder', now: at(2026, 2, 2, 6, 7), data: { base_url: 'https://erp.example.com/kivi/' } });
  assert.equal(r.history.status, 'success', r.history.error ?? '');
  assert.equal(r.history.result, 'Erinnerung an Wiedervorlagen versendet.');
  const [mail] = await sink.waitFor(1);
  assert.equal(sink.messages.length, 1);
  assert.equal(mail.headers.to, 'anna@example.com');
  assert.deepEqual(mail.envelopeTo.sort(), ['anna@example.com', 'archive@example.com']);
  assert.equal(mail.headers.subject, 'Your follow-ups');
  assert.match(mail.headers['content-type'], /text\/html/);
  assert.match(mail.body, /<h1>Nicht erledigte Wiedervorlagen<\/h1>/);
  assert.match(mail.body, new RegExp(`15\\.01\\.2026 <a href="https://erp\\.example\\.com/kivi/fu\\.pl\\?action=edit&id=${f.older}">Send offer</a> creator`));
  assert.match(mail.body, new RegExp(`02\\.02\\.2026 <a href="https://erp\\.example\\.com/kivi/fu\\.pl\\?action=edit&id=${f.due}">Call customer</a>`));
  assert.ok(mail.body.indexOf('Send offer') < mail.body.indexOf('Call customer'));
  assert.doesNotMatch(mail.body, /Already done|Later/);
});

test('SendFollowUpReminder: date range in the user format, text template, unreadable template → simple text', async () => {
  configure(FU_CONFIG);
  const now = at(2026, 2, 2, 6, 7);
  const r = await runJob(inst, 'Fu', { packageName: 'SendFollowUpReminder', now, data: { from_date: '01.02.26', to_date: '01.03.2026' } });
  assert.equal(r.history.status, 'success');
  let [mail] = await sink.waitFor(1);
  assert.match(mail.body, /Call customer/);
  assert.match(mail.body, /Later/);
  assert.doesNotMatch(mail.body, /Send offer/);

  sink.messages.length = 0;
  fs.writeFileSync(path.join(inst.root, 'templates', 'fu.txt'), '[% FOREACH fu = follow_ups %]- [% fu.note.subject %] ([% fu.link %])\n[% END %]');
  await runJob(inst, 'Fu', { packageName: 'SendFollowUpReminder', now, data: { email_template: 'templates/fu.txt', email_subject: 'Text', to_date: '15.01.2026' } });
  [mail] = await sink.waitFor(1);
  assert.match(mail.headers['content-type'], /text\/plain/);
  assert.equal(mail.headers.subject, 'Text');
  assert.match(mail.body, /^- Send offer \(fu\.pl\?action=edit&id=\d+\)/);

  sink.messages.length = 0;
  const missing = await runJob(inst, 'Fu', { packageName: 'SendFollowUpReminder', now, data: { email_template: 'templates/none.txt', to_date: '15.01.2026' } });
  assert.equal(missing.history.status, 'success');
  [mail] = await sink.waitFor(1);
  assert.match(mail.headers['content-type'], /text\/plain/);
  assert.match(mail.body.replace(/\r\n/g, '\n'), /^Nicht erledigte Wiedervorlagen:\nWiedervorlagedatum: 15\.01\.2026: Send offer: \(von creator\) \(fu\.pl\?action=edit&id=\d+\)\n\n\n$/);
  assert.ok(missing.log.some((l) => l.includes('Cannot read template file')));
});

test('SendFollowUpReminder: invalid parameters, dates and sender; missing built-in template; dead mail server', async () => {
  const now = at(2026, 2, 2, 6, 7);
  const run = (data: Record<string, unknown>) => runJob(inst, 'Fu', { packageName: 'SendFollowUpReminder', now, data });
  configure(FU_CONFIG);
  assert.equal((await run({ todate: 'x' })).history.error, 'Not a valid parameter: todate');
  assert.match((await run({ base_url: ['x'] })).history.error!, /'base_url'/);
  const date = await run({ from_date: '31.02.2026' });
  assert.match(date.history.error!, /^Kann das Datum nicht verarbeiten\nEingabe Von-Zeichenkette: 31\.02\.2026\nEingabe Bis-Zeichenkette: 02\.02\.2026\nDetails: /);
  assert.equal((await run({ email_from: '  ' })).history.error, 'Es ist keine E-Mail-Absender-Adresse angegeben.');
  // kivitendo.conf.default sets email_from; an admin may empty it.
  configure({ follow_up_reminder: { email_subject: 'x', email_from: '' } });
  assert.equal((await run({})).history.error, 'Es ist keine E-Mail-Absender-Adresse angegeben.');

  configure(FU_CONFIG);
  const builtin = path.join(inst.root, 'templates', 'design40_webpages', 'fu', 'follow_up_reminder_mail.html');
  fs.renameSync(builtin, builtin + '.off');
  try {
    const tpl = await run({});
    assert.equal(tpl.history.status, 'failure');
    assert.match(tpl.history.error!, /^SendFollowUpReminder: template templates\/design40_webpages\/fu\/follow_up_reminder_mail\.html .*cannot read template[^\n]*$/);
  } finally {
    fs.renameSync(builtin + '.off', builtin);
  }

  configure(FU_CONFIG, deadPort);
  const dead = await run({});
  assert.equal(dead.history.status, 'failure');
  assert.match(dead.history.error!, /^Erinnerung an Wiedervorlagen versendet\.Folgende Fehler sind aufgetreten:.+\n$/);
  assert.equal(sink.messages.length, 0);
});
