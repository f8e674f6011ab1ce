// Golden scenarios of shared/golden/periodic-invoices (and own scenarios in the same layout):
// load input.sql into a fresh client DB, run the job through the real runner as kivitendo's
// unit-test user (employee 1 'unittests' of the reference data), dump tables as the golden
// README prescribes (col::text, ISO dates, sorted) and diff them column by column.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from 'pg';
import { connect, createClientDb, getPostgres } from './postgres';
import { createInstallation, type Installation } from './installation';
import { runJob, type RunJobResult } from './jobs';

// A copy of shared/golden/periodic-invoices (the rows kivitendo's Perl job wrote), kept in the repo so
// that the suite is complete on any machine.
export const GOLDEN_DIR = process.env.KTS_GOLDEN_DIR ?? path.join(__dirname, '..', 'fixtures', 'golden', 'periodic-invoices');

export type Row = Record<string, unknown>;

export interface Expected {
  today: string;
  time: string;
  tz: string;
  job: { status: string; result: string | null; error: string | null };
  tables: Record<string, Row[]>;
}

export const UNITTESTS_SETTINGS = { dateformat: 'dd.mm.yy', numberformat: '1.000,00', countrycode: 'de' };

export interface GoldenRun {
  inst: Installation;
  result: RunJobResult;
  dump(table: string, columns: string[]): Promise<Row[]>;
  query(sql: string, params?: unknown[]): Promise<Row[]>;
  close(): Promise<void>;
}

/** Fresh client DB with `sql` loaded, an installation whose task server user is 'unittests'. */
export async function prepareGolden(
  sql: string,
  opts: { settings?: Record<string, string>; config?: Record<string, Record<string, string>> } = {},
): Promise<{ inst: Installation; db: Client }> {
  const pg = await getPostgres();
  const dbname = await createClientDb(pg);
  const db = await connect(pg, dbname);
  await db.query(sql);
  const inst = await createInstallation({
    users: [{ login: 'unittests', settings: { ...UNITTESTS_SETTINGS, ...(opts.settings ?? {}) } }],
    clients: [{ name: 'G', dbname, skipEmployee: true }],
    config: opts.config,
  });
  return { inst, db };
}

const SORT: Record<string, string> = {
  acc_trans: 'trans_id, chart_id, amount',
  custom_variables: 'config_id, sub_module, trans_id',
  shipto: 'shipto_id',
  defaults: '1',
};

export async function dumpTable(db: Client, table: string, columns: string[]): Promise<Row[]> {
  const types = await db.query<{ column_name: string; data_type: string }>(
    `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1`,
    [table],
  );
  const typeOf = new Map(types.rows.map((r) => [r.column_name, r.data_type]));
  const sel = columns.map((c) => `t."${c}"::text AS "${c}"`).join(', ');
  // Qualified: the select list shadows the names with text casts.
  const order = (SORT[table] ?? 'id').split(', ').map((c) => (c === '1' ? c : `t."${c}"`)).join(', ');
  const r = await db.query(`SELECT ${sel} FROM ${table} t ORDER BY ${order}`);
  return r.rows.map((row) => {
    const out: Row = {};
    for (const c of columns) {
      const v = row[c] as string | null;
      const t = typeOf.get(c);
      if (v === null) out[c] = null;
      else if (t === 'integer' || t === 'smallint' || t === 'bigint') out[c] = Number(v);
      else if (t === 'boolean') out[c] = v === 'true';
      else out[c] = v;
    }
    return out;
  });
}

/** Human-readable differences (empty = identical). */
export function diffTables(expected: Record<string, Row[]>, actual: Record<string, Row[]>): string[] {
  const out: string[] = [];
  for (const [table, rows] of Object.entries(expected)) {
    const got = actual[table] ?? [];
    if (got.length !== rows.length) out.push(`${table}: ${got.length} rows, expected ${rows.length}`);
    const n = Math.min(got.length, rows.length);
    for (let i = 0; i < n; i++) {
      for (const [col, ev] of Object.entries(rows[i])) {
        const av = got[i][col];
        if (JSON.stringify(av) !== JSON.stringify(ev)) out.push(`${table}[${i}] (id ${rows[i].id ?? rows[i].trans_id ?? ''}).${col}: got ${JSON.stringify(av)}, expected ${JSON.stringify(ev)}`);
      }
    }
  }
  return out;
}

export async function runScenario(
  sql: string,
  expectedTables: Record<string, Row[]>,
  now: Date,
  opts: { settings?: Record<string, string>; config?: Record<string, Record<string, string>> } = {},
): Promise<{ result: RunJobResult; actual: Record<string, Row[]>; diff: string[]; db: Client; inst: Installation }> {
  const { inst, db } = await prepareGolden(sql, opts);
  await db.query(`SET DateStyle TO 'ISO'`);
  await db.query('SET extra_float_digits TO 1');
  const result = await runJob(inst, 'G', { jobId: 2, now });
  const actual: Record<string, Row[]> = {};
  for (const [table, rows] of Object.entries(expectedTables)) {
    const columns = rows.length ? Object.keys(rows[0]) : ['1'];
    actual[table] = rows.length ? await dumpTable(db, table, columns) : (await db.query(`SELECT 1 FROM ${table}`)).rows;
  }
  return { result, actual, diff: diffTables(expectedTables, actual), db, inst };
}

export function goldenScenarios(): string[] {
  if (!fs.existsSync(GOLDEN_DIR)) return [];
  return fs.readdirSync(GOLDEN_DIR).filter((d) => fs.existsSync(path.join(GOLDEN_DIR, d, 'expected.json'))).sort();
}

export function loadGolden(name: string): { sql: string; expected: Expected; now: Date } {
  const dir = path.join(GOLDEN_DIR, name);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  const [y, m, d] = expected.today.split('-').map(Number);
  const [hh, mm, ss] = expected.time.split(':').map(Number);
  return { sql: fs.readFileSync(path.join(dir, 'input.sql'), 'utf8'), expected, now: new Date(y, m - 1, d, hh, mm, ss) };
}
