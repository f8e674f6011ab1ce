// kivitendo's FailedBackgroundJobsReport (spec jobs.md): mails the failed job runs of the last 24
// hours, rendered from a Template Toolkit file of the installation.
// Deliberate difference: kivitendo ignores a template that cannot be processed (and mails an empty
// body) and ignores mailer errors; here both fail the run with one line, so a report that never
// arrives shows up as a failed run of this job.
import { formatLocalTimestamp } from '../clock';
import { templateTimestamp } from '../mail/kivitendoDate';
import { MailError } from '../mail/mailer';
import { renderTemplateFile } from '../mail/template';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { JobError, type JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'FailedBackgroundJobsReport';
const DEFAULT_TEMPLATE = 'templates/design40_webpages/failed_background_jobs_report/email.txt';

interface HistoryRow {
  id: number;
  package_name: string | null;
  run_at: string;
  status: string;
  result: string | null;
  error: string | null;
  data: string | null;
  description: string | null;
}

export const FailedBackgroundJobsReport: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    const opts = readDataOptions(ctx.data, { recipients: 'list', from: 'string', subject: 'string', template: 'string' }, NAME, warnUnknownKeys(ctx));
    const recipients = ((opts.recipients as unknown[] | undefined) ?? []).map((r) => String(r ?? ''));
    if (recipients.length === 0) throw new JobError('No »recipients« specified');
    if (!opts.from) throw new JobError('No »from« specified');
    if (!opts.subject) throw new JobError('No »subject« specified');

    // DateTime's subtract(days => 1) keeps the wall-clock time.
    const now = ctx.clock.now();
    const start = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1, now.getHours(), now.getMinutes(), now.getSeconds());
    const startText = formatLocalTimestamp(start);
    const entries = await ctx.db.query<HistoryRow>(
      `SELECT id, package_name, to_char(run_at, 'YYYY-MM-DD HH24:MI:SS') AS run_at, status, result, error, data, description
         FROM background_job_histories
        WHERE status = 'failure' AND run_at >= $1
        ORDER BY run_at, id`,
      [startText],
    );
    if (entries.rows.length === 0) return 1;

    const settings = ctx.user.settings;
    const dateSettings = { dateformat: settings.dateformat, timeformat: settings.timeformat, numberformat: settings.numberformat };
    const self = {
      data: ctx.data,
      start_time: templateTimestamp(startText, dateSettings),
      entries: entries.rows.map((h) => ({
        id: h.id,
        package_name: h.package_name,
        description: h.description,
        run_at: templateTimestamp(h.run_at, dateSettings),
        status: h.status,
        result: h.result,
        error_col: h.error,
        data: h.data,
      })),
    };
    const template = (opts.template as string | undefined) || DEFAULT_TEMPLATE;
    let body: string;
    try {
      body = renderTemplateFile(ctx.kivitendoDir, template, { SELF: self });
    } catch (e) {
      throw new JobError(`${NAME}: ${(e as Error).message}`);
    }
    try {
      await ctx.mailer.send({ from: opts.from as string, to: recipients.join(', '), subject: opts.subject as string, text: body });
    } catch (e) {
      if (e instanceof MailError) throw new JobError(`${NAME}: sending the report failed: ${e.message}`);
      throw e;
    }
    return 1;
  },
};
