// Mail transport from kivitendo's [mail_delivery] (spec task-server.md §9.3), via nodemailer.
// Transport choice, defaults and headers follow SL/Mailer.pm so an existing kivitendo.conf keeps
// working; failures become one-line MailErrors that never carry the SMTP password.
import nodemailer from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';
import type { Config } from '../config/config';
import { perlTrue } from '../config/configStd';
import { VERSION } from '../version';
import { expandShellCommand, runSendmail } from './sendmail';

export interface MailMessage {
  from: string;
  to: string;
  cc?: string;
  bcc?: string;
  subject: string;
  text?: string;
  html?: string;
  attachments?: { filename: string; content: Buffer | string; contentType?: string }[];
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

/** SL::Mailer refuses lists without any address; nodemailer would silently drop such entries. */
function checkAddresses(field: string, list: string | undefined, required: boolean): void {
  if (!list || !list.trim()) {
    if (required) throw new MailError(`no ${field} address given`);
    return;
  }
  const parsed = addressparser(list, { flatten: true });
  if (!parsed.length || parsed.some((a) => !/^[^@\s]+@[^@\s]+$/.test(a.address))) {
    throw new MailError(`"${list}" seems to be a faulty list of email addresses (${field})`);
  }
}

function composeOptions(msg: MailMessage) {
  const to = cleanAddresses(msg.to);
  const cc = msg.cc ? cleanAddresses(msg.cc) : undefined;
  const bcc = msg.bcc ? cleanAddresses(msg.bcc) : undefined;
  checkAddresses('From', msg.from, true);
  checkAddresses('To', to, !cc && !bcc);
  checkAddresses('Cc', cc, false);
  checkAddresses('Bcc', bcc, false);
  return {
    from: msg.from,
    to: to || undefined,
    cc,
    bcc,
    subject: msg.subject,
    text: msg.text,
    html: msg.html,
    attachments: msg.attachments?.map((a) => ({ filename: a.filename, content: a.content, contentType: a.contentType })),
    messageId: createMessageId(msg.from),
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

async function sendSmtp(t: Extract<Transport, { method: 'smtp' }>, msg: MailMessage, opts: MailerOptions): Promise<void> {
  const transport = nodemailer.createTransport(smtpOptions(t, opts));
  try {
    await transport.sendMail(composeOptions(msg));
  } catch (e) {
    if (e instanceof MailError) throw e;
    const err = e as Error & { code?: string };
    const what = err.code === 'EAUTH' ? 'SMTP authentication failed' : 'SMTP delivery failed';
    throw new MailError(oneLine(`${what} (${t.host}:${t.port}): ${err.message}`, t.password));
  } finally {
    transport.close();
  }
}

async function sendViaSendmail(command: string, msg: MailMessage, opts: MailerOptions): Promise<void> {
  // sendmail -t reads the recipients from the headers, so Bcc stays in (stream transport keeps it).
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  let raw: Buffer;
  try {
    raw = (await composer.sendMail(composeOptions(msg))).message as Buffer;
  } catch (e) {
    if (e instanceof MailError) throw e;
    throw new MailError(oneLine(`cannot compose the message: ${(e as Error).message}`));
  }
  await runSendmail(command, raw, opts.socketTimeoutMs ?? 60_000).catch((e: Error) => {
    throw new MailError(oneLine(e.message));
  });
}

/** The transport for a sender whose kivitendo user e-mail is `userEmail` (per-sender sections). */
export function createMailer(config: Config, userEmail?: string, opts: MailerOptions = {}): Mailer {
  return {
    async send(msg: MailMessage) {
      // Resolved per send, as kivitendo builds its driver per mail: a bad setup fails that send only.
      const t = resolveTransport(config, userEmail);
      switch (t.method) {
        case 'smtp':
          return sendSmtp(t, msg, opts);
        case 'sendmail':
          return sendViaSendmail(t.command, msg, opts);
        default:
          throw new MailError(`mail delivery is disabled: [mail_delivery] method is '${t.configured}'`);
      }
    },
  };
}
