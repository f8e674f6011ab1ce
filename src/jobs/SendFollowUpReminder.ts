// kivitendo's SendFollowUpReminder (spec jobs.md): mails every employee the open follow-ups created
// for them whose date lies in [from_date, to_date]. One mail per employee; mailer errors are
// collected and make the run fail after all mails were tried.
import fs from 'node:fs';
import { formatKivitendoDate } from '../mail/kivitendoDate';
import { MailError } from '../mail/mailer';
import { renderTemplate, renderTemplateFile, resolveTemplatePath } from '../mail/template';
import { readDataOptions } from './dataOptions';
import { DateParseError, isoDate, parseKivitendoDate, ymdOf, type YMD } from './tierb/dates';
import { t8For, type Translator } from './tierb/t8';
import { JobError, type JobContext, type JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'SendFollowUpReminder';
// SL::Presenter renders 'fu/follow_up_reminder_mail' from the webpages directory.
const BUILTIN_TEMPLATE = 'templates/design40_webpages/fu/follow_up_reminder_mail.html';
const PARAMS = ['from_date', 'to_date', 'email_from', 'email_subject', 'email_template', 'base_url'] as const;

interface FollowUpRow {
  id: number;
  follow_up_date: string;
  note_id: number;
  created_by: number;
  itime: string | null;
  mtime: string | null;
  subject: string | null;
  body: string | null;
  creator_name: string | null;
  creator_login: string | null;
}

interface Recipient {
  mailTo: string;
  followUps: Record<string, unknown>[];
}

/** URI->new_abs(rel, base): relative to an absolute base URL, else the relative reference as is. */
function absoluteLink(rel: string, base: string | undefined): string {
  if (!base) return rel;
  try {
    return new URL(rel, base).toString();
  } catch {
    return rel;
  }
}

function parseDates(ctx: JobContext, t8: Translator, from: string | undefined, to: string | undefined): { from?: YMD; to?: YMD } {
  const today = ymdOf(ctx.clock.now());
  const dateformat = ctx.user.settings.dateformat ?? '';
  try {
    const parse = (s: string | undefined) => {
      if (!s) return undefined;
      const d = parseKivitendoDate(s, dateformat, today);
      if (!d) throw new DateParseError('Died');
      return d;
    };
    return { from: parse(from), to: parse(to) };
  } catch (e) {
    throw new JobError(
      [t8('Cannot convert date.'), t8('Input from string: #1', from ?? ''), t8('Input to string: #1', to ?? ''), t8('Details: #1', (e as Error).message)].join('\n'),
    );
  }
}

function simpleText(t8: Translator, followUps: Record<string, unknown>[]): string {
  let out = t8('Unfinished follow-ups') + ':\n';
  for (const fu of followUps) {
    const note = fu.note as { subject: string | null };
    const creator = fu.created_by_employee as { safe_name: string };
    out += `${t8('Follow-Up Date')}: ${fu.follow_up_date_as_date}: ${note.subject ?? ''}: (${t8('by')} ${creator.safe_name}) (${fu.link})\n`;
  }
  return out + '\n\n';
}

/** generate_message: the body and whether it is HTML. */
function generateMessage(ctx: JobContext, t8: Translator, template: string | undefined, followUps: Record<string, unknown>[]) {
  const options = { translate: (text: string, args: unknown[]) => t8(text, ...args) };
  const vars = { follow_ups: followUps };
  if (!template) {
    try {
      return { body: renderTemplateFile(ctx.kivitendoDir, BUILTIN_TEMPLATE, vars, options), html: true };
    } catch (e) {
      throw new JobError(`${NAME}: ${(e as Error).message}`);
    }
  }
  let content = '';
  try {
    content = fs.readFileSync(resolveTemplatePath(ctx.kivitendoDir, template), 'utf8');
  } catch (e) {
    ctx.log.warn(`Cannot read template file. Error: ${template}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // An unreadable (or empty) template file falls back to a plain text list, as in kivitendo.
  if (!content) return { body: simpleText(t8, followUps), html: false };
  const html = /.html$/.test(template);
  try {
    return { body: renderTemplate(content.replace(/^\uFEFF/, ''), vars, template, options), html };
  } catch (e) {
    throw new JobError(`${NAME}: ${(e as Error).message}`);
  }
}

export const SendFollowUpReminder: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    for (const key of Object.keys(ctx.data)) {
      if (!(PARAMS as readonly string[]).includes(key)) throw new JobError(`Not a valid parameter: ${key}`);
    }
    const opts = readDataOptions(ctx.data, Object.fromEntries(PARAMS.map((k) => [k, 'string' as const])), NAME, 'fail');
    const t8 = t8For(ctx);
    const config = ctx.config.sections['follow_up_reminder'] ?? {};
    const settings = ctx.user.settings;
    const dateSettings = { dateformat: settings.dateformat, numberformat: settings.numberformat };
    const todayText = formatKivitendoDate(isoDate(ymdOf(ctx.clock.now())), dateSettings);
    const param = (k: (typeof PARAMS)[number], dflt: string | undefined) => (opts[k] as string | undefined) ?? dflt;

    const dates = parseDates(ctx, t8, param('from_date', undefined), param('to_date', todayText));
    const emailFrom = (param('email_from', config.email_from) ?? '').trim();
    if (!emailFrom) throw new JobError(t8('No email sender address given.'));
    const subject = param('email_subject', config.email_subject) ?? '';
    const template = param('email_template', config.email_template);
    const baseUrl = param('base_url', undefined);

    const where: string[] = ['d.id IS NULL'];
    const args: unknown[] = [];
    if (dates.from) where.push(`f.follow_up_date >= $${args.push(isoDate(dates.from))}`);
    if (dates.to) where.push(`f.follow_up_date <= $${args.push(isoDate(dates.to))}`);
    const followUps = await ctx.db.query<FollowUpRow>(
      `SELECT f.id, to_char(f.follow_up_date, 'YYYY-MM-DD') AS follow_up_date, f.note_id, f.created_by,
              to_char(f.itime, 'YYYY-MM-DD HH24:MI:SS') AS itime, to_char(f.mtime, 'YYYY-MM-DD HH24:MI:SS') AS mtime,
              n.subject, n.body, e.name AS creator_name, e.login AS creator_login
         FROM follow_ups f
         LEFT JOIN follow_up_done d ON d.follow_up_id = f.id
         LEFT JOIN notes n ON n.id = f.note_id
         LEFT JOIN employee e ON e.id = f.created_by
        WHERE ${where.join(' AND ')}
        ORDER BY f.follow_up_date, f.id`,
      args,
    );

    const auth = followUps.rows.length ? await ctx.authDb() : undefined;
    const recipients = new Map<number, Recipient>();
    for (const fu of followUps.rows) {
      const item = {
        id: fu.id,
        follow_up_date: fu.follow_up_date,
        follow_up_date_as_date: formatKivitendoDate(fu.follow_up_date, dateSettings),
        note_id: fu.note_id,
        created_by: fu.created_by,
        itime: fu.itime,
        mtime: fu.mtime,
        note: { id: fu.note_id, subject: fu.subject, body: fu.body },
        created_by_employee: { id: fu.created_by, name: fu.creator_name, login: fu.creator_login, safe_name: fu.creator_name || fu.creator_login || '' },
        link: absoluteLink(`fu.pl?action=edit&id=${fu.id}`, baseUrl),
      };
      const employees = await ctx.db.query<{ id: number; login: string | null; deleted: boolean | null }>(
        `SELECT e.id, e.login, e.deleted FROM follow_up_created_for_employees c JOIN employee e ON e.id = c.employee_id
          WHERE c.follow_up_id = $1 ORDER BY c.id`,
        [fu.id],
      );
      for (const emp of employees.rows) {
        if (emp.deleted) continue;
        if (!recipients.has(emp.id)) {
          const r = await auth!.query<{ cfg_value: string | null }>(
            `SELECT c.cfg_value FROM auth."user" u LEFT JOIN auth.user_config c ON c.user_id = u.id AND c.cfg_key = 'email'
              WHERE u.login = $1`,
            [emp.login],
          );
          if (r.rows.length === 0) continue;
          const mailTo = (r.rows[0].cfg_value ?? '').trim();
          if (!mailTo) continue;
          recipients.set(emp.id, { mailTo, followUps: [] });
        }
        recipients.get(emp.id)!.followUps.push(item);
      }
    }

    const bcc = recipients.size
      ? ((await ctx.db.query<{ global_bcc: string | null }>('SELECT global_bcc FROM defaults LIMIT 1')).rows[0]?.global_bcc ?? '')
      : '';
    const errors: string[] = [];
    for (const r of recipients.values()) {
      const { body, html } = generateMessage(ctx, t8, template, r.followUps);
      try {
        await ctx.mailer.send({ from: emailFrom, to: r.mailTo, bcc: bcc || undefined, subject, ...(html ? { html: body } : { text: body }) });
      } catch (e) {
        if (!(e instanceof MailError)) throw e;
        errors.push(e.message);
      }
    }

    const msg = t8('Follow ups reminder sent.');
    if (errors.length) throw new JobError(`${msg}${t8('The following errors occurred:')}${errors.join('\n')}\n`);
    return msg;
  },
};
