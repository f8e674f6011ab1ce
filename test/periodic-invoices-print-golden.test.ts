// The golden print/e-mail scenarios (test/fixtures/golden-print, captured from kivitendo's own
// CreatePeriodicInvoices): native posting, then kivitendo's print pipeline in one Perl process;
// mails (headers, decoded bodies, attachment names, PDF text, Factur-X XML), what reached the
// printer, the kept LaTeX sources and the rows must equal kivitendo's.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compareWithGolden, createPrintRig, loadPrintScenario, normaliseRun, printScenarios } from './harness/goldenPrint';

/** The first string value deep inside changed, or an entry added if there is none. */
function tamperJson(value: unknown): unknown {
  const text = JSON.stringify(value);
  const changed = text.replace(/"[^"]*":"[^"]+"/, (kv) => kv.slice(0, -1) + '#"');
  if (changed !== text) return JSON.parse(changed);
  return Array.isArray(value) ? [...value, '#'] : { ...(value as object), '#': '#' };
}

describe('CreatePeriodicInvoices print/e-mail golden scenarios', () => {
  const names = printScenarios();
  test('the golden print scenarios are present', () => {
    assert.ok(names.length >= 3, `found ${names.length} scenarios`);
  });
  for (const name of names) {
    test(name, async () => {
      const s = loadPrintScenario(name);
      const rig = await createPrintRig({ sql: s.sql, templateSet: s.templateSet, smtpReject: s.smtpReject, config: s.confOverride });
      try {
        const r = await rig.run(s.now);
        assert.equal(r.history.status, 'success', `job error: ${r.history.error}\n${r.log.slice(-20).join('\n')}`);
        const outputs = await normaliseRun(rig);
        const diffs = compareWithGolden(s.dir, outputs);
        assert.deepEqual(diffs, [], `${name}: ${diffs.length} difference(s):\n${diffs.slice(0, 10).join('\n')}`);
        // Every golden file is really compared: one changed output is one difference.
        for (const [file, value] of outputs) {
          const tampered = new Map(outputs);
          tampered.set(file, typeof value === 'string' ? value.replace(/\S/, '#') : tamperJson(value));
          assert.equal(compareWithGolden(s.dir, tampered).length, 1, `a change in ${file} goes unnoticed`);
        }
      } finally {
        await rig.close();
      }
    });
  }
});
