// SelfTest with its Transactions and NovoclonStrict modules and the report mail (SMTP sink).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createInstallation, type Installation } from './harness/installation';
import { runJob } from './harness/jobs';
import { startSmtpSink, type SmtpSink } from './harness/smtpSink';

let inst: Installation;
let sink: SmtpSink;
before(async () => {
  inst = await createInstallation({
    users: [{ login: 'taskserver' }, { login: 'boss', settings: { email: 'boss@example.com' } }],
    clients: [{ name: 'Clean' }, { name: 'Broken' }, { name: 'Novo' }],
  });
  sink = await startSmtpSink();
  // The reference chart has one account without a tax key (a real finding of check 21); give it one
  // so that "Clean" is a client DB on which every check passes.
  for (const c of ['Clean', 'Broken']) {
    await q(c, `INSERT INTO taxkeys (chart_id, tax_id, taxkey_id, startdate)
      SELECT c.id, (SELECT id FROM tax WHERE taxkey = 0 ORDER BY id LIMIT 1), 0, '1970-01-01' FROM chart c
       WHERE c.id NOT IN (SELECT chart_id FROM taxkeys)`);
  }
});
after(async () => {
  await sink.close();
  inst.remove();
});

const NOW = new Date(2026, 10, 27, 2, 20, 0);

function config(selfTest: Record<string, string>, mail?: Record<string, string>) {
  inst.writeConfig({
    self_test: {
      modules: 'Transactions',
      send_email_on_success: '0',
      log_to_file: '0',
      send_email_to: 'boss',
      email_from: 'kivitendo <daemon@example.com>',
      email_subject: 'self test report',
      email_template: 'templates/mail/self_test/status_mail.txt',
      ...selfTest,
    },
    mail_delivery: mail ?? { method: 'smtp', host: sink.host, port: String(sink.port), security: 'none' },
  });
}

const q = (client: string, sql: string, params: unknown[] = []) => inst.query(client, sql, params);

async function mailsAfter(n: number, run: () => Promise<unknown>) {
  const before = sink.messages.length;
  await run();
  await new Promise((r) => setTimeout(r, 50));
  return sink.messages.slice(before, before + n + 5);
}

describe('SelfTest / Transactions', () => {
  test('a consistent client DB: success, result 1, no mail without send_email_on_success', async () => {
    config({ log_to_file: '1' });
    let r!: Awaited<ReturnType<typeof runJob>>;
    const mails = await mailsAfter(0, async () => {
      r = await runJob(inst, 'Clean', { packageName: 'SelfTest', now: NOW });
    });
    assert.equal(r.history.status, 'success', r.history.error ?? '');
    assert.equal(r.history.result, '1');
    assert.equal(mails.length, 0);
    assert.ok(
      r.log.some((l) => l.includes('[SL::BackgroundJob::SelfTest] SelfTest status: PASS, passed: 1, failed: 0, unexpectedly succeeded: 0')),
      r.log.join('\n'),
    );
  });

  test('send_email_on_success: the report goes to the login\'s address plus data.email, with all 34 tests', async () => {
    config({ send_email_on_success: '1' });
    const mails = await mailsAfter(1, async () => {
      const r = await runJob(inst, 'Clean', { packageName: 'SelfTest', now: NOW, data: { email: 'extra@example.com' } });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
    });
    assert.equal(mails.length, 1);
    const m = mails[0];
    assert.deepEqual(m.envelopeTo.sort(), ['boss@example.com', 'extra@example.com']);
    assert.equal(m.headers['subject'], 'self test report');
    assert.match(m.body, /Overall: PASS \(1 passed, 0 failed\)/);
    assert.match(m.body, /== 1: SL::BackgroundJob::SelfTest::Transactions ==/);
    assert.match(m.body, /^ {4}1\.\.34$/m);
    assert.match(m.body, /^ {4}ok 34 - /m);
    assert.doesNotMatch(m.body, /not ok/);
    assert.match(m.body, /^ok 1 - SL::BackgroundJob::SelfTest::Transactions$/m);
  });

  test('an unbalanced transaction fails its check; the job still succeeds and mails', async () => {
    config({});
    await q('Broken', `INSERT INTO gl (id, reference, transdate, gldate, itime) VALUES (900001, 'GL-X', '2026-05-05', '2026-05-05', '2026-05-05 10:00')`);
    await q('Broken', `INSERT INTO acc_trans (trans_id, chart_id, amount, transdate, gldate, itime, chart_link, taxkey, tax_id)
      SELECT 900001, c.id, 100, '2026-05-05', '2026-05-05', '2026-05-05 10:00', '', 0, (SELECT id FROM tax WHERE taxkey = 0 ORDER BY id LIMIT 1)
        FROM chart c WHERE c.category = 'A' ORDER BY c.accno LIMIT 1`);
    const mails = await mailsAfter(1, async () => {
      const r = await runJob(inst, 'Broken', { packageName: 'SelfTest', now: NOW, data: { mail_to: 'override@example.com' } });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
      assert.equal(r.history.result, '1');
    });
    assert.equal(mails.length, 1);
    assert.deepEqual(mails[0].envelopeTo, ['override@example.com']);
    assert.match(mails[0].body, /Overall: FAIL \(0 passed, 1 failed\)/);
    assert.match(mails[0].body, /not ok 3 - Unausgeglichene Buchungssätze in acc_trans/);
    assert.match(mails[0].body, /# trans_id 900001: Summe 100\.00000, ar:  ap:  gl: GL-X/);
    assert.match(mails[0].body, /^ {4}ok 4 - Jede acc_trans-Zeile hat ihren ar\/ap\/gl-Beleg$/m);
    assert.match(mails[0].body, /^ {4}ok 21 - /m);
    assert.match(mails[0].body, /^not ok 1 - SL::BackgroundJob::SelfTest::Transactions$/m);
  });

  test('no mail when send_email_to is empty, even with data.mail_to', async () => {
    config({ send_email_to: '' });
    const mails = await mailsAfter(0, async () => {
      const r = await runJob(inst, 'Broken', { packageName: 'SelfTest', now: NOW, data: { mail_to: 'override@example.com' } });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
    });
    assert.equal(mails.length, 0);
  });

  test('an unknown module fails the job after the others ran; message as kivitendo (German)', async () => {
    config({ send_email_on_success: '0' });
    const r = await runJob(inst, 'Clean', { packageName: 'SelfTest', now: NOW, data: { modules: ['Transactions', 'No-pe'] } });
    assert.equal(r.history.status, 'failure');
    assert.match(
      r.history.error!,
      /^Unsuccessfully executed:Konnte Klasse SL::BackgroundJob::SelfTest::Nope \(SL\/BackgroundJob\/SelfTest\/Nope\) nicht laden: "/,
    );
  });

  test('bad data: a wrong type fails naming the key; an unknown key is named in a warning', async () => {
    config({});
    const r1 = await runJob(inst, 'Clean', { packageName: 'SelfTest', now: NOW, data: { modules: { a: 1 } } });
    assert.equal(r1.history.error, "SelfTest: key 'modules' in data must be a list, got a mapping");
    const r2 = await runJob(inst, 'Clean', { packageName: 'SelfTest', now: NOW, data: { mailto: 'x@y' } });
    assert.doesNotMatch(r2.history.error ?? '', /mailto/);
    assert.ok(r2.log.includes(`WARN BackgroundJob ID ${r2.job.id}: SelfTest: unknown key 'mailto' in data ignored (kivitendo's SelfTest does not read it either)`), r2.log.join('\n'));
  });

  test('missing template file: only this job fails, with one line naming the file', async () => {
    config({ email_template: 'templates/mail/self_test/missing.txt' });
    const r = await runJob(inst, 'Broken', { packageName: 'SelfTest', now: NOW });
    assert.equal(r.history.status, 'failure');
    assert.match(r.history.error!, /^SelfTest: cannot render the report mail template templates\/mail\/self_test\/missing\.txt: /);
    assert.ok(!r.history.error!.includes('\n'));
  });

  test('unreachable mail server: failure with the mailer error', async () => {
    config({}, { method: 'smtp', host: '127.0.0.1', port: '1', security: 'none' });
    const r = await runJob(inst, 'Broken', { packageName: 'SelfTest', now: NOW });
    assert.equal(r.history.status, 'failure');
    assert.match(r.history.error!, /^Unsuccessfully executed:Emailfehler: /);
  });
});

describe('SelfTest / NovoclonStrict', () => {
  test('open delivered delivery order and a purchase invoice: failed check and a "not supported" check in the report', async () => {
    config({ modules: 'NovoclonStrict', send_email_on_success: '1' });
    const [cust] = await q('Novo', `INSERT INTO customer (name, customernumber, currency_id, taxzone_id, country_id)
      VALUES ('Kunde', 'K1', (SELECT id FROM currencies LIMIT 1), (SELECT id FROM tax_zones LIMIT 1), (SELECT id FROM countries LIMIT 1)) RETURNING id`);
    await q('Novo', `INSERT INTO delivery_orders (donumber, customer_id, transdate, reqdate, delivered, closed, cusordnumber, currency_id, taxzone_id, record_type)
      VALUES ('LS-1', $1, '2026-11-02', '2026-11-20', true, false, 'B-1', (SELECT id FROM currencies LIMIT 1), (SELECT id FROM tax_zones LIMIT 1), 'sales_delivery_order'),
             ('LS-2', $1, '2026-11-02', '2026-11-24', true, false, 'B-2', (SELECT id FROM currencies LIMIT 1), (SELECT id FROM tax_zones LIMIT 1), 'sales_delivery_order')`, [cust.id]);
    const mails = await mailsAfter(1, async () => {
      const r = await runJob(inst, 'Novo', { packageName: 'SelfTest', now: NOW });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
    });
    assert.equal(mails.length, 1);
    const body = mails[0].body;
    // 2026-11-27 is a Friday: 4 business days back is Monday 2026-11-23, so LS-1 (due 11-20) counts, LS-2 (11-24) not yet.
    assert.match(body, /not ok 1 - Alle gelieferten Verkaufslieferscheine/);
    assert.match(body, /# Lieferschein LS-1$/m);
    assert.doesNotMatch(body, /LS-2/);
    assert.match(body, /^ {4}ok 7 - /m, 'no purchase invoices: nothing to compare');

    // With a purchase invoice the sum comparisons cannot be made: reported, never passed silently.
    await q('Novo', `INSERT INTO ap (invnumber, transdate, invoice, storno, taxzone_id, currency_id)
      VALUES ('ER-1', '2026-10-01', true, false, (SELECT id FROM tax_zones LIMIT 1), (SELECT id FROM currencies LIMIT 1))`);
    const mails2 = await mailsAfter(1, async () => {
      const r = await runJob(inst, 'Novo', { packageName: 'SelfTest', now: NOW });
      assert.equal(r.history.status, 'success', r.history.error ?? '');
    });
    assert.match(mails2[0].body, /^ {4}not ok 7 - .*\(not supported: comparing 1 purchase invoice\(s\) with their purchase orders is not supported/m);
    assert.match(mails2[0].body, /^ {4}not ok 8 - .*\(not supported: /m);
  });
});
