// Bad input while printing and e-mailing periodic invoices through kivitendo's own Perl code: each
// fault fails only its own invoice, with kivitendo's text ("Printing periodic invoice #1 failed:
// #2", in the user's language), the other invoices of the run are printed/e-mailed, every invoice
// stays posted, and the summary mail lists what was printed, e-mailed and what failed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ensureBinary, runCli } from './harness/cli';
import { createPrintRig, decodeHeader, keptTexFiles, loadPrintScenario, normaliseRun, pdfText, type PrintRig } from './harness/goldenPrint';
import { parseMail } from './harness/smtpSink';

const NOW = new Date(2014, 2, 15, 3, 0, 0);
const base = (name: string) => loadPrintScenario(name).sql;
const PRINT_PREFIX = 'Ausdruck von wiederkehrender Rechnung';
const MAIL_PREFIX = 'E-Mail-Versand von wiederkehrender Rechnung';

/** Further configs on the scenarios' order 100201 (each posts its own invoice RE-1002, ...). */
function moreConfigs(rows: { id: number; set: string }[]): string {
  return rows
    .map(
      (r) => `INSERT INTO periodic_invoices_configs (id, oe_id, periodicity, order_value_periodicity, start_date, active, terminated, ar_chart_id, direct_debit, print, send_email)
              VALUES (${r.id}, 100201, 'm', 'p', '2014-03-01', true, false, 14, false, false, false);
              UPDATE periodic_invoices_configs SET ${r.set} WHERE id = ${r.id};`,
    )
    .join('\n');
}

/** kivitendo joins its messages with newlines; Perl's messages end in one already. */
const errorLines = (error: string | null) => (error ?? '').split('\n').filter((l) => l.trim() !== '');

async function arCount(rig: PrintRig): Promise<number> {
  return (await rig.db.query('SELECT count(*)::int AS n FROM ar')).rows[0].n;
}

function printedFiles(rig: PrintRig): string[] {
  return fs.readdirSync(rig.printDir).sort();
}

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('printing periodic invoices: bad input fails only its own invoice', () => {
  test('failing printer command, LaTeX error, missing template: the others print, all stay posted, the summary lists them', async () => {
    const sql = `${base('01-print-one')}
      INSERT INTO printers (id, printer_description, printer_command, template_code) VALUES
        (100402, 'fails',   'exit 3', ''),
        (100403, 'broken',  'cat > "$KIVI_PRINT_DIR/<%invnumber%>-$$.pdf"', 'broken'),
        (100404, 'missing', 'cat > "$KIVI_PRINT_DIR/<%invnumber%>-$$.pdf"', 'nosuch');
      ${moreConfigs([
        { id: 100302, set: 'print = true, printer_id = 100402, copies = 1' },
        { id: 100303, set: 'print = true, printer_id = 100403, copies = 1' },
        { id: 100304, set: 'print = true, printer_id = 100404, copies = 1' },
      ])}`;
    const rig = await createPrintRig({
      sql,
      config: { periodic_invoices: { send_email_to: 'boss@example.com', email_from: 'kivi <kivi@example.com>' } },
      prepare(inst) {
        // The printer's template_code picks invoice_<code>.tex: a copy of the set's invoice.tex with an undefined macro.
        const dir = path.join(inst.root, 'templates', 'kivi_c1');
        const tex = fs.readFileSync(path.join(dir, 'invoice.tex'), 'utf8');
        fs.writeFileSync(path.join(dir, 'invoice_broken.tex'), tex.replace('\\begin{document}', '\\begin{document}\n\\kaputtesMakro'));
      },
    });
    try {
      const r = await rig.run(NOW);
      assert.equal(r.history.status, 'failure');
      const lines = errorLines(r.history.error);
      assert.equal(lines.length, 3, r.history.error!);
      // kivitendo would count RE-1002 as printed: it never looks at the printer command's exit status.
      assert.equal(lines[0], `${PRINT_PREFIX} RE-1002 schlug fehl: the printer command of printer 'fails' exited with status 3`);
      // kivitendo's text names the template, then all of latexmk's output: shortened to the first error and its line.
      assert.match(lines[1], new RegExp(`^${PRINT_PREFIX} RE-1003 schlug fehl: invoice_broken\\.tex : ! Undefined control sequence\\. \\(l\\.\\d+ \\\\kaputtesMakro\\)$`));
      assert.equal(lines[2], `${PRINT_PREFIX} RE-1004 schlug fehl: invoice_nosuch.tex : templates/kivi_c1/invoice_nosuch.tex: No such file or directory`);
      assert.match(r.log.join('\n'), /perl stderr: .*Undefined control sequence/);
      // RE-1001 printed twice (copies = 2); nothing else reached a printer folder.
      assert.deepEqual(printedFiles(rig).map((f) => f.replace(/-\d+\.pdf$/, '')), ['RE-1001', 'RE-1001']);
      assert.match(pdfText(path.join(rig.printDir, printedFiles(rig)[0])), /RE-1001/);
      assert.equal(await arCount(rig), 4);
      const [summary] = await rig.sink.waitFor(1);
      assert.deepEqual(summary.envelopeTo, ['boss@example.com']);
      const body = summary.body.replace(/\r\n/g, '\n');
      assert.match(body, /automatisch erzeugt:\n\nRE-1001 RE-1002 RE-1003 RE-1004 \n/);
      assert.match(body, /automatisch ausgedruckt:\n\nRE-1001 \n/);
      assert.doesNotMatch(body, /per E-Mail versandt/);
      const failed = body.slice(body.indexOf('Beim Drucken')).split('\n').filter((l) => l.startsWith('* '));
      assert.deepEqual(failed, lines.map((l) => l.replace(new RegExp(`^${PRINT_PREFIX} (RE-\\d+) schlug fehl: `), '* $1: ')));
      assert.equal(keptTexFiles(rig.inst.root).length >= 2, true);
    } finally {
      await rig.close();
    }
  });
});

describe('e-mailing periodic invoices: bad input fails only its own invoice', () => {
  test('a rejected recipient and a contact without e-mail address: the other mails go out, all stay posted', async () => {
    const sql = `${base('02-email-contact-and-invoice-mail')}
      INSERT INTO contacts (cp_id, cp_name, cp_email) VALUES (100602, 'Ohne Mail', NULL);
      INSERT INTO customer_contacts (id, customer_id, contact_id, main) VALUES (100612, 100001, 100602, false);
      ${moreConfigs([
        { id: 100302, set: `send_email = true, email_recipient_address = 'rejected@example.com', email_subject = 'R <%invnumber%>', email_body = 'x'` },
        { id: 100303, set: `send_email = true, email_recipient_contact_id = 100602, email_subject = 'C <%invnumber%>', email_body = 'y'` },
      ])}`;
    const rig = await createPrintRig({ sql, smtpReject: ['rejected@example.com'] });
    try {
      const r = await rig.run(NOW);
      assert.equal(r.history.status, 'failure');
      const lines = errorLines(r.history.error);
      assert.equal(lines.length, 1, r.history.error!);
      assert.match(lines[0], new RegExp(`^${MAIL_PREFIX} RE-1002 schlug fehl: .*rejected@example\\.com`));
      const mails = rig.sink.messages.map((m) => ({ to: m.envelopeTo.join(' '), subject: parseMail(m.raw).headers['subject'] }));
      // RE-1001: three recipients as in the golden scenario; RE-1002: the customer's invoice_mail still gets
      // its mail (one mail per recipient); RE-1003: the contact has no address, the customer's invoice_mail remains.
      assert.deepEqual(
        mails.map((m) => `${m.to} ${decodeHeader(m.subject)}`.replace(/ \(.*/, '')),
        [
          'a@example.com Archiv@Example.com Rechnung RE-1001',
          'b@example.com Archiv@Example.com Rechnung RE-1001',
          'max.mustermann@example.com Archiv@Example.com Rechnung RE-1001',
          'a@example.com Archiv@Example.com R RE-1002',
          'a@example.com Archiv@Example.com C RE-1003',
        ],
      );
      assert.equal(await arCount(rig), 3);
      const journal = (await rig.db.query(`SELECT status, recipients FROM email_journal ORDER BY id`)).rows;
      assert.equal(journal.filter((j) => j.status === 'sent').length, 5);
      assert.deepEqual(journal.filter((j) => j.status !== 'sent').map((j) => j.recipients), ['rejected@example.com, Archiv@Example.com']);
    } finally {
      await rig.close();
    }
  });

  test('SMTP server down: every mail of the run fails with kivitendo text, printing of the run works, all stay posted', async () => {
    const sql = `${base('02-email-contact-and-invoice-mail')}
      INSERT INTO printers (id, printer_description, printer_command, template_code) VALUES (100401, 'sink', 'cat > "$KIVI_PRINT_DIR/<%invnumber%>-$$.pdf"', '');
      UPDATE periodic_invoices_configs SET print = true, printer_id = 100401, copies = 1 WHERE id = 100301;`;
    const rig = await createPrintRig({ sql, config: { mail_delivery: { port: String(await closedPort()) } } });
    try {
      const r = await rig.run(NOW);
      assert.equal(r.history.status, 'failure');
      const lines = errorLines(r.history.error);
      assert.equal(lines.length, 3, r.history.error!);
      for (const l of lines) assert.match(l, new RegExp(`^${MAIL_PREFIX} RE-1001 schlug fehl: SMTP connection could not be initialized`));
      assert.deepEqual(printedFiles(rig).map((f) => f.replace(/-\d+\.pdf$/, '')), ['RE-1001']);
      assert.equal(rig.sink.messages.length, 0);
      assert.equal(await arCount(rig), 1);
    } finally {
      await rig.close();
    }
  });

  test('ZUGFeRD data that fails validation fails that customer\'s mail; another customer\'s invoice is mailed with factur-x.xml', async () => {
    const sql = `${base('03-zugferd')}
      UPDATE customer SET email = NULL WHERE id = 100001;
      INSERT INTO customer (id, name, customernumber, taxzone_id, currency_id, country_id, taxincluded, email)
      VALUES (100002, 'Zweitkunde AG', 'K-1002', 4, 1, 57, false, 'kunde2@example.invalid');
      INSERT INTO oe (id, ordnumber, transdate, customer_id, taxincluded, taxzone_id, currency_id, record_type, employee_id, salesman_id,
                      transaction_description, amount, netamount, closed)
      VALUES (100202, 'AB-2014-002', '2014-02-20', 100002, false, 4, 1, 'sales_order', 1, 1, 'Zweitvertrag', 0, 0, false);
      INSERT INTO orderitems (id, trans_id, position, parts_id, description, qty, unit, sellprice, discount, lastcost, price_factor, marge_price_factor, ship, recurring_billing_mode)
      VALUES (100221, 100202, 1, 100101, 'Hosting Paket M', 1, 'Stck', 29.90, 0, 12.50, 1, 1, 0, 'always');
      INSERT INTO periodic_invoices_configs (id, oe_id, periodicity, order_value_periodicity, start_date, active, terminated, ar_chart_id, direct_debit, print, send_email,
                                             email_recipient_address, email_subject, email_body)
      VALUES (100302, 100202, 'm', 'p', '2014-03-01', true, false, 14, false, false, true, 'kunde2@example.invalid', 'Rechnung <%invnumber%>', 'z');`;
    const rig = await createPrintRig({ sql });
    try {
      const r = await rig.run(NOW);
      assert.equal(r.history.status, 'failure');
      const lines = errorLines(r.history.error);
      assert.equal(lines.length, 1, r.history.error!);
      assert.match(lines[0], new RegExp(`^${MAIL_PREFIX} RE-1001 schlug fehl: Die ZUGFeRD-Rechnungsdaten können nicht erzeugt werden, da die Validierung fehlschlug\\. .*Kundenstammdaten`));
      assert.deepEqual(printedFiles(rig).map((f) => f.replace(/-\d+\.pdf$/, '')), ['RE-1001']);
      assert.deepEqual(rig.sink.messages.map((m) => m.envelopeTo.join(' ')), ['kunde2@example.invalid']);
      const mails = (await normaliseRun(rig)).get('mails.json') as { attachments: { filename: string; pdf_embedded_files: string[] }[] }[];
      assert.deepEqual(mails[0].attachments.map((a) => [a.filename, a.pdf_embedded_files]), [['Rechnung RE-1002.pdf', ['factur-x.xml']]]);
      assert.equal(await arCount(rig), 2);
    } finally {
      await rig.close();
    }
  });
});

describe('the binary prints and e-mails with its embedded Perl action', () => {
  test('--run-job on the real clock: posted, printed, mailed with Factur-X, journaled; job success', async () => {
    const now = new Date();
    const month = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}`;
    const sql = base('03-zugferd').replace(/'2014-03-01'/g, `'${month}-01'`);
    const rig = await createPrintRig({ sql });
    try {
      const r = await runCli(['--run-job=2', '--client=G', 'start'], {
        binary: ensureBinary(),
        env: { KIVITENDO_DIR: rig.inst.root, KIVI_PRINT_DIR: rig.printDir },
        timeoutMs: 300_000,
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const h = (await rig.db.query(`SELECT status, result, error FROM background_job_histories WHERE package_name = 'CreatePeriodicInvoices'`)).rows;
      assert.deepEqual(h, [{ status: 'success', result: '1', error: null }], r.stderr);
      assert.deepEqual(printedFiles(rig).map((f) => f.replace(/-\d+\.pdf$/, '')), ['RE-1001']);
      assert.match(pdfText(path.join(rig.printDir, printedFiles(rig)[0])), /RE-1001/);
      const mails = (await normaliseRun(rig)).get('mails.json') as { envelope_to: string[]; attachments: { filename: string; pdf_embedded_files: string[] }[] }[];
      assert.deepEqual(mails.map((m) => [m.envelope_to, m.attachments.map((a) => [a.filename, a.pdf_embedded_files])]), [[['kunde@example.invalid'], [['Rechnung RE-1001.pdf', ['factur-x.xml']]]]]);
      assert.deepEqual((await rig.db.query(`SELECT status FROM email_journal`)).rows, [{ status: 'sent' }]);
    } finally {
      await rig.close();
    }
  });
});
