// An error of SQLSTATE class 42 (undefined column or table, wrong type, syntax) raised by a native
// module's own SQL means the module does not fit this client's schema: the server's bug, never the
// data's. kivitendo's packages may swallow database errors (CreatePeriodicInvoices records "success"
// when saving a record fails); such an error must not be swallowed — it fails the run, naming the
// package, PostgreSQL's message (which names the column or table) and the kivitendo version.
import { VERSION } from '../version';

/** The SQLSTATE of a PostgreSQL error, looked for in the error and its causes. */
export function sqlStateOf(e: unknown): string | undefined {
  for (let cur = e, depth = 0; cur && typeof cur === 'object' && depth < 5; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Syntax error or access rule violation: the statement does not fit the schema. */
export function isSchemaMismatch(e: unknown): boolean {
  return sqlStateOf(e)?.startsWith('42') ?? false;
}

/** PostgreSQL's own message (the innermost cause's), e.g. `column "tax_point_start" of relation "ar" does not exist`. */
function pgMessage(e: unknown): string {
  let msg = e instanceof Error ? e.message : String(e);
  for (let cur = e, depth = 0; cur && typeof cur === 'object' && depth < 5; depth++) {
    if (typeof (cur as { code?: unknown }).code === 'string' && cur instanceof Error) msg = cur.message;
    cur = (cur as { cause?: unknown }).cause;
  }
  return msg;
}

/** The one line of the failed run's history row. `kivitendo` names the client's kivitendo and database state. */
export function schemaMismatchText(packageName: string, e: unknown, kivitendo: string): string {
  return (
    `job package ${packageName}: the SQL of kivitendo-task-server ${VERSION} does not fit this client's database (${kivitendo}): ` +
    `${pgMessage(e)} (SQLSTATE ${sqlStateOf(e)}). This is a bug of the task server, not of the data; the run's transaction was rolled back. ` +
    `Until it is fixed, run kivitendo's own package: [task_server] perl_packages = ${packageName}`
  );
}
