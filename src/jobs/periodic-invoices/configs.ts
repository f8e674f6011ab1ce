// Selection of the configs, automatic extension/deactivation and the billed-up-to dates
// (spec periodic-invoices.md §2.1, §2.2). Set-based: one query for the configs, one for the
// MAX(period_start_date) of all of them, updates only for configs that change.
import type { Client } from '../../db/pg';
import { automaticExtension, formatYmd, parseYmd, parseYmdOrNull, type DateConfig, type Ymd } from './dates';
import { objectSave } from './errors';

export interface ConfigRow extends DateConfig {
  id: number;
  oe_id: number;
  active: boolean;
  print: boolean;
  printer_id: number | null;
  copies: number | null;
  ar_chart_id: number;
  direct_debit: boolean;
  send_email: boolean;
  email_recipient_contact_id: number | null;
  email_recipient_address: string | null;
}

interface RawConfig {
  id: number;
  oe_id: number;
  periodicity: string;
  order_value_periodicity: string;
  start_date: string | null;
  first_billing_date: string | null;
  end_date: string | null;
  terminated: boolean | null;
  extend_automatically_by: number | null;
  active: boolean | null;
  print: boolean | null;
  printer_id: number | null;
  copies: number | null;
  ar_chart_id: number;
  direct_debit: boolean;
  send_email: boolean;
  email_recipient_contact_id: number | null;
  email_recipient_address: string | null;
}

/**
 * The active configs in the order PostgreSQL returns them: kivitendo's query has no ORDER BY, and
 * invoice numbers follow the processing order, so the same unordered query is issued here.
 */
export async function loadActiveConfigs(db: Client): Promise<ConfigRow[]> {
  const r = await db.query<RawConfig>({
    name: 'kts_pi_configs',
    text: `SELECT id, oe_id, periodicity, order_value_periodicity, start_date::text, first_billing_date::text, end_date::text,
                  terminated, extend_automatically_by, active, print, printer_id, copies, ar_chart_id, direct_debit, send_email,
                  email_recipient_contact_id, email_recipient_address
             FROM periodic_invoices_configs WHERE active = true`,
  });
  return r.rows.map((c) => ({
    ...c,
    start_date: parseYmdOrNull(c.start_date),
    first_billing_date: parseYmdOrNull(c.first_billing_date),
    end_date: parseYmdOrNull(c.end_date),
    terminated: !!c.terminated,
    active: !!c.active,
    print: !!c.print,
  }));
}

/** MAX(period_start_date) per config, for all configs in one scan. */
/** Active configurations that print or e-mail their invoices: work for kivitendo's Perl code (`check`). */
export async function countOutputConfigs(db: Client): Promise<number> {
  const r = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM periodic_invoices_configs WHERE active AND (print OR send_email)');
  return r.rows[0].n;
}

export async function lastBilledDates(db: Client, configIds: number[]): Promise<Map<number, Ymd>> {
  const out = new Map<number, Ymd>();
  if (configIds.length === 0) return out;
  const r = await db.query<{ config_id: number; last: string }>({
    name: 'kts_pi_last_billed',
    text: `SELECT config_id, MAX(period_start_date)::text AS last FROM periodic_invoices
            WHERE config_id = ANY($1::integer[]) GROUP BY config_id`,
    values: [configIds],
  });
  for (const row of r.rows) out.set(row.config_id, parseYmd(row.last));
  return out;
}

export interface ExtensionOutcome {
  extended: { config: ConfigRow; endDate: Ymd }[];
  deactivated: ConfigRow[];
}

/** §2.2 for every selected config, before any invoice is created; updates the rows it changes. */
export async function handleAutomaticExtensions(db: Client, configs: ConfigRow[], now: Date): Promise<ExtensionOutcome> {
  const out: ExtensionOutcome = { extended: [], deactivated: [] };
  for (const c of configs) {
    const r = automaticExtension(c, now);
    if (r === null) continue;
    if (r === 'deactivate') {
      c.active = false;
      await objectSave(db, 'PeriodicInvoicesConfig', {
        name: 'kts_pi_cfg_deactivate',
        text: 'UPDATE periodic_invoices_configs SET active = false WHERE id = $1',
        values: [c.id],
      });
      out.deactivated.push(c);
    } else {
      c.end_date = r;
      await objectSave(db, 'PeriodicInvoicesConfig', {
        name: 'kts_pi_cfg_extend',
        text: 'UPDATE periodic_invoices_configs SET end_date = $2 WHERE id = $1',
        values: [c.id, formatYmd(r)],
      });
      out.extended.push({ config: c, endDate: r });
    }
  }
  return out;
}
