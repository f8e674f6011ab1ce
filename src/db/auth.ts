// The auth database (schema `auth`): enabled clients, the task server user, applied upgrades.
// spec task-server.md §5.1, §6.2, §6.3 step 8.
import path from 'node:path';
import type { Client } from './pg';
import type { ClientRow, TaskServerUser } from './rows';
import { isDir } from '../fsutil';

/** Clients with a task server user, by id (kivitendo has no ORDER BY; any order is allowed). */
export async function enabledClients(auth: Client): Promise<ClientRow[]> {
  const r = await auth.query<ClientRow>('SELECT * FROM auth.clients WHERE task_server_user_id IS NOT NULL ORDER BY id');
  return r.rows;
}

export async function allClients(auth: Client): Promise<ClientRow[]> {
  return (await auth.query<ClientRow>('SELECT * FROM auth.clients ORDER BY id')).rows;
}

const LEGACY_STYLESHEETS = new Set(['lx-office-erp.css', 'Mobile.css']);

/**
 * The user's settings as kivitendo builds them: auth.user_config rows plus id/login, with
 * follow_up_notify_by_email defaulting to 1, menustyle and stylesheet mapped to current values and
 * countrycode falling back to [system] language when empty or without a locale directory.
 */
export async function loadUserById(
  auth: Client,
  userId: number | null,
  opts: { language: string; kivitendoDir: string },
): Promise<TaskServerUser> {
  const u = await auth.query<{ id: number; login: string }>('SELECT id, login FROM auth."user" WHERE id = $1', [userId]);
  const login = u.rows[0]?.login ?? '';
  const cfg = await auth.query<{ cfg_key: string; cfg_value: string | null }>(
    'SELECT cfg_key, cfg_value FROM auth.user_config WHERE user_id = $1',
    [userId],
  );
  return buildUser(u.rows[0]?.id ?? null, login, cfg.rows, opts);
}

export async function loadUserByLogin(
  auth: Client,
  login: string,
  opts: { language: string; kivitendoDir: string },
): Promise<TaskServerUser | undefined> {
  const u = await auth.query<{ id: number }>('SELECT id FROM auth."user" WHERE login = $1', [login]);
  if (!u.rows[0]) return undefined;
  return loadUserById(auth, u.rows[0].id, opts);
}

export function buildUser(
  id: number | null,
  login: string,
  rows: { cfg_key: string; cfg_value: string | null }[],
  opts: { language: string; kivitendoDir: string },
): TaskServerUser {
  const settings: Record<string, string> = { follow_up_notify_by_email: '1' };
  for (const r of rows) settings[r.cfg_key] = r.cfg_value ?? '';
  if (settings.menustyle === 'xml') settings.menustyle = 'new';
  if (settings.menustyle === 'v4') settings.menustyle = 'v3';
  if (LEGACY_STYLESHEETS.has(settings.stylesheet)) settings.stylesheet = 'design40.css';
  const cc = settings.countrycode;
  if (!cc || !isDir(path.join(opts.kivitendoDir, 'locale', cc))) settings.countrycode = opts.language;
  settings.login = login;
  if (id !== null) settings.id = String(id);
  return { id, login, settings };
}

export async function appliedAuthUpgradeTags(auth: Client): Promise<Set<string>> {
  const r = await auth.query<{ tag: string }>('SELECT tag FROM auth.schema_info');
  return new Set(r.rows.map((x) => x.tag));
}
