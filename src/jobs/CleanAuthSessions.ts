// kivitendo's CleanAuthSessions (spec jobs.md; SL::Auth::expire_sessions): removes expired web
// sessions from the auth DB and their session_files directories. Global, although it runs per client.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '../db/pg';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import type { JobPackage } from './types';
import { RELEASES_4_0_TO_4_1 } from './releases';

/**
 * Deletes sessions whose mtime is older than `timeoutMinutes` before the auth database's now(),
 * with their session_content rows and ROOT/users/session_files/<id> directories, in one auth DB
 * transaction. Returns the number of sessions removed. The database's clock, because kivitendo
 * writes mtime with it: the task server's clock or TZ may differ (another host, a UTC database).
 */
export async function expireAuthSessions(
  auth: Client,
  kivitendoDir: string,
  timeoutMinutes: number,
  warn: (msg: string) => void = () => undefined,
): Promise<number> {
  const present = await auth.query<{ n: string }>(
    `SELECT COUNT(*) AS n FROM pg_tables WHERE schemaname = 'auth' AND tablename IN ('session', 'session_content')`,
  );
  if (Number(present.rows[0].n) !== 2) return 0;

  const expired = await auth.query<{ id: string }>(
    `SELECT id FROM auth.session WHERE mtime < now() - make_interval(mins => 1) * $1::float8`,
    [timeoutMinutes],
  );
  const ids = expired.rows.map((r) => r.id);
  if (ids.length === 0) return 0;

  await auth.query('BEGIN');
  try {
    for (const id of ids) removeSessionDir(kivitendoDir, id, warn);
    await auth.query('DELETE FROM auth.session_content WHERE session_id = ANY($1::text[])', [ids]);
    await auth.query('DELETE FROM auth.session WHERE id = ANY($1::text[])', [ids]);
    await auth.query('COMMIT');
  } catch (e) {
    await auth.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
  return ids.length;
}

function removeSessionDir(kivitendoDir: string, sessionId: string, warn: (msg: string) => void): void {
  // Only alphanumerics, so a crafted id cannot point outside session_files.
  const clean = sessionId.replace(/[^a-z0-9]/gi, '');
  if (!clean) return;
  const dir = path.join(kivitendoDir, 'users', 'session_files', clean);
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    // File::Path's rmtree only warns; the session rows are removed anyway.
    warn(`CleanAuthSessions: cannot remove ${dir}: ${(e as Error).message}`);
  }
}

export const CleanAuthSessions: JobPackage = {
  name: 'CleanAuthSessions',
  verifiedReleases: RELEASES_4_0_TO_4_1,
  async run(ctx) {
    readDataOptions(ctx.data, {}, 'CleanAuthSessions', warnUnknownKeys(ctx));
    const auth = await ctx.authDb();
    await expireAuthSessions(auth, ctx.kivitendoDir, ctx.config.authentication.sessionTimeoutMinutes, (m) => ctx.log.warn(m));
    return 1;
  },
};
