// Connections to kivitendo's PostgreSQL databases. Timestamps and dates come back as the strings
// PostgreSQL prints (kivitendo stores local wall-clock values without zone; a JS Date would
// re-interpret them), numerics as strings (money must not pass through binary floats).
import { Client, ClientConfig, types } from 'pg';
import type { DbParams } from '../config/config';
import type { ClientRow } from './rows';

types.setTypeParser(1114, (v) => v); // timestamp without time zone
types.setTypeParser(1082, (v) => v); // date
types.setTypeParser(1184, (v) => v); // timestamptz

export type { Client } from 'pg';

/** The DateStyle statement kivitendo issues for a user's dateformat (spec task-server.md §6.3 step 10). */
export function dateStyleFor(dateformat: string | undefined): string | undefined {
  switch (dateformat) {
    case 'yy-mm-dd':
    case 'yyyy-mm-dd':
      return 'ISO';
    case 'mm/dd/yy':
      return 'SQL, US';
    case 'dd/mm/yy':
      return 'SQL, EUROPEAN';
    case 'dd.mm.yy':
      return 'GERMAN';
    default:
      return undefined;
  }
}

export interface ConnectOptions {
  applicationName?: string;
  /** DateStyle to set after connecting. */
  dateStyle?: string;
  connectTimeoutMs?: number;
}

/** Opens one connection. Errors carry the database and host, never the password. */
export async function openConnection(params: DbParams, opts: ConnectOptions = {}): Promise<Client> {
  const cfg: ClientConfig = {
    host: params.host,
    port: params.port,
    database: params.database,
    user: params.user,
    password: params.password,
    application_name: opts.applicationName ?? 'kivitendo-task-server',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
  };
  const client = new Client(cfg);
  // An idle connection that loses its server emits 'error'; without a listener that kills the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
    if (opts.dateStyle) await client.query(`SET DateStyle TO '${opts.dateStyle}'`);
  } catch (e) {
    await client.end().catch(() => undefined);
    throw new DbConnectError(params, e as Error);
  }
  return client;
}

export class DbConnectError extends Error {
  constructor(
    readonly params: DbParams,
    readonly cause: Error,
  ) {
    super(`cannot connect to database ${params.database} on ${params.host}:${params.port} as ${params.user}: ${redact(cause.message, params.password)}`);
    this.name = 'DbConnectError';
  }
}

/** Removes a password from a message that might quote it. */
export function redact(message: string, password: string | undefined): string {
  return password ? message.split(password).join('***') : message;
}

/** Runs fn inside BEGIN/COMMIT on this connection; ROLLBACK on error. */
export async function inTransaction<T>(db: Client, fn: () => Promise<T>): Promise<T> {
  await db.query('BEGIN');
  try {
    const result = await fn();
    await db.query('COMMIT');
    return result;
  } catch (e) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/** Connection parameters of a client's database, from its auth.clients row. */
export function clientDbParams(client: ClientRow): DbParams {
  return {
    host: client.dbhost || 'localhost',
    port: Number(client.dbport) || 5432,
    database: client.dbname,
    user: client.dbuser,
    password: client.dbpasswd,
  };
}
