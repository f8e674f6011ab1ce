// kivitendo's SetClosedTo (spec jobs.md): moves defaults.closedto ("books closed up to") forward to
// now − months − days; never moves it back. One UPDATE of the single defaults row.
import { formatLocalTimestamp } from '../clock';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { addDays, addMonths, isoDate, ymdOf } from './tierb/dates';
import { JobError, type JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'SetClosedTo';

export const SetClosedTo: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    const opts = readDataOptions(ctx.data, { subtract_month: 'int', subtract_days: 'int' }, NAME, warnUnknownKeys(ctx));
    // 0 counts as "not given" (Perl's ||), negative numbers are refused like kivitendo's /^\d+\z/.
    const months = (opts.subtract_month as number | undefined) || 1;
    const days = (opts.subtract_days as number | undefined) || 10;
    if (months < 0 || days < 0) throw new JobError('No integer number for days or month');

    // DateTime subtracts the days first, then the months (end-of-month preserving).
    const now = ctx.clock.now();
    const newDate = isoDate(addMonths(addDays(ymdOf(now), -days), -months));
    const newClosedTo = `${newDate} ${formatLocalTimestamp(now).slice(11)}`;

    const row = (
      await ctx.db.query<{ id: number; closedto: string | null }>(
        `SELECT id, to_char(closedto, 'YYYY-MM-DD') AS closedto FROM defaults LIMIT 1`,
      )
    ).rows[0];
    if (!row) throw new JobError(`${NAME}: the client database has no defaults row`);
    // kivitendo compares the stored date (at 00:00) with the new date *and time of day*, so the
    // same date is written again unless the job runs exactly at midnight.
    if (row.closedto && `${row.closedto} 00:00:00` >= newClosedTo) return 1;
    await ctx.db.query('UPDATE defaults SET closedto = $1 WHERE id = $2', [newDate, row.id]);
    return 1;
  },
};
