// ConvertTimeRecordings (kivitendo's own SL::BackgroundJob::ConvertTimeRecordings) run by OUR
// daemon through the Perl path, on the cases of kivitendo's t/background_job/convert_time_recordings.t:
// the same customers, service parts, projects, sales orders and time recordings (written as rows
// here, as kivitendo's SL::Dev helpers would save them), the same job data, the same assertions on
// the delivery orders, their items and links and the orders' delivered/ship. Each case is a due
// interval job an admin set up with that data, started by SIGALRM; between cases the tables are
// emptied as the kivitendo test's clear_up does. The task server user has locale en and number
// format 1000.00, as the kivitendo test sets them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from 'pg';
import { waitFor } from './harness/cli';
import { createKivitendoInstallation, type KivitendoInstallation } from './harness/kivitendo';
import { dumpAsKivitendo, startOurDaemon, wakeUpTaskServer, type RunningDaemon } from './harness/webui';

let inst: KivitendoInstallation;
let daemon: RunningDaemon | undefined;
let employeeId: number;

before(async () => {
  inst = await createKivitendoInstallation({
    users: [{ login: 'taskserver', settings: { countrycode: 'en', numberformat: '1000.00', dateformat: 'dd.mm.yy' } }],
  });
  await inst.query('Demo', `UPDATE background_jobs SET active = false`);
  employeeId = (await inst.query('Demo', `SELECT id FROM employee WHERE login = 'taskserver'`))[0].id;
  daemon = await startOurDaemon(inst);
});

after(async () => {
  if (daemon) await daemon.stop();
  inst?.remove();
});

const daemonDetail = () => (daemon ? `daemon stderr: ${daemon.out.stderr.slice(-3000)}` : 'no daemon');
const q = (sql: string, p: unknown[] = []) => inst.query('Demo', sql, p);

/** kivitendo's clear_up: TimeRecording OrderItem Order DeliveryOrder Project Part Customer RecordLink. */
async function clearUp() {
  await inst.withClientDb('Demo', async (db) => {
    for (const t of ['time_recordings', 'record_links', 'delivery_order_items', 'delivery_orders', 'orderitems', 'oe', 'project', 'parts', 'customer']) {
      await db.query(`DELETE FROM ${t}`);
    }
  });
}

/** The rows SL::Dev's new_service/create_project/new_customer/create_sales_order/new_time_recording save. */
const fixtures = {
  async service(partnumber: string, unit: string, extra: { obsolete?: boolean } = {}): Promise<number> {
    return (
      await q(
        `INSERT INTO parts (partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id, obsolete)
         VALUES ($1, 'Test service', $2, 'service', 10, 5, (SELECT id FROM buchungsgruppen ORDER BY sortkey, id LIMIT 1), $3) RETURNING id`,
        [partnumber, unit, extra.obsolete ?? false],
      )
    )[0].id;
  },
  async project(projectnumber: string, description: string, extra: { valid?: boolean } = {}): Promise<number> {
    return (
      await q(
        `INSERT INTO project (projectnumber, description, active, valid, project_status_id, project_type_id)
         VALUES ($1, $2, true, $3, (SELECT id FROM project_statuses WHERE name = 'running'), (SELECT id FROM project_types WHERE description = 'Standard')) RETURNING id`,
        [projectnumber, description, extra.valid ?? true],
      )
    )[0].id;
  },
  customerCounter: 0,
  async customer(): Promise<{ id: number; number: string }> {
    fixtures.customerCounter += 1;
    const number = `TR-${fixtures.customerCounter}`;
    const id = (
      await q(
        `INSERT INTO customer (name, customernumber, currency_id, taxzone_id, country_id)
         VALUES ('Testkunde', $1, (SELECT currency_id FROM defaults), (SELECT id FROM tax_zones ORDER BY sortkey LIMIT 1), (SELECT id FROM countries WHERE iso2 = 'DE')) RETURNING id`,
        [number],
      )
    )[0].id;
    return { id, number };
  },
  orderCounter: 0,
  /** A saved sales order with one item per entry; returns its id and item ids. */
  async salesOrder(o: { customer: number; globalproject?: number; items: { part: number; qty: number; unit?: string; sellprice: number }[] }) {
    fixtures.orderCounter += 1;
    return inst.withClientDb('Demo', async (db: Client) => {
      const net = o.items.reduce((s, i) => s + i.qty * i.sellprice, 0);
      const order = await db.query(
        `INSERT INTO oe (ordnumber, transdate, customer_id, taxzone_id, currency_id, taxincluded, employee_id, salesman_id, record_type, globalproject_id, amount, netamount, closed, delivered)
         SELECT $1, current_date, c.id, c.taxzone_id, c.currency_id, false, $2, $2, 'sales_order', $3, $4, $5, false, false FROM customer c WHERE c.id = $6 RETURNING id`,
        [`SO-${fixtures.orderCounter}`, employeeId, o.globalproject ?? null, String(Math.round(net * 119) / 100), String(net), o.customer],
      );
      const orderId: number = order.rows[0].id;
      const itemIds: number[] = [];
      for (const [n, i] of o.items.entries()) {
        const r = await db.query(
          `INSERT INTO orderitems (trans_id, parts_id, description, qty, unit, sellprice, lastcost, discount, position, price_factor, marge_price_factor, ship)
           SELECT $1, p.id, p.description, $2, COALESCE($3, p.unit), $4, p.lastcost, 0, $5, 1, 1, 0 FROM parts p WHERE p.id = $6 RETURNING id`,
          [orderId, String(i.qty), i.unit ?? null, String(i.sellprice), n + 1, i.part],
        );
        itemIds.push(r.rows[0].id);
      }
      return { id: orderId, itemIds };
    });
  },
  /** start/end as 'YYYY-MM-DD HH:MM' (the DB triggers set date and duration), or date + duration. */
  async timeRecording(t: { start?: string; end?: string; date?: string; duration?: number; customer: number; project?: number; part?: number; order?: number }) {
    await q(
      `INSERT INTO time_recordings (customer_id, project_id, part_id, order_id, start_time, end_time, date, duration, description, staff_member_id, employee_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '<p>this and that</p>', $9, $9)`,
      [t.customer, t.project ?? null, t.part ?? null, t.order ?? null, t.start ?? null, t.end ?? null, t.date ?? t.start!.slice(0, 10), t.duration ?? null, employeeId],
    );
  },
};

interface Run {
  status: string;
  result: string | null;
  error: string | null;
}

/**
 * An admin's ConvertTimeRecordings job with this data (an interval row, due), started at once by
 * SIGALRM; its history row.
 */
async function runJob(data: Record<string, unknown>): Promise<Run> {
  const [{ last }] = await q(`SELECT COALESCE(max(id), 0) AS last FROM background_job_histories`);
  const [{ id }] = await q(
    `INSERT INTO background_jobs (type, package_name, cron_spec, data, active, next_run_at)
     VALUES ('interval', 'ConvertTimeRecordings', '7 3 1 * *', $1, true, localtimestamp - interval '1 minute') RETURNING id`,
    ['---\n' + dumpAsKivitendo(data)],
  );
  wakeUpTaskServer(inst.root);
  const history = await waitFor(
    `the history row of ConvertTimeRecordings job ${id}`,
    async () => (await q(`SELECT status, result, error FROM background_job_histories WHERE id > $1 AND package_name = 'ConvertTimeRecordings'`, [last]))[0] as Run | undefined,
    60_000,
    daemonDetail,
  );
  const [job] = await q(`SELECT last_run_at IS NOT NULL AS has_run, next_run_at > localtimestamp AS rescheduled FROM background_jobs WHERE id = $1`, [id]);
  assert.deepEqual(job, { has_run: true, rescheduled: true }, 'the daemon did its bookkeeping of the interval job');
  await q(`UPDATE background_jobs SET active = false WHERE id = $1`, [id]);
  return history;
}

const linkedDeliveryOrders = (orderId: number) =>
  q(
    `SELECT d.id, d.donumber, d.globalproject_id FROM record_links rl JOIN delivery_orders d ON d.id = rl.to_id
      WHERE rl.from_table = 'oe' AND rl.from_id = $1 AND rl.to_table = 'delivery_orders' ORDER BY d.id`,
    [orderId],
  );
const linkedItems = async (orderItemId: number) =>
  (
    await q(
      `SELECT i.qty, i.base_qty, i.parts_id FROM record_links rl JOIN delivery_order_items i ON i.id = rl.to_id
        WHERE rl.from_table = 'orderitems' AND rl.from_id = $1 AND rl.to_table = 'delivery_order_items' ORDER BY i.id`,
      [orderItemId],
    )
  ).map((r) => ({ qty: Number(r.qty), base_qty: Number(r.base_qty), parts_id: r.parts_id }));
const order = async (orderId: number) => {
  const [o] = await q(`SELECT delivered FROM oe WHERE id = $1`, [orderId]);
  const items = await q(`SELECT ship FROM orderitems WHERE trans_id = $1 ORDER BY position`, [orderId]);
  return { delivered: o.delivered, ship: items.map((i) => Number(i.ship ?? 0)) };
};

const assertSuccess = (r: Run, deliveryOrders: number) => {
  assert.equal(r.status, 'success', `job failed: ${r.error}`);
  assert.match(r.result ?? '', new RegExp(`^Number of delivery orders created: ${deliveryOrders}`));
};

describe("ConvertTimeRecordings on the cases of kivitendo's convert_time_recordings.t", { concurrency: false, timeout: 20 * 60_000 }, () => {
  test('two time recordings, one order linked by the project id in the time recording', async () => {
    await clearUp();
    const part = await fixtures.service('Serv1', 'Std');
    const project = await fixtures.project('p1', 'Project 1');
    const customer = await fixtures.customer();
    const so = await fixtures.salesOrder({ customer: customer.id, globalproject: project, items: [{ part, qty: 3, sellprice: 70 }] });
    await fixtures.timeRecording({ start: '2021-04-19 10:05', end: '2021-04-19 11:05', customer: customer.id, project, part });
    await fixtures.timeRecording({ start: '2021-04-19 12:05', end: '2021-04-19 14:05', customer: customer.id, project, part });
    const r = await runJob({ link_order: 1, from_date: '01.01.2021', to_date: '30.04.2021' });
    assertSuccess(r, 1);
    const dos = await linkedDeliveryOrders(so.id);
    assert.equal(dos.length, 1, 'one delivery order linked to order');
    assert.equal(dos[0].globalproject_id, project, 'project ids match');
    const items = await linkedItems(so.itemIds[0]);
    assert.equal(items.length, 1, 'one delivery order item linked to order item');
    assert.equal(items[0].qty, 3, 'qty in delivery order');
    assert.equal(items[0].base_qty, 3, 'base_qty in delivery order');
    assert.deepEqual(await order(so.id), { delivered: true, ship: [3] }, 'related order is delivered, ship');
    const [tr] = await q(`SELECT bool_and(booked) AS booked FROM time_recordings`);
    assert.equal(tr.booked, true, 'the time recordings are booked');
  });

  test("different units: order item in 'min', part in 'Std'", async () => {
    await clearUp();
    const part = await fixtures.service('Serv1', 'Std');
    const project = await fixtures.project('p1', 'Project 1');
    const customer = await fixtures.customer();
    const so = await fixtures.salesOrder({ customer: customer.id, globalproject: project, items: [{ part, qty: 180, unit: 'min', sellprice: 70 }] });
    await fixtures.timeRecording({ start: '2021-04-19 10:10', end: '2021-04-19 11:10', customer: customer.id, project, part });
    await fixtures.timeRecording({ start: '2021-04-19 12:10', end: '2021-04-19 14:10', customer: customer.id, project, part });
    assertSuccess(await runJob({ link_order: 1, from_date: '01.04.2021', to_date: '30.04.2021' }), 1);
    const items = await linkedItems(so.itemIds[0]);
    assert.equal(items[0].qty, 3, 'different units: qty in delivery order');
    assert.equal(items[0].base_qty, 3, 'different units: base_qty in delivery order');
    assert.deepEqual(await order(so.id), { delivered: true, ship: [180] });
  });

  test("different units 2: order item in 'Std', part in 'min'", async () => {
    await clearUp();
    const part = await fixtures.service('Serv1', 'min');
    const project = await fixtures.project('p1', 'Project 1');
    const customer = await fixtures.customer();
    const so = await fixtures.salesOrder({ customer: customer.id, globalproject: project, items: [{ part, qty: 2, unit: 'Std', sellprice: 70 }] });
    await fixtures.timeRecording({ start: '2021-04-19 10:10', end: '2021-04-19 11:10', customer: customer.id, project, part });
    await fixtures.timeRecording({ start: '2021-04-19 12:10', end: '2021-04-19 13:10', customer: customer.id, project, part });
    assertSuccess(await runJob({ link_order: 1, from_date: '01.04.2021', to_date: '30.04.2021' }), 1);
    const items = await linkedItems(so.itemIds[0]);
    assert.equal(items[0].qty, 2, 'different units 2: qty in delivery order');
    assert.equal(items[0].base_qty, 120, 'different units 2: base_qty in delivery order');
    assert.deepEqual(await order(so.id), { delivered: true, ship: [2] });
  });

  test('without linking: one time recording with start/end, one with date/duration', async () => {
    await clearUp();
    const part = await fixtures.service('Serv1', 'min');
    const customer = await fixtures.customer();
    await fixtures.timeRecording({ start: '2021-04-19 10:10', end: '2021-04-19 11:10', customer: customer.id, part });
    await fixtures.timeRecording({ date: '2021-04-19', duration: 120, customer: customer.id, part });
    assertSuccess(await runJob({ link_order: 0, from_date: '01.04.2021', to_date: '30.04.2021' }), 1);
    const items = await q(
      `SELECT i.qty, i.base_qty FROM delivery_orders d JOIN delivery_order_items i ON i.delivery_order_id = d.id WHERE d.customer_id = $1 ORDER BY d.id, i.position`,
      [customer.id],
    );
    assert.equal(Number(items[0].qty), 180 / 60, 'date/duration and start/end: qty in delivery order');
    assert.equal(Number(items[0].base_qty), 180, 'date/duration and start/end: base_qty in delivery order');
  });

  test('linked by order_id, selected by customer number', async () => {
    await clearUp();
    const part = await fixtures.service('Serv1', 'Std');
    const customer = await fixtures.customer();
    const so = await fixtures.salesOrder({ customer: customer.id, items: [{ part, qty: 3, sellprice: 70 }] });
    await fixtures.timeRecording({ start: '2021-04-19 10:05', end: '2021-04-19 11:05', customer: customer.id, order: so.id, part });
    const r = await runJob({ link_order: 1, from_date: '01.04.2021', to_date: '30.04.2021', customernumbers: [customer.number] });
    assertSuccess(r, 1);
    assert.equal((await linkedDeliveryOrders(so.id)).length, 1, 'linked by order_id: one delivery order linked to order');
    const items = await linkedItems(so.itemIds[0]);
    assert.equal(items.length, 1);
    assert.equal(items[0].qty, 1, 'linked by order_id: qty in delivery order');
    assert.equal(items[0].base_qty, 1, 'linked by order_id: base_qty in delivery order');
    assert.deepEqual((await order(so.id)).ship, [1], 'linked by order_id: ship in related order');
  });

  test('override part and project', async () => {
    await clearUp();
    const part = await fixtures.service('Serv1', 'Std');
    const part2 = await fixtures.service('Serv2', 'min');
    const project = await fixtures.project('p1', 'Project 1');
    const project2 = await fixtures.project('p2', 'Project 2');
    const customer = await fixtures.customer();
    const so = await fixtures.salesOrder({ customer: customer.id, globalproject: project, items: [{ part, qty: 180, unit: 'min', sellprice: 70 }] });
    const so2 = await fixtures.salesOrder({ customer: customer.id, globalproject: project, items: [{ part: part2, qty: 180, unit: 'min', sellprice: 70 }] });
    await fixtures.timeRecording({ start: '2021-04-19 10:10', end: '2021-04-19 11:10', customer: customer.id, project, part });
    await fixtures.timeRecording({ start: '2021-04-19 11:10', end: '2021-04-19 12:10', customer: customer.id, project: project2, part: part2 });
    await fixtures.timeRecording({ start: '2021-04-19 12:10', end: '2021-04-19 13:10', customer: customer.id });
    await runJob({ link_order: 1, from_date: '01.04.2021', to_date: '30.04.2021', override_part_id: part, override_project_id: project });
    const dos = await linkedDeliveryOrders(so.id);
    assert.equal(dos[0]?.globalproject_id, project, 'overriden part and project: project in delivery order');
    const items = await linkedItems(so.itemIds[0]);
    assert.equal(items[0].qty, 3, 'overriden part and project: qty in delivery order');
    assert.equal(items[0].base_qty, 3, 'overriden part and project: base_qty in delivery order');
    assert.equal(items[0].parts_id, part, 'overriden part and project: part id');
    assert.equal((await linkedDeliveryOrders(so2.id)).length, 0, 'overriden part and project: no delivery order for unused order');
    assert.deepEqual((await order(so.id)).ship, [180], 'overriden part and project: ship in related order');
    assert.deepEqual((await order(so2.id)).ship, [0], 'overriden part and project: ship in not related order');
  });

  test('default part and project', async () => {
    await clearUp();
    const part = await fixtures.service('Serv1', 'Std');
    const project = await fixtures.project('p1', 'Project 1');
    const customer = await fixtures.customer();
    const so = await fixtures.salesOrder({ customer: customer.id, globalproject: project, items: [{ part, qty: 180, unit: 'min', sellprice: 70 }] });
    await fixtures.timeRecording({ start: '2021-04-19 10:10', end: '2021-04-19 11:40', customer: customer.id });
    await runJob({ link_order: 1, from_date: '01.04.2021', to_date: '30.04.2021', default_part_id: part, default_project_id: project });
    assert.equal((await linkedDeliveryOrders(so.id))[0]?.globalproject_id, project, 'default and project: project in delivery order');
    const items = await linkedItems(so.itemIds[0]);
    assert.equal(items[0].qty, 1.5, 'default part and project: qty in delivery order');
    assert.equal(items[0].base_qty, 1.5, 'default part and project: base_qty in delivery order');
    assert.equal(items[0].parts_id, part, 'default part and project: part id');
    assert.deepEqual((await order(so.id)).ship, [90], 'default part and project: ship in related order');
  });

  for (const [rounding, expected, label] of [
    [1, 0.25, 'rounding to quarter hour'],
    [0, 0.1, 'no rounding'],
  ] as const) {
    test(`${label}: six minutes`, async () => {
      await clearUp();
      const part = await fixtures.service('Serv1', 'Std');
      const customer = await fixtures.customer();
      const so = await fixtures.salesOrder({ customer: customer.id, items: [{ part, qty: 3, sellprice: 70 }] });
      await fixtures.timeRecording({ start: '2021-04-19 10:00', end: '2021-04-19 10:06', customer: customer.id, order: so.id, part });
      assertSuccess(await runJob({ from_date: '01.01.2021', to_date: '30.04.2021', link_order: 1, rounding }), 1);
      const items = await linkedItems(so.itemIds[0]);
      assert.equal(items[0].qty, expected, `${label}: qty in delivery order`);
      assert.equal(items[0].base_qty, expected, `${label}: base_qty in delivery order`);
      assert.deepEqual((await order(so.id)).ship, [expected], `${label}: ship in related order`);
    });
  }

  test('wrong parameters are detected: each run fails with kivitendo\'s message', async () => {
    await clearUp();
    const failure = async (data: Record<string, unknown>, message: RegExp, label: string) => {
      const r = await runJob(data);
      assert.equal(r.status, 'failure', `${label}: ${JSON.stringify(r)}`);
      assert.match(r.error ?? '', message, label);
    };
    await failure({ from_date: 'x01.04.2021' }, /^Cannot convert date\./, 'wrong date string detected');
    const customer = await fixtures.customer();
    await failure({ customernumbers: ['a fantasy', customer.number] }, /^Not all customer numbers are valid/, 'wrong customer number detected');
    await failure({ customernumbers: '123' }, /^Customer numbers must be given in an array/, 'wrong customer number data type detected');
    await failure({ override_part_id: '123' }, /^No valid part found by given override part id/, 'invalid part id detected');
    const obsolete = await fixtures.service('Serv1', 'Std', { obsolete: true });
    await failure({ override_part_id: obsolete }, /^No valid part found by given override part id/, 'obsolete part detected');
    await failure({ override_project_id: 123 }, /^No valid project found by given override project id/, 'invalid project id detected');
    const invalid = await fixtures.project('p1', 'Project 1', { valid: false });
    await failure({ override_project_id: invalid }, /^No valid project found by given override project id/, 'invalid project detected');
  });
});
