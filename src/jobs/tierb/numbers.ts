// kivitendo's record-number handling: SL::PrefixedNumber (prefix + zero-padded counter) and the
// part of SL::DB::Helper::TransNumberGenerator that a row save triggers when its number is empty.
import type { Client } from '../../db/pg';
import { JobError } from '../types';

export class PrefixedNumber {
  private prefix: string;
  private ref: bigint | string;
  private minPlaces: number;
  number: string;

  constructor(number: string | null | undefined, what = 'number') {
    // PrefixedNumber croaks on undef; callers name the column so the admin can fix it.
    if (number === null || number === undefined) throw new JobError(`No 'number' set (${what} is NULL)`);
    this.number = number;
    const m = /^(.*?)(\d+)$/s.exec(number);
    const m2 = /^(.*[^\d])$/s.exec(number);
    this.prefix = m2 ? m2[1] : m ? m[1] : '';
    const refText = m ? m[2] : '0';
    this.ref = refText;
    this.minPlaces = refText.length;
  }

  private format(n: bigint | string): string {
    const digits = String(n).replace(/\.\d+/g, '');
    return this.prefix + '0'.repeat(Math.max(this.minPlaces - digits.length, 0)) + digits;
  }

  getCurrent(): string {
    return this.format(this.ref);
  }

  setTo(n: bigint | number): string {
    this.ref = BigInt(n);
    this.number = this.format(this.ref);
    return this.number;
  }

  getNext(): string {
    return this.setTo(BigInt(this.ref) + 1n);
  }
}

/**
 * get_next_trans_number(update_defaults, update_record) for a row whose number is empty: the next
 * free number of the range column (defaults, or the customer's business for customer numbers),
 * skipping numbers in use; the range column is advanced. Runs inside the caller's transaction.
 */
export async function nextTransNumber(
  db: Client,
  spec: { table: 'oe' | 'customer' | 'vendor'; numberColumn: string; rangeColumn: string; recordType?: string; businessId?: number | null },
): Promise<string> {
  await db.query(`LOCK ${spec.table} IN ROW EXCLUSIVE MODE`);
  let rangeTable = 'defaults';
  let rangeColumn = spec.rangeColumn;
  let rangeId: number | undefined;
  let scope = '';
  const params: unknown[] = [];
  if (spec.table === 'oe') {
    scope = 'WHERE record_type = $1';
    params.push(spec.recordType);
  } else {
    const business = spec.businessId
      ? (await db.query<{ id: number; customernumberinit: string | null }>('SELECT id, customernumberinit FROM business WHERE id = $1', [spec.businessId])).rows[0]
      : undefined;
    if (business && (business.customernumberinit ?? '') !== '') {
      rangeTable = 'business';
      rangeColumn = 'customernumberinit';
      rangeId = business.id;
    }
    // kivitendo scopes only the range by business; the numbers in use are those of all rows.
  }
  const used = await db.query<{ n: string | null }>(`SELECT ${spec.numberColumn} AS n FROM ${spec.table} ${scope}`, params);
  const inUse = new Set(used.rows.map((r) => r.n));
  const range =
    rangeTable === 'business'
      ? await db.query<{ id: number; v: string | null }>(`SELECT id, ${rangeColumn} AS v FROM business WHERE id = $1 FOR UPDATE`, [rangeId])
      : await db.query<{ id: number; v: string | null }>(`SELECT id, ${rangeColumn} AS v FROM defaults ORDER BY id LIMIT 1 FOR UPDATE`);
  const seq = new PrefixedNumber(range.rows[0].v ?? '0');
  let next = seq.getNext();
  while (inUse.has(next)) next = seq.getNext();
  await db.query(`UPDATE ${rangeTable} SET ${rangeColumn} = $1 WHERE id = $2`, [next, range.rows[0].id]);
  return next;
}
