// The two failure classes of kivitendo's run (spec periodic-invoices.md §4.10): an error raised
// through a Rose object save/load (SL::X::DBError) is swallowed by with_transaction — rollback,
// history "success" with NULL result; every other error rolls back and fails the run.
import type { Client, QueryConfig, QueryResult, QueryResultRow } from 'pg';

/** A database error of an object save/load: the run rolls back and "returns nothing". */
export class DbObjectError extends Error {
  constructor(
    readonly objectClass: string,
    readonly cause: Error,
  ) {
    super(`${objectClass}: ${cause.message}`);
    this.name = 'DbObjectError';
  }
}

/**
 * A kivitendo error outside the DB layer; `message` is kivitendo's text, `where` names the config
 * and order so the one history line says what to fix.
 */
export class RunError extends Error {
  constructor(
    readonly kivitendoMessage: string,
    public where?: string,
  ) {
    super(kivitendoMessage);
    this.name = 'RunError';
  }
}

/** Runs a statement that kivitendo issues through a Rose object (insert/update/load). */
export async function objectSave<R extends QueryResultRow = QueryResultRow>(
  db: Client,
  objectClass: string,
  query: QueryConfig,
): Promise<QueryResult<R>> {
  try {
    return await db.query<R>(query);
  } catch (e) {
    throw new DbObjectError(objectClass, e as Error);
  }
}
