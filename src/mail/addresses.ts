// Address lists read the way kivitendo's mailer reads them (spec task-server.md §9.3): SL::Mailer
// hands each field to Perl's Email::Address->parse, a grammar of RFC 2822 regular expressions that
// finds mailboxes anywhere in the text. Its results differ from nodemailer's addressparser: "a@x b@y"
// is two addresses, "x@y <a@b>" is one (a@b, named "y"), and text between addresses is skipped and
// only counted. The grammar below follows Email::Address 1.91x (two passes: name-addr, then
// addr-spec; one level of nested comments; runs of blanks collapsed; non-ASCII addresses dropped).
//
// The Perl grammar relies on atomic groups, which JavaScript lacks: `(?=(X))\1` behaves the same
// (a lookahead never gives back what it matched), so each use gets a fresh group name.

export interface ParsedAddress {
  /** Display name with quoting undone, or undefined. */
  phrase?: string;
  /** `user@host`. */
  address: string;
  /** The comments of the mailbox, e.g. "(work)", or undefined. */
  comment?: string;
  /** The text of the mailbox as found in the list (after blank runs were collapsed). */
  original: string;
}

let groupCounter = 0;
function atomic(re: string): string {
  const g = `at${groupCounter++}`;
  return `(?=(?<${g}>${re}))\\k<${g}>`;
}

const CTL = '\\x00-\\x1F\\x7F';
const SPECIAL = '()<>\\[\\]:;@\\\\,."';
const TEXT = '[^\\n\\r]';
const QUOTED_PAIR = `\\\\${TEXT}`;
const ATEXT = `[^${CTL}${SPECIAL}\\s]`;
const QCONTENT = `(?:[^\\\\"]|${QUOTED_PAIR})`;
const DCONTENT = `(?:[^\\[\\]\\\\]|${QUOTED_PAIR})`;

// Builders, not constants: every embedding needs its own atomic group names.
const ctext = () => atomic('[^()\\\\]+');
// With one nesting level the inner alternative "comment" is the empty pattern, as in the Perl.
const comment = () => atomic(`\\s*\\((?:\\s*(?:${ctext()}|${QUOTED_PAIR}|))*\\s*\\)\\s*`);
const cfws = () => `(?:${comment()}|${atomic('\\s+')})`;
const atom = () => atomic(`${cfws()}*${ATEXT}+${cfws()}*`);
const dotAtomText = () => atomic(`${ATEXT}+(?:\\.${ATEXT}+)*`);
const dotAtom = () => atomic(`${cfws()}*${dotAtomText()}${cfws()}*`);
const quotedString = () => atomic(`${cfws()}*"${QCONTENT}*"${cfws()}*`);
const word = () => `(?:${atom()}|${quotedString()})`;
const simpleWord = () => atomic(`${atom()}|\\.|\\s*"${QCONTENT}+"\\s*`);
const obsPhrase = () => atomic(`(?:${simpleWord()})+`);
const phrase = () => `(?:${obsPhrase()}|${atomic(`(?:${word()})+`)})`;
const localPart = () => `(?:${dotAtom()}|${quotedString()})`;
const domainLiteral = () => atomic(`${cfws()}*\\[(?:\\s*${DCONTENT})*\\s*\\]${cfws()}*`);
const domain = () => `(?:${dotAtom()}|${domainLiteral()})`;
const addrSpec = () => `${localPart()}@${domain()}`;
const angleAddr = () => atomic(`${cfws()}*<${addrSpec()}>${cfws()}*`);
const nameAddr = () => `${atomic(`(?:${phrase()})?`)}${angleAddr()}`;

const RE = {
  angleAddr: new RegExp(angleAddr()),
  nameAddrMailbox: new RegExp(`${nameAddr()}${atomic(`(?:${comment()})*`)}`, 'g'),
  addrSpecMailbox: new RegExp(`${addrSpec()}${atomic(`(?:${comment()})*`)}`, 'g'),
  comment: new RegExp(comment(), 'g'),
  angleAtEnd: new RegExp(`<(?<user>${localPart()})@(?<host>${domain()})>\\s*$`),
  bareAddr: new RegExp(`(?<user>${localPart()})@(?<host>${domain()})`),
  displayName: new RegExp(phrase()),
};

/** Perl's \s trimming; an empty result becomes undefined. */
function trimmed(s: string | undefined): string | undefined {
  if (s === undefined) return undefined;
  const t = s.replace(/^\s+/, '').replace(/\s+$/, '');
  return t.length ? t : undefined;
}

/** Every mailbox Email::Address->parse finds in `text`, in the order they appear. */
export function parseMailboxes(text: string | undefined | null): ParsedAddress[] {
  // Perl's "return unless $line": '' and '0' hold no addresses.
  if (!text || text === '0') return [];
  const line = text.replace(/[ \t]+/g, ' ');

  const found = new Map<number, string>();
  let str = line;
  const blank = (m: RegExpMatchArray) => {
    found.set(m.index!, m[0]);
    str = str.slice(0, m.index!) + ','.repeat(m[0].length) + str.slice(m.index! + m[0].length);
  };
  // The second pass must not see what the first took: matches are blanked out with commas.
  if (RE.angleAddr.test(str)) for (const m of [...str.matchAll(RE.nameAddrMailbox)]) blank(m);
  for (const m of [...str.matchAll(RE.addrSpecMailbox)]) blank(m);

  const out: ParsedAddress[] = [];
  for (const original of [...found.keys()].sort((a, b) => a - b).map((k) => found.get(k)!)) {
    let s = original;
    const comments = s.match(RE.comment) ?? [];
    if (comments.length) s = s.replace(RE.comment, '');

    let user: string | undefined;
    let host: string | undefined;
    let m = RE.angleAtEnd.exec(s);
    if (!m) m = RE.bareAddr.exec(s);
    if (!m) continue;
    user = m.groups!.user;
    host = m.groups!.host;
    s = s.slice(0, m.index) + s.slice(m.index + m[0].length);
    if (/[^\x00-\x7F]/.test(user) || /[^\x00-\x7F]/.test(host)) continue;

    let name = trimmed(RE.displayName.exec(s)?.[0]);
    user = trimmed(user) ?? '';
    host = trimmed(host) ?? '';
    const cmts = comments.map((c) => trimmed(c) ?? '');
    if (name) name = name.replace(/\\(.)/g, '$1');
    if (name) name = name.replace(/^"(.+)"$/, '$1');
    out.push({ phrase: name, address: `${user}@${host}`, comment: cmts.length ? cmts.join(' ') : undefined, original });
  }
  return out;
}

/** The addresses of a recipient list as kivitendo's mailer reads it, e.g. "a@x b@y" → two. */
export function parseAddressList(text: string): string[] {
  return parseMailboxes(text).map((a) => a.address);
}

export type AddressListProblem = { kind: 'none' } | { kind: 'stray'; found: string[] };

/**
 * Why kivitendo would refuse `text` as an address list, or undefined if it accepts it: no mailbox
 * at all, or on average more than 3 characters per mailbox outside the mailboxes (counted on the
 * text as given, so collapsed blank runs count too).
 */
export function addressListProblem(text: string, parsed = parseMailboxes(text)): AddressListProblem | undefined {
  if (!parsed.length) return { kind: 'none' };
  const used = parsed.reduce((n, a) => n + [...a.original].length, 0);
  if (([...text].length - used) / parsed.length > 3) return { kind: 'stray', found: parsed.map((a) => a.original) };
  return undefined;
}

/** The display name as kivitendo's mailer puts it into the header: outer quotes removed. */
export function headerName(a: ParsedAddress): string | undefined {
  const p = a.phrase?.replace(/^"/, '').replace(/"$/, '');
  return p || undefined;
}

/** A display name as kivitendo writes it: in quotes (an encoded word as it is). */
export function quoteDisplayName(name: string): string {
  return /^=\?.+\?=$/.test(name) ? name : `"${name.replace(/^"(.+)"$/, '$1').replace(/([\\"])/g, '\\$1')}"`;
}

/** The header form of a mailbox as Email::Address formats it (used for the e-mail journal). */
export function formatMailbox(a: ParsedAddress): string {
  const name = headerName(a);
  if (!name && !a.comment) return a.address;
  let comment = a.comment ?? '';
  if (comment && !/^\(.*\)$/.test(comment)) comment = `(${comment})`;
  let quoted = '';
  if (name) quoted = quoteDisplayName(name);
  return `${quoted} <${a.address}> ${comment}`.replace(/^\s+/, '').replace(/\s+$/, '');
}
