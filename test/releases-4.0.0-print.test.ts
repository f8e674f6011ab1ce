// Printing and e-mailing periodic invoices on kivitendo 4.0.0. There the native CreatePeriodicInvoices
// is not verified, so kivitendo 4.0.0's own package runs in this server's Perl child
// (kivitendo-child.pl sets the client up: $::form, $::locale, %::myconfig, templates, mail): it must
// print and mail exactly as 4.0.0's own scripts/task_server.pl does on a twin client — the same rows
// (invoices, email_journal, record_links), the same printouts and the same mails.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { readIfExists } from './harness/cli';
import { decodeHeader, pdfText, templateSetDirOf } from './harness/goldenPrint';
import { runJob } from './harness/jobs';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';
import { parseMail, startSmtpSink, type SmtpSink } from './harness/smtpSink';
import { assertTwinsEqual, createPeriodicOrder, runWithKivitendoOn } from './harness/twins';

let inst: KivitendoInstallation;
let sink: SmtpSink;
const printDirs: Record<string, string> = {};

before(async () => {
  sink = await startSmtpSink({ dataReply: 'OK saved' });
  inst = await createKivitendoInstallation({
    release: '4.0.0',
    users: [{ login: 'taskserver', settings: { email: 'task@example.invalid' } }],
    clients: [{ name: 'Ours' }, { name: 'Perl' }],
    config: {
      task_server: { perl_preload_idle: '0' },
      mail_delivery: { method: 'smtp', host: sink.host, port: String(sink.port), security: 'none' },
      applications: { latex: 'latexmk --pdflatex' },
      debug: { global_level: 'WARN', file_name: 'users/kivitendo-debug.log' },
    },
  });
  fs.cpSync(templateSetDirOf(inst.src, 'Standard'), path.join(inst.root, 'templates', 'kivi_c1'), { recursive: true, dereference: true });
  for (const c of ['Ours', 'Perl']) {
    printDirs[c] = fs.mkdtempSync(path.join(os.tmpdir(), `kts-print-400-${c}-`));
    await inst.query(c, `UPDATE defaults SET templates = 'templates/kivi_c1', create_zugferd_invoices = 0, company = 'Rig Test GmbH',
                           address_street1 = 'Teststr. 1', address_zipcode = '12345', address_city = 'Teststadt', taxnumber = '123/456/7890'`);
    await inst.query(c, `UPDATE background_jobs SET active = false WHERE package_name <> 'CreatePeriodicInvoices'`);
    // printer_command is a kivitendo ShellCommand template; KIVI_PRINT_DIR comes from the environment of the run.
    const [printer] = await inst.query(c, `INSERT INTO printers (printer_description, printer_command, template_code)
                                           VALUES ('PDF sink', 'cat > "$KIVI_PRINT_DIR/<%invnumber%>-$$.pdf"', '') RETURNING id`);
    createPeriodicOrder(inst, c, {
      monthsBack: 0,
      config: `print => 1, printer_id => ${printer.id}, copies => 1, send_email => 1, email_recipient_address => 'Rcpt@Example.com',
               email_subject => 'Rechnung <%invnumber%> <%period_start_date%>', email_body => 'Anbei die Rechnung <%invnumber%>.'`,
    });
  }
});
after(async () => {
  await sink?.close();
  for (const d of Object.values(printDirs)) fs.rmSync(d, { recursive: true, force: true });
  inst?.remove();
});

async function inPrintDir<T>(client: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env.KIVI_PRINT_DIR;
  process.env.KIVI_PRINT_DIR = printDirs[client];
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.KIVI_PRINT_DIR;
    else process.env.KIVI_PRINT_DIR = before;
  }
}

const mailSummary = (raw: string) => {
  const m = parseMail(raw);
  const attachment = /filename="?([^";\r\n]+)"?/.exec(raw)?.[1];
  return { subject: m.headers['subject'], from: m.headers['from'], to: m.headers['to'], attachment };
};

test("kivitendo 4.0.0's CreatePeriodicInvoices prints and e-mails in this server's Perl child exactly as under 4.0.0's task_server.pl", { timeout: 900_000 }, async () => {
  const [job] = await inst.query('Ours', `SELECT id FROM background_jobs WHERE package_name = 'CreatePeriodicInvoices'`);
  const ours = await inPrintDir('Ours', () => runJob(inst, 'Ours', { jobId: job.id }));
  assert.ok(ours.log.some((l) => l.includes(": CreatePeriodicInvoices: kivitendo's Perl code (SL/BackgroundJob/CreatePeriodicInvoices.pm): native module verified for kivitendo 4.1.0 and 4.1.1, this installation is kivitendo 4.0.0")), ours.log.join('\n'));
  assert.equal(ours.history.status, 'success', `${ours.history.error}\n${ours.log.join('\n')}`);
  const ourMails = (await sink.waitFor(1, 120_000)).map((m) => mailSummary(m.raw));
  const theirs = await inPrintDir('Perl', () => runWithKivitendoOn(inst, 'Perl', job.id));
  const [perlHistory] = await inst.query('Perl', 'SELECT status, result, error FROM background_job_histories ORDER BY id DESC LIMIT 1');
  assert.deepEqual(perlHistory, { status: 'success', result: ours.history.result, error: null }, `${theirs}\n${readIfExists(path.join(inst.root, 'users', 'kivitendo-debug.log'))?.slice(-3000) ?? ''}`);
  const all = (await sink.waitFor(2, 30_000)).map((m) => mailSummary(m.raw));
  assert.deepEqual(all.slice(ourMails.length), ourMails, `the mails 4.0.0's task_server.pl sends\n${theirs}`);
  assert.equal(ourMails.length, 1);
  assert.match(ourMails[0].subject ?? '', /^Rechnung \S+ \d\d\.\d\d\.\d\d\d\d$/);
  const [inv] = await inst.query('Ours', 'SELECT invnumber FROM ar');
  assert.equal(decodeHeader(ourMails[0].attachment ?? ''), `Rechnung ${inv.invnumber}.pdf`);
  for (const c of ['Ours', 'Perl']) {
    const printed = fs.readdirSync(printDirs[c]);
    assert.equal(printed.length, 1, `${c}: one printout (${printed.join(', ')})\n${theirs}`);
    const [inv] = await inst.query(c, 'SELECT invnumber FROM ar');
    assert.match(pdfText(path.join(printDirs[c], printed[0])), new RegExp(inv.invnumber));
  }
  await assertTwinsEqual(inst, 'Ours', 'Perl', ['ar', 'invoice', 'acc_trans', 'periodic_invoices', 'record_links', 'email_journal', 'background_job_histories']);
});
