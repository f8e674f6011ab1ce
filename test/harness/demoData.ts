// A small subscription for the demo and smoke tests: one customer, two service parts (Buchungsgruppe
// "Standard 19%" of the SKR03 reference data), a sales order and a monthly periodic invoice config
// that started at the beginning of the current month, so CreatePeriodicInvoices bills it today.
import type { Client } from 'pg';

export async function addDemoSubscription(db: Client): Promise<{ configId: number; orderId: number }> {
  const bg = await db.query(`SELECT id FROM buchungsgruppen WHERE description LIKE 'Standard 19%' ORDER BY id LIMIT 1`);
  const chart = await db.query(`SELECT id FROM chart WHERE link = 'AR' ORDER BY accno LIMIT 1`);
  const zone = await db.query(`SELECT id FROM tax_zones WHERE description = 'Inland'`);
  const currency = await db.query(`SELECT currency_id FROM defaults`);
  const employee = await db.query(`SELECT id FROM employee ORDER BY id LIMIT 1`);
  const customer = await db.query(
    `INSERT INTO customer (name, customernumber, taxzone_id, currency_id, taxincluded, country_id)
     VALUES ('Demo Kunde AG', 'D-1', $1, $2, false, (SELECT id FROM countries WHERE iso2 = 'DE')) RETURNING id`,
    [zone.rows[0].id, currency.rows[0].currency_id],
  );
  const parts: number[] = [];
  for (const [number, description, price] of [['DEMO-HOST', 'Hosting', 29.9], ['DEMO-SUPP', 'Support', 49]] as const) {
    const r = await db.query(
      `INSERT INTO parts (partnumber, description, unit, part_type, sellprice, lastcost, buchungsgruppen_id) VALUES ($1, $2, 'Stck', 'service', $3, 0, $4) RETURNING id`,
      [number, description, price, bg.rows[0].id],
    );
    parts.push(r.rows[0].id);
  }
  const order = await db.query(
    `INSERT INTO oe (ordnumber, transdate, customer_id, taxincluded, taxzone_id, currency_id, record_type, employee_id, amount, netamount, closed, transaction_description)
     VALUES ('DEMO-AB-1', date_trunc('month', current_date) - interval '1 day', $1, false, $2, $3, 'sales_order', $4, 0, 0, false, 'Demo-Abo <%period_start_date%> bis <%period_end_date%>') RETURNING id`,
    [customer.rows[0].id, zone.rows[0].id, currency.rows[0].currency_id, employee.rows[0].id],
  );
  const orderId = order.rows[0].id;
  for (const [i, partId] of parts.entries()) {
    await db.query(
      `INSERT INTO orderitems (trans_id, position, parts_id, description, qty, unit, sellprice, discount, lastcost, price_factor, marge_price_factor, ship, recurring_billing_mode)
       SELECT $1, $2, id, description, 1, unit, sellprice, 0, 0, 1, 1, 0, 'always' FROM parts WHERE id = $3`,
      [orderId, i + 1, partId],
    );
  }
  const config = await db.query(
    `INSERT INTO periodic_invoices_configs (oe_id, periodicity, order_value_periodicity, start_date, active, terminated, ar_chart_id, direct_debit, print, send_email)
     VALUES ($1, 'm', 'p', date_trunc('month', current_date), true, false, $2, false, false, false) RETURNING id`,
    [orderId, chart.rows[0].id],
  );
  return { configId: config.rows[0].id, orderId };
}
