// Printing and e-mailing periodic invoices on every core: render processes run kivitendo's print and
// mail code ahead ([task_server] render_concurrency, default the number of CPUs) and keep LaTeX's
// PDFs; the one printing process prints and mails in kivitendo's order (all prints, then all mails,
// by invoice) and copies the kept PDFs instead of compiling. The share-out and the config key are
// checked without a database; the order of printer commands, mails and email_journal rows, and that
// the PDFs really came from the render processes, on kivitendo's real code.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/config';
import { renderShares, type OutputQueue } from '../src/jobs/periodic-invoices/output';
import type { PostedInvoice } from '../src/jobs/periodic-invoices/posting';
import { createPrintRig, decodeHeader, loadPrintScenario, normaliseRun, pdfText } from './harness/goldenPrint';
import { FIXTURE_ROOT } from './harness/installation';

const invoices = (...ids: number[]) => ids.map((id) => ({ id }) as PostedInvoice);

describe('renderShares: the LaTeX work of a run dealt out to the render processes', () => {
  test('prints first, then mails, in turn; each share keeps the run\'s order', () => {
    const queue: OutputQueue = { print: invoices(1, 2, 3), email: invoices(1, 2) };
    assert.deepEqual(renderShares(queue, 2), [
      { print: [1, 3], email: [2] },
      { print: [2], email: [1] },
    ]);
    assert.deepEqual(renderShares(queue, 8).length, 5, 'never more processes than LaTeX runs');
  });

  test('fewer than two shares: no render processes, the printing process renders as before', () => {
    assert.deepEqual(renderShares({ print: invoices(1, 2, 3), email: [] }, 1), []);
    assert.deepEqual(renderShares({ print: [], email: invoices(7) }, 4), []);
  });
});

describe('[task_server] render_concurrency', () => {
  const load = (value?: string) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-render-conf-'));
    try {
      fs.cpSync(FIXTURE_ROOT, root, { recursive: true });
      fs.writeFileSync(path.join(root, 'config', 'kivitendo.conf'), `[task_server]\n${value === undefined ? '' : `render_concurrency = ${value}\n`}`);
      return loadConfig(root, 'config/kivitendo.conf');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  };

  test('defaults to the number of CPUs; takes a positive whole number', () => {
    assert.equal(load().taskServer.renderConcurrency, os.cpus().length);
    assert.equal(load('3').taskServer.renderConcurrency, 3);
    assert.equal(load('1').taskServer.renderConcurrency, 1);
  });

  test('anything else is an error naming section, key and value', () => {
    for (const bad of ['0', 'two', '1.5', '-2']) {
      assert.throws(() => load(bad), (e: Error) => e instanceof ConfigError && e.message === `Invalid value '${bad}' for [task_server] render_concurrency: expected a positive whole number`);
    }
  });
});

describe('rendering ahead keeps kivitendo\'s order', () => {
  test('three render processes: printer commands, mails and email_journal rows in kivitendo\'s order, the PDFs from the render processes', { timeout: 600_000 }, async () => {
    // Scenario 02 (RE-1001 to three recipients) plus three more configs on its order, each printed
    // and mailed: RE-1002 … RE-1004. The printer command notes each invoice it gets, in turn.
    const more = [100302, 100303, 100304]
      .map((id, k) => `INSERT INTO periodic_invoices_configs (id, oe_id, periodicity, order_value_periodicity, start_date, active, terminated, ar_chart_id, direct_debit,
                          print, printer_id, copies, send_email, email_recipient_address, email_subject, email_body)
                        VALUES (${id}, 100201, 'm', 'p', '2014-03-01', true, false, 14, false, true, 100401, 1, true, 'k${k + 2}@example.com', 'Nr <%invnumber%>', 'b');`)
      .join('\n');
    const sql = `${loadPrintScenario('02-email-contact-and-invoice-mail').sql}
      INSERT INTO printers (id, printer_description, printer_command, template_code)
      VALUES (100401, 'sink', 'echo <%invnumber%> >> "$KIVI_PRINT_DIR/order.txt"; cat > "$KIVI_PRINT_DIR/<%invnumber%>.pdf"', '');
      UPDATE periodic_invoices_configs SET print = true, printer_id = 100401, copies = 1 WHERE id = 100301;
      ${more}`;
    const rig = await createPrintRig({ sql, config: { task_server: { render_concurrency: '3' } } });
    try {
      const r = await rig.run(new Date(2014, 2, 15, 3, 0, 0));
      assert.equal(r.history.status, 'success', `${r.history.error}\n${r.log.slice(-20).join('\n')}`);
      const log = r.log.join('\n');
      assert.match(log, /CreatePeriodicInvoices: 3 render processes made 8 PDF\(s\)/, 'four prints and four mails rendered ahead');
      assert.match(log, /LaTeX: 8 PDF\(s\) rendered ahead, 0 compiled here/, 'the printing process compiled nothing itself');
      assert.deepEqual(fs.readFileSync(path.join(rig.printDir, 'order.txt'), 'utf8').trim().split('\n'), ['RE-1001', 'RE-1002', 'RE-1003', 'RE-1004']);
      for (const n of ['RE-1001', 'RE-1002', 'RE-1003', 'RE-1004']) assert.match(pdfText(path.join(rig.printDir, `${n}.pdf`)), new RegExp(n), `${n}.pdf is ${n}'s invoice`);
      const mails = rig.sink.messages.map((m) => `${m.envelopeTo[0]} ${decodeHeader(m.headers.subject)}`.replace(/ \(.*/, ''));
      assert.deepEqual(mails, [
        'a@example.com Rechnung RE-1001',
        'b@example.com Rechnung RE-1001',
        'max.mustermann@example.com Rechnung RE-1001',
        // one mail per recipient: the config's address, then the customer's invoice_mail
        'k2@example.com Nr RE-1002',
        'a@example.com Nr RE-1002',
        'k3@example.com Nr RE-1003',
        'a@example.com Nr RE-1003',
        'k4@example.com Nr RE-1004',
        'a@example.com Nr RE-1004',
      ]);
      const journal = (await rig.db.query(`SELECT subject, status FROM email_journal ORDER BY id`)).rows;
      assert.deepEqual(journal.map((j) => `${j.status} ${j.subject}`.replace(/ \(.*/, '')), mails.map((m) => `sent ${m.slice(m.indexOf(' ') + 1)}`));
      // Each mail's attachment is its own invoice's PDF, though LaTeX ran in another process.
      const outputs = await normaliseRun(rig);
      const attached = outputs.get('mails.json') as { attachments: { filename: string; pdftotext: string }[] }[];
      assert.equal(attached.length, 9);
      for (const [k, m] of attached.entries()) {
        const n = /RE-\d+/.exec(mails[k])![0];
        assert.equal(m.attachments[0].filename, `Rechnung ${n}.pdf`);
        assert.match(String(outputs.get(m.attachments[0].pdftotext)), new RegExp(n), `the PDF of ${n}'s mail is ${n}'s invoice`);
      }
    } finally {
      await rig.close();
    }
  });
});
