// A throwaway kivitendo installation for tests: ROOT with config/, users/, sql/Pg-upgrade2-auth/ and
// templates/, an auth DB with users and clients, and client DBs — all on the test cluster.
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { connect, createAuthDb, createClientDb, DEFAULT_RELEASE, getPostgres, PgServer, releaseClientTags, sharedTmpDir, type Release } from './postgres';

export const FIXTURE_ROOT = path.join(__dirname, '..', 'fixtures', 'kivitendo-root');

export interface ClientSpec {
  name: string;
  /** Login of the task server user; null = the task server is off for this client. */
  taskServerLogin?: string | null;
  /** Overrides the DB password stored in auth.clients (for "wrong password" tests). */
  dbpasswd?: string;
  /** Use an existing client database instead of creating one. */
  dbname?: string;
  /** Do not insert an `employee` row for the task server login (the database already has one). */
  skipEmployee?: boolean;
  /** The kivitendo release whose schema the new client database has (default: the installation's). */
  release?: Release;
}

export interface UserSpec {
  login: string;
  settings?: Record<string, string>;
}

export interface Installation {
  pg: PgServer;
  root: string;
  authDb: string;
  /** client name → { id, dbname } */
  clients: Record<string, { id: number; dbname: string }>;
  users: Record<string, number>;
  /** Path of config/kivitendo.conf */
  configFile: string;
  /** Connect (as superuser) to a client's DB by client name. Caller ends it. */
  clientDb(name: string): Promise<Client>;
  /** Runs fn on a fresh connection to a client's DB and closes it. */
  withClientDb<T>(name: string, fn: (db: Client) => Promise<T>): Promise<T>;
  /** One statement on a client's DB; its rows. */
  query<T = Record<string, any>>(name: string, sql: string, params?: unknown[]): Promise<T[]>;
  authConnection(): Promise<Client>;
  /** Rewrites config/kivitendo.conf from sections (merged over the generated DB settings). */
  writeConfig(extra?: Record<string, Record<string, string>>): void;
  remove(): void;
}

export interface InstallationOptions {
  /** The kivitendo release of the installation and its databases (default 4.1.1, the development head). */
  release?: Release;
  /** A cluster of its own (outage tests restart it); default: the shared one of the test run. */
  pg?: PgServer;
  users?: UserSpec[];
  clients?: ClientSpec[];
  config?: Record<string, Record<string, string>>;
  /** Fills the new ROOT instead of copying test/fixtures/kivitendo-root (e.g. a real kivitendo tree). */
  populateRoot?: (root: string) => void;
}

export const DEFAULT_USER_SETTINGS: Record<string, string> = {
  dateformat: 'dd.mm.yy',
  numberformat: '1.000,00',
  countrycode: 'de',
  email: 'taskserver@example.com',
  name: 'Task Server',
};

export function renderConfig(sections: Record<string, Record<string, string>>): string {
  return Object.entries(sections)
    .map(([name, keys]) => `[${name}]\n` + Object.entries(keys).map(([k, v]) => `${k} = ${v}\n`).join(''))
    .join('\n');
}

/**
 * What tells the server which kivitendo a fixture ROOT is: its VERSION file and, in sql/Pg-upgrade2,
 * one control header per upgrade tag of the release's client schema dump (the tags only, no
 * upgrade code), so that the fixture databases match their installation as a real one's do.
 */
export function writeReleaseMarkers(root: string, release: Release, tags: string[] = releaseClientTags(release)): void {
  fs.writeFileSync(path.join(root, 'VERSION'), `${release}\n`);
  const dir = path.join(root, 'sql', 'Pg-upgrade2');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const tag of tags) {
    fs.writeFileSync(path.join(dir, `${tag}.sql`), `-- @tag: ${tag}\n-- @description: upgrade ${tag} of the test fixture (tag only)\n`);
  }
}

export async function createInstallation(opts: InstallationOptions = {}): Promise<Installation> {
  const pg = opts.pg ?? (await getPostgres());
  // Daemons of some tests run as another user (run_as, runuser): it must reach the installation.
  const root = fs.mkdtempSync(path.join(sharedTmpDir(), 'kts-root-'));
  const release = opts.release ?? DEFAULT_RELEASE;
  if (opts.populateRoot) opts.populateRoot(root);
  else {
    fs.cpSync(FIXTURE_ROOT, root, { recursive: true });
    writeReleaseMarkers(root, release);
  }
  fs.mkdirSync(path.join(root, 'users'), { recursive: true });
  const authDb = await createAuthDb(pg, undefined, release);
  const users: Record<string, number> = {};
  const clients: Record<string, { id: number; dbname: string }> = {};
  const auth = await connect(pg, authDb);
  try {
    for (const u of opts.users ?? [{ login: 'taskserver' }]) {
      const r = await auth.query(`INSERT INTO auth."user" (login, password) VALUES ($1, '{CRYPT}x') RETURNING id`, [u.login]);
      users[u.login] = r.rows[0].id;
      for (const [k, v] of Object.entries({ ...DEFAULT_USER_SETTINGS, ...(u.settings ?? {}) })) {
        await auth.query('INSERT INTO auth.user_config (user_id, cfg_key, cfg_value) VALUES ($1, $2, $3)', [users[u.login], k, v]);
      }
    }
    let id = 0;
    for (const c of opts.clients ?? [{ name: 'Demo' }]) {
      id += 1;
      const dbname = c.dbname ?? (await createClientDb(pg, undefined, c.release ?? release));
      const login = c.taskServerLogin === undefined ? Object.keys(users)[0] : c.taskServerLogin;
      await auth.query(
        `INSERT INTO auth.clients (id, name, dbhost, dbport, dbname, dbuser, dbpasswd, is_default, task_server_user_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [id, c.name, pg.host, pg.port, dbname, pg.user, c.dbpasswd ?? pg.password, id === 1, login ? users[login] : null],
      );
      clients[c.name] = { id, dbname };
      // kivitendo's "current employee" is the employee row with the task server user's login.
      if (login && !c.skipEmployee) {
        const db = await connect(pg, dbname);
        await db.query(`INSERT INTO employee (login, name, sales) VALUES ($1, $2, true)`, [login, 'Task Server']);
        await db.end();
      }
    }
    await auth.query(`SELECT setval('auth.clients_id_seq', $1)`, [Math.max(id, 1)]);
  } finally {
    await auth.end();
  }
  const configFile = path.join(root, 'config', 'kivitendo.conf');
  const inst: Installation = {
    pg,
    root,
    authDb,
    clients,
    users,
    configFile,
    async clientDb(name) {
      return connect(pg, clients[name].dbname);
    },
    async withClientDb(name, fn) {
      const db = await connect(pg, clients[name].dbname);
      try {
        return await fn(db);
      } finally {
        await db.end();
      }
    },
    async query(name, sql, params = []) {
      return inst.withClientDb(name, async (db) => (await db.query(sql, params)).rows);
    },
    authConnection() {
      return connect(pg, authDb);
    },
    writeConfig(extra = {}) {
      const sections: Record<string, Record<string, string>> = {
        'authentication/database': { host: pg.host, port: String(pg.port), db: authDb, user: pg.user, password: pg.password },
        task_server: { run_as: '', debug: '1' },
        debug: { global_level: 'NONE', file_name: 'users/kivitendo-debug.log' },
      };
      for (const [name, keys] of Object.entries(extra)) sections[name] = { ...(sections[name] ?? {}), ...keys };
      fs.writeFileSync(configFile, renderConfig(sections));
    },
    remove() {
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
  inst.writeConfig(opts.config);
  return inst;
}
