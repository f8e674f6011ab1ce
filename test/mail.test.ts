// Mail transport against a local SMTP sink and a fake sendmail, and the failure notification.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildConfig, Config } from '../src/config/config';
import type { Sections } from '../src/config/configStd';
import type { ClientRow } from '../src/jobs/types';
import { clientTemplateVars, notifyFailure, NotifyFailureOptions, OutageNotifier } from '../src/mail/failureNotification';
import { createMailer, MailError, resolveTransport } from '../src/mail/mailer';
import { expandShellCommand } from '../src/mail/sendmail';
import { VERSION } from '../src/version';
import { SmtpSink, startSmtpSink } from './harness/smtpSink';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-mail-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function config(sections: Sections): Config {
  return buildConfig(tmp, 'config/kivitendo.conf', [], { task_server: {}, ...sections });
}

function smtpConfig(sink: SmtpSink, extra: Record<string, string> = {}, more: Sections = {}): Config {
  return config({ mail_delivery: { method: 'smtp', host: sink.host, port: String(sink.port), ...extra }, ...more });
}

async function mailError(p: Promise<unknown>): Promise<MailError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof MailError, `expected MailError, got ${e}`);
    assert.doesNotMatch(e.message, /\n/);
    return e;
  }
  assert.fail('expected a MailError');
}

const message = { from: 'kivitendo Daemon <daemon@example.org>', to: 'Ann Admin <ann@example.com>', subject: 'Grüße', text: 'Hallo Jörg,\nlänger als 76 Zeichen ist diese Zeile hier, damit quoted-printable sie umbrechen muss = ok.\n' };

describe('SMTP', () => {
  let sink: SmtpSink;
  before(async () => {
    sink = await startSmtpSink();
  });
  after(() => sink.close());

  test('plain SMTP: headers of §9.3, quoted-printable UTF-8 body, envelope', async () => {
    const before = sink.messages.length;
    await createMailer(smtpConfig(sink)).send({ ...message, cc: 'c@example.com', bcc: 'Secret <b@example.com>' });
    const [m] = (await sink.waitFor(before + 1)).slice(before);
    assert.equal(m.envelopeFrom, 'daemon@example.org');
    assert.deepEqual(m.envelopeTo.sort(), ['ann@example.com', 'b@example.com', 'c@example.com']);
    assert.equal(m.ehlo, 'localhost');
    assert.equal(m.secure, false);
    assert.match(m.headers['message-id'], new RegExp(`^<kivitendo-${VERSION.replace(/\./g, '\\.')}-\\d{10}-${process.pid}-\\d+@example\\.org>$`));
    assert.equal(m.headers['x-mailer'], `kivitendo-task-server ${VERSION}`);
    assert.match(m.headers['content-type'], /^text\/plain; charset=utf-8$/i);
    assert.equal(m.headers['content-transfer-encoding'], 'quoted-printable');
    assert.equal(m.headers['bcc'], undefined, 'SMTP must not reveal Bcc');
    assert.match(m.headers['to'], /ann@example\.com/);
    assert.match(m.headers['subject'], /=\?UTF-8\?/i);
    assert.equal(m.body.replace(/\r\n/g, '\n'), message.text);
  });

  test('two mails get different Message-IDs', async () => {
    const before = sink.messages.length;
    const mailer = createMailer(smtpConfig(sink));
    await mailer.send(message);
    await mailer.send(message);
    const [a, b] = (await sink.waitFor(before + 2)).slice(before);
    assert.notEqual(a.headers['message-id'], b.headers['message-id']);
  });

  test('ehlo name from the config', async () => {
    const before = sink.messages.length;
    await createMailer(smtpConfig(sink, { ehlo: 'erp.example.org' })).send(message);
    assert.equal((await sink.waitFor(before + 1))[before].ehlo, 'erp.example.org');
  });

  test('a rejected message is a MailError with the server reply', async () => {
    sink.rejectWith(550, 'Mailbox unavailable');
    try {
      const e = await mailError(createMailer(smtpConfig(sink)).send(message));
      assert.match(e.message, /^SMTP delivery failed \(127\.0\.0\.1:\d+\): .*550/);
    } finally {
      sink.acceptAll();
    }
  });

  test('bad addresses are refused before connecting', async () => {
    const mailer = createMailer(smtpConfig(sink));
    assert.match((await mailError(mailer.send({ ...message, to: 'just some words' }))).message, /faulty list of email addresses/);
    assert.match((await mailError(mailer.send({ ...message, from: '' }))).message, /no From address/);
  });

  test('an unreachable server fails quickly', async () => {
    const closed = await startSmtpSink();
    const port = closed.port;
    await closed.close();
    const cfg = config({ mail_delivery: { method: 'smtp', host: '127.0.0.1', port: String(port) } });
    const started = Date.now();
    const e = await mailError(createMailer(cfg).send(message));
    assert.match(e.message, /SMTP delivery failed \(127\.0\.0\.1:\d+\)/);
    assert.ok(Date.now() - started < 5000);
  });

  test('a server that never greets times out after connectTimeoutMs', async () => {
    const net = await import('node:net');
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    try {
      const cfg = config({ mail_delivery: { method: 'smtp', host: '127.0.0.1', port: String(port) } });
      const started = Date.now();
      await mailError(createMailer(cfg, undefined, { connectTimeoutMs: 500 }).send(message));
      assert.ok(Date.now() - started < 3000);
    } finally {
      silent.close();
    }
  });
});

describe('SMTP AUTH and TLS', () => {
  const password = 'pa$$w0rd-very-secret';
  let sink: SmtpSink;
  before(async () => {
    sink = await startSmtpSink({ auth: { user: 'mailer', pass: password } });
  });
  after(() => sink.close());

  test('login + password authenticate; the legacy key `user` works too', async () => {
    const before = sink.messages.length;
    await createMailer(smtpConfig(sink, { login: 'mailer', password })).send(message);
    await createMailer(smtpConfig(sink, { user: 'mailer', password })).send(message);
    const got = (await sink.waitFor(before + 2)).slice(before);
    assert.deepEqual(got.map((m) => m.authUser), ['mailer', 'mailer']);
  });

  test('a wrong password is a MailError that does not contain the password', async () => {
    const e = await mailError(createMailer(smtpConfig(sink, { login: 'mailer', password: 'wrong-' + password })).send(message));
    assert.match(e.message, /^SMTP authentication failed/);
    assert.ok(!e.message.includes(password));
  });

  test('debug tracing masks the password', async () => {
    const lines: string[] = [];
    const mailer = createMailer(smtpConfig(sink, { login: 'mailer', password, debug: '1' }), undefined, { debugSink: (l) => lines.push(l) });
    await mailer.send(message);
    assert.ok(lines.length > 0);
    assert.ok(lines.every((l) => !l.includes(password) && !l.includes(Buffer.from(`\0mailer\0${password}`).toString('base64'))));
  });

  test('[mail_delivery/email/<user email>] replaces the SMTP settings of [mail_delivery]', async () => {
    const cfg = config({
      mail_delivery: { method: 'smtp', host: '127.0.0.1', port: '1' },
      [`mail_delivery/email/ann@example.com`]: { host: sink.host, port: String(sink.port), login: 'mailer', password },
    });
    const before = sink.messages.length;
    await createMailer(cfg, 'ann@example.com').send(message);
    assert.equal((await sink.waitFor(before + 1))[before].authUser, 'mailer');
  });

  test('security = tls uses STARTTLS without verifying the certificate', async () => {
    const tlsSink = await startSmtpSink({ starttls: true });
    try {
      await createMailer(smtpConfig(tlsSink, { security: 'tls' })).send(message);
      assert.equal((await tlsSink.waitFor(1))[0].secure, true);
    } finally {
      await tlsSink.close();
    }
  });

  test('security = none never upgrades, even when STARTTLS is offered', async () => {
    const tlsSink = await startSmtpSink({ starttls: true });
    try {
      await createMailer(smtpConfig(tlsSink, { security: 'none' })).send(message);
      assert.equal((await tlsSink.waitFor(1))[0].secure, false);
    } finally {
      await tlsSink.close();
    }
  });

  test('security = ssl speaks implicit TLS and verifies the certificate', async () => {
    const sslSink = await startSmtpSink({ secure: true });
    try {
      const e = await mailError(createMailer(smtpConfig(sslSink, { security: 'ssl' })).send(message));
      assert.match(e.message, /certificate/i);
    } finally {
      await sslSink.close();
    }
  });
});

describe('transport selection', () => {
  test('defaults of [mail_delivery]', () => {
    assert.deepEqual(resolveTransport(config({ mail_delivery: { method: 'smtp', security: 'SSL' } })), {
      method: 'smtp', host: 'localhost', port: 465, security: 'ssl', ehlo: 'localhost', login: undefined, password: undefined, debug: false,
    });
    const t = resolveTransport(config({ mail_delivery: { method: 'smtp', security: 'bogus', port: '0' } }));
    assert.equal(t.method === 'smtp' && `${t.security}:${t.port}`, 'none:25');
  });

  test('an empty or unknown method disables delivery', async () => {
    for (const method of ['', 'SMTP', 'carrier-pigeon']) {
      const e = await mailError(createMailer(config({ mail_delivery: { method } })).send(message));
      assert.equal(e.message, `mail delivery is disabled: [mail_delivery] method is '${method}'`);
    }
    const e = await mailError(createMailer(config({})).send(message));
    assert.equal(e.message, "mail delivery is disabled: [mail_delivery] method is ''");
  });

  test('sendmail command: [applications] first, then [mail_delivery], then "sendmail -t"', () => {
    const cmd = (s: Sections) => {
      const t = resolveTransport(config({ mail_delivery: { method: 'sendmail', ...s.mail_delivery }, ...(s.applications ? { applications: s.applications } : {}) }));
      return t.method === 'sendmail' ? t.command : '';
    };
    assert.equal(cmd({}), 'sendmail -t');
    assert.equal(cmd({ mail_delivery: { sendmail: '/usr/sbin/sendmail -t -i' } }), '/usr/sbin/sendmail -t -i');
    assert.equal(cmd({ mail_delivery: { sendmail: 'b' }, applications: { sendmail: 'a' } }), 'a');
  });

  test('shell command placeholders', () => {
    const tpl = 'sendmail -t<%if myconfig_email%> -f <%myconfig_email%><%end%>';
    assert.equal(expandShellCommand(tpl, { myconfig_email: 'a@b.c' }), 'sendmail -t -f a@b.c');
    assert.equal(expandShellCommand(tpl, { myconfig_email: '' }), 'sendmail -t');
    assert.equal(expandShellCommand('x<%if not e%> none<%else%> <%e%><%end%>', {}), 'x none');
  });
});

describe('sendmail', () => {
  const dir = path.join(tmp, 'sendmail');
  const script = path.join(dir, 'fake-sendmail');
  before(() => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/args"\ncat > "${dir}/stdin"\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'failing'), '#!/bin/sh\ncat >/dev/null\necho "sendmail: cannot reach queue" >&2\nexit 75\n', { mode: 0o755 });
  });

  test('pipes the message to the command with -f <user email> (sanitised)', async () => {
    const cfg = config({
      mail_delivery: { method: 'sendmail' },
      applications: { sendmail: `${script} -t<%if myconfig_email%> -f <%myconfig_email%><%end%>` },
    });
    await createMailer(cfg, 'ann$(touch x);@example.com').send({ ...message, bcc: 'hidden@example.com' });
    assert.deepEqual(fs.readFileSync(path.join(dir, 'args'), 'utf8').split('\n').filter(Boolean), ['-t', '-f', 'anntouchx@example.com']);
    const raw = fs.readFileSync(path.join(dir, 'stdin'), 'utf8');
    assert.match(raw, /^Bcc: hidden@example\.com$/m, 'sendmail -t needs Bcc in the headers');
    assert.match(raw, /^X-Mailer: kivitendo-task-server /m);
    assert.match(raw, /^Content-Transfer-Encoding: quoted-printable$/m);
    assert.match(raw, /Hallo J=C3=B6rg/);
  });

  test('without a user e-mail the -f part disappears', async () => {
    const cfg = config({ mail_delivery: { method: 'sendmail', sendmail: `${script} -t<%if myconfig_email%> -f <%myconfig_email%><%end%>` } });
    await createMailer(cfg).send(message);
    assert.deepEqual(fs.readFileSync(path.join(dir, 'args'), 'utf8').split('\n').filter(Boolean), ['-t']);
  });

  test('a failing command is a MailError with its exit status and first stderr line', async () => {
    const cfg = config({ mail_delivery: { method: 'sendmail', sendmail: path.join(dir, 'failing') } });
    const e = await mailError(createMailer(cfg).send(message));
    assert.match(e.message, /exited with status 75: sendmail: cannot reach queue$/);
    const missing = config({ mail_delivery: { method: 'sendmail', sendmail: path.join(dir, 'nope') } });
    assert.match((await mailError(createMailer(missing).send(message))).message, /exited with status 127/);
  });
});

describe('failure notification (§9)', () => {
  let sink: SmtpSink;
  const root = path.join(tmp, 'root');
  const templateFile = 'templates/task_server/notify.txt';
  const client: ClientRow = {
    id: 7, name: 'Müller GmbH', dbhost: 'db', dbport: 5432, dbname: 'mueller', dbuser: 'kivi', dbpasswd: 'client-db-secret',
    is_default: true, task_server_user_id: 3,
  };
  const history = {
    id: 42, package_name: 'CleanBackgroundJobHistory', description: null, run_at: '2024-10-27 02:30:05', status: 'failure',
    result: null, error: 'boom at line 3.', data: null,
  };
  const logs: string[] = [];
  const log = { debug: (m: string) => logs.push(`debug: ${m}`), warn: (m: string) => logs.push(`warn: ${m}`) };

  before(async () => {
    sink = await startSmtpSink();
    fs.mkdirSync(path.join(root, 'templates', 'task_server'), { recursive: true });
    fs.writeFileSync(
      path.join(root, templateFile),
      [
        '[% IF history -%]',
        'job [% history.package_name %]/[% history.description %] at [% history.run_at_as_timestamp %] #[% history.id %]: [% history.error_col %]',
        '[% ELSE -%]',
        'exception: [% exception %]',
        '[% END -%]',
        'client [% client.name %] ([% client.dbname %]) pw=[[% client.dbpasswd %]] keys=[% client.keys.sort.join(",") %]',
        '',
      ].join('\n'),
    );
  });
  after(() => sink.close());

  function opts(notify: Record<string, string>, extra: Partial<NotifyFailureOptions> = {}): NotifyFailureOptions {
    const cfg = buildConfig(root, 'config/kivitendo.conf', [], {
      task_server: {},
      mail_delivery: { method: 'smtp', host: sink.host, port: String(sink.port) },
      'task_server/notify_on_failure': {
        send_email_to: 'ops@example.com', email_from: 'kivitendo Daemon <root@example.org>', email_subject: 'Task-Server: Hintergrundjob fehlgeschlagen',
        email_template: templateFile, ...notify,
      },
    });
    return {
      config: cfg, client, userSettings: { dateformat: 'dd.mm.yy', email: 'ts@example.com' },
      lookupUserEmail: async (login) => ({ admin: 'Admin <admin@example.com>', nomail: '' } as Record<string, string>)[login],
      log, ...extra,
    };
  }

  test('a failed job: history with run_at_as_timestamp in the user\'s dateformat; no password in the context', async () => {
    const before = sink.messages.length;
    assert.equal(await notifyFailure({ ...opts({}), history }), 'sent');
    const m = (await sink.waitFor(before + 1))[before];
    assert.deepEqual(m.envelopeTo, ['ops@example.com']);
    assert.equal(m.envelopeFrom, 'root@example.org');
    assert.match(m.headers['subject'], /Task-Server/);
    const body = m.body.replace(/\r\n/g, '\n');
    assert.equal(
      body,
      'job CleanBackgroundJobHistory/ at 27.10.2024 02:30 #42: boom at line 3.\n' +
        'client Müller GmbH (mueller) pw=[] keys=dbhost,dbname,dbport,dbuser,id,is_default,name,task_server_user_id\n',
    );
    assert.ok(!m.raw.includes('client-db-secret'));
    assert.equal(clientTemplateVars(client).dbpasswd, undefined);
  });

  test('an exception, to a recipient given as a kivitendo login', async () => {
    const before = sink.messages.length;
    assert.equal(await notifyFailure({ ...opts({ send_email_to: 'admin' }), exception: 'cannot connect to client database' }), 'sent');
    const m = (await sink.waitFor(before + 1))[before];
    assert.deepEqual(m.envelopeTo, ['admin@example.com']);
    assert.match(m.body, /^exception: cannot connect to client database\r?\n/);
  });

  test('absolute template paths work', async () => {
    assert.equal(await notifyFailure({ ...opts({ email_template: path.join(root, templateFile) }), exception: 'x' }), 'sent');
  });

  test('silent preconditions of §9.1', async () => {
    const before = sink.messages.length;
    logs.length = 0;
    for (const key of ['send_email_to', 'email_from', 'email_subject', 'email_template']) {
      assert.equal(await notifyFailure({ ...opts({ [key]: '' }), exception: 'x' }), 'disabled');
      assert.equal(await notifyFailure({ ...opts({ [key]: '0' }), exception: 'x' }), 'disabled');
    }
    assert.equal(await notifyFailure({ ...opts({ email_template: 'templates/missing.txt' }), exception: 'x' }), 'template-missing');
    assert.equal(await notifyFailure({ ...opts({ send_email_to: 'nomail' }), exception: 'x' }), 'no-recipient');
    assert.equal(await notifyFailure({ ...opts({ send_email_to: 'nobody' }), exception: 'x' }), 'no-recipient');
    assert.deepEqual(logs, [
      'debug: Template templates/missing.txt missing!',
      "debug: user for notification nomail doesn't have a valid email address",
      "debug: user for notification nobody doesn't have a valid email address",
    ]);
    assert.equal(sink.messages.length, before);
  });

  test('mailer and lookup failures are logged, not thrown', async () => {
    logs.length = 0;
    const failing = { send: async () => { throw new MailError('SMTP delivery failed (x:25): 550 no'); } };
    assert.equal(await notifyFailure({ ...opts({}), exception: 'x', mailer: failing }), 'send-failed');
    const lookupFails = { ...opts({ send_email_to: 'admin' }), lookupUserEmail: async () => { throw new Error('auth DB down'); } };
    assert.equal(await notifyFailure({ ...lookupFails, exception: 'x' }), 'send-failed');
    assert.deepEqual(logs, [
      'warn: Sending a failure notification failed: SMTP delivery failed (x:25): 550 no',
      'warn: Sending a failure notification failed: cannot read the e-mail of user admin: auth DB down',
    ]);
  });

  test('a broken template still sends a mail with the essentials', async () => {
    fs.writeFileSync(path.join(root, 'templates', 'broken.txt'), 'Hallo\n[% PERL %]print 1[% END %]\n');
    logs.length = 0;
    const before = sink.messages.length;
    assert.equal(await notifyFailure({ ...opts({ email_template: 'templates/broken.txt' }), history }), 'sent');
    const body = (await sink.waitFor(before + 1))[before].body;
    assert.match(body, /CleanBackgroundJobHistory failed for client Müller GmbH at 2024-10-27 02:30:05/);
    assert.match(body, /boom at line 3\./);
    assert.match(logs[0], /^warn: Failure notification: template templates\/broken\.txt line 2: unsupported directive PERL/);
  });
});

describe('OutageNotifier', () => {
  test('one notification per outage and key', () => {
    const n = new OutageNotifier();
    const seq = [true, true, true, false, false, true, true].map((failing) => n.shouldNotify('client:1', failing));
    assert.deepEqual(seq, [true, false, false, false, false, true, false]);
    assert.equal(n.shouldNotify('client:2', true), true, 'keys are independent');
    assert.equal(n.isDown('client:1'), true);
    n.shouldNotify('client:1', false);
    assert.equal(n.isDown('client:1'), false);
  });
});
