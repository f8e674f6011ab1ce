// kivitendo's SetBankAccountsMasterData (spec jobs.md): copies IBAN/BIC of the bank transactions
// that paid a customer's/vendor's recent invoices into the master data. Each update is its own row
// save (own transaction), including the number SL::DB::Customer/Vendor assigns when it is empty.
import { formatLocalTimestamp } from '../clock';
import { inTransaction } from '../db/pg';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { nextTransNumber } from './tierb/numbers';
import { JobError, type JobContext, type JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'SetBankAccountsMasterData';

interface BankEntry {
  remote_bank_code: string | null;
  remote_account_number: string | null;
  vc_id: number;
}

interface VcRow {
  id: number;
  name: string;
  iban: string | null;
  number: string | null;
  business_id: number | null;
  mandate_date_of_signature: string | null;
}

/** Perl truthiness of a text column. */
const truthy = (s: string | null | undefined) => !!s && s !== '0';

async function bankData(ctx: JobContext, vc: 'customer' | 'vendor', months: number, now: string): Promise<BankEntry[]> {
  const arap = vc === 'customer' ? 'ar' : 'ap';
  const r = await ctx.db.query<BankEntry>(
    `SELECT bt.remote_bank_code, bt.remote_account_number, ${vc}_id AS vc_id
       FROM ${arap}
       LEFT JOIN bank_transaction_acc_trans bta ON id = bta.${arap}_id
       LEFT JOIN bank_transactions bt ON bt.id = bta.bank_transaction_id
      WHERE ${vc}_id IN (SELECT DISTINCT ${vc}_id FROM ${arap}
                          WHERE transdate > $1::timestamp - make_interval(months => $2) AND paid = amount)
        AND bta.${arap}_id IS NOT NULL
      GROUP BY bt.remote_account_number, bt.remote_bank_code, ${vc}_id
      ORDER BY ${vc}_id`,
    [now, months],
  );
  return r.rows;
}

export const SetBankAccountsMasterData: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    const opts = readDataOptions(ctx.data, { months: 'int', overwrite: 'int', dry_run: 'int' }, NAME, warnUnknownKeys(ctx));
    const months = opts.months as number | undefined;
    const overwrite = opts.overwrite as number | undefined;
    const dryRunIn = opts.dry_run as number | undefined;
    if (months && months < 1) throw new JobError('No valid integer for months');
    if (overwrite && overwrite !== 1) throw new JobError('No valid value for overwrite');
    if (dryRunIn && dryRunIn !== 1) throw new JobError('No valid value for dry_run');
    const dryRun = !!dryRunIn;

    // now() of kivitendo's query, from the job clock.
    const nowText = formatLocalTimestamp(ctx.clock.now());

    const updates: Record<'customer' | 'vendor', string[]> = { customer: [], vendor: [] };
    for (const vc of ['customer', 'vendor'] as const) {
      const numberColumn = vc === 'customer' ? 'customernumber' : 'vendornumber';
      for (const entry of await bankData(ctx, vc, months || 6, nowText)) {
        if (!truthy(entry.remote_account_number)) continue;
        const row = (
          await ctx.db.query<VcRow>(
            `SELECT id, name, iban, ${numberColumn} AS number, business_id,
                    ${vc === 'customer' ? 'mandate_date_of_signature::text' : 'NULL::text'} AS mandate_date_of_signature
               FROM ${vc} WHERE id = $1`,
            [entry.vc_id],
          )
        ).rows[0];
        if (!row) throw new JobError(`${NAME}: ${vc} ${entry.vc_id} not found`);
        if (row.mandate_date_of_signature) continue;
        if (truthy(row.iban) && !overwrite) continue;
        updates[vc].push(`${row.name} -> ${entry.remote_account_number}`);
        if (dryRun) continue;
        await inTransaction(ctx.db, async () => {
          // SL::DB::Customer/Vendor's before_save: an empty number is drawn from the range.
          const number =
            row.number === null || row.number === ''
              ? await nextTransNumber(ctx.db, { table: vc, numberColumn, rangeColumn: numberColumn, businessId: row.business_id })
              : row.number;
          await ctx.db.query(`UPDATE ${vc} SET iban = $2, bic = $3, ${numberColumn} = $4 WHERE id = $1`, [
            row.id,
            entry.remote_account_number,
            entry.remote_bank_code,
            number,
          ]);
        });
      }
    }
    return `${dryRun ? 'DRY RUN Updates: ' : 'Updates: '}Customer: ${updates.customer.join(',')}\n Vendors: ${updates.vendor.join(',')}`;
  },
};
