// A throwaway PostgreSQL cluster for tests, benchmarks and the demo, built from the machine's own
// PostgreSQL binaries. Template databases hold kivitendo's auth and client schemas (the pg_dumps in
// test/fixtures/), so every test gets fresh databases by CREATE DATABASE ... TEMPLATE in ~100 ms.
//
// test/run.ts starts one cluster for the whole suite and passes it on in KTS_TEST_PG; a test file run
// on its own starts its own cluster.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';

export const FIXTURES = path.join(__dirname, '..', 'fixtures');
export const SUPERUSER = 'postgres';
export const SUPERUSER_PASSWORD = 'kts-test-secret';
const TEMPLATE_AUTH = 'kts_template_auth';
const TEMPLATE_CLIENT = 'kts_template_client';

/**
 * The kivitendo releases whose schema dumps the harness has: 4.1.1 (test/fixtures/, the development
 * head) and 4.0.0 (test/fixtures/kivitendo-4.0.0/, the previous stable release).
 */
export type Release = '4.1.1' | '4.0.0';
export const RELEASES: Release[] = ['4.1.1', '4.0.0'];
export const DEFAULT_RELEASE: Release = '4.1.1';

/** The folder with a release's dumps (auth.sql, auth-reference-data.sql, client.sql, client-reference-data.sql). */
export function releaseFixtures(release: Release): string {
  return release === DEFAULT_RELEASE ? FIXTURES : path.join(FIXTURES, `kivitendo-${release}`);
}

const templateAuth = (release: Release) => (release === DEFAULT_RELEASE ? TEMPLATE_AUTH : `${TEMPLATE_AUTH}_${release.replace(/\./g, '')}`);
const templateClient = (release: Release) => (release === DEFAULT_RELEASE ? TEMPLATE_CLIENT : `${TEMPLATE_CLIENT}_${release.replace(/\./g, '')}`);

export interface PgServer {
  host: string;
  port: number;
  user: string;
  password: string;
  binDir: string;
  dataDir: string;
  /** Stop the cluster and delete its files (only for the process that started it). */
  stop(): void;
  /** pg_ctl restart, for outage tests. */
  restart(): void;
  /** pg_ctl stop -m fast, without removing the data (for outage tests). */
  halt(): void;
  /** pg_ctl start after halt(). */
  resume(): void;
}

export function findPgBinDir(): string {
  const fromEnv = process.env.PG_BIN_DIR;
  if (fromEnv && fs.existsSync(path.join(fromEnv, 'initdb'))) return fromEnv;
  const base = '/usr/lib/postgresql';
  if (fs.existsSync(base)) {
    const versions = fs.readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const dir = path.join(base, v, 'bin');
      if (fs.existsSync(path.join(dir, 'initdb'))) return dir;
    }
  }
  throw new Error('no PostgreSQL server binaries found (set PG_BIN_DIR or install postgresql)');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address() as net.AddressInfo;
      srv.close(() => resolve(addr.port));
    });
  });
}

const isRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL binary; as root it runs as the `postgres` user, because initdb refuses root. */
function runPg(binDir: string, cmd: string, args: string[], opts: { input?: string } = {}): string {
  const bin = path.join(binDir, cmd);
  const [file, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const r = spawnSync(file, argv, { input: opts.input, encoding: 'utf8', cwd: '/' });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr || r.stdout}`);
  }
  return r.stdout;
}

function makeServer(binDir: string, dataDir: string, port: number, owner: boolean): PgServer {
  const logFile = path.join(dataDir, '..', 'postgres.log');
  const ctl = (...args: string[]) => runPg(binDir, 'pg_ctl', ['-D', dataDir, ...args]);
  const start = () => ctl('start', '-w', '-t', '60', '-l', logFile);
  let stopped = false;
  return {
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    password: SUPERUSER_PASSWORD,
    binDir,
    dataDir,
    stop() {
      if (!owner || stopped) return;
      stopped = true;
      try {
        ctl('stop', '-m', 'immediate', '-w');
      } catch {
        /* already down */
      }
      fs.rmSync(path.dirname(dataDir), { recursive: true, force: true });
    },
    restart() {
      // -l as in start: without it the postmaster inherits pg_ctl's stdout pipe and spawnSync never returns.
      ctl('restart', '-m', 'fast', '-w', '-t', '60', '-l', logFile);
    },
    halt() {
      ctl('stop', '-m', 'fast', '-w');
    },
    resume() {
      start();
    },
  };
}

/**
 * A folder for what other users must reach (the postgres user's cluster; the daemon started as
 * nobody): TMPDIR when every user may pass through it, else the system's /tmp (a TMPDIR of one's
 * own, mode 0700, is sane too). Throws naming both when neither will do.
 */
export function sharedTmpDir(): string {
  const candidates = [os.tmpdir(), '/tmp'];
  for (const dir of candidates) {
    try {
      if ((fs.statSync(dir).mode & 0o001) !== 0) return dir;
    } catch {
      /* missing */
    }
  }
  throw new Error(`no temporary folder other users can pass through: ${candidates.join(', ')} (the test PostgreSQL runs as postgres)`);
}

/** Starts a new cluster (initdb, start, template databases). */
export async function startPostgres(): Promise<PgServer> {
  const binDir = findPgBinDir();
  const root = fs.mkdtempSync(path.join(isRoot ? sharedTmpDir() : os.tmpdir(), 'kts-pg-'));
  const dataDir = path.join(root, 'data');
  const pwFile = path.join(root, 'pw');
  fs.writeFileSync(pwFile, SUPERUSER_PASSWORD + '\n');
  if (isRoot) {
    fs.chmodSync(root, 0o755);
    execFileSync('chown', ['-R', 'postgres', root]);
  }
  runPg(binDir, 'initdb', [
    '-D', dataDir, '-U', SUPERUSER, '--pwfile', pwFile, '-E', 'UTF8', '--locale', 'C.UTF-8',
    '--auth-local', 'trust', '--auth-host', 'scram-sha-256',
  ]);
  const port = await freePort();
  fs.appendFileSync(
    path.join(dataDir, 'postgresql.conf'),
    [
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${root}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 400',
      'shared_buffers = 128MB',
      `timezone = 'Etc/UTC'`,
      '',
    ].join('\n'),
  );
  const server = makeServer(binDir, dataDir, port, true);
  runPg(binDir, 'pg_ctl', ['-D', dataDir, 'start', '-w', '-t', '60', '-l', path.join(root, 'postgres.log')]);
  process.on('exit', () => server.stop());
  await createTemplates(server);
  return server;
}

function psqlFile(server: PgServer, db: string, file: string) {
  const r = spawnSync(
    path.join(server.binDir, 'psql'),
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', server.host, '-p', String(server.port), '-U', server.user, '-d', db, '-f', file],
    { encoding: 'utf8', env: { ...process.env, PGPASSWORD: server.password } },
  );
  if (r.status !== 0) throw new Error(`psql -f ${file} on ${db} failed: ${r.stderr}`);
}

async function createTemplates(server: PgServer, release: Release = DEFAULT_RELEASE) {
  const dir = releaseFixtures(release);
  const [auth, client] = [templateAuth(release), templateClient(release)];
  await superQuery(server, `CREATE DATABASE ${auth} TEMPLATE template0 ENCODING 'UTF8'`);
  await superQuery(server, `CREATE DATABASE ${client} TEMPLATE template0 ENCODING 'UTF8'`);
  psqlFile(server, auth, path.join(dir, 'auth.sql'));
  psqlFile(server, auth, path.join(dir, 'auth-reference-data.sql'));
  psqlFile(server, client, path.join(dir, 'client.sql'));
  psqlFile(server, client, path.join(dir, 'client-reference-data.sql'));
}

/**
 * The template databases of a release other than the default are made on first use, under an
 * advisory lock: test files running in parallel on the shared cluster make them once.
 */
const ensured = new Map<string, Promise<void>>();
function ensureTemplates(server: PgServer, release: Release): Promise<void> {
  if (release === DEFAULT_RELEASE) return Promise.resolve();
  const key = `${server.port}/${release}`;
  if (!ensured.has(key)) {
    ensured.set(key, (async () => {
      const c = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: 'postgres' });
      await c.connect();
      try {
        await c.query(`SELECT pg_advisory_lock(4711, ${RELEASES.indexOf(release)})`);
        const have = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [templateClient(release)]);
        if (!have.rows.length) {
          await superQuery(server, `DROP DATABASE IF EXISTS ${templateAuth(release)}`);
          try {
            await createTemplates(server, release);
          } catch (e) {
            await superQuery(server, `DROP DATABASE IF EXISTS ${templateClient(release)}`).catch(() => undefined);
            throw e;
          }
        }
      } finally {
        await c.end();
      }
    })());
  }
  return ensured.get(key)!;
}

export async function superQuery(server: PgServer, sql: string, params: unknown[] = [], database = 'postgres') {
  const c = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database });
  await c.connect();
  try {
    return await c.query(sql, params);
  } finally {
    await c.end();
  }
}

/** The shared cluster of this test run (from KTS_TEST_PG), or a new one for this process. */
let shared: Promise<PgServer> | undefined;
export function getPostgres(): Promise<PgServer> {
  if (!shared) {
    const env = process.env.KTS_TEST_PG;
    if (env) {
      const s = JSON.parse(env) as { port: number; binDir: string; dataDir: string };
      shared = Promise.resolve(makeServer(s.binDir, s.dataDir, s.port, false));
    } else {
      shared = startPostgres();
    }
  }
  return shared;
}

let dbCounter = 0;
function uniqueName(prefix: string) {
  dbCounter += 1;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${dbCounter}`;
}

/** A new kivitendo auth database (schema + reference data: schema_info tags, rights) of a release. */
export async function createAuthDb(server: PgServer, name = uniqueName('kivi_auth'), release: Release = DEFAULT_RELEASE): Promise<string> {
  await ensureTemplates(server, release);
  await superQuery(server, `CREATE DATABASE ${name} TEMPLATE ${templateAuth(release)}`);
  return name;
}

/** A new kivitendo client database (schema + SKR03 reference data + the default background jobs) of a release. */
export async function createClientDb(server: PgServer, name = uniqueName('kivi_client'), release: Release = DEFAULT_RELEASE): Promise<string> {
  await ensureTemplates(server, release);
  await superQuery(server, `CREATE DATABASE ${name} TEMPLATE ${templateClient(release)}`);
  return name;
}

/** The upgrade tags a fresh client database of a release has applied (its schema_info, from the dump). */
export function releaseClientTags(release: Release): string[] {
  const sql = fs.readFileSync(path.join(releaseFixtures(release), 'client-reference-data.sql'), 'utf8');
  return [...sql.matchAll(/^INSERT INTO public\.schema_info \(tag, login, itime\) VALUES \('([^']+)'/gm)].map((m) => m[1]);
}

export async function dropDb(server: PgServer, name: string) {
  await superQuery(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** A connected pg Client on a database of the cluster (as superuser). Caller ends it. */
export async function connect(server: PgServer, database: string): Promise<Client> {
  const c = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database });
  await c.connect();
  return c;
}

export function serverEnv(server: PgServer): string {
  return JSON.stringify({ port: server.port, binDir: server.binDir, dataDir: server.dataDir });
}
