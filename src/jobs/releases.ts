// The kivitendo a client runs on, and whether a native module is proven for it. A native module
// states the kivitendo releases whose Perl package it was checked against row for row
// (JobPackage.verifiedReleases); it runs natively only for a client whose database is exactly at the
// installation's release (no upgrade pending, no upgrade the installation does not know) and whose
// installation is one of those releases. Everywhere else kivitendo's own package runs, which is right
// for its version by construction.
import type { InstallationRelease } from '../db/schemaInfo';
import type { JobPackage } from './types';

/** Checked against kivitendo 4.1.0 and 4.1.1 (the development head, VERSION "4.1.1-unstable"). */
export const RELEASES_4_1 = ['4.1.0', '4.1.1'] as const;
/** Also checked against kivitendo 4.0.0's own task_server.pl, row for row (test/releases-4.0.0.test.ts). */
export const RELEASES_4_0_TO_4_1 = ['4.0.0', '4.1.0', '4.1.1'] as const;

/** What decides a client's native routes: the installation's release and the client DB's upgrades. */
export interface ClientKivitendo {
  /** The installation's VERSION text, null when unknown. */
  version: string | null;
  /** Its release number (x.y.z), null when unknown. */
  release: string | null;
  /** The installation's upgrades not applied to the client database (it lags behind). */
  pending: string[];
  /** Upgrades applied to the client database that the installation does not know (a newer kivitendo). */
  unknown: string[];
  /** Why the installation's version or upgrades could not be read. */
  problem?: string;
}

/** "4.1.1-unstable" → "4.1.1"; anything not starting with a release number → null. */
export function releaseOf(version: string | null): string | null {
  const m = version ? /^(\d+\.\d+\.\d+)(?![\d.])/.exec(version) : null;
  return m ? m[1] : null;
}

export function clientKivitendo(inst: InstallationRelease, applied: Set<string>): ClientKivitendo {
  return {
    version: inst.version,
    release: releaseOf(inst.version),
    pending: [...inst.tags].filter((t) => !applied.has(t)).sort(),
    unknown: inst.problem ? [] : [...applied].filter((t) => !inst.knownTags.has(t)).sort(),
    problem: inst.problem,
  };
}

export const kivitendoName = (k: ClientKivitendo) => (k.version ? `kivitendo ${k.version}` : 'kivitendo of unknown version');

const list = (tags: string[], max = 5) => tags.slice(0, max).join(', ') + (tags.length > max ? `, … (${tags.length - max} more)` : '');

/** One line on the client database's state against its installation (check, the log). */
export function describeClientDatabase(k: ClientKivitendo): string {
  if (k.problem) return `not known which kivitendo: ${k.problem}`;
  const parts: string[] = [];
  if (k.pending.length) {
    parts.push(`${k.pending.length} database upgrade${k.pending.length === 1 ? '' : 's'} of ${kivitendoName(k)} pending (kivitendo applies them at the next login to this client)`);
  }
  if (k.unknown.length) {
    parts.push(`${k.unknown.length} upgrade${k.unknown.length === 1 ? '' : 's'} applied that ${kivitendoName(k)} does not know (a newer kivitendo's?): ${list(k.unknown)}`);
  }
  return parts.length ? `database does not match ${kivitendoName(k)}: ${parts.join('; ')}` : `database matches ${kivitendoName(k)}`;
}

/** "4.1.0 and 4.1.1", "4.0.0, 4.1.0 and 4.1.1". */
export function releaseList(releases: readonly string[]): string {
  return releases.length > 1 ? `${releases.slice(0, -1).join(', ')} and ${releases[releases.length - 1]}` : (releases[0] ?? 'no release');
}

/** Whether a native module is proven for this client; if not, why (one clause). */
export function nativeVerdict(pkg: JobPackage, k: ClientKivitendo): { proven: true; why: string } | { proven: false; why: string } {
  const verified = `native module verified for kivitendo ${releaseList(pkg.verifiedReleases)}`;
  if (k.problem) return { proven: false, why: `${verified}, but ${k.problem}` };
  if (!k.release || !pkg.verifiedReleases.includes(k.release)) return { proven: false, why: `${verified}, this installation is ${kivitendoName(k)}` };
  if (k.pending.length) return { proven: false, why: `${verified}, this client's database lags behind ${kivitendoName(k)} (${k.pending.length} upgrade${k.pending.length === 1 ? '' : 's'} pending)` };
  if (k.unknown.length) return { proven: false, why: `${verified}, this client's database has ${k.unknown.length} upgrade${k.unknown.length === 1 ? '' : 's'} ${kivitendoName(k)} does not know (${list(k.unknown, 3)})` };
  return { proven: true, why: `verified for kivitendo ${releaseList(pkg.verifiedReleases)}` };
}

/**
 * The releases this server's Perl glue (kivitendo-child.pl: client set-up, running a package) was
 * run against. On another release kivitendo's own package still runs, but a failure names this.
 */
export const PERL_GLUE_VERIFIED: readonly string[] = RELEASES_4_0_TO_4_1;

/** Undefined on a verified release; else one clause for check and a failed Perl run's history row. */
export function perlGlueNote(k: Pick<ClientKivitendo, 'version' | 'release'>): string | undefined {
  if (k.release && PERL_GLUE_VERIFIED.includes(k.release)) return undefined;
  return `kivitendo-task-server's Perl glue is verified for kivitendo ${releaseList(PERL_GLUE_VERIFIED)}, this installation is ${kivitendoName(k as ClientKivitendo)}`;
}
