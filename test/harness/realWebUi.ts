// kivitendo's real web UI for end-to-end tests: Apache 2 with mod_fcgid serving a throwaway
// installation's fcgi/dispatcher.fcgi as www-data (kivitendo's documented FastCGI set-up, on a
// loopback port, with its own ServerRoot, pid file and logs — not the machine's /etc/apache2), and
// headless Chromium (Debian `chromium`, driven by puppeteer-core; nothing is downloaded).
//
// kivitendo's web front (fcgi/dispatcher.fcgi, public/) is not in ../shared/kivitendo-erp; it comes
// from KIVITENDO_WEB_SRC (a checkout of the same kivitendo release). Without it `npm test` leaves the
// test out, saying so; `npm run test:webui` runs it and fails naming what is missing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Page } from 'puppeteer-core';
import { ensureBinary, readIfExists } from './cli';
import { KIVITENDO_SRC, type KivitendoInstallation } from './kivitendo';

const APACHE = '/usr/sbin/apache2';
const APACHE_MODULES = '/usr/lib/apache2/modules';
const CHROMIUM = process.env.KTS_CHROMIUM || '/usr/bin/chromium';
export const WEB_USER = 'www-data';

export interface WebFront {
  /** the tree holding fcgi/dispatcher.fcgi and public/ */
  src: string;
  uid: number;
  gid: number;
}

export function webFrontSource(): string | undefined {
  for (const dir of [process.env.KIVITENDO_WEB_SRC, KIVITENDO_SRC]) {
    if (dir && fs.existsSync(path.join(dir, 'fcgi', 'dispatcher.fcgi')) && fs.existsSync(path.join(dir, 'public', 'js'))) return dir;
  }
  return undefined;
}

/** What the real web UI needs here; throws one message naming everything missing. */
export function requireRealWebUi(): WebFront {
  const missing: string[] = [];
  if (!fs.existsSync(APACHE)) missing.push(`${APACHE} (Debian package apache2)`);
  if (!fs.existsSync(path.join(APACHE_MODULES, 'mod_fcgid.so'))) missing.push(`${APACHE_MODULES}/mod_fcgid.so (Debian package libapache2-mod-fcgid)`);
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (Debian package chromium)`);
  if (process.getuid?.() !== 0) missing.push('root (Apache is started as root and serves kivitendo as www-data)');
  const id = spawnSync('id', ['-u', WEB_USER], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', WEB_USER], { encoding: 'utf8' });
  if (id.status !== 0) missing.push(`the user ${WEB_USER}`);
  const src = webFrontSource();
  if (!src) {
    missing.push(
      `kivitendo's web front (fcgi/dispatcher.fcgi and public/, left out of ${KIVITENDO_SRC}): set KIVITENDO_WEB_SRC to a checkout of the same kivitendo release ` +
        `(the commit named in ${path.join(KIVITENDO_SRC, 'README.md')})`,
    );
  }
  if (missing.length) throw new Error(`the real web UI test cannot run; missing: ${missing.join('; ')}`);
  return { src: src!, uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Owned and writable by the web server's user (the copy of the read-only users/ is read-only too). */
function chownTree(file: string, uid: number, gid: number) {
  fs.lchownSync(file, uid, gid);
  const st = fs.lstatSync(file);
  if (st.isSymbolicLink()) return;
  fs.chmodSync(file, st.mode | 0o200);
  if (st.isDirectory()) for (const e of fs.readdirSync(file)) chownTree(path.join(file, e), uid, gid);
}

export type TaskServerKind = 'ours' | 'kivitendo';

/**
 * Makes a throwaway installation servable: the web front, a known password for `login`, the
 * folders kivitendo and the task server write (users/, spool/, webdav/, documents/) owned by
 * www-data, and — for 'ours' — README steps 1–2: the binary in scripts/, scripts/task_server.pl a
 * symbolic link to it.
 */
export function prepareInstallation(inst: KivitendoInstallation, front: WebFront, kind: TaskServerKind): void {
  const root = inst.root;
  fs.chmodSync(root, 0o755);
  fs.mkdirSync(path.join(root, 'fcgi'), { recursive: true });
  // a copy, not a link: FindBin resolves a linked script to the source tree, and kivitendo takes its
  // installation from there
  fs.copyFileSync(path.join(front.src, 'fcgi', 'dispatcher.fcgi'), path.join(root, 'fcgi', 'dispatcher.fcgi'));
  fs.chmodSync(path.join(root, 'fcgi', 'dispatcher.fcgi'), 0o755);
  if (!fs.existsSync(path.join(root, 'public'))) fs.symlinkSync(path.join(front.src, 'public'), path.join(root, 'public'));
  if (kind === 'ours') {
    const scripts = path.join(root, 'scripts');
    fs.copyFileSync(ensureBinary(), path.join(scripts, 'kivitendo-task-server'));
    fs.chmodSync(path.join(scripts, 'kivitendo-task-server'), 0o755);
    fs.rmSync(path.join(scripts, 'task_server.pl'), { force: true });
    fs.symlinkSync('kivitendo-task-server', path.join(scripts, 'task_server.pl'));
  }
  for (const d of ['users', 'spool', 'webdav', 'documents']) chownTree(path.join(root, d), front.uid, front.gid);
  fs.chmodSync(inst.configFile, 0o644);
}

/**
 * A user who can log in: a password (kivitendo's salted SHA-256 hash, {SHA256S}: sha256_hex(login .
 * password), as SL::Auth::Password writes it) and the menu style the admin screen gives new users
 * ('neu': the layout with menu, action bar and flash messages; without one kivitendo renders bare
 * pages).
 */
export async function prepareWebUser(inst: KivitendoInstallation, login: string, password: string): Promise<void> {
  const hash = '{SHA256S}' + crypto.createHash('sha256').update(login + password).digest('hex');
  const auth = await inst.authConnection();
  try {
    const r = await auth.query(`UPDATE auth."user" SET password = $1 WHERE login = $2 RETURNING id`, [hash, login]);
    if (r.rowCount !== 1) throw new Error(`no auth.user ${login}`);
    await auth.query(`DELETE FROM auth.user_config WHERE user_id = $1 AND cfg_key = 'menustyle'`, [r.rows[0].id]);
    await auth.query(`INSERT INTO auth.user_config (user_id, cfg_key, cfg_value) VALUES ($1, 'menustyle', 'neu')`, [r.rows[0].id]);
  } finally {
    await auth.end();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface WebServer {
  /** http://127.0.0.1:PORT/kivitendo */
  url: string;
  dir: string;
  errorLog(): string;
  accessLog(): string;
  stop(): Promise<void>;
}

function apacheConfig(dir: string, root: string, port: number): string {
  const mods = ['mpm_prefork', 'authz_core', 'mime', 'alias', 'dir', 'env', 'fcgid'];
  return [
    `ServerRoot ${dir}`,
    `ServerName 127.0.0.1`,
    `Listen 127.0.0.1:${port}`,
    `PidFile ${dir}/apache2.pid`,
    `ErrorLog ${dir}/error.log`,
    `LogLevel warn`,
    `LogFormat "%h %t \\"%r\\" %>s %b %D" timed`,
    `CustomLog ${dir}/access.log timed`,
    `User ${WEB_USER}`,
    `Group ${WEB_USER}`,
    `Mutex file:${dir}`,
    ...mods.map((m) => `LoadModule ${m}_module ${APACHE_MODULES}/mod_${m}.so`),
    `TypesConfig /etc/mime.types`,
    `StartServers 2`,
    `DocumentRoot ${root}/public`,
    `FcgidIPCDir ${dir}/fcgid`,
    `FcgidProcessTableFile ${dir}/fcgid_shm`,
    // kivitendo's documented FastCGI snippet (doc/dokumentation.xml, "Konfiguration für FastCGI/FCGI")
    `AddHandler fcgid-script .fcgi`,
    `FcgidMaxRequestLen 104857600`,
    `FcgidIOTimeout 600`,
    `FcgidMaxProcesses 4`,
    `AliasMatch ^/kivitendo/[^/]+\\.pl$ ${root}/fcgi/dispatcher.fcgi`,
    `Alias /kivitendo ${root}/public`,
    `<Directory "${root}/fcgi">`,
    `  Options +ExecCGI`,
    `  Require all granted`,
    `</Directory>`,
    `<Directory "${root}/public">`,
    `  Options -ExecCGI +FollowSymlinks`,
    `  Require all granted`,
    `</Directory>`,
    `<Directory "${path.dirname(fs.realpathSync(path.join(root, 'public')))}">`,
    `  Require all granted`,
    `</Directory>`,
    '',
  ].join('\n');
}

/** Apache in the foreground (-DFOREGROUND), as root, serving the installation as www-data. */
export async function startApache(root: string): Promise<WebServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-apache-'));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const conf = path.join(dir, 'apache2.conf');
  fs.writeFileSync(conf, apacheConfig(dir, root, port));
  const errorLog = () => readIfExists(path.join(dir, 'error.log')) ?? '';
  // Apache's own environment is what every fcgid process inherits (then the request's variables
  // on top): a plain one, as under systemd, not the test runner's.
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };
  // A process group of its own: at shutdown Apache's prefork MPM signals its whole process group,
  // which would otherwise be the test runner's.
  const child: ChildProcess = spawn(APACHE, ['-f', conf, '-DFOREGROUND'], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  let exited = false;
  child.on('exit', () => (exited = true));
  const url = `http://127.0.0.1:${port}/kivitendo`;
  const until = Date.now() + 20_000;
  for (;;) {
    if (exited) throw new Error(`apache2 -f ${conf} exited: ${out} ${errorLog()}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > until) throw new Error(`apache2 did not listen on ${port} within 20 s: ${out} ${errorLog()}`);
    await sleep(100);
  }
  return {
    url,
    dir,
    errorLog,
    accessLog: () => readIfExists(path.join(dir, 'access.log')) ?? '',
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const deadline = Date.now() + 10_000;
        while (!exited && Date.now() < deadline) await sleep(100);
        if (!exited) child.kill('SIGKILL');
      }
      try {
        process.kill(-child.pid!, 'SIGKILL'); // stragglers of its group (mod_fcgid's dispatchers)
      } catch {
        /* all gone */
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium from Debian, a fresh profile per run. */
export async function launchBrowser(): Promise<{ browser: Browser; close(): Promise<void> }> {
  const puppeteer = await import('puppeteer-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      `--user-data-dir=${profile}`,
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Screenshots of each step, kept (and named in the failure) only when the test fails. */
export class StepShots {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-webui-shots-'));
  private n = 0;
  constructor(
    private readonly page: Page,
    /** more context for a failure (logs) */
    private readonly detail: () => string = () => '',
  ) {}
  async shoot(step: string): Promise<void> {
    this.n += 1;
    const name = `${String(this.n).padStart(2, '0')}-${step.replace(/[^A-Za-z0-9]+/g, '-')}`;
    await this.page.screenshot({ path: path.join(this.dir, `${name}.png`) as `${string}.png`, fullPage: true }).catch(() => undefined);
    fs.writeFileSync(path.join(this.dir, `${name}.html`), await this.page.content().catch(() => ''));
  }
  /** Runs a step; on failure the error names the screenshot folder. */
  async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    try {
      const r = await fn();
      await this.shoot(name);
      return r;
    } catch (e) {
      await this.shoot(`${name}-FAILED`);
      const err = e instanceof Error ? e : new Error(String(e));
      const where = `(screenshots and page sources of every step: ${this.dir}); ${this.detail()}`;
      err.message = `step "${name}": ${err.message} ${where}`;
      // the test runner prints the stack, written with the message as it was at construction
      if (err.stack) err.stack = `step "${name}": ${err.stack}\n${where}`;
      throw err;
    }
  }
  discard(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The time zone kivitendo's web processes and the task server started from its page run in: Apache's
 * plain environment has no TZ, so the machine's (/etc/localtime); kivitendo dates "today" by it.
 */
export function webTimeZone(): string {
  try {
    return /zoneinfo\/(.+)$/.exec(fs.readlinkSync('/etc/localtime'))?.[1] ?? 'Etc/UTC';
  } catch {
    return 'Etc/UTC';
  }
}
