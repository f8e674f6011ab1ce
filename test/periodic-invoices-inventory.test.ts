// CreatePeriodicInvoices under perpetual inventory (spec periodic-invoices.md §4.5, §4.7, §4.8):
// cost of goods from open purchase rows, `allocated` on sale and purchase rows, and the component
// rows of assemblies. Expected values are derived by hand from the spec's rules; each comment names
// the rule a number comes from.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from 'pg';
import { prepareGolden } from './harness/golden';
import type { Installation } from './harness/installation';
import { runJob } from './harness/jobs';

const MARCH_15 = new Date(2014, 2, 15, 3, 0, 0);

// Reference chart ids (SKR03, tax zone 4 "Inland", Buchungsgruppe 859 "Standard 19%"):
// income 184 = 8400 (tax 777, taxkey 3), expense 37 = 3400, inventory 53 = 3980,
// tax 775 = 1776, receivable 14 = 1400; tax id 0 = "Keine Steuer" (taxkey 0).
const INCOME = 184;
const EXPENSE = 37;
const INVENTORY = 53;
const TAX = 775;
const AR = 14;

function lit(v: string | null): string {
  return v === null ? 'NULL' : `'${v.replace(/'/g, "''")}'`;
}

interface Item {
  id: number;
  parts: number;
  qty: number;
  unit: string;
  sellprice: number;
}

/** A perpetual-inventory client: one customer, parts, purchase rows, one order with a monthly config. */
function sql(opts: { start: string; items: Item[]; extra: string }): string {
  const lines = [
    `UPDATE defaults SET invnumber = 'RE-0099', inventory_system = 'perpetual';`,
    `INSERT INTO customer (id, name, customernumber, taxzone_id, currency_id, country_id, taxincluded) VALUES (100001, 'Test Customer', 'K-1', 4, 1, 57, false);`,
    `INSERT INTO vendor (id, name, vendornumber, taxzone_id, currency_id, country_id) VALUES (100002, 'Test Vendor', 'L-1', 4, 1, 57);`,
    `INSERT INTO ap (id, invnumber, transdate, vendor_id, amount, netamount, paid, invoice, taxzone_id, currency_id) VALUES
       (60001, 'ER-1', '2014-01-10', 100002, 0, 0, 0, true, 4, 1);`,
    opts.extra,
    `INSERT INTO oe (id, ordnumber, transdate, customer_id, taxincluded, taxzone_id, currency_id, record_type, employee_id, transaction_description, amount, netamount, closed)
       VALUES (101301, 'AB-1', '2013-12-01', 100001, false, 4, 1, 'sales_order', 1, 'Abo', 0, 0, false);`,
  ];
  opts.items.forEach((it, i) => {
    lines.push(`INSERT INTO orderitems (id, trans_id, position, parts_id, description, qty, unit, sellprice, discount, lastcost, price_factor, marge_price_factor, ship, recurring_billing_mode)
                VALUES (${it.id}, 101301, ${i + 1}, ${it.parts}, ${lit(`Item ${i + 1}`)}, ${it.qty}, '${it.unit}', ${it.sellprice}, 0, 0, 1, 1, 0, 'always');`);
  });
  lines.push(`INSERT INTO periodic_invoices_configs (id, oe_id, periodicity, order_value_periodicity, start_date, active, terminated, ar_chart_id, direct_debit, print, send_email)
              VALUES (100301, 101301, 'm', 'p', '${opts.start}', true, false, ${AR}, false, false, false);`);
  return lines.join('\n');
}

/** A purchase row: negative quantities, as a purchase invoice stores them. */
function purchase(id: number, parts: number, qty: number, sellprice: number, discount: number, unit = 'Stck'): string {
  return `INSERT INTO invoice (id, trans_id, position, parts_id, description, qty, base_qty, allocated, sellprice, fxsellprice, discount, unit, assemblyitem)
          VALUES (${id}, 60001, ${id - 70000}, ${parts}, 'EK', ${-qty}, ${-qty}, 0, ${sellprice}, ${sellprice}, ${discount}, '${unit}', false);`;
}

interface Ran {
  inst: Installation;
  db: Client;
}
const open: Ran[] = [];
after(async () => {
  for (const r of open) {
    await r.db.end();
    r.inst.remove();
  }
});

async function run(input: string): Promise<Ran & { status: string; error: string | null; result: string | null }> {
  const { inst, db } = await prepareGolden(input);
  open.push({ inst, db });
  await db.query(`SET DateStyle TO 'ISO'`);
  const r = await runJob(inst, 'G', { jobId: 2, now: MARCH_15 });
  return { inst, db, status: r.history.status, error: r.history.error, result: r.history.result };
}

const rows = async (db: Client, q: string, p: unknown[] = []) => (await db.query(q, p)).rows;

/** acc_trans of one invoice as (chart, amount, tax_id, taxkey, chart_link); order within groups is random (§4.7). */
const accTrans = (db: Client, arId: number) =>
  rows(
    db,
    `SELECT chart_id, amount::text, tax_id, taxkey, chart_link, transdate::text, project_id
       FROM acc_trans WHERE trans_id = $1 ORDER BY chart_id, amount`,
    [arId],
  );

const ITEM_COLS = `position, parts_id, description, longdescription, qty::text, base_qty::text, sellprice::text, fxsellprice::text,
  discount::text, unit, allocated::text, assemblyitem, price_factor::text, marge_price_factor::text, marge_total::text,
  marge_percent::text, ordnumber, donumber, active_price_source, active_discount_source, subtotal, lastcost::text,
  deliverydate::text, transdate, project_id, cusordnumber`;

describe('perpetual inventory: a plain part (spec §4.5 example)', () => {
  // Part 100201 "Schraube" (unit Stck, Buchungsgruppe 859). Purchase rows 70001: 2 @ 2.00,
  // 70002: 5 @ 3.00 with 10 % discount. Monthly config from 01.02.2014, run on 15.03.2014 → two
  // invoices (February, March), each selling 3 @ 10.00.
  let ran: Awaited<ReturnType<typeof run>>;
  let invoices: { id: number; invnumber: string }[];
  before(async () => {
    ran = await run(
      sql({
        start: '2014-02-01',
        items: [{ id: 101801, parts: 100201, qty: 3, unit: 'Stck', sellprice: 10 }],
        extra: `INSERT INTO parts (id, partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id, obsolete) VALUES
                  (100201, 'P-1', 'Schraube', 'Stck', 'part', 10, 0, 859, false);
                ${purchase(70001, 100201, 2, 2, 0)}
                ${purchase(70002, 100201, 5, 3, 0.1)}`,
      }),
    );
    invoices = (await rows(ran.db, `SELECT id, invnumber FROM ar ORDER BY id`)) as typeof invoices;
  });

  test('the run succeeds with two invoices', () => {
    assert.equal(ran.status, 'success', ran.error ?? '');
    assert.equal(ran.result, '1');
    assert.deepEqual(invoices.map((i) => i.invnumber), ['RE-0100', 'RE-0101']);
  });

  test('sale rows: allocated = −(allocated quantity) = −3, no component rows', async () => {
    for (const inv of invoices) {
      assert.deepEqual(await rows(ran.db, `SELECT position, parts_id, qty::text, base_qty::text, allocated::text, assemblyitem FROM invoice WHERE trans_id = $1`, [inv.id]), [
        { position: 1, parts_id: 100201, qty: '3.00000', base_qty: '3', allocated: '-3', assemblyitem: false },
      ]);
    }
  });

  test('first invoice: COGS 4.00 + 2.70 = 6.70 on 3400/3980 before income, tax and receivable', async () => {
    // Allocation loop: row 70001 q = min(3, 2) = 2, v = round2(2.00 × 1 × 2) = 4.00;
    // row 70002 q = min(1, 5) = 1, v = round2(3.00 × 0.9 × 1) = 2.70 → Σv = 6.70.
    // Income 3 × 10.00 = 30.00; tax round2(30 × 0.19) = 5.70; receivable −35.70 (§4.3, §4.8).
    const common = { transdate: '2014-03-15', project_id: null };
    assert.deepEqual(await accTrans(ran.db, invoices[0].id), [
      { chart_id: AR, amount: '-35.70000', tax_id: 0, taxkey: 0, chart_link: 'AR', ...common },
      { chart_id: EXPENSE, amount: '-6.70000', tax_id: 0, taxkey: 0, chart_link: 'AP_amount:IC_cogs', ...common },
      { chart_id: INVENTORY, amount: '6.70000', tax_id: 0, taxkey: 0, chart_link: 'IC', ...common },
      { chart_id: INCOME, amount: '30.00000', tax_id: 777, taxkey: 3, chart_link: 'AR_amount:IC_sale:IC_income', ...common },
      { chart_id: TAX, amount: '5.70000', tax_id: 0, taxkey: 0, chart_link: 'AR_tax:IC_taxpart:IC_taxservice', ...common },
    ]);
    // Write sequence §4.7 step 7: the COGS group comes first.
    const order = await rows(ran.db, `SELECT chart_id FROM acc_trans WHERE trans_id = $1 ORDER BY acc_trans_id`, [invoices[0].id]);
    assert.deepEqual(new Set(order.slice(0, 2).map((r) => r.chart_id)), new Set([EXPENSE, INVENTORY]));
    assert.equal(order[4].chart_id, AR);
  });

  test('second invoice: the 4 left on row 70002 give COGS 8.10', async () => {
    // Row 70001 is used up (−2 + 2 = 0, no longer open); row 70002 has −5 + 1 = −4 open:
    // q = min(3, 4) = 3, v = round2(3.00 × 0.9 × 3) = 8.10.
    const acc = await accTrans(ran.db, invoices[1].id);
    assert.deepEqual(
      acc.filter((r) => r.chart_id === EXPENSE || r.chart_id === INVENTORY).map((r) => [r.chart_id, r.amount]),
      [
        [EXPENSE, '-8.10000'],
        [INVENTORY, '8.10000'],
      ],
    );
  });

  test('purchase rows: allocated 2 and 4 (1 + 3) after the run', async () => {
    assert.deepEqual(await rows(ran.db, `SELECT id, allocated::text FROM invoice WHERE trans_id = 60001 ORDER BY id`), [
      { id: 70001, allocated: '2' },
      { id: 70002, allocated: '4' },
    ]);
  });

  test('ar sums are unchanged by COGS', async () => {
    assert.deepEqual(await rows(ran.db, `SELECT amount::text, netamount::text, marge_total::text, marge_percent::text FROM ar WHERE id = $1`, [invoices[0].id]), [
      { amount: '35.70000', netamount: '30.00000', marge_total: '30.00000', marge_percent: '100.00000' },
    ]);
  });
});

describe('perpetual inventory: an assembly with nested components (spec §4.5)', () => {
  // Assembly 100211 "Bausatz" = 2 × part 100212 "Brett" (position 1), 1 × service 100213
  // "Montage" (position 2), 1 × assembly 100214 "Beschlag" (position 3) = 3 × part 100215
  // "Scharnier". Order: 2 × Bausatz @ 50.00, then 1 × service 100213 @ 10.00; one invoice (March).
  // Purchases: Brett 70011: 10 @ 1.50; Scharnier 70021: 4 @ 0.25, 70022: 1 @ 0.40 with 25 %
  // discount (only 5 Scharniere in stock for the 6 needed).
  let ran: Awaited<ReturnType<typeof run>>;
  let arId: number;
  before(async () => {
    ran = await run(
      sql({
        start: '2014-03-01',
        items: [
          { id: 101811, parts: 100211, qty: 2, unit: 'Stck', sellprice: 50 },
          { id: 101812, parts: 100213, qty: 1, unit: 'Stck', sellprice: 10 },
        ],
        extra: `INSERT INTO parts (id, partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id, obsolete) VALUES
                  (100211, 'A-1', 'Bausatz', 'Stck', 'assembly', 50, 0, 859, false),
                  (100212, 'P-2', 'Brett', 'Stck', 'part', 5, 0, 859, false),
                  (100213, 'S-1', 'Montage', 'Stck', 'service', 10, 0, 859, false),
                  (100214, 'A-2', 'Beschlag', 'Stck', 'assembly', 3, 0, 859, false),
                  (100215, 'P-3', 'Scharnier', 'Stck', 'part', 1, 0, 859, false);
                INSERT INTO assembly (id, parts_id, qty, bom, position) VALUES
                  (100211, 100214, 1, true, 3), (100211, 100212, 2, true, 1), (100211, 100213, 1, true, 2),
                  (100214, 100215, 3, true, 1);
                ${purchase(70011, 100212, 10, 1.5, 0)}
                ${purchase(70021, 100215, 4, 0.25, 0)}
                ${purchase(70022, 100215, 1, 0.4, 0.25)}`,
      }),
    );
    arId = (await rows(ran.db, `SELECT id FROM ar`))[0]?.id;
  });

  test('the run succeeds with one invoice', () => {
    assert.equal(ran.status, 'success', ran.error ?? '');
    assert.ok(arId);
  });

  test('component rows follow their assembly, recursively, before the next order item', async () => {
    const got = await rows(ran.db, `SELECT ${ITEM_COLS} FROM invoice WHERE trans_id = $1 ORDER BY position`, [arId]);
    // Order items as in §3.3 (base_qty = qty for unit Stck; lastcost 0 → margin 100 %; assemblies
    // and services keep allocated NULL).
    const orderItem = (position: number, parts_id: number, description: string, qty: string, price: string, marge: string) => ({
      position, parts_id, description, longdescription: '', qty, base_qty: qty.replace(/\.0+$/, ''), sellprice: price, fxsellprice: price,
      discount: '0', unit: 'Stck', allocated: null, assemblyitem: false, price_factor: '1.00000', marge_price_factor: '1.00000',
      marge_total: marge, marge_percent: '100.00000', ordnumber: 'AB-1', donumber: '', active_price_source: '', active_discount_source: '',
      subtotal: false, lastcost: '0.00000', deliverydate: null, transdate: null, project_id: null, cusordnumber: null,
    });
    // Component rows (§4.5, kivitendo's InvoiceItem->new with part, qty, allocated, zero prices
    // and assemblyitem only): description and unit from the part; qty = parent base_qty × assembly
    // qty; every other column is the model default (price factors 1, price sources '', subtotal
    // false) or NULL.
    const component = (position: number, parts_id: number, description: string, qty: string, allocated: string) => ({
      position, parts_id, description, longdescription: null, qty, base_qty: null, sellprice: '0.00000', fxsellprice: '0.00000',
      discount: null, unit: 'Stck', allocated, assemblyitem: true, price_factor: '1.00000', marge_price_factor: '1.00000',
      marge_total: null, marge_percent: null, ordnumber: null, donumber: null, active_price_source: '', active_discount_source: '',
      subtotal: false, lastcost: null, deliverydate: null, transdate: null, project_id: null, cusordnumber: null,
    });
    assert.deepEqual(got, [
      // 2 × 50.00 = 100.00 net, margin 100 − 0.
      orderItem(1, 100211, 'Item 1', '2.00000', '50.00000', '100.00000'),
      // Brett: 2 × 2 = 4; fully allocated from 70011 → allocated −4.
      component(2, 100212, 'Brett', '4.00000', '-4'),
      // Montage (service): 2 × 1 = 2; allocated 0 for non-parts.
      component(3, 100213, 'Montage', '2.00000', '0'),
      // Beschlag (assembly): 2 × 1 = 2; allocated 0; its own components follow.
      component(4, 100214, 'Beschlag', '2.00000', '0'),
      // Scharnier: 2 × 1 × 3 = 6; only 4 + 1 open → allocated = remaining − Q = 1 − 6 = −5.
      component(5, 100215, 'Scharnier', '6.00000', '-5'),
      // The next order item continues the numbering.
      orderItem(6, 100213, 'Item 2', '1.00000', '10.00000', '10.00000'),
    ]);
  });

  test('COGS for the component parts: Brett 6.00 + Scharnier 1.00 + 0.30 = 7.30', async () => {
    // Brett 70011: q = 4, v = round2(1.50 × 1 × 4 / 1) = 6.00 (base factor 1 inside assemblies).
    // Scharnier 70021: q = min(6, 4) = 4, v = round2(0.25 × 4) = 1.00;
    //           70022: q = min(2, 1) = 1, v = round2(0.40 × 0.75 × 1) = 0.30.
    // Income 100.00 + 10.00 = 110.00; tax round2(110 × 0.19) = 20.90; receivable −130.90.
    const common = { transdate: '2014-03-15', project_id: null };
    assert.deepEqual(await accTrans(ran.db, arId), [
      { chart_id: AR, amount: '-130.90000', tax_id: 0, taxkey: 0, chart_link: 'AR', ...common },
      { chart_id: EXPENSE, amount: '-7.30000', tax_id: 0, taxkey: 0, chart_link: 'AP_amount:IC_cogs', ...common },
      { chart_id: INVENTORY, amount: '7.30000', tax_id: 0, taxkey: 0, chart_link: 'IC', ...common },
      { chart_id: INCOME, amount: '110.00000', tax_id: 777, taxkey: 3, chart_link: 'AR_amount:IC_sale:IC_income', ...common },
      { chart_id: TAX, amount: '20.90000', tax_id: 0, taxkey: 0, chart_link: 'AR_tax:IC_taxpart:IC_taxservice', ...common },
    ]);
    assert.deepEqual(await rows(ran.db, `SELECT amount::text, netamount::text FROM ar WHERE id = $1`, [arId]), [{ amount: '130.90000', netamount: '110.00000' }]);
  });

  test('purchase rows get the allocated quantities: 4, 4, 1', async () => {
    assert.deepEqual(await rows(ran.db, `SELECT id, allocated::text FROM invoice WHERE trans_id = 60001 ORDER BY id`), [
      { id: 70011, allocated: '4' },
      { id: 70021, allocated: '4' },
      { id: 70022, allocated: '1' },
    ]);
  });

  test('record_links: order and the two order items only, no links for component rows (§4.7 step 6)', async () => {
    const links = await rows(
      ran.db,
      `SELECT rl.from_table, rl.from_id, rl.to_table, i.position FROM record_links rl LEFT JOIN invoice i ON rl.to_table = 'invoice' AND i.id = rl.to_id
        ORDER BY rl.id`,
    );
    assert.deepEqual(links, [
      { from_table: 'oe', from_id: 101301, to_table: 'ar', position: null },
      { from_table: 'orderitems', from_id: 101811, to_table: 'invoice', position: 1 },
      { from_table: 'orderitems', from_id: 101812, to_table: 'invoice', position: 6 },
    ]);
  });
});

describe('perpetual inventory: a part sold in another unit (spec §4.5, bfr)', () => {
  test('COGS divides the purchase price by bf(item unit)/bf(part unit)', async () => {
    // Part 100251 in unit g (bf 1000: g → mg); sold as 1 kg (bf 1000 × 1000 = 1 000 000) @ 20.00.
    // base_qty = 1 × 1 000 000 / 1000 = 1000 (§4.3 step 1); bfr = 1 000 000 / 1000 = 1000.
    // Purchase row 70041: 2000 g @ 0.01 → q = min(1000, 2000) = 1000,
    // v = round2(0.01 × 1 × 1000 / 1000) = 0.01 (kivitendo divides by bfr, §4.5).
    const r = await run(
      sql({
        start: '2014-03-01',
        items: [{ id: 101851, parts: 100251, qty: 1, unit: 'kg', sellprice: 20 }],
        extra: `INSERT INTO parts (id, partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id, obsolete) VALUES
                  (100251, 'P-G', 'Mehl', 'g', 'part', 0.02, 0, 859, false);
                ${purchase(70041, 100251, 2000, 0.01, 0, 'g')}`,
      }),
    );
    assert.equal(r.status, 'success', r.error ?? '');
    const arId = (await rows(r.db, `SELECT id FROM ar`))[0].id;
    assert.deepEqual(await rows(r.db, `SELECT qty::text, unit, base_qty::text, allocated::text FROM invoice WHERE trans_id = $1`, [arId]), [
      { qty: '1.00000', unit: 'kg', base_qty: '1000', allocated: '-1000' },
    ]);
    const acc = await accTrans(r.db, arId);
    assert.deepEqual(
      acc.filter((x) => x.chart_id === EXPENSE || x.chart_id === INVENTORY).map((x) => [x.chart_id, x.amount]),
      [
        [EXPENSE, '-0.01000'],
        [INVENTORY, '0.01000'],
      ],
    );
    assert.deepEqual(await rows(r.db, `SELECT allocated::text FROM invoice WHERE id = 70041`), [{ allocated: '1000' }]);
  });
});

describe('periodic inventory: the same assembly books nothing (spec §4.5)', () => {
  test('no component rows, no COGS, purchase rows untouched, parts allocated 0', async () => {
    const r = await run(
      sql({
        start: '2014-03-01',
        items: [
          { id: 101821, parts: 100221, qty: 2, unit: 'Stck', sellprice: 50 },
          { id: 101822, parts: 100222, qty: 1, unit: 'Stck', sellprice: 5 },
        ],
        extra: `INSERT INTO parts (id, partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id, obsolete) VALUES
                  (100221, 'A-1', 'Bausatz', 'Stck', 'assembly', 50, 0, 859, false),
                  (100222, 'P-2', 'Brett', 'Stck', 'part', 5, 0, 859, false);
                INSERT INTO assembly (id, parts_id, qty, bom, position) VALUES (100221, 100222, 2, true, 1);
                ${purchase(70031, 100222, 10, 1.5, 0)}
                UPDATE defaults SET inventory_system = 'periodic';`,
      }),
    );
    assert.equal(r.status, 'success', r.error ?? '');
    const arId = (await rows(r.db, `SELECT id FROM ar`))[0].id;
    assert.deepEqual(await rows(r.db, `SELECT position, parts_id, allocated::text, assemblyitem FROM invoice WHERE trans_id = $1 ORDER BY position`, [arId]), [
      { position: 1, parts_id: 100221, allocated: null, assemblyitem: false },
      { position: 2, parts_id: 100222, allocated: '0', assemblyitem: false },
    ]);
    assert.deepEqual((await accTrans(r.db, arId)).map((x) => x.chart_id), [AR, INCOME, TAX]);
    assert.deepEqual(await rows(r.db, `SELECT allocated::text FROM invoice WHERE id = 70031`), [{ allocated: '0' }]);
  });
});

describe('perpetual inventory: failures', () => {
  test('a component part without Buchungsgruppe: failure, nothing written', async () => {
    const r = await run(
      sql({
        start: '2014-03-01',
        items: [{ id: 101831, parts: 100231, qty: 1, unit: 'Stck', sellprice: 50 }],
        extra: `INSERT INTO parts (id, partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id, obsolete) VALUES
                  (100231, 'A-1', 'Bausatz', 'Stck', 'assembly', 50, 0, 859, false),
                  (100232, 'P-NOBG', 'Ohne BG', 'Stck', 'part', 5, 0, NULL, false);
                INSERT INTO assembly (id, parts_id, qty, bom, position) VALUES (100231, 100232, 1, true, 1);`,
      }),
    );
    assert.equal(r.status, 'failure');
    assert.match(r.error!, /^do_transaction\(\) failed - Can't call method "call_sub" on an undefined value at periodic invoice config 100301, order AB-1, period 2014-03-01: part P-NOBG has no Buchungsgruppe\.$/);
    assert.equal((await rows(r.db, 'SELECT count(*)::int AS n FROM ar')).at(0)?.n, 0);
  });

  test('an assembly containing itself: failure instead of endless recursion', async () => {
    const r = await run(
      sql({
        start: '2014-03-01',
        items: [{ id: 101841, parts: 100241, qty: 1, unit: 'Stck', sellprice: 50 }],
        extra: `INSERT INTO parts (id, partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id, obsolete) VALUES
                  (100241, 'A-LOOP', 'Schleife', 'Stck', 'assembly', 50, 0, 859, false);
                INSERT INTO assembly (id, parts_id, qty, bom, position) VALUES (100241, 100241, 1, true, 1);`,
      }),
    );
    assert.equal(r.status, 'failure');
    assert.match(r.error!, /assembly A-LOOP contains itself/);
    assert.equal((await rows(r.db, 'SELECT count(*)::int AS n FROM ar')).at(0)?.n, 0);
  });
});
