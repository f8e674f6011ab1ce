// The golden print/e-mail scenarios of shared/golden/periodic-invoices-print (copied to
// test/fixtures/golden-print): what kivitendo's own CreatePeriodicInvoices printed and e-mailed.
// A run here = the scenario's SQL in a fresh client DB of a kivitendo installation on kivitendo's
// real tree, the scenario's template set as templates/kivi_c1, an SMTP sink, a printer folder
// ($KIVI_PRINT_DIR), and CreatePeriodicInvoices through the real runner at the scenario's time.
// The outputs are normalised by the rules of the scenarios' README (the same as its
// tools/compare.py, reimplemented here so CI needs no python) and compared with the golden files.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from 'pg';
import { connect, createClientDb, getPostgres } from './postgres';
import { UNITTESTS_SETTINGS } from './golden';
import { runJob, type RunJobResult } from './jobs';
import { createKivitendoInstallation, KIVITENDO_SRC, type KivitendoInstallation } from './kivitendo';
import { startSmtpSink, decodeQuotedPrintable, type SmtpSink } from './smtpSink';

export const PRINT_GOLDEN_DIR = path.join(__dirname, '..', 'fixtures', 'golden-print');

/** The task-server user of the scenarios: kivitendo's unit-test user as the rig set it up. */
export const PRINT_USER_SETTINGS = { ...UNITTESTS_SETTINGS, email: 'task@example.invalid' };

export function printScenarios(): string[] {
  if (!fs.existsSync(PRINT_GOLDEN_DIR)) return [];
  return fs.readdirSync(PRINT_GOLDEN_DIR).filter((d) => fs.existsSync(path.join(PRINT_GOLDEN_DIR, d, 'input.sql'))).sort();
}

export interface PrintScenario {
  dir: string;
  sql: string;
  /** FAKE of run.env as local time (the suite runs in TZ Europe/Berlin). */
  now: Date;
  templateSet: string;
  smtpReject: string[];
  confOverride: Record<string, Record<string, string>>;
}

/** KEY='value' lines of run.env. */
function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(?:'([^']*)'|"([^"]*)"|(\S*))\s*$/.exec(line);
    if (m) env[m[1]] = m[2] ?? m[3] ?? m[4] ?? '';
  }
  return env;
}

function parseIni(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1].trim();
      out[section] ??= {};
      continue;
    }
    const i = line.indexOf('=');
    if (i > 0 && section) out[section][line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

export function loadPrintScenario(name: string): PrintScenario {
  const dir = path.join(PRINT_GOLDEN_DIR, name);
  const env = parseEnv(fs.readFileSync(path.join(dir, 'run.env'), 'utf8'));
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(env.FAKE ?? '');
  if (!m) throw new Error(`${name}/run.env: FAKE is not 'YYYY-MM-DD HH:MM:SS': ${env.FAKE}`);
  const override = path.join(dir, 'kivitendo.conf.override');
  return {
    dir,
    sql: fs.readFileSync(path.join(dir, 'input.sql'), 'utf8'),
    now: new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]),
    templateSet: env.TEMPLATE_SET || 'Standard',
    smtpReject: (env.SMTP_REJECT ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    confOverride: fs.existsSync(override) ? parseIni(fs.readFileSync(override, 'utf8')) : {},
  };
}

/** A template set of kivitendo's tree; "Standard" is a git symlink that may be checked out as a file naming its target. */
export function templateSetDir(name: string): string {
  return templateSetDirOf(KIVITENDO_SRC, name);
}

/** A print template set of a kivitendo tree (a set named in a file, as Standard → marei, is followed). */
export function templateSetDirOf(src: string, name: string): string {
  let dir = path.join(src, 'templates', 'print', name);
  if (fs.existsSync(dir) && fs.statSync(dir).isFile()) dir = path.join(src, 'templates', 'print', fs.readFileSync(dir, 'utf8').trim());
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`kivitendo template set ${name} not found under ${src}/templates/print`);
  return dir;
}

export interface PrintRig {
  inst: KivitendoInstallation;
  db: Client;
  sink: SmtpSink;
  printDir: string;
  /** Runs CreatePeriodicInvoices (job row 2) once, with $KIVI_PRINT_DIR set for the printer commands. */
  run(now: Date): Promise<RunJobResult>;
  close(): Promise<void>;
}

export interface PrintRigOptions {
  sql: string;
  templateSet?: string;
  smtpReject?: string[];
  config?: Record<string, Record<string, string>>;
  /** Changes to the installation (e.g. a broken template) before the run. */
  prepare?: (inst: KivitendoInstallation) => void;
}

/** A kivitendo installation with one client 'G' holding `sql`, the rig's config and an SMTP sink. */
export async function createPrintRig(opts: PrintRigOptions): Promise<PrintRig> {
  const pg = await getPostgres();
  const dbname = await createClientDb(pg);
  const db = await connect(pg, dbname);
  await db.query(opts.sql);
  const sink = await startSmtpSink({ rejectRecipients: opts.smtpReject, dataReply: 'OK saved' });
  const config: Record<string, Record<string, string>> = {
    mail_delivery: { method: 'smtp', host: sink.host, port: String(sink.port), security: 'none' },
    debug: { keep_temp_files: '1' },
    applications: { latex: 'latexmk --pdflatex' },
  };
  for (const [s, keys] of Object.entries(opts.config ?? {})) config[s] = { ...(config[s] ?? {}), ...keys };
  const inst = await createKivitendoInstallation({
    users: [{ login: 'unittests', settings: PRINT_USER_SETTINGS }],
    clients: [{ name: 'G', dbname, skipEmployee: true }],
    config,
  });
  // defaults.templates of the scenarios is templates/kivi_c1.
  fs.cpSync(templateSetDir(opts.templateSet ?? 'Standard'), path.join(inst.root, 'templates', 'kivi_c1'), { recursive: true, dereference: true });
  chmodWritable(path.join(inst.root, 'templates', 'kivi_c1'));
  opts.prepare?.(inst);
  const printDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-print-'));
  return {
    inst,
    db,
    sink,
    printDir,
    async run(now) {
      const before = process.env.KIVI_PRINT_DIR;
      process.env.KIVI_PRINT_DIR = printDir;
      try {
        return await runJob(inst, 'G', { jobId: 2, now });
      } finally {
        if (before === undefined) delete process.env.KIVI_PRINT_DIR;
        else process.env.KIVI_PRINT_DIR = before;
      }
    },
    async close() {
      await db.end().catch(() => undefined);
      await sink.close();
      fs.rmSync(printDir, { recursive: true, force: true });
      inst.remove();
    },
  };
}

function chmodWritable(dir: string) {
  fs.chmodSync(dir, 0o755);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) chmodWritable(p);
    else fs.chmodSync(p, 0o644);
  }
}

// ------------------------------------------------------------------------------------ MIME

interface MimePart {
  headers: [string, string][];
  body: Buffer;
  parts?: MimePart[];
}

function header(p: MimePart, name: string): string | undefined {
  return p.headers.find(([h]) => h.toLowerCase() === name.toLowerCase())?.[1];
}

function splitHead(raw: Buffer): { head: string; body: Buffer } {
  const text = raw.toString('latin1');
  const m = /\r?\n\r?\n/.exec(text);
  if (!m) return { head: text, body: Buffer.alloc(0) };
  return { head: text.slice(0, m.index), body: raw.subarray(m.index + m[0].length) };
}

/** Header parameters (after the first ';'), keys lower-cased, quotes removed. */
function headerParams(value: string | undefined): [string, string][] {
  if (!value) return [];
  const out: [string, string][] = [];
  const re = /;\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (let m; (m = re.exec(value)); ) {
    let v = m[2].trim();
    if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    out.push([m[1].toLowerCase(), v]);
  }
  return out;
}

function contentType(p: MimePart): string {
  const v = header(p, 'Content-Type');
  const t = v?.split(';')[0].trim().toLowerCase();
  return t && t.includes('/') ? t : 'text/plain';
}

export function parseMime(raw: Buffer): MimePart {
  const { head, body } = splitHead(raw);
  const headers: [string, string][] = [];
  for (const line of head.split(/\r?\n(?![ \t])/)) {
    const i = line.indexOf(':');
    if (i > 0) headers.push([line.slice(0, i), Buffer.from(line.slice(i + 1).trim(), 'latin1').toString('utf8')]);
  }
  const part: MimePart = { headers, body };
  const ct = contentType(part);
  if (ct.startsWith('multipart/')) {
    const boundary = headerParams(header(part, 'Content-Type')).find(([k]) => k === 'boundary')?.[1];
    if (boundary) {
      const text = body.toString('latin1');
      const pieces = text.split(new RegExp(`(?:^|\\r?\\n)--${boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:--)?[ \\t]*(?:\\r?\\n|$)`));
      part.parts = pieces.slice(1, -1).map((s) => parseMime(Buffer.from(s, 'latin1')));
    }
  }
  return part;
}

function decodedBody(p: MimePart): Buffer {
  const cte = (header(p, 'Content-Transfer-Encoding') ?? '').trim().toLowerCase();
  if (cte === 'base64') return Buffer.from(p.body.toString('latin1').replace(/\s+/g, ''), 'base64');
  if (cte === 'quoted-printable') return decodeQuotedPrintable(p.body.toString('latin1'));
  return p.body;
}

/** Python's make_header(decode_header(v)) for what kivitendo writes: RFC 2047 words decoded, blanks between adjacent words dropped. */
export function decodeHeader(v: string | undefined): string | null {
  if (v === undefined) return null;
  v = v.replace(/\r?\n[ \t]+/g, ' ');
  const re = /=\?([^?]+)\?([bBqQ])\?([^?]*)\?=/g;
  let out = '';
  let last = 0;
  let prevWord = false;
  for (let m; (m = re.exec(v)); ) {
    const between = v.slice(last, m.index);
    if (!(prevWord && /^\s*$/.test(between))) out += between;
    const bytes = m[2].toLowerCase() === 'b' ? Buffer.from(m[3], 'base64') : decodeQuotedPrintable(m[3].replace(/_/g, ' '));
    out += bytes.toString(/^utf-?8$/i.test(m[1]) ? 'utf8' : 'latin1');
    last = m.index + m[0].length;
    prevWord = true;
  }
  return out + v.slice(last);
}

const VOLATILE_HEADERS = new Set(['date', 'message-id', 'x-rig-envelope-from', 'x-rig-envelope-to', 'content-type', 'content-transfer-encoding', 'content-disposition', 'mime-version']);
const ADDRESS_HEADERS = ['From', 'To', 'Cc', 'Bcc', 'Reply-To', 'Subject'];

/** Perl error locations: " at /abs/path/SL/X.pm line N" → " at SL/X.pm line N". */
export function stripPerlPaths(text: string): string {
  return text.replace(/(?<= at )\S*?\/(SL\/[\w/]+\.pm)(?= line )/g, '$1');
}

function partStructure(p: MimePart): Record<string, unknown> {
  const d: Record<string, unknown> = { content_type: contentType(p) };
  const params = headerParams(header(p, 'Content-Type')).filter(([k]) => k !== 'boundary');
  if (params.length) d.params = Object.fromEntries(params.map(([k, v]) => [k, decodeHeader(v)]));
  const cte = header(p, 'Content-Transfer-Encoding');
  if (cte) d.transfer_encoding = cte.trim().toLowerCase();
  const cd = header(p, 'Content-Disposition');
  if (cd) {
    d.disposition = cd.split(';')[0].trim().toLowerCase();
    const fn = filename(p);
    if (fn !== undefined) d.filename = decodeHeader(fn);
  }
  if (p.parts) d.parts = p.parts.map(partStructure);
  return d;
}

function filename(p: MimePart): string | undefined {
  return headerParams(header(p, 'Content-Disposition')).find(([k]) => k === 'filename')?.[1] ?? headerParams(header(p, 'Content-Type')).find(([k]) => k === 'name')?.[1];
}

function leaves(p: MimePart): MimePart[] {
  return p.parts ? p.parts.flatMap(leaves) : [p];
}

// ------------------------------------------------------------------------------------ PDF

function tool(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new Error(`${cmd} is not installed (Debian package poppler-utils, in kivitendo's DEBIAN-PACKAGES.txt)`);
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}

export function pdfText(file: string): string {
  return tool('pdftotext', ['-layout', file, '-']);
}

function pdfEmbedded(file: string, tmp: string): { names: string[]; xml?: string } {
  const out = tool('pdfdetach', ['-list', file]);
  const names = out.split('\n').slice(1).map((l) => l.trim()).filter(Boolean).map((l) => l.replace(/^\d+:\s*/, ''));
  const i = names.findIndex((n) => n.toLowerCase().endsWith('.xml'));
  if (i < 0) return { names };
  const dst = path.join(tmp, `emb-${Date.now()}-${i}.xml`);
  tool('pdfdetach', ['-save', String(i + 1), '-o', dst, file]);
  return { names, xml: fs.readFileSync(dst, 'utf8') };
}

/**
 * A canonical form of an XML text, so that kivitendo's raw XML and the golden file (pretty-printed
 * by Python's minidom) compare equal when their elements, attributes and texts are: declaration and
 * blank text nodes dropped, entities decoded, <a/> as <a></a>.
 */
export function canonicalXml(xml: string): string {
  const decode = (s: string) => s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e as 'lt']);
  const out: string[] = [];
  const re = /<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<(\/?)([^\s>/]+)((?:\s+[^\s=>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/g;
  for (let m; (m = re.exec(xml)); ) {
    if (m[5] !== undefined) {
      if (m[5].trim()) out.push(decode(m[5]));
    } else if (m[2]) {
      const attrs = [...(m[3] ?? '').matchAll(/([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)].map((a) => ` ${a[1]}="${decode(a[2] ?? a[3])}"`).join('');
      out.push(m[1] ? `</${m[2]}>` : `<${m[2]}${attrs}>`);
      if (m[4]) out.push(`</${m[2]}>`);
    }
  }
  return out.join('\n');
}

// ------------------------------------------------------------------------------------ TeX

/** Perl's File::Temp puts kivitendo's temporary files (the ZUGFeRD XML) into TMPDIR, /tmp by default. */
const TEMP_FILE_IN_TEX = new RegExp(
  `\\{(?:${[...new Set(['/tmp', os.tmpdir(), process.env.TMPDIR].filter((d): d is string => !!d).map((d) => d.replace(/\/+$/, '')))]
    .map((d) => d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('|')})/[\\w.-]+\\}`,
  'g',
);

export function normaliseTex(text: string): string {
  return text
    .replace(/\/[^\s{}]*\/users\/kivitendo-print[-\w]*/g, '<TMPDIR>')
    .replace(/kivitendo-print-?\d{14}-\w{6}/g, 'kivitendo-print-<STAMP>')
    .replace(TEMP_FILE_IN_TEX, '{<TMPFILE>}');
}

/** The LaTeX sources kivitendo kept ([debug] keep_temp_files) under ROOT/users/kivitendo-print*. */
export function keptTexFiles(root: string): string[] {
  const users = path.join(root, 'users');
  const out: string[] = [];
  for (const d of fs.readdirSync(users).sort()) {
    const full = path.join(users, d);
    if (!d.startsWith('kivitendo-print')) continue;
    if (fs.statSync(full).isDirectory()) {
      for (const f of fs.readdirSync(full).sort()) if (f.endsWith('.tex')) out.push(path.join(full, f));
    } else if (d.endsWith('.tex')) {
      out.push(full);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------ rows

async function tableRows(db: Client, table: string, exclude: string[], where = 'true', order = 'id'): Promise<Record<string, unknown>[]> {
  const cols = await db.query<{ column_name: string; data_type: string }>(
    `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  const use = cols.rows.filter((c) => !exclude.includes(c.column_name));
  const sel = use.map((c) => `"${c.column_name}"::text AS "${c.column_name}"`).join(', ');
  await db.query(`SET DateStyle TO ISO; SET extra_float_digits TO 1`);
  const r = await db.query(`SELECT ${sel} FROM ${table} WHERE ${where} ORDER BY ${order}`);
  return r.rows.map((row) => {
    const d: Record<string, unknown> = {};
    for (const c of use) {
      const v = row[c.column_name] as string | null;
      d[c.column_name] = v === null ? null : ['integer', 'smallint', 'bigint'].includes(c.data_type) ? Number(v) : c.data_type === 'boolean' ? v === 'true' : v;
    }
    return d;
  });
}

export async function normaliseRows(db: Client): Promise<Record<string, Record<string, unknown>[]>> {
  const histories = await tableRows(db, 'background_job_histories', ['id', 'run_at', 'data'], `package_name = 'CreatePeriodicInvoices'`);
  for (const r of histories) if (r.error) r.error = stripPerlPaths(r.error as string);
  const ej = await tableRows(db, 'email_journal', ['itime', 'mtime', 'sent_on']);
  for (const r of ej) {
    r.extended_status = stripPerlPaths((r.extended_status as string) || '');
    r.headers = ((r.headers as string) || '').replace(/(Message-ID: )<[^>\r\n]*>/g, '$1<MESSAGE-ID>');
  }
  const ar = await tableRows(db, 'ar', ['itime', 'mtime']);
  return {
    background_job_histories: histories,
    email_journal: ej,
    email_journal_attachments: await tableRows(db, 'email_journal_attachments', ['itime', 'mtime', 'content'], 'true', 'email_journal_id, position, id'),
    record_links_email_journal: await tableRows(db, 'record_links', ['id', 'itime'], `from_table = 'email_journal' OR to_table = 'email_journal'`, 'from_table, from_id, to_table, to_id'),
    files: await tableRows(db, 'files', ['itime', 'mtime', 'id']),
    ar: ar.map((r) => ({ id: r.id, invnumber: r.invnumber, language_id: r.language_id, netamount: r.netamount, amount: r.amount, transdate: r.transdate })),
  };
}

// ------------------------------------------------------------------------------------ a run's outputs

/** A run normalised into the golden layout: file name (as in the scenario folder) → content. */
export type Outputs = Map<string, string | unknown>;

export async function normaliseRun(rig: PrintRig): Promise<Outputs> {
  const out: Outputs = new Map();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-norm-'));
  try {
    const rows = await normaliseRows(rig.db);
    out.set('rows.json', rows);
    const mails = rig.sink.messages.map((msg, mi) => {
      const m = mi + 1;
      const top = parseMime(Buffer.from(msg.raw, 'utf8'));
      const rec: Record<string, unknown> = {
        envelope_from: msg.envelopeFrom,
        envelope_to: msg.envelopeTo,
        headers: Object.fromEntries(ADDRESS_HEADERS.map((h) => [h, decodeHeader(header(top, h))])),
        other_headers: Object.fromEntries(
          top.headers.filter(([h]) => !VOLATILE_HEADERS.has(h.toLowerCase()) && !ADDRESS_HEADERS.includes(h)).map(([h, v]) => [h, decodeHeader(v)]),
        ),
        mime_version: header(top, 'MIME-Version') ?? null,
        structure: partStructure(top),
      };
      const bodies: unknown[] = [];
      const attachments: unknown[] = [];
      let n = 0;
      for (const p of leaves(top)) {
        const disp = (header(p, 'Content-Disposition') ?? '').split(';')[0].trim().toLowerCase();
        const ctype = contentType(p);
        const payload = decodedBody(p);
        if (disp !== 'attachment' && ctype.startsWith('text/')) {
          bodies.push({ content_type: ctype, text: stripPerlPaths(payload.toString('utf8')) });
          continue;
        }
        n += 1;
        const att: Record<string, unknown> = { filename: decodeHeader(filename(p)), content_type: ctype };
        if (ctype === 'application/pdf' || payload.subarray(0, 5).toString('latin1') === '%PDF-') {
          const pdf = path.join(tmp, `att-${m}-${n}.pdf`);
          fs.writeFileSync(pdf, payload);
          const txt = `attachment-${m}-${n}.txt`;
          out.set(txt, pdfText(pdf));
          att.pdftotext = txt;
          const emb = pdfEmbedded(pdf, tmp);
          att.pdf_embedded_files = emb.names;
          if (emb.xml !== undefined) {
            const x = `attachment-${m}-${n}.factur-x.xml`;
            out.set(x, emb.xml);
            att.embedded_xml = x;
          }
        } else {
          att.size = payload.length;
        }
        attachments.push(att);
      }
      rec.bodies = bodies;
      rec.attachments = attachments;
      return rec;
    });
    out.set('mails.json', mails);

    // printed: one file per copy, <invnumber>-<pid>.pdf
    const groups = new Map<string, string[]>();
    for (const f of fs.readdirSync(rig.printDir).sort()) {
      const inv = f.includes('-') ? f.slice(0, f.lastIndexOf('-')) : f;
      groups.set(inv, [...(groups.get(inv) ?? []), path.join(rig.printDir, f)]);
    }
    const index: Record<string, Record<string, unknown>> = {};
    for (const [inv, files] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const texts: string[] = [];
      let embedded: string[] = [];
      for (const f of files) {
        const isPdf = fs.readFileSync(f).subarray(0, 5).toString('latin1') === '%PDF-';
        texts.push(isPdf ? pdfText(f) : `<not a PDF: ${fs.statSync(f).size} bytes>`);
        if (isPdf && embedded.length === 0) embedded = pdfEmbedded(f, tmp).names;
      }
      out.set(`printed/${inv}.txt`, texts[0]);
      index[inv] = { copies: files.length, copies_identical_text: texts.every((t) => t === texts[0]), pdftotext: `${inv}.txt`, pdf_embedded_files: embedded };
    }
    const invnumbers = rows.ar.map((r) => r.invnumber as string);
    const unmatched: [string, string][] = [];
    for (const f of keptTexFiles(rig.inst.root)) {
      const t = fs.readFileSync(f, 'utf8');
      if (!t.trim()) continue;
      const media = /\\newcommand\{\\lxmedia\}\s*\{(\w*)\}/.exec(t)?.[1] ?? '?';
      const sub = media === 'printer' ? 'printed' : 'mail-tex';
      const hits = invnumbers.filter((i) => new RegExp(`(?<![\\w-])${i.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w-])`).test(t));
      if (hits.length !== 1) {
        unmatched.push([sub, normaliseTex(t)]);
        continue;
      }
      out.set(`${sub}/${hits[0]}.tex`, normaliseTex(t));
      if (media === 'printer') (index[hits[0]] ??= {}).tex = `${hits[0]}.tex`;
    }
    unmatched.sort(([a, x], [b, y]) => (a + x < b + y ? -1 : 1)).forEach(([sub, t], i) => out.set(`${sub}/unmatched-${i + 1}.tex`, t));
    out.set('printed/index.json', index);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

// ------------------------------------------------------------------------------------ compare

function goldenFiles(dir: string): string[] {
  const names = ['mails.json', 'rows.json', ...fs.readdirSync(dir).filter((f) => /^attachment-\d+-\d+\./.test(f)).sort()];
  for (const sub of ['printed', 'mail-tex']) {
    if (fs.existsSync(path.join(dir, sub))) names.push(...fs.readdirSync(path.join(dir, sub)).sort().map((f) => `${sub}/${f}`));
  }
  return names;
}

function firstJsonDiff(want: unknown, got: unknown, at: string): string | undefined {
  const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  if (kind(want) !== kind(got)) return `${at}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`;
  if (Array.isArray(want)) {
    const g = got as unknown[];
    for (let i = 0; i < Math.min(want.length, g.length); i++) {
      const d = firstJsonDiff(want[i], g[i], `${at}[${i}]`);
      if (d) return d;
    }
    return want.length !== g.length ? `${at}: ${g.length} entries, expected ${want.length}` : undefined;
  }
  if (want && typeof want === 'object') {
    const w = want as Record<string, unknown>;
    const g = got as Record<string, unknown>;
    for (const k of [...Object.keys(w), ...Object.keys(g).filter((k) => !(k in w))]) {
      if (!(k in g)) return `${at}/${k}: missing in the run (expected ${JSON.stringify(w[k])})`;
      if (!(k in w)) return `${at}/${k}: not expected (got ${JSON.stringify(g[k])})`;
      const d = firstJsonDiff(w[k], g[k], `${at}/${k}`);
      if (d) return d;
    }
    return undefined;
  }
  return want === got ? undefined : `${at}:\n  got      ${JSON.stringify(got)}\n  expected ${JSON.stringify(want)}`;
}

function firstTextDiff(want: string, got: string): string {
  const w = want.split('\n');
  const g = got.split('\n');
  for (let i = 0; i < Math.max(w.length, g.length); i++) {
    if (w[i] !== g[i]) return `line ${i + 1}:\n  expected ${JSON.stringify(w[i] ?? '<end>')}\n  got      ${JSON.stringify(g[i] ?? '<end>')}`;
  }
  return 'equal lines, different ends';
}

/** Perl's " at FILE line N." in a history error, for comparing history errors loosely. */
const looseError = (s: unknown) => (typeof s === 'string' ? s.replace(/ at \S+ line \d+\.?/g, ' at <FILE> line <N>.') : s);

/** Every difference between a run's outputs and the scenario's golden files (empty = equal). */
export function compareWithGolden(dir: string, got: Outputs): string[] {
  const diffs: string[] = [];
  for (const name of goldenFiles(dir)) {
    if (!got.has(name)) {
      diffs.push(`${name}: missing in the run`);
      continue;
    }
    const wantText = fs.readFileSync(path.join(dir, name), 'utf8');
    if (name.endsWith('.json')) {
      const want = JSON.parse(wantText) as Record<string, unknown>;
      const run = JSON.parse(JSON.stringify(got.get(name))) as Record<string, unknown>;
      if (name === 'rows.json') {
        for (const r of [...(want.background_job_histories as Record<string, unknown>[]), ...(run.background_job_histories as Record<string, unknown>[])]) r.error = looseError(r.error);
      }
      const d = firstJsonDiff(want, run, name);
      if (d) diffs.push(d);
    } else if (name.endsWith('.xml')) {
      if (canonicalXml(wantText) !== canonicalXml(got.get(name) as string)) diffs.push(`${name} differs: ${firstTextDiff(canonicalXml(wantText), canonicalXml(got.get(name) as string))}`);
    } else if (wantText !== got.get(name)) {
      diffs.push(`${name} differs: ${firstTextDiff(wantText, got.get(name) as string)}`);
    }
  }
  const golden = new Set(goldenFiles(dir));
  for (const name of got.keys()) if (!golden.has(name)) diffs.push(`${name}: produced by the run but not in the golden scenario`);
  return diffs;
}
