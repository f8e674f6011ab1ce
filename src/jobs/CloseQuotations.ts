// kivitendo's CloseQuotations (spec jobs.md): closes request and sales quotations older than
// `years`. Like kivitendo, every quotation is saved in its own transaction, including the number
// that SL::DB::Order's save hook assigns to a quotation without one.
import { inTransaction } from '../db/pg';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { addMonths, isoDate, ymdUtcOf } from './tierb/dates';
import { nextTransNumber } from './tierb/numbers';
import { t8For } from './tierb/t8';
import type { JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'CloseQuotations';

const RANGE_COLUMN: Record<string, string> = { request_quotation: 'rfqnumber', sales_quotation: 'sqnumber' };

interface QuotationRow {
  id: number;
  record_type: 'request_quotation' | 'sales_quotation';
  quonumber: string | null;
  ordnumber: string;
}

export const CloseQuotations: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    const opts = readDataOptions(ctx.data, { years: 'int', dry_run: 'bool' }, NAME, warnUnknownKeys(ctx));
    const dryRun = !!opts.dry_run;
    const years = (opts.years as number | undefined) ?? 1;
    // DateTime->today is the UTC date here, not the local one.
    const end = isoDate(addMonths(ymdUtcOf(ctx.clock.now()), -12 * years));

    const quotations = await ctx.db.query<QuotationRow>(
      `SELECT id, record_type::text AS record_type, quonumber, ordnumber FROM oe
        WHERE record_type IN ('request_quotation', 'sales_quotation')
          AND transdate <= $1
          AND (closed = false OR closed IS NULL)
        ORDER BY id`,
      [end],
    );

    const numbers: Record<QuotationRow['record_type'], string[]> = { request_quotation: [], sales_quotation: [] };
    for (const q of quotations.rows) {
      numbers[q.record_type].push(q.quonumber ?? '');
      if (dryRun) continue;
      await inTransaction(ctx.db, async () => {
        // SL::DB::Order's before_save: an empty ordnumber becomes '', an empty quonumber is drawn
        // from the number range (Perl truthiness: '0' counts as empty).
        const ordnumber = q.ordnumber && q.ordnumber !== '0' ? q.ordnumber : '';
        const quonumber =
          q.quonumber && q.quonumber !== '0'
            ? q.quonumber
            : await nextTransNumber(ctx.db, { table: 'oe', numberColumn: 'quonumber', rangeColumn: RANGE_COLUMN[q.record_type], recordType: q.record_type });
        await ctx.db.query('UPDATE oe SET closed = true, ordnumber = $2, quonumber = $3 WHERE id = $1', [q.id, ordnumber, quonumber]);
      });
    }

    const t8 = t8For(ctx);
    const req = numbers.request_quotation.join(', ');
    const sal = numbers.sales_quotation.join(', ');
    return dryRun
      ? t8('Request quotations not yet closed: #1 Sales quotations not yet closed: #2', req, sal)
      : t8('Request quotations closed: #1 Sales quotations closed: #2', req, sal);
  },
};
