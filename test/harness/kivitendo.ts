// A throwaway kivitendo installation built from kivitendo's real tree (KIVITENDO_SRC, else
// ../shared/kivitendo-erp beside the repository), so tests run kivitendo's own Perl code — its job
// packages and scripts/task_server.pl — against the test cluster.
//
// The tree is shared read-only through symlinks; the installation gets its own config/ and users/,
// and real directories (with symlinked entries) wherever a test adds files or where Perl's FindBin
// would otherwise resolve to the shared tree: SL/, SL/BackgroundJob/ (test-only packages),
// scripts/ (task_server.pl finds ROOT from its own folder) and templates/ (per-client print
// templates). requireKivitendoPerl() makes a test FAIL with what is missing: the tree, perl, modules.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInstallation, type Installation, type InstallationOptions } from './installation';
import { REPO } from './cli';
import { DEFAULT_RELEASE, type Release } from './postgres';

/** kivitendo's source tree: env KIVITENDO_SRC (relative to the repository) or ../shared/kivitendo-erp. */
export const KIVITENDO_SRC = path.resolve(REPO, process.env.KIVITENDO_SRC || path.join('..', 'shared', 'kivitendo-erp'));
/** kivitendo 4.0.0's tree: env KIVITENDO_SRC_4_0_0 or ../shared/kivitendo-erp-4.0.0. */
export const KIVITENDO_SRC_4_0_0 = path.resolve(REPO, process.env.KIVITENDO_SRC_4_0_0 || path.join('..', 'shared', 'kivitendo-erp-4.0.0'));

/** The tree of a release the harness can build installations of. */
export function kivitendoSrc(release: Release = DEFAULT_RELEASE): string {
  return release === '4.0.0' ? KIVITENDO_SRC_4_0_0 : KIVITENDO_SRC;
}

/** Folders that are real directories in the copy (entries symlinked), relative to ROOT. */
const REAL_DIRS = ['SL', 'SL/BackgroundJob', 'scripts', 'templates'];
/** Folders the installation owns outright (kivitendo and the server write there). */
const OWN_DIRS = ['config', 'users', 'spool', 'webdav', 'documents'];

export interface KivitendoPrerequisites {
  src: string;
  perl: string;
}

const checked = new Map<string, KivitendoPrerequisites>();

/**
 * Throws an Error naming everything that is missing for running kivitendo's Perl code: the tree, a
 * `perl` on PATH, kivitendo's required Perl modules (with the Debian packages of
 * DEBIAN-PACKAGES.txt that provide them). Cached per process.
 */
export function requireKivitendoPerl(release: Release = DEFAULT_RELEASE): KivitendoPrerequisites {
  const src = kivitendoSrc(release);
  const cached = checked.get(src);
  if (cached) return cached;
  for (const f of ['SL/BackgroundJob/Test.pm', 'SL/InstallationCheck.pm', 'scripts/task_server.pl', 'config/kivitendo.conf.default', 'VERSION']) {
    if (!fs.existsSync(path.join(src, f))) {
      const env = release === DEFAULT_RELEASE ? 'KIVITENDO_SRC' : 'KIVITENDO_SRC_4_0_0';
      throw new Error(`kivitendo ${release} tree not found: ${path.join(src, f)} is missing (set ${env} to a kivitendo ${release} checkout, or put it at ${path.relative(REPO, src)})`);
    }
  }
  const which = spawnSync('sh', ['-c', 'command -v perl'], { encoding: 'utf8' });
  const perl = which.stdout.trim();
  if (which.status !== 0 || !perl) throw new Error('perl is not installed (Debian package perl); kivitendo\'s Perl code cannot run');
  // kivitendo's own list of required modules (SL::InstallationCheck), each tried with require.
  const probe = [
    'use strict; BEGIN { push @INC, $ARGV[0] } use SL::InstallationCheck;',
    'for my $m (@SL::InstallationCheck::required_modules) {',
    '  my $n = $m->{name}; next if eval "require $n; 1";',
    '  print join("\\t", $n, $m->{debian} // ""), "\\n";',
    '}',
  ].join('\n');
  const r = spawnSync(perl, ['-I', path.join(src, 'modules', 'override'), '-e', probe, src], { cwd: src, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`checking kivitendo's Perl modules failed (perl exit ${r.status}): ${r.stderr.trim()}`);
  const missing = r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
  if (missing.length) {
    const pkgs = [...new Set(missing.map(([, deb]) => deb).filter(Boolean))];
    throw new Error(
      `kivitendo's Perl modules are missing: ${missing.map(([n]) => n).join(', ')}; install the Debian packages ${pkgs.join(' ')} ` +
        `(all of them: apt-get install --no-upgrade $(grep -v '^#' ${path.join(src, 'DEBIAN-PACKAGES.txt')}))`,
    );
  }
  const found = { src, perl };
  checked.set(src, found);
  return found;
}

/** Symlinks every entry of src into dst; directories named in realDirs are recreated and recursed. */
function linkTree(src: string, dst: string, rel: string) {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (!rel && OWN_DIRS.includes(e.name)) continue;
    const from = path.join(src, e.name);
    const to = path.join(dst, e.name);
    if (e.isDirectory() && REAL_DIRS.includes(r)) linkTree(from, to, r);
    else fs.symlinkSync(from, to);
  }
}

export interface KivitendoInstallation extends Installation {
  /** The kivitendo tree the installation links to. */
  src: string;
  perl: string;
  /** Places a test-only job package as ROOT/SL/BackgroundJob/<name>.pm. */
  addJobPackage(name: string, perlSource: string): string;
}

export interface KivitendoInstallationOptions extends InstallationOptions {}

/**
 * createInstallation() on a real kivitendo tree: throws (see requireKivitendoPerl) when kivitendo
 * cannot run here. Users get the full-access group on every client, as an admin would set up.
 */
export async function createKivitendoInstallation(opts: KivitendoInstallationOptions = {}): Promise<KivitendoInstallation> {
  const { src, perl } = requireKivitendoPerl(opts.release);
  const inst = await createInstallation({
    ...opts,
    populateRoot(root) {
      linkTree(src, root, '');
      fs.mkdirSync(path.join(root, 'config'), { recursive: true });
      fs.copyFileSync(path.join(src, 'config', 'kivitendo.conf.default'), path.join(root, 'config', 'kivitendo.conf.default'));
      fs.cpSync(path.join(src, 'users'), path.join(root, 'users'), { recursive: true });
      for (const d of ['spool', 'webdav', 'documents']) fs.mkdirSync(path.join(root, d), { recursive: true });
    },
  });
  const auth = await inst.authConnection();
  try {
    // Rights: the reference data's full-access group ("Vollzugriff", every right), granted to every
    // user on every client as an admin would; clients_users as the admin screen writes it.
    const g = await auth.query(`SELECT id FROM auth."group" WHERE name = 'Vollzugriff'`);
    if (!g.rows.length) throw new Error("the auth DB template has no group 'Vollzugriff'");
    const groupId = g.rows[0].id;
    for (const userId of Object.values(inst.users)) {
      await auth.query('INSERT INTO auth.user_group (user_id, group_id) VALUES ($1, $2)', [userId, groupId]);
      for (const c of Object.values(inst.clients)) {
        await auth.query('INSERT INTO auth.clients_users (client_id, user_id) VALUES ($1, $2)', [c.id, userId]);
      }
    }
    for (const c of Object.values(inst.clients)) {
      await auth.query('INSERT INTO auth.clients_groups (client_id, group_id) VALUES ($1, $2)', [c.id, groupId]);
    }
  } finally {
    await auth.end();
  }
  return Object.assign(inst, {
    src,
    perl,
    addJobPackage(name: string, perlSource: string) {
      const file = path.join(inst.root, 'SL', 'BackgroundJob', `${name}.pm`);
      fs.writeFileSync(file, perlSource);
      return file;
    },
  });
}
