// Pre-flight before the daemon or --run-job starts (spec task-server.md §3): configuration,
// [task_server] section, deprecated keys refusal (exit 2), auth DB connection, pending auth upgrades
// refusal (exit 2), privilege drop. Every failure is a Fatal with one line (or kivitendo's fixed
// refusal text) and never contains a password.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, hasDeprecatedKeys, loadConfig, type Config } from '../config/config';
import { ConfigSyntaxError } from '../config/configStd';
import { appliedAuthUpgradeTags } from '../db/auth';
import { pendingUpgrades, readAuthUpgradeControls, UpgradeControlError } from '../db/authUpgrades';
import { openConnection, redact } from '../db/pg';
import { isTransientDbError } from '../scheduler/backoff';
import { Fatal, oneLine } from './errors';
import { validateMemoryLimits } from './memoryLimit';
import { dropPrivileges } from './privileges';

export const DEPRECATED_KEYS_TEXT = `ERROR: The keys 'login' and/or 'client' are still present in the
section [task_server] in the configuration file. These keys are
deprecated. You have to configure the clients for which to run the
task server in the web admin interface.

The task server will refuse to start until the keys have been removed from
the configuration file.`;

export const AUTH_UPGRADE_TEXT = `The authentication database requires an upgrade. Please login to
kivitendo's administration interface in order to apply it. The task
server cannot start until the upgrade has been applied.`;

const AUTH_CONNECT_FAILED: Record<string, string> = {
  de: 'Die Verbindung zur Authentifizierungsdatenbank schlug fehl:',
  en: 'The connection to the authentication database failed:',
};

export interface ConfigLocation {
  root: string;
  /** As named by resolveConfigPath (pid file name). */
  configPath: string;
  /** -c was given: then the file must exist (Perl silently used only the defaults). */
  explicit: boolean;
}

/** Reads and checks the configuration (no database). Throws Fatal. */
export function readConfig(loc: ConfigLocation): Config {
  if (loc.explicit) {
    const full = path.resolve(loc.root, loc.configPath);
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(full);
    } catch {
      st = undefined;
    }
    if (!st) throw new Fatal(`Error: Config file '${loc.configPath}' does not exist`);
    if (!st.isFile()) throw new Fatal(`Error: Config file '${loc.configPath}' is not a regular file`);
  }
  let config: Config;
  try {
    config = loadConfig(loc.root, loc.configPath);
    validateMemoryLimits(config);
  } catch (e) {
    if (e instanceof ConfigSyntaxError) throw new Fatal(e.message.split('\n')[0]);
    if (e instanceof ConfigError) throw new Fatal(`Error: ${e.message}`);
    throw e;
  }
  if (hasDeprecatedKeys(config)) throw new Fatal(DEPRECATED_KEYS_TEXT, 2);
  return config;
}

export interface StartupWait {
  /** Used when [task_server] startup_wait is not set, ms (Infinity: until the auth DB is up). */
  defaultWaitMs: number;
  /** Told once when the wait begins, with the bound that applies. */
  onWait?(line: string, waitMs: number): void;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/**
 * Connects to the auth DB; while it is not up yet (refused, starting up — normal early in boot) it
 * retries with backoff up to the configured wait. Wrong credentials or a missing database refuse at
 * once: waiting would not fix them.
 */
async function connectAuthDb(config: Config, wait: StartupWait | undefined) {
  const waitMs = wait ? (config.taskServer.startupWaitMs ?? wait.defaultWaitMs) : 0;
  const deadline = Date.now() + waitMs;
  let retryMs = FIRST_RETRY_MS;
  for (let told = false; ; ) {
    try {
      return await openConnection(config.authDb, { applicationName: 'kivitendo-task-server pre-flight' });
    } catch (e) {
      const why = redact(oneLine(e), config.authDb.password);
      const left = deadline - Date.now();
      if (!isTransientDbError(e) || left <= 0) {
        const prefix = AUTH_CONNECT_FAILED[config.system.language] ?? AUTH_CONNECT_FAILED.en;
        throw new Fatal(`Error: ${prefix} ${why}`);
      }
      if (!told) {
        told = true;
        const bound = Number.isFinite(waitMs) ? `for up to ${Math.round(waitMs / 1000)} s ([task_server] startup_wait)` : 'until it is reachable';
        wait!.onWait?.(`Waiting for the authentication database ${bound}: ${why}`, waitMs);
      }
      await sleep(Math.min(retryMs, left));
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    }
  }
}

/** Connects to the auth DB and refuses on unapplied auth upgrade scripts. Throws Fatal. */
export async function verifyAuthDb(config: Config, wait?: StartupWait): Promise<void> {
  let controls;
  try {
    controls = readAuthUpgradeControls(config.kivitendoDir);
  } catch (e) {
    if (e instanceof UpgradeControlError) throw new Fatal(e.message);
    throw e;
  }
  const auth = await connectAuthDb(config, wait);
  try {
    const pending = pendingUpgrades(controls, await appliedAuthUpgradeTags(auth));
    if (pending.length) throw new Fatal(AUTH_UPGRADE_TEXT, 2);
  } catch (e) {
    if (e instanceof Fatal) throw e;
    throw new Fatal(`Error: Cannot read the auth schema: ${redact(oneLine(e), config.authDb.password)}`);
  } finally {
    await auth.end().catch(() => undefined);
  }
}

/** The whole pre-flight. Returns the configuration. Without `wait` an unreachable auth DB fails at once. */
export async function preflight(loc: ConfigLocation, wait?: StartupWait): Promise<Config> {
  const config = readConfig(loc);
  await verifyAuthDb(config, wait);
  dropPrivileges(config.taskServer.runAs);
  return config;
}
