// How a claimed job runs for its client: the client's kivitendo (installation VERSION and upgrades,
// the client database's schema_info) decides whether a native module is proven (releases.ts). The
// log says each client's kivitendo once, and each package's way once per client — not per run —
// and again only when it changes (an upgrade, a client's first login after one).
import path from 'node:path';
import type { Config } from '../config/config';
import type { Client } from '../db/pg';
import { appliedClientUpgradeTags, readInstallationRelease } from '../db/schemaInfo';
import type { Logger } from '../log/logger';
import { routeJobPackage, type JobRoute } from './registry';
import { clientKivitendo, describeClientDatabase, kivitendoName, type ClientKivitendo } from './releases';

/** The client's kivitendo, from the installation's files and the client database. */
export async function readClientKivitendo(kivitendoDir: string, db: Client): Promise<ClientKivitendo> {
  const inst = readInstallationRelease(kivitendoDir);
  let applied: Set<string>;
  try {
    applied = await appliedClientUpgradeTags(db);
  } catch (e) {
    // Not a kivitendo database as far as we can tell: nothing is proven for it.
    return { ...clientKivitendo(inst, new Set()), pending: [], problem: `the client database's schema_info cannot be read: ${(e as Error).message}` };
  }
  return clientKivitendo(inst, applied);
}

/** One line on a route (check, the debug log). */
export function describeRoute(route: JobRoute, kivitendoDir: string): string {
  if (route.kind === 'native') return `native${route.why ? ` (${route.why})` : ''}`;
  if (route.kind === 'perl') {
    const file = path.relative(kivitendoDir, route.file);
    return `kivitendo's Perl code (${file}${route.forced ? ', forced by [task_server] perl_packages' : ''})${route.why ? `: ${route.why}` : ''}`;
  }
  return `cannot run: ${route.reason}`;
}

const clientNotes = new Map<string, string>();
const routeNotes = new Map<string, string>();

/**
 * The route of a package for a client; says the client's kivitendo (notice; a database that does not
 * match its installation as a problem) and the route (debug) the first time and whenever they change.
 */
export function routeForClient(
  config: Config, log: Logger, client: { id: number; name: string }, packageName: string | null, kivi: ClientKivitendo,
): JobRoute {
  const state = `${kivitendoName(kivi)}: ${describeClientDatabase(kivi)}`;
  const key = `${config.kivitendoDir}\u0000${client.id}`;
  if (clientNotes.get(key) !== state) {
    clientNotes.set(key, state);
    const line = `Client ${client.id} (${client.name}): ${state}`;
    if (kivi.problem || kivi.pending.length || kivi.unknown.length) log.problem(`${line}; native modules not verified for it give way to kivitendo's own Perl packages`);
    else log.notice(line);
  }
  const route = routeJobPackage(config, packageName, kivi);
  const text = describeRoute(route, config.kivitendoDir);
  const rkey = `${key}\u0000${packageName}`;
  if (routeNotes.get(rkey) !== text) {
    routeNotes.set(rkey, text);
    log.debug(`task server: client ${client.id} (${client.name}): ${packageName}: ${text}`);
  }
  return route;
}
