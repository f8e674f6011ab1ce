// Text extraction for CreateOrUpdateFileFullTexts: PDF through poppler's pdftotext, HTML with the
// tags stripped, plain text as is; then the same normalisation for all three (spec jobs.md).
import { spawn } from 'node:child_process';
import fs from 'node:fs';

/** The external program an extractor needs is not installed (not on PATH). */
export class MissingProgramError extends Error {
  constructor(readonly program: string, readonly pkg: string) {
    super(`external program '${program}' not found (install ${pkg})`);
    this.name = 'MissingProgramError';
  }
}

export interface ExtractEnv {
  warn(msg: string): void;
  signal?: AbortSignal;
}

export type Extractor = (file: string, env: ExtractEnv) => Promise<string>;

export const EXTRACTOR_BY_MIME_TYPE: Record<string, Extractor> = {
  'application/pdf': pdfToText,
  'text/html': async (file) => normalise(stripHtml(decodeUtf8(fs.readFileSync(file)))),
  'text/plain': async (file) => normalise(decodeUtf8(fs.readFileSync(file))),
};

async function pdfToText(file: string, env: ExtractEnv): Promise<string> {
  const { code, stdout, stderr } = await runProgram('pdftotext', ['-enc', 'UTF-8', file, '-'], env.signal);
  if (code !== 0) {
    // kivitendo logs and stores an empty text, so the file is not retried until it changes.
    env.warn(`CreateOrUpdateFileFullTexts::_pdf_to_text failed for '${file}': ${code}: ${stderr}`);
    return '';
  }
  return normalise(decodeUtf8(stdout));
}

function runProgram(program: string, args: string[], signal?: AbortSignal): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], signal });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(new MissingProgramError(program, 'poppler-utils'));
      else reject(e);
    });
    child.on('close', (code, sig) => {
      resolve({ code: code ?? (sig ? 128 : 1), stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** Malformed bytes become U+FFFD (Encode's default check for 'utf-8-strict'), never an exception. */
export function decodeUtf8(bytes: Buffer): string {
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
}

// Perl's \p{WSpace}: White_Space property.
const WSPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/gu;

/** Whitespace collapsed, NFC, each word kept at its first occurrence only. */
export function normalise(text: string): string {
  const collapsed = text.replace(/\r/g, ' ').replace(WSPACE, ' ').normalize('NFC');
  const seen = new Set<string>();
  const words: string[] = [];
  for (const w of collapsed.split(' ')) {
    if (w === '' || seen.has(w)) continue;
    seen.add(w);
    words.push(w);
  }
  return words.join(' ');
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', nbsp: ' ' };

/**
 * The text content of an HTML document as kivitendo's HTML strip helper yields it: the text
 * segments between markup, each preceded by a space; comments, declarations and tags dropped;
 * script/style bodies count as text; only &lt; &gt; &amp; &nbsp; are decoded.
 */
export function stripHtml(html: string): string {
  let text = '';
  let i = 0;
  const n = html.length;
  let segment = '';
  const flush = () => {
    if (segment !== '') text += ' ' + segment;
    segment = '';
  };
  while (i < n) {
    const c = html[i];
    if (c !== '<') {
      segment += c;
      i += 1;
      continue;
    }
    if (html.startsWith('<!--', i)) {
      flush();
      const end = html.indexOf('-->', i + 4);
      i = end < 0 ? n : end + 3;
      continue;
    }
    const next = html[i + 1] ?? '';
    if (next === '!' || next === '?') {
      flush();
      const end = html.indexOf('>', i + 2);
      i = end < 0 ? n : end + 1;
      continue;
    }
    const isEnd = next === '/';
    const nameStart = isEnd ? i + 2 : i + 1;
    if (!/[A-Za-z]/.test(html[nameStart] ?? '')) {
      segment += c;
      i += 1;
      continue;
    }
    flush();
    const tagEnd = findTagEnd(html, nameStart);
    const name = /^[A-Za-z][A-Za-z0-9:-]*/.exec(html.slice(nameStart, tagEnd))![0].toLowerCase();
    i = tagEnd + 1;
    if (!isEnd && (name === 'script' || name === 'style')) {
      const close = html.toLowerCase().indexOf(`</${name}`, i);
      segment += html.slice(i, close < 0 ? n : close);
      flush();
      i = close < 0 ? n : findTagEnd(html, close + 2) + 1;
    }
  }
  flush();
  return text
    .replace(/&([^;]+);/g, (m, name: string) => ENTITIES[name] ?? m)
    .replace(/^ +| +$/g, '')
    .replace(/ {2,}/g, ' ');
}

function findTagEnd(html: string, from: number): number {
  let quote = '';
  for (let j = from; j < html.length; j++) {
    const ch = html[j];
    if (quote) {
      if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '>') {
      return j;
    }
  }
  return html.length;
}
