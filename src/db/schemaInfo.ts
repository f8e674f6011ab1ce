// Which kivitendo an installation is and which of its database upgrades a client database has:
// the installation's VERSION file and the control headers of sql/Pg-upgrade2 (its upgrade tags),
// and the client database's schema_info (the tags applied to it). kivitendo applies a client's
// upgrades at its first login after a code update, so the two may differ for days.
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from './pg';
import { readUpgradeControls } from './authUpgrades';

export interface InstallationRelease {
  /** The installation's VERSION file as written (e.g. "4.0.0", "4.1.1-unstable"); null when missing. */
  version: string | null;
  /** Upgrade tags of the installation's client upgrade scripts that apply (not `@ignore`). */
  tags: Set<string>;
  /** Every tag the installation knows, the ignored scripts' included. */
  knownTags: Set<string>;
  /** Why the version or the tags could not be read (a broken control file, no sql/Pg-upgrade2). */
  problem?: string;
}

const cache = new Map<string, { stamp: string; release: InstallationRelease }>();

function stampOf(kivitendoDir: string): string {
  const st = (f: string) => {
    try {
      const s = fs.statSync(path.join(kivitendoDir, f));
      return `${s.ino}:${s.mtimeMs}`;
    } catch {
      return '-';
    }
  };
  return `${st('VERSION')}|${st(path.join('sql', 'Pg-upgrade2'))}`;
}

/**
 * The installation's release, read again only when VERSION or the upgrade folder changed (an
 * upgrade replaces them), so a long-running server follows an upgrade without a restart.
 */
export function readInstallationRelease(kivitendoDir: string): InstallationRelease {
  const stamp = stampOf(kivitendoDir);
  const hit = cache.get(kivitendoDir);
  if (hit && hit.stamp === stamp) return hit.release;
  const release = readUncached(kivitendoDir);
  cache.set(kivitendoDir, { stamp, release });
  return release;
}

function readUncached(kivitendoDir: string): InstallationRelease {
  let version: string | null = null;
  const problems: string[] = [];
  try {
    version = fs.readFileSync(path.join(kivitendoDir, 'VERSION'), 'utf8').trim() || null;
  } catch (e) {
    problems.push(`${path.join(kivitendoDir, 'VERSION')} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const dir = path.join(kivitendoDir, 'sql', 'Pg-upgrade2');
  let tags = new Set<string>();
  let knownTags = new Set<string>();
  if (!fs.existsSync(dir)) problems.push(`${dir} does not exist`);
  else {
    try {
      const all = readUpgradeControls(dir, true);
      knownTags = new Set(all.map((c) => c.tag));
      tags = new Set(all.filter((c) => !c.ignore).map((c) => c.tag));
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return { version, tags, knownTags, problem: problems.length ? problems.join('; ') : undefined };
}

const appliedCache = new Map<string, { stamp: string; tags: Set<string> }>();

/**
 * The upgrade tags applied to a client database (kivitendo's schema_info). Every run asks, so the
 * ~700 tags are read again only when the table changed: an upgrade adds rows (with their itime), a
 * restored dump brings other ones; a count and the newest itime are one small round trip.
 */
export async function appliedClientUpgradeTags(db: Client): Promise<Set<string>> {
  const key = `${db.host}\u0000${db.port}\u0000${db.database}`;
  const [{ stamp }] = (await db.query<{ stamp: string }>(`SELECT count(*) || '/' || coalesce(max(itime)::text, '-') AS stamp FROM schema_info`)).rows;
  const hit = appliedCache.get(key);
  if (hit && hit.stamp === stamp) return hit.tags;
  const r = await db.query<{ tag: string }>('SELECT tag FROM schema_info');
  const tags = new Set(r.rows.map((x) => x.tag));
  appliedCache.set(key, { stamp, tags });
  return tags;
}
