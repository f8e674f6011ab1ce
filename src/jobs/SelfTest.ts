// kivitendo's SelfTest (spec jobs.md SelfTest): runs the configured check modules, collects their
// TAP reports, and mails the report when a check failed (or always, with send_email_on_success).
// Failing checks do not fail the job; a module that cannot be run and a mail that cannot be sent
// do (message "Unsuccessfully executed:..."). Read-only on the client database.
import os from 'node:os';
import path from 'node:path';
import { perlTrue } from '../config/configStd';
import { MailError } from '../mail/mailer';
import { renderTemplateFile } from '../mail/template';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { NovoclonStrict } from './self-test/NovoclonStrict';
import { Tap, type SelfTestModule } from './self-test/tap';
import { Transactions } from './self-test/Transactions';
import { JobError, type JobContext, type JobPackage } from './types';
import { isSchemaMismatch } from './schemaErrors';
import { RELEASES_4_0_TO_4_1 } from './releases';

const NAME = 'SelfTest';
const PREFIX = 'SL::BackgroundJob::SelfTest::';
const MODULES: Record<string, SelfTestModule> = { Transactions, NovoclonStrict };

interface Aggregate {
  passed: number;
  failed: number;
}

/** kivitendo's translations (locale/de/all) of the messages this job produces. */
function messages(de: boolean) {
  return {
    cannotLoad: (module: string, file: string, why: string) =>
      de ? `Konnte Klasse ${module} (${file}) nicht laden: "${why}"` : `Could not load class ${module} (${file}): "${why}"`,
    cannotRun: (module: string, why: string) => (de ? `Konnte Klasse ${module} nicht laden: "${why}"` : `Could not load class ${module}, ${why}`),
    mailerError: (why: string) => (de ? `Emailfehler: ${why}` : `Mailer error ${why}`),
  };
}

export const SelfTest: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_0_TO_4_1,
  async run(ctx) {
    // kivitendo also takes a single module name given as a plain string.
    const raw = { ...ctx.data };
    if (typeof raw.modules === 'string') raw.modules = [raw.modules];
    const options = readDataOptions(raw, { modules: 'list', email: 'string', mail_to: 'string' }, NAME, warnUnknownKeys(ctx));
    const config = ctx.config.sections['self_test'] ?? {};
    const msg = messages(ctx.user.settings.countrycode === 'de');

    let modules = (config.modules ?? '').split(/\s+/).filter((m) => m !== '');
    if (Array.isArray(options.modules) && options.modules.length > 0) modules = options.modules.map((m) => String(m ?? ''));
    const additionalEmail = typeof options.email === 'string' && /\S+@\S+$/.test(options.email) ? options.email : undefined;

    const now = ctx.clock.now();
    const env = { db: ctx.db, today: new Date(now.getFullYear(), now.getMonth(), now.getDate()), year: now.getUTCFullYear() };
    const errors: string[] = [];
    const diagPerModule: Record<string, string> = {};
    const fullDiag: string[] = [];
    const aggregate: Aggregate = { passed: 0, failed: 0 };
    let moduleNr = 0;

    for (const requested of modules) {
      const name = requested.replace(/[^\p{L}\p{N}_:]/gu, '');
      const module = `${PREFIX}${name}`;
      const file = module.replace(/::/g, '/');
      moduleNr += 1;
      if (name === 'Base') {
        errors.push(msg.cannotRun(module, 'the plug-in base class has no checks of its own'));
        continue;
      }
      const impl = MODULES[name];
      if (!impl) {
        errors.push(msg.cannotLoad(module, file, `no self test module ${name} in kivitendo-task-server`));
        continue;
      }
      const tap = new Tap();
      try {
        await impl.run(tap, env);
      } catch (e) {
        if (isSchemaMismatch(e)) throw e; // the server's SQL, not the books: fails the run
        errors.push(msg.cannotRun(module, (e as Error).message));
        continue;
      }
      const passed = tap.passed;
      if (passed) aggregate.passed += 1;
      else aggregate.failed += 1;
      const testNr = aggregate.passed + aggregate.failed;
      const indented = tap.output.replace(/\n$/, '').split('\n').map((l) => `    ${l}`).join('\n');
      const output = `# Subtest: ${module}\n${indented}\n${passed ? 'ok' : 'not ok'} ${testNr} - ${module}\n`;
      fullDiag.push(output);
      diagPerModule[`${moduleNr}: ${module}`] = output;
    }

    const status = aggregate.failed > 0 ? 'FAIL' : aggregate.passed > 0 ? 'PASS' : 'NOTESTS';
    if (perlTrue(config.log_to_file)) {
      ctx.log.notice(
        `[SL::BackgroundJob::SelfTest] SelfTest status: ${status}, passed: ${aggregate.passed}, failed: ${aggregate.failed}, unexpectedly succeeded: 0`,
      );
    }

    if (aggregate.failed > 0 || perlTrue(config.send_email_on_success)) {
      const report = { modules, errors, diagPerModule, fullDiag, aggregate, status };
      const mailError = await sendReport(ctx, config, options, additionalEmail, report);
      if (mailError) errors.push(msg.mailerError(mailError));
    }

    if (errors.length > 0) throw new JobError(`Unsuccessfully executed:${errors.join('\n')}`);
    return 1;
  },
};

interface Report {
  modules: string[];
  errors: string[];
  diagPerModule: Record<string, string>;
  fullDiag: string[];
  aggregate: Aggregate;
  status: string;
}

/** Returns the mailer's error text, or undefined (also when there is no recipient). */
async function sendReport(
  ctx: JobContext,
  config: Record<string, string>,
  options: Record<string, unknown>,
  additionalEmail: string | undefined,
  report: Report,
): Promise<string | undefined> {
  // No report without a configured recipient login, even if data names an address.
  const login = config.send_email_to ?? '';
  if (!login) return undefined;
  let to = typeof options.mail_to === 'string' && options.mail_to !== '' ? options.mail_to : await userEmail(ctx, login);
  if (!to) return undefined;
  if (additionalEmail) to += ',' + additionalEmail;

  let template = config.email_template ?? '';
  if (!template) {
    const d = await ctx.db.query<{ templates: string | null }>('SELECT templates FROM defaults LIMIT 1');
    template = `${d.rows[0]?.templates || 'templates/mails'}/self_test/status_mail.txt`;
  }
  const isHtml = /.html$/.test(template);
  const vars = {
    SELF: {
      modules: report.modules,
      errors: report.errors,
      full_diag: report.fullDiag,
      diag_per_module: report.diagPerModule,
      aggreg: {
        get_status: report.status,
        passed: report.aggregate.passed,
        failed: report.aggregate.failed,
        todo_passed: 0,
        total: report.aggregate.passed + report.aggregate.failed,
      },
    },
    host: os.hostname(),
    database: ctx.client.dbname,
    client: ctx.client.name,
    path: path.join(ctx.kivitendoDir, 'scripts'),
    errors: report.errors.join('\n'),
  };
  let body: string;
  try {
    body = renderTemplateFile(ctx.kivitendoDir, template, vars);
  } catch (e) {
    throw new JobError(`${NAME}: cannot render the report mail template ${template}: ${(e as Error).message}`);
  }
  try {
    await ctx.mailer.send({
      from: config.email_from ?? '',
      to,
      subject: config.email_subject ?? '',
      ...(isHtml ? { html: body } : { text: body }),
    });
  } catch (e) {
    if (e instanceof MailError) return e.message;
    throw e;
  }
  return undefined;
}

async function userEmail(ctx: JobContext, login: string): Promise<string | undefined> {
  const auth = await ctx.authDb();
  const r = await auth.query<{ email: string | null }>(
    `SELECT c.cfg_value AS email FROM auth."user" u JOIN auth.user_config c ON c.user_id = u.id AND c.cfg_key = 'email'
      WHERE u.login = $1 LIMIT 1`,
    [login],
  );
  return r.rows[0]?.email || undefined;
}
