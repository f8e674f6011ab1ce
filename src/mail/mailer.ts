// Mail transport from kivitendo's [mail_delivery] (spec task-server.md §9.3), via nodemailer.
// Transport choice, defaults and headers follow SL/Mailer.pm so an existing kivitendo.conf keeps
// working; failures become one-line MailErrors that never carry the SMTP password.
import type NodemailerModule from 'nodemailer';
import type * as MimeFuncs from 'nodemailer/lib/mime-funcs';
import type { Config } from '../config/config';
import { perlTrue } from '../config/configStd';
import { VERSION } from '../version';
import { addressListProblem, formatMailbox, headerName, parseMailboxes, quoteDisplayName, type ParsedAddress } from './addresses';
import { expandShellCommand, runSendmail } from './sendmail';

// nodemailer is loaded on the first mail, not at start: an idle daemon that never mails stays
// about 10 MiB smaller.
const nodemailer = {
  createTransport: (...args: Parameters<typeof NodemailerModule.createTransport>) =>
    (require('nodemailer') as typeof NodemailerModule).createTransport(...args),
};
const detectMimeType = (filename: string) => (require('nodemailer/lib/mime-funcs') as typeof MimeFuncs).detectMimeType(filename);

export interface MailMessage {
  from: string;
  to: string;
  cc?: string;
  bcc?: string;
  subject: string;
  text?: string;
  html?: string;
  /** `fileId`: the `files` row the attachment came from (journal column file_id; default 0). */
  attachments?: { filename: string; content: Buffer | string; contentType?: string; fileId?: number }[];
}

export class MailError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MailError';
  }
}

export interface Mailer {
  /** Sends one message; throws MailError with a one-line reason. */
  send(msg: MailMessage): Promise<void>;
}

export interface MailerOptions {
  /** Connecting plus greeting/STARTTLS may take this long (default 10 s); a dead server fails fast. */
  connectTimeoutMs?: number;
  /** Longest silence on an open SMTP connection or wait for sendmail (default 60 s). */
  socketTimeoutMs?: number;
  /** Where `[mail_delivery] debug` writes the SMTP dialogue (secrets masked); default stderr. */
  debugSink?: (line: string) => void;
  /**
   * Called after every send attempt, successful or not, with what kivitendo's mailer records in
   * the client's e-mail journal (see src/db/emailJournal.ts). If it throws, send() throws that
   * error (kivitendo's journal save dies inside its send as well).
   */
  journal?: (entry: JournalEntry) => Promise<unknown>;
  /** Where the one-time warning about unsupported features goes; default stderr. */
  warn?: (message: string) => void;
}

export interface JournalAttachment {
  name: string;
  mimeType: string;
  content: Buffer;
  fileId: number;
}

/** One email_journal row (plus attachments) as SL::Mailer would store it. */
export interface JournalEntry {
  from: string;
  /** The envelope recipients (To, Cc, Bcc), comma-separated. */
  recipients: string;
  subject: string;
  /** The header lines kivitendo builds itself, "Name: value" joined by CRLF. */
  headers: string;
  body: string;
  status: 'sent' | 'send_failed';
  extendedStatus: string;
  attachments: JournalAttachment[];
}

export type Security = 'none' | 'tls' | 'ssl';

export type Transport =
  | { method: 'smtp'; host: string; port: number; security: Security; ehlo: string; login?: string; password?: string; debug: boolean }
  | { method: 'sendmail'; command: string }
  | { method: 'disabled'; configured: string };

const DEFAULT_PORT: Record<Security, number> = { none: 25, tls: 25, ssl: 465 };

/**
 * The transport kivitendo would use for a sender whose user e-mail is `userEmail`. The method always
 * comes from [mail_delivery]; a [mail_delivery/email/<userEmail>] section supplies the SMTP
 * settings instead of [mail_delivery] (SL/Mailer/SMTP.pm).
 */
export function resolveTransport(config: Config, userEmail?: string): Transport {
  const sections = config.sections;
  const method = sections['mail_delivery']?.method ?? '';
  if (method === 'sendmail') {
    const command =
      [sections['applications']?.sendmail, sections['mail_delivery']?.sendmail].find((c) => perlTrue(c)) ?? 'sendmail -t';
    // Only these characters may reach the shell command line (SL/Mailer/Sendmail.pm).
    const email = (userEmail ?? '').replace(/[^A-Za-z0-9_.\-+=@]/g, '');
    return { method: 'sendmail', command: expandShellCommand(command, { myconfig_email: email }) };
  }
  if (method !== 'smtp') return { method: 'disabled', configured: method };
  const cfg = (userEmail && sections[`mail_delivery/email/${userEmail}`]) || sections['mail_delivery'] || {};
  const sec = (cfg.security ?? '').toLowerCase();
  const security: Security = sec === 'tls' || sec === 'ssl' ? sec : 'none';
  const login = perlTrue(cfg.login) ? cfg.login : perlTrue(cfg.user) ? cfg.user : undefined;
  return {
    method: 'smtp',
    host: perlTrue(cfg.host) ? cfg.host : 'localhost',
    port: perlTrue(cfg.port) ? Number(cfg.port) : DEFAULT_PORT[security],
    security,
    ehlo: perlTrue(cfg.ehlo) ? cfg.ehlo : 'localhost',
    login,
    password: login ? (cfg.password ?? '') : undefined,
    debug: perlTrue(cfg.debug),
  };
}

let messageCounter = 0;

/** `kivitendo-<version>-<unix time>-<pid>-<n>@<domain of From>` like SL::Mailer, with our version. */
export function createMessageId(from: string): string {
  messageCounter += 1;
  const domain = from.replace(/.*@/s, '').replace(/>.*/s, '');
  return `<kivitendo-${VERSION}-${Math.floor(Date.now() / 1000)}-${process.pid}-${messageCounter}@${domain}>`;
}

/** Web-form escapes kivitendo strips from address fields before parsing them. */
function cleanAddresses(list: string): string {
  return list.replace(/&lt;|\$<\$/g, '<').replace(/&gt;|\$>\$/g, '>');
}

/** What composing got to before it failed: the journal of a failed send records that much. */
interface Progress {
  headers: [string, string][];
  recipients: string[];
}

/**
 * Parses one address field kivitendo's way (src/mail/addresses.ts): no mailbox at all, or more than
 * 3 stray characters per mailbox, refuses the whole message.
 */
function parseField(field: string, list: string | undefined, required: boolean): ParsedAddress[] {
  if (!list || !list.trim()) {
    if (required) throw new MailError(`no ${field} address given`);
    return [];
  }
  const parsed = parseMailboxes(list);
  const problem = addressListProblem(list, parsed);
  if (problem?.kind === 'none') throw new MailError(`"${list}" seems to be a faulty list of email addresses (${field}): no address found`);
  if (problem?.kind === 'stray') {
    throw new MailError(
      `"${list}" seems to be a faulty list of email addresses (${field}): too much text besides the addresses found (${problem.found.map((a) => a.trim()).join(', ')})`,
    );
  }
  return parsed;
}

const forNodemailer = (list: ParsedAddress[]) => list.map((a) => ({ name: headerName(a) ?? '', address: a.address }));

function attachmentType(a: { filename: string; contentType?: string }): string {
  return a.contentType || detectMimeType(a.filename) || 'application/octet-stream';
}

function composeOptions(msg: MailMessage, method: 'smtp' | 'sendmail', progress: Progress) {
  const messageId = createMessageId(msg.from);
  progress.headers.push(['Subject', msg.subject], ['Message-ID', messageId], ['X-Mailer', `kivitendo-task-server ${VERSION}`]);
  const fields = {
    From: msg.from,
    To: cleanAddresses(msg.to ?? ''),
    Cc: msg.cc ? cleanAddresses(msg.cc) : undefined,
    Bcc: msg.bcc ? cleanAddresses(msg.bcc) : undefined,
  };
  const parsed: Record<keyof typeof fields, ParsedAddress[]> = { From: [], To: [], Cc: [], Bcc: [] };
  for (const field of ['From', 'To', 'Cc', 'Bcc'] as const) {
    const required = field === 'From' || (field === 'To' && !fields.Cc && !fields.Bcc);
    const list = parseField(field, fields[field], required);
    parsed[field] = list;
    if (field !== 'From') progress.recipients.push(...list.map((a) => a.address));
    // Over SMTP the Bcc addresses only go into the envelope; sendmail -t needs the header.
    if (list.length && !(field === 'Bcc' && method === 'smtp')) progress.headers.push([field, list.map(formatMailbox).join(', ')]);
  }
  const body = msg.text ?? msg.html;
  if (body) progress.headers.push(['Content-Type', `${msg.text === undefined ? 'text/html' : 'text/plain'}; charset="UTF-8"`]);
  const [from] = forNodemailer(parsed.From);
  return {
    from,
    to: parsed.To.length ? forNodemailer(parsed.To) : undefined,
    cc: parsed.Cc.length ? forNodemailer(parsed.Cc) : undefined,
    bcc: parsed.Bcc.length ? forNodemailer(parsed.Bcc) : undefined,
    // The recipients as kivitendo's parser found them, not as nodemailer would re-read the headers.
    envelope: { from: from.address, to: progress.recipients },
    subject: msg.subject,
    text: msg.text,
    html: msg.html,
    attachments: msg.attachments?.map((a) => ({ filename: a.filename, content: a.content, contentType: attachmentType(a) })),
    messageId,
    xMailer: `kivitendo-task-server ${VERSION}`,
    textEncoding: 'quoted-printable' as const,
    // Bodies are text from templates; nothing may make nodemailer read local files or URLs.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

/** One line, and the password masked even if a server or library echoes it back. */
function oneLine(message: string, secret?: string): string {
  let m = message.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  if (secret) m = m.split(secret).join('***');
  return m;
}

function smtpOptions(t: Extract<Transport, { method: 'smtp' }>, opts: MailerOptions) {
  const connectTimeout = opts.connectTimeoutMs ?? 10_000;
  const sink = opts.debugSink ?? ((line: string) => process.stderr.write(line + '\n'));
  const log = (level: string) => (_meta: unknown, ...args: unknown[]) =>
    sink(oneLine(`smtp ${level}: ${args.map(String).join(' ')}`, t.password));
  const logger = { trace: log('trace'), debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), fatal: log('fatal') };
  return {
    host: t.host,
    port: t.port,
    name: t.ehlo,
    secure: t.security === 'ssl',
    // Plain means plain (Net::SMTP never upgrades on its own); tls insists on STARTTLS.
    ignoreTLS: t.security === 'none',
    requireTLS: t.security === 'tls',
    // kivitendo's STARTTLS does not verify the certificate (SSL_verify_mode => 0).
    tls: t.security === 'tls' ? { rejectUnauthorized: false } : undefined,
    auth: t.login ? { user: t.login, pass: t.password ?? '' } : undefined,
    connectionTimeout: connectTimeout,
    greetingTimeout: connectTimeout,
    dnsTimeout: connectTimeout,
    socketTimeout: opts.socketTimeoutMs ?? 60_000,
    logger: t.debug ? logger : false,
    debug: t.debug,
  };
}

/** A send that failed, with whether kivitendo would have failed before it had parsed anything. */
class SendFailure extends MailError {
  constructor(message: string, readonly beforeCompose = false) {
    super(message);
  }
}

// Errors nodemailer reports for connecting, greeting, STARTTLS and AUTH: the steps kivitendo does
// when it creates its SMTP driver, before the message is built.
const CONNECT_PHASE = new Set(['ECONNECTION', 'ETIMEDOUT', 'EDNS', 'ESOCKET', 'ETLS', 'EAUTH', 'EPROXY']);

/**
 * kivitendo writes a display name in quotes (`"kivitendo Daemon" <daemon@…>`), nodemailer only
 * when the name needs them; its address headers cannot be given raw. So the message's own name
 * encoder is told to quote every printable-ASCII name (others stay encoded words, as there).
 */
function quoteDisplayNames<T extends ReturnType<typeof nodemailer.createTransport>>(transport: T): T {
  transport.use('stream', (mail, done) => {
    const node = mail.message as unknown as { _encodeAddressName?: (name: string) => string };
    const encode = node._encodeAddressName?.bind(node);
    if (encode) node._encodeAddressName = (name) => (/^[\x20-\x7e]+$/.test(name) ? quoteDisplayName(name) : encode(name));
    done();
  });
  return transport;
}

/** Returns what the server said to the message (Net::SMTP's message(): text after the code). */
async function sendSmtp(t: Extract<Transport, { method: 'smtp' }>, msg: MailMessage, opts: MailerOptions, progress: Progress): Promise<string> {
  const transport = quoteDisplayNames(nodemailer.createTransport(smtpOptions(t, opts)));
  try {
    const info = await transport.sendMail(composeOptions(msg, 'smtp', progress));
    const first = String(info.response ?? '').split(/\r?\n/)[0];
    return first.replace(/^\d{3}[ -]?/, '') + '\n';
  } catch (e) {
    if (e instanceof MailError) throw e;
    const err = e as Error & { code?: string };
    const what = err.code === 'EAUTH' ? 'SMTP authentication failed' : 'SMTP delivery failed';
    throw new SendFailure(oneLine(`${what} (${t.host}:${t.port}): ${err.message}`, t.password), CONNECT_PHASE.has(err.code ?? ''));
  } finally {
    transport.close();
  }
}

async function sendViaSendmail(command: string, msg: MailMessage, opts: MailerOptions, progress: Progress): Promise<string> {
  // sendmail -t reads the recipients from the headers, so Bcc stays in (stream transport keeps it).
  const composer = quoteDisplayNames(nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' }));
  let raw: Buffer;
  const options = composeOptions(msg, 'sendmail', progress);
  try {
    raw = (await composer.sendMail(options)).message as Buffer;
  } catch (e) {
    throw new MailError(oneLine(`cannot compose the message: ${(e as Error).message}`));
  }
  await runSendmail(command, raw, opts.socketTimeoutMs ?? 60_000).catch((e: Error) => {
    throw new MailError(oneLine(e.message));
  });
  return '';
}

let imapWarned = false;

/** For tests: the IMAP warning is once per process. */
export function resetImapWarning(): void {
  imapWarned = false;
}

/**
 * kivitendo appends sent mails to an IMAP folder when the first present of these sections has
 * `enabled`. There is no IMAP client here: say so once and deliver without the copy.
 */
function warnAboutImap(config: Config, from: string, userEmail: string | undefined, opts: MailerOptions): void {
  if (imapWarned) return;
  const s = config.sections;
  const section = s[`sent_emails_in_imap/email/${from}`] ?? (userEmail ? s[`sent_emails_in_imap/email/${userEmail}`] : undefined) ?? s['sent_emails_in_imap'];
  if (!section || !perlTrue(section.enabled)) return;
  imapWarned = true;
  (opts.warn ?? ((m: string) => process.stderr.write(m + '\n')))('copying sent mails to IMAP is not supported by kivitendo-task-server');
}

function journalAttachments(msg: MailMessage): JournalAttachment[] {
  return (msg.attachments ?? []).map((a) => {
    const content = typeof a.content === 'string' ? Buffer.from(a.content, 'utf8') : a.content;
    // kivitendo attaches a single blank instead of an empty file.
    return { name: a.filename, mimeType: attachmentType(a), content: content.length ? content : Buffer.from(' '), fileId: a.fileId ?? 0 };
  });
}

/** The transport for a sender whose kivitendo user e-mail is `userEmail` (per-sender sections). */
export function createMailer(config: Config, userEmail?: string, opts: MailerOptions = {}): Mailer {
  return {
    async send(msg: MailMessage) {
      const progress: Progress = { headers: [], recipients: [] };
      let status: JournalEntry['status'] = 'send_failed';
      let extendedStatus: string;
      let failure: MailError | undefined;
      try {
        // Resolved per send, as kivitendo builds its driver per mail: a bad setup fails that send only.
        const t = resolveTransport(config, userEmail);
        if (t.method === 'smtp') extendedStatus = await sendSmtp(t, msg, opts, progress);
        else if (t.method === 'sendmail') extendedStatus = await sendViaSendmail(t.command, msg, opts, progress);
        else throw new SendFailure(`mail delivery is disabled: [mail_delivery] method is '${t.configured}'`, true);
        status = 'sent';
        warnAboutImap(config, msg.from, userEmail, opts);
      } catch (e) {
        if (!(e instanceof MailError)) throw e;
        failure = e;
        extendedStatus = e.message;
      }
      if (opts.journal) {
        // Without a driver kivitendo journals the mail before it has built headers or recipients.
        const early = failure instanceof SendFailure && failure.beforeCompose;
        const entry: JournalEntry = {
          from: msg.from ?? '',
          recipients: early ? '' : progress.recipients.join(', '),
          subject: msg.subject ?? '',
          headers: early ? '' : progress.headers.map(([k, v]) => `${k}: ${v}`).join('\r\n'),
          body: msg.text ?? msg.html ?? '',
          status,
          extendedStatus,
          attachments: journalAttachments(msg),
        };
        try {
          await opts.journal(entry);
        } catch (e) {
          const outcome = failure ? `the mail was not sent (${failure.message})` : 'the mail was sent';
          throw new Error(oneLine(`storing the mail in the e-mail journal failed (${outcome}): ${(e as Error).message}`));
        }
      }
      if (failure) throw failure;
    },
  };
}
