// kivitendo's InventoryClearAll (spec jobs.md): books every non-zero stock slot (bin × charge number
// × part, optionally of one warehouse) out with a correction transfer. One-shot by design: it only
// runs on the day named in `correction_date`. Each inventory row is its own save, as in kivitendo.
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { isoDate, ymdOf } from './tierb/dates';
import { t8For } from './tierb/t8';
import { JobError, type JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'InventoryClearAll';

interface StockRow {
  qty: string;
  bin_id: number;
  warehouse_id: number;
  chargenumber: string;
  parts_id: number;
  unit: string | null;
}

export const InventoryClearAll: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    const opts = readDataOptions(
      ctx.data,
      { correction_date: 'string', comment: 'string', dry_run: 'bool', warehouse: 'string' },
      NAME,
      warnUnknownKeys(ctx),
    );
    const comment = (opts.comment as string | undefined) ?? 'vor Inventur';
    const today = isoDate(ymdOf(ctx.clock.now()));
    const dryRun = !!opts.dry_run;

    const employee = await ctx.db.query<{ id: number }>('SELECT id FROM employee WHERE login = $1 LIMIT 1', [ctx.user.login]);
    if (employee.rows.length === 0) {
      throw new JobError(`${NAME}: no employee with the task server user's login '${ctx.user.login}' in this client`);
    }
    const transType = async (direction: 'in' | 'out') =>
      (await ctx.db.query<{ id: number }>(`SELECT id FROM transfer_type WHERE description = 'correction' AND direction = $1 LIMIT 1`, [direction]))
        .rows[0]?.id;
    const typeIn = await transType('in');
    const typeOut = await transType('out');

    let warehouseId: number | undefined;
    if ('warehouse' in ctx.data) {
      const name = (opts.warehouse as string | undefined) ?? null;
      const wh = await ctx.db.query<{ id: number }>('SELECT id FROM warehouse WHERE description IS NOT DISTINCT FROM $1 LIMIT 1', [name]);
      if (wh.rows.length === 0) throw new JobError(`Lager existiert nicht: ${name ?? ''}`);
      warehouseId = wh.rows[0].id;
    }

    if (!('correction_date' in ctx.data)) throw new JobError('No parameter correction_date given');
    const correctionDate = (opts.correction_date as string | undefined) ?? '';
    if (correctionDate !== today) throw new JobError(`Parameter correction_date ${correctionDate} is not today ${today}`);

    // SL::Helper::Inventory::get_stock(by => [bin chargenumber part]); bestbefore is not among the
    // grouped columns there, so the booked rows get none.
    const stock = await ctx.db.query<StockRow>(
      `SELECT s.qty, s.bin_id, s.warehouse_id, s.chargenumber, s.parts_id, p.unit
         FROM (SELECT SUM(qty) AS qty, bin_id, inventory.warehouse_id, chargenumber, parts_id
                 FROM inventory
                 LEFT JOIN bin ON bin_id = bin.id
                 LEFT JOIN warehouse ON bin.warehouse_id = warehouse.id
                WHERE ($1::integer IS NULL OR warehouse.id = $1)
                GROUP BY bin_id, inventory.warehouse_id, chargenumber, parts_id) s
         LEFT JOIN parts p ON p.id = s.parts_id
        WHERE s.qty <> 0
        ORDER BY s.parts_id, s.warehouse_id, s.bin_id, s.chargenumber`,
      [warehouseId ?? null],
    );

    const trans: string[] = [];
    for (const row of stock.rows) {
      // Perl computes qty * -1 as a number and prints it that way (e.g. "-2.5").
      const qty = -Number(row.qty);
      trans.push(`${row.parts_id} ${qty} ${row.unit ?? ''}`);
      if (dryRun) continue;
      const typeId = qty > 0 ? typeIn : typeOut;
      if (typeId === undefined) {
        throw new JobError(`${NAME}: transfer type 'correction' with direction '${qty > 0 ? 'in' : 'out'}' is missing in table transfer_type`);
      }
      await ctx.db.query(
        `INSERT INTO inventory (bestbefore, bin_id, chargenumber, comment, employee_id, parts_id, qty, shippingdate,
                                trans_type_id, warehouse_id, trans_id)
         VALUES (NULL, $1, $2, $3, $4, $5, $6, $7, $8, $9, nextval('id'))`,
        [row.bin_id, row.chargenumber, comment, employee.rows[0].id, row.parts_id, String(qty), today, typeId, row.warehouse_id],
      );
    }

    const t8 = t8For(ctx);
    return dryRun
      ? t8('Inventory: #1 transactions not yet executed to clear all inventory slots. Parts: #2', stock.rows.length, trans.join(','))
      : t8('Inventory: #1 transactions executed to clear all inventory slots. Parts: #2', stock.rows.length, trans.join(','));
  },
};
