// A local SMTP server for tests: collects what arrives, can demand AUTH, offer STARTTLS, speak
// implicit TLS, or reject messages. Messages are split into headers and a decoded text body with a
// tiny parser (enough for the single-part mails the task server sends).
import { SMTPServer, SMTPServerOptions } from 'smtp-server';

export interface ReceivedMail {
  envelopeFrom: string;
  envelopeTo: string[];
  /** The SMTP AUTH user, if the client authenticated. */
  authUser?: string;
  /** Whether the session was encrypted (STARTTLS or implicit TLS). */
  secure: boolean;
  /** The EHLO/HELO name the client announced. */
  ehlo: string;
  raw: string;
  /** Lower-cased header name → unfolded value (the last one if repeated). */
  headers: Record<string, string>;
  /** The body with its Content-Transfer-Encoding undone, as UTF-8 text. */
  body: string;
}

export interface SmtpSinkOptions {
  /** Require AUTH with exactly these credentials. */
  auth?: { user: string; pass: string };
  /** Offer STARTTLS (self-signed certificate of smtp-server). */
  starttls?: boolean;
  /** Implicit TLS on connect (self-signed certificate). */
  secure?: boolean;
  /** Answer RCPT TO for these addresses (case-insensitive) with 550, as the golden print rig's sink does. */
  rejectRecipients?: string[];
  /** Text of the 250 reply to the end of DATA (kivitendo journals it), e.g. 'OK saved' like the rig's sink. */
  dataReply?: string;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  readonly messages: ReceivedMail[];
  /** Reject every following message with this SMTP reply (default 550 mailbox unavailable). */
  rejectWith(code?: number, text?: string): void;
  acceptAll(): void;
  /** Resolves when at least n messages have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

export function decodeQuotedPrintable(text: string): Buffer {
  const soft = text.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < soft.length; i++) {
    const hex = soft.slice(i + 1, i + 3);
    if (soft[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(soft[i], 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

/** Splits a message into unfolded headers and the decoded body. */
export function parseMail(raw: string): { headers: Record<string, string>; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  const head = m ? raw.slice(0, m.index) : raw;
  const rawBody = m ? raw.slice(m.index + m[0].length) : '';
  const headers: Record<string, string> = {};
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const cte = (headers['content-transfer-encoding'] ?? '').toLowerCase();
  const body =
    cte === 'quoted-printable'
      ? decodeQuotedPrintable(rawBody).toString('utf8')
      : cte === 'base64'
        ? Buffer.from(rawBody.replace(/\s+/g, ''), 'base64').toString('utf8')
        : rawBody;
  return { headers, body };
}

export async function startSmtpSink(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  let rejection: { code: number; text: string } | undefined;
  const waiters: (() => void)[] = [];
  const disabled = [...(opts.starttls ? [] : ['STARTTLS']), ...(opts.auth ? [] : ['AUTH'])];
  const serverOptions: SMTPServerOptions = {
    secure: Boolean(opts.secure),
    logger: false,
    disabledCommands: disabled,
    authOptional: !opts.auth,
    allowInsecureAuth: true,
    onAuth(auth, _session, cb) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) return cb(null, { user: auth.username });
      const err = new Error('Authentication credentials invalid') as Error & { responseCode: number };
      err.responseCode = 535;
      return cb(err);
    },
    onRcptTo(address, _session, cb) {
      if ((opts.rejectRecipients ?? []).some((a) => a.toLowerCase() === address.address.toLowerCase())) {
        const err = new Error(`5.1.1 <${address.address}>: Recipient address rejected (rig sink)`) as Error & { responseCode: number };
        err.responseCode = 550;
        return cb(err);
      }
      return cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (rejection) {
          const err = new Error(rejection.text) as Error & { responseCode: number };
          err.responseCode = rejection.code;
          return cb(err);
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        messages.push({
          envelopeFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          envelopeTo: session.envelope.rcptTo.map((r) => r.address),
          authUser: typeof session.user === 'string' ? session.user : undefined,
          secure: session.secure,
          ehlo: session.hostNameAppearsAs,
          raw,
          ...parseMail(raw),
        });
        waiters.splice(0).forEach((w) => w());
        if (opts.dataReply) cb(null, opts.dataReply);
        else cb();
      });
    },
  };
  const server = new SMTPServer(serverOptions);
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    host: '127.0.0.1',
    port,
    messages,
    rejectWith(code = 550, text = 'Mailbox unavailable') {
      rejection = { code, text };
    },
    acceptAll() {
      rejection = undefined;
    },
    async waitFor(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < n) {
        if (Date.now() > deadline) throw new Error(`SMTP sink: expected ${n} messages, got ${messages.length}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      return messages;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
