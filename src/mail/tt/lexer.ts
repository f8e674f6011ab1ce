// Splits a Template Toolkit source into text and `[% … %]` directives (with TT's chomp flags applied
// to the neighbouring text) and tokenizes a directive. Mirrors Template::Parser's default settings:
// no INTERPOLATE, no PRE/POST_CHOMP, no ANYCASE (keywords are upper case).

/** A parse or evaluation error at a template line; template.ts adds the file name. */
export class TTError extends Error {
  constructor(readonly line: number, message: string) {
    super(message);
  }
}

export type Chunk = { type: 'text'; text: string } | { type: 'directive'; text: string; line: number };

const newlines = (s: string) => {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) n++;
  return n;
};

function preChomp(text: string, flag: string | undefined): string {
  switch (flag) {
    case '-':
      return text.replace(/(?:\r?\n|^)[^\S\n]*$/, '');
    case '~':
      return text.replace(/\s+$/, '');
    case '=':
      return text.replace(/\s+$/, ' ');
    default:
      return text;
  }
}

function postChomp(text: string, flag: string | undefined): string {
  switch (flag) {
    case '-':
      return text.replace(/^[^\S\n]*\n/, '');
    case '~':
      return text.replace(/^\s+/, '');
    case '=':
      return text.replace(/^\s+/, ' ');
    default:
      return text;
  }
}

export function splitTemplate(source: string): Chunk[] {
  const chunks: Chunk[] = [];
  let pos = 0;
  let line = 1;
  let pendingPost: string | undefined;
  for (;;) {
    const start = source.indexOf('[%', pos);
    const raw = source.slice(pos, start < 0 ? undefined : start);
    let text = postChomp(raw, pendingPost);
    pendingPost = undefined;
    if (start < 0) {
      if (text) chunks.push({ type: 'text', text });
      return chunks;
    }
    line += newlines(raw);
    const end = source.indexOf('%]', start + 2);
    if (end < 0) throw new TTError(line, "unterminated directive: missing '%]'");
    let inner = source.slice(start + 2, end);
    let pre: string | undefined;
    if (/^[-=~+]/.test(inner)) {
      pre = inner[0];
      inner = inner.slice(1);
    }
    if (/[-=~+]$/.test(inner)) {
      pendingPost = inner[inner.length - 1];
      inner = inner.slice(0, -1);
    }
    text = preChomp(text, pre);
    if (text) chunks.push({ type: 'text', text });
    // `[%# … %]` comments out the whole directive (a `#` after whitespace only ends its line).
    if (!inner.startsWith('#')) chunks.push({ type: 'directive', text: inner, line });
    line += newlines(source.slice(start, end));
    pos = end + 2;
  }
}

export type Token =
  | { type: 'ident'; value: string; line: number }
  | { type: 'num'; value: string; line: number }
  | { type: 'sq'; value: string; line: number }
  | { type: 'dq'; value: string; line: number }
  | { type: 'op'; value: string; line: number }
  | { type: 'eof'; value: ''; line: number };

const OPS = ['${', '==', '!=', '<=', '>=', '&&', '||', '=>', '..', '=', '<', '>', '!', '(', ')', '[', ']', '{', '}', ',', '.', ';', '|', '?', ':', '+', '-', '*', '/', '%', '$'];

export function tokenize(text: string, firstLine: number): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = firstLine;
  const last = () => tokens[tokens.length - 1];
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      line++;
      i++;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === "'" || c === '"') {
      const startLine = line;
      let j = i + 1;
      let value = '';
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\\' && j + 1 < text.length) {
          // Single quotes only know \\ and \'; double-quote escapes are resolved on interpolation.
          if (c === "'" && (text[j + 1] === '\\' || text[j + 1] === "'")) value += text[j + 1];
          else value += text[j] + text[j + 1];
          j += 2;
          continue;
        }
        if (text[j] === '\n') line++;
        value += text[j++];
      }
      if (j >= text.length) throw new TTError(startLine, `unterminated string ${c}${value.slice(0, 20)}`);
      tokens.push({ type: c === "'" ? 'sq' : 'dq', value, line: startLine });
      i = j + 1;
      continue;
    }
    const afterDot = last()?.type === 'op' && last()?.value === '.';
    const numMatch = (afterDot ? /^\d+/ : /^\d+(?:\.\d+)?/).exec(text.slice(i));
    if (numMatch) {
      tokens.push({ type: 'num', value: numMatch[0], line });
      i += numMatch[0].length;
      continue;
    }
    const identMatch = /^[A-Za-z_]\w*/.exec(text.slice(i));
    if (identMatch) {
      // A lone underscore is TT's string concatenation operator.
      if (identMatch[0] === '_') tokens.push({ type: 'op', value: '_', line });
      else tokens.push({ type: 'ident', value: identMatch[0], line });
      i += identMatch[0].length;
      continue;
    }
    const op = OPS.find((o) => text.startsWith(o, i));
    if (!op) throw new TTError(line, `unexpected character '${c}'`);
    tokens.push({ type: 'op', value: op, line });
    i += op.length;
  }
  tokens.push({ type: 'eof', value: '', line });
  return tokens;
}
