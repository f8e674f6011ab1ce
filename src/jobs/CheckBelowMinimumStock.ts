// kivitendo's CheckBelowMinimumStock (spec jobs.md): lists the parts whose stock is below their
// reorder point, mails the list and then FAILS on purpose with that list, so the history (and the
// failure notification) shows that stock needs attention. No such parts → success with NULL.
import { MailError } from '../mail/mailer';
import { renderTemplateFile } from '../mail/template';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { t8For, type Translator } from './tierb/t8';
import { JobError, type JobContext, type JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'CheckBelowMinimumStock';

interface BelowRow {
  id: number;
  partnumber: string;
  description: string | null;
  rop: string | null;
  onhand: string | null;
}

const escapeHtml = (s: unknown) =>
  String(s ?? '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The recipient of the e-mail of a kivitendo login (auth.user_config `email`). */
async function loginEmail(ctx: JobContext, login: string): Promise<string | undefined> {
  const auth = await ctx.authDb();
  const user = await auth.query<{ id: number }>('SELECT id FROM auth."user" WHERE login = $1', [login]);
  if (user.rows.length === 0) {
    // kivitendo dies here with a Perl method-call error; the message names what is wrong instead.
    throw new JobError(`${NAME}: [check_below_minimum_stock] send_email_to names the login '${login}', which does not exist`);
  }
  const cfg = await auth.query<{ cfg_value: string | null }>(
    `SELECT cfg_value FROM auth.user_config WHERE user_id = $1 AND cfg_key = 'email'`,
    [user.rows[0].id],
  );
  return cfg.rows[0]?.cfg_value ?? undefined;
}

/** Mails the report if a recipient is known; returns the text to append to the failure (mailer error). */
async function sendReport(ctx: JobContext, t8: Translator, rows: BelowRow[], errors: string, opts: Record<string, unknown>): Promise<string> {
  const config = ctx.config.sections['check_below_minimum_stock'] ?? {};
  const mailTo = (opts.mail_to as string | undefined) ?? '';
  let email = mailTo || (config.send_email_to ? await loginEmail(ctx, config.send_email_to) : undefined) || '';
  if (!email) return '';
  const extra = (opts.email as string | undefined) ?? '';
  // Joined by a blank as kivitendo does: the mailer's parseAddressList reads "a@x b@y" as two.
  if (/(\S+)@(\S+)$/.test(extra)) email += ' ' + extra;

  const defaults = await ctx.db.query<{ templates: string | null }>('SELECT templates FROM defaults LIMIT 1');
  const file = config.email_template || `${defaults.rows[0]?.templates || 'templates/mails'}/below_minimum_stock/error_email.html`;
  const html = /.html$/.test(file);

  const parts = await ctx.db.query('SELECT * FROM parts WHERE id = ANY($1::integer[]) ORDER BY id', [rows.map((r) => r.id)]);
  // The links are relative: the task server has no web request to take a host from.
  const head = `<tr><th>${t8('Partnumber')}</th><th>${t8('ROP')}</th><th>${t8('Onhand')}</th></tr>`;
  const body = parts.rows
    .map(
      (p) =>
        `<tr><td><a href="${escapeHtml(`?action=Part/edit&part.id=${escapeHtml(p.id)}`)}">${p.partnumber}</a></td>` +
        `<td>${p.rop ?? ''}</td><td>${p.onhand ?? ''}</td></tr>`,
    )
    .join('');
  const vars = {
    SELF: { errors, ids: rows.map((r) => r.id), config },
    PARTS: parts.rows,
    part_table: `<table>${head}${body}</table>`,
  };
  let output: string;
  try {
    output = renderTemplateFile(ctx.kivitendoDir, file, vars);
  } catch (e) {
    throw new JobError(`${NAME}: ${(e as Error).message}`);
  }
  try {
    await ctx.mailer.send({
      from: config.email_from ?? '',
      to: email,
      subject: config.email_subject ?? '',
      ...(html ? { html: output } : { text: output }),
    });
  } catch (e) {
    if (e instanceof MailError) return t8('Mailer error #1', e.message);
    throw e;
  }
  return '';
}

export const CheckBelowMinimumStock: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    const opts = readDataOptions(ctx.data, { mail_to: 'string', email: 'string' }, NAME, warnUnknownKeys(ctx));
    const t8 = t8For(ctx);
    const rows = (await ctx.db.query<BelowRow>('SELECT id, partnumber, description, rop, onhand FROM parts WHERE onhand < rop ORDER BY id')).rows;
    if (rows.length === 0) return null;

    // kivitendo's German locale file holds this key with literal "\n" and "\t", so the lookup with
    // real control characters never matches and the English header is used in every language.
    let errors = 'Missing parts:\nPartnumber\t- Name\t- Onhand\t- ROP\n';
    for (const r of rows) errors += `${r.partnumber}\t- ${r.description ?? ''}\t- ${r.onhand ?? ''}\t- ${r.rop ?? ''}\n`;
    errors += await sendReport(ctx, t8, rows, errors, opts);
    throw new JobError(errors);
  },
};
