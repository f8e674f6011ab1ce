// kivitendo's SetNumberRange (spec jobs.md): resets all record number ranges of the defaults row for
// a new year (prefix kept, counter = year × multiplier) or a new month (strftime text + postfix).
// All columns are computed first and written in one UPDATE, as kivitendo saves the row once.
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { strftimeDate, ymdOf } from './tierb/dates';
import { PrefixedNumber } from './tierb/numbers';
import { perlScalar } from './tierb/scalars';
import { JobError, type JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'SetNumberRange';

const COLUMNS = [
  'invnumber', 'cnnumber', 'soinumber', 'pqinumber', 'sonumber', 'ponumber', 'pocnumber', 'sqnumber', 'rfqnumber',
  'sdonumber', 'pdonumber', 'sudonumber', 'rdonumber', 's_reclamation_record_number', 'p_reclamation_record_number',
] as const;

export const SetNumberRange: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    const { result, ...rest } = ctx.data;
    const opts = readDataOptions(
      rest,
      {
        digits_year: 'int',
        multiplier: 'int',
        current_year: 'bool',
        monthly: 'bool',
        monthly_strftime: 'string',
        monthly_postfix: 'string',
      },
      NAME,
      warnUnknownKeys(ctx),
    );
    const resultText = perlScalar(result, 'result', NAME);
    const digitsYear = opts.digits_year as number | undefined;
    const multiplierIn = opts.multiplier as number | undefined;
    if (digitsYear && digitsYear !== 2 && digitsYear !== 4) throw new JobError('No valid input for digits_year should be 2 or 4.');
    if (multiplierIn && multiplierIn % 10 !== 0) throw new JobError('No valid input for multiplier should be 10, 100, .., 1000000');

    const today = ymdOf(ctx.clock.now());
    const year = opts.current_year ? today.y : today.y + 1;
    const runningYear = digitsYear === 2 ? Number(String(year).slice(2, 4)) : year;
    const multiplier = BigInt(multiplierIn || 100);

    const strftime = (opts.monthly_strftime as string | undefined) || '%y-%m-';
    const postfix = (opts.monthly_postfix as string | undefined) || '000';
    const monthText = strftimeDate(today, strftime) + postfix;

    const row = (await ctx.db.query(`SELECT id, ${COLUMNS.join(', ')} FROM defaults LIMIT 1`)).rows[0] as Record<string, unknown> | undefined;
    if (!row) throw new JobError(`${NAME}: the client database has no defaults row`);
    const values = COLUMNS.map((col) => {
      if (opts.monthly) return new PrefixedNumber(monthText, `defaults.${col}`).getCurrent();
      const n = new PrefixedNumber(row[col] as string | null, `defaults.${col}`);
      return n.setTo(BigInt(runningYear) * multiplier);
    });
    await ctx.db.query(
      `UPDATE defaults SET ${COLUMNS.map((c, i) => `${c} = $${i + 1}`).join(', ')} WHERE id = $${COLUMNS.length + 1}`,
      [...values, row.id],
    );
    return 'result' in ctx.data ? resultText : 1;
  },
};
