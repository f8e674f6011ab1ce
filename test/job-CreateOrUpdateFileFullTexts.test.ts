// CreateOrUpdateFileFullTexts: files in the Filesystem backend, full texts created/updated/skipped,
// the pdftotext extractor (a stand-in script on PATH), and what happens when it is missing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createInstallation, type Installation } from './harness/installation';
import { runJob } from './harness/jobs';

let inst: Installation;
let binDir: string;
const originalPath = process.env.PATH;
before(async () => {
  inst = await createInstallation({ clients: [{ name: 'A' }, { name: 'B' }] });
  inst.writeConfig({ paths: { document_path: 'documents' } });
  binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-bin-'));
  // Stand-in for poppler's pdftotext: prints the "PDF" file's bytes, fails for files containing FAIL.
  fs.writeFileSync(
    path.join(binDir, 'pdftotext'),
    '#!/bin/sh\n[ "$1" = "-enc" ] && [ "$2" = "UTF-8" ] && [ "$4" = "-" ] || exit 9\nif grep -q FAIL "$3"; then echo "broken pdf" >&2; exit 3; fi\ncat "$3"\n',
    { mode: 0o755 },
  );
});
after(() => {
  process.env.PATH = originalPath;
  fs.rmSync(binDir, { recursive: true, force: true });
  inst.remove();
});

const q = (client: string, sql: string, params: unknown[] = []) => inst.query(client, sql, params);

/** A files row with one version whose content is written where the Filesystem backend keeps it. */
async function addFile(client: string, name: string, mime: string, content: string | Buffer | null, opts: { backend?: string; mtime?: string | null } = {}) {
  const [row] = await q(
    client,
    `INSERT INTO files (object_id, file_name, file_type, mime_type, source, object_type, backend, itime, mtime)
     VALUES (1, $1, 'document', $2, 'uploaded', 'sales_order', $3, '2026-01-01 10:00:00', $4) RETURNING id`,
    [name, mime, opts.backend ?? 'Filesystem', opts.mtime ?? null],
  );
  const id: number = row.id;
  if (content !== null) {
    const clientId = inst.clients[client].id;
    const dir = path.join(inst.root, 'documents', String(clientId), String(id % 1000).padStart(4, '0'), String(id));
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${id}_2`), content);
    await q(client, `INSERT INTO file_versions (guid, file_id, version, file_location, doc_path, backend) VALUES
      (gen_random_uuid()::text, $1, 1, 'x', 'documents', 'Filesystem'), (gen_random_uuid()::text, $1, 2, 'y', 'documents', 'Filesystem')`, [id]);
  }
  return id;
}

async function fullText(client: string, id: number) {
  const r = await q(client, 'SELECT id, full_text, mtime FROM file_full_texts WHERE file_id = $1 ORDER BY id', [id]);
  return r;
}

const NOW = new Date(2026, 2, 10, 3, 20, 0);

test('extracts plain text, HTML and PDF; skips other types and current texts; updates outdated ones', async () => {
  process.env.PATH = `${binDir}:${originalPath}`;
  await q('A', 'UPDATE defaults SET doc_files = true');
  fs.mkdirSync(path.join(inst.root, 'documents'), { recursive: true });
  const txt = await addFile('A', 'a.txt', 'text/plain', 'Hallo  Welt\r\nhallo Welt\tCafe\u0301 und\u00a0mehr Welt\n');
  const html = await addFile('A', 'b.html', 'text/html', '<html><head><title>Titel</title><style>p{}</style></head><body><!-- secret --><p>A &amp; B &lt;x&gt; &euro;</p><p>A</p></body></html>');
  const pdf = await addFile('A', 'c.pdf', 'application/pdf', 'Seite eins\fSeite zwei');
  const badPdf = await addFile('A', 'd.pdf', 'application/pdf', 'FAIL');
  const png = await addFile('A', 'e.png', 'image/png', 'PNG');
  const current = await addFile('A', 'f.txt', 'text/plain', 'new content', { mtime: '2026-02-01 00:00:00' });
  await q('A', `INSERT INTO file_full_texts (file_id, full_text, itime, mtime) VALUES ($1, 'kept', '2026-01-01 00:00:00', '2026-02-01 00:00:00')`, [current]);
  const outdated = await addFile('A', 'g.txt', 'text/plain', 'fresh text', { mtime: '2025-12-15 00:00:00' });
  await q('A', `INSERT INTO file_full_texts (file_id, full_text, itime) VALUES ($1, 'stale', '2025-12-01 00:00:00')`, [outdated]);
  const noVersion = await addFile('A', 'h.txt', 'text/plain', null);

  const r = await runJob(inst, 'A', { packageName: 'CreateOrUpdateFileFullTexts', now: NOW });
  assert.equal(r.history.status, 'success', r.history.error ?? '');
  assert.equal(r.history.result, 'ok');

  assert.equal((await fullText('A', txt))[0].full_text, 'Hallo Welt hallo Caf\u00e9 und mehr');
  assert.equal((await fullText('A', html))[0].full_text, 'Titel p{} A & B <x> &euro;');
  assert.equal((await fullText('A', pdf))[0].full_text, 'Seite eins zwei');
  assert.equal((await fullText('A', badPdf))[0].full_text, '');
  assert.ok(r.log.some((l) => l.includes(`_pdf_to_text failed for`) && l.includes(`: 3: broken pdf`)), r.log.join('\n'));
  assert.deepEqual(await fullText('A', png), []);
  assert.equal((await fullText('A', current))[0].full_text, 'kept');
  const upd = await fullText('A', outdated);
  assert.equal(upd.length, 1);
  assert.equal(upd[0].full_text, 'fresh text');
  assert.ok(upd[0].mtime, 'the update goes through the mtime trigger');
  assert.deepEqual(await fullText('A', noVersion), []);
  assert.ok(r.log.some((l) => l.includes(`CreateOrUpdateFileFullTexts::run: get_file failed: Could not find a file version for file with id ${noVersion}`)), r.log.join('\n'));

  // A second run finds nothing to do: the texts are as new as the files.
  const before = await q('A', 'SELECT id, full_text, mtime FROM file_full_texts ORDER BY id');
  const r2 = await runJob(inst, 'A', { packageName: 'CreateOrUpdateFileFullTexts', now: NOW });
  assert.equal(r2.history.result, 'ok');
  assert.deepEqual(await q('A', 'SELECT id, full_text, mtime FROM file_full_texts ORDER BY id'), before);
});

test('missing pdftotext: the job names the program and the files, and still handles the others', async () => {
  const emptyBin = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-nobin-'));
  process.env.PATH = emptyBin;
  try {
    await q('B', 'UPDATE defaults SET doc_files = true');
    const pdf1 = await addFile('B', 'x.pdf', 'application/pdf', 'eins');
    const txt = await addFile('B', 'y.txt', 'text/plain', 'zwei');
    const pdf2 = await addFile('B', 'z.pdf', 'application/pdf', 'drei');
    const r = await runJob(inst, 'B', { packageName: 'CreateOrUpdateFileFullTexts', now: NOW });
    assert.equal(r.history.status, 'failure');
    assert.equal(
      r.history.error,
      `CreateOrUpdateFileFullTexts: external program 'pdftotext' not found (install poppler-utils); no full text for file ${pdf1} 'x.pdf', file ${pdf2} 'z.pdf'`,
    );
    assert.equal((await fullText('B', txt))[0].full_text, 'zwei');
    assert.deepEqual(await fullText('B', pdf1), []);
  } finally {
    process.env.PATH = originalPath;
    fs.rmSync(emptyBin, { recursive: true, force: true });
    await q('B', 'DELETE FROM files');
  }
});

test('backends: Filesystem not enabled and Webdav not enabled are warnings; enabled Webdav is reported as not supported', async () => {
  process.env.PATH = `${binDir}:${originalPath}`;
  await q('B', 'UPDATE defaults SET doc_files = false, doc_webdav = false');
  const fsFile = await addFile('B', 'p.txt', 'text/plain', 'text');
  const dav = await addFile('B', 'q.txt', 'text/plain', null, { backend: 'Webdav' });
  const r = await runJob(inst, 'B', { packageName: 'CreateOrUpdateFileFullTexts', now: NOW });
  assert.equal(r.history.status, 'success', r.history.error ?? '');
  assert.ok(r.log.some((l) => l.includes('get_file failed: Dateimanagement-Subsystem "Filesystem" nicht aktiviert')), r.log.join('\n'));
  assert.ok(r.log.some((l) => l.includes('get_file failed: Dateimanagement-Subsystem "Webdav" nicht aktiviert')), r.log.join('\n'));
  assert.deepEqual(await fullText('B', fsFile), []);

  await q('B', 'UPDATE defaults SET doc_files = true, doc_webdav = true');
  const r2 = await runJob(inst, 'B', { packageName: 'CreateOrUpdateFileFullTexts', now: NOW });
  assert.equal(r2.history.status, 'failure');
  assert.match(r2.history.error!, new RegExp(`^CreateOrUpdateFileFullTexts: file storage backend Webdav is not supported by kivitendo-task-server \\S+; no full text for file ${dav} 'q.txt'$`));
  assert.equal((await fullText('B', fsFile))[0].full_text, 'text');
});

test('data keys are ignored with a warning, as kivitendo ignores them', async () => {
  const r = await runJob(inst, 'B', { packageName: 'CreateOrUpdateFileFullTexts', now: NOW, data: { mime_types: ['text/plain'] } });
  assert.ok(r.log.includes(`WARN BackgroundJob ID ${r.job.id}: CreateOrUpdateFileFullTexts: unknown key 'mime_types' in data ignored (kivitendo's CreateOrUpdateFileFullTexts does not read it either)`), r.log.join('\n'));
  assert.doesNotMatch(r.history.error ?? '', /mime_types/, 'the job ran');
});
