// Pre-flight before the daemon or --run-job starts (spec task-server.md §3): configuration,
// [task_server] section, deprecated keys refusal (exit 2), auth DB connection, pending auth upgrades
// refusal (exit 2), privilege drop. Every failure is a Fatal with one line (or kivitendo's fixed
// refusal text) and never contains a password.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, hasDeprecatedKeys, loadConfig, type Config } from '../config/config';
import { ConfigSyntaxError } from '../config/configStd';
import { appliedAuthUpgradeTags } from '../db/auth';
import { pendingUpgrades, readAuthUpgradeControls, UpgradeControlError } from '../db/authUpgrades';
import { openConnection, redact } from '../db/pg';
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

/** Connects to the auth DB and refuses on unapplied auth upgrade scripts. Throws Fatal. */
export async function verifyAuthDb(config: Config): Promise<void> {
  let controls;
  try {
    controls = readAuthUpgradeControls(config.kivitendoDir);
  } catch (e) {
    if (e instanceof UpgradeControlError) throw new Fatal(e.message);
    throw e;
  }
  let auth;
  try {
    auth = await openConnection(config.authDb, { applicationName: 'kivitendo-task-server pre-flight' });
  } catch (e) {
    const prefix = AUTH_CONNECT_FAILED[config.system.language] ?? AUTH_CONNECT_FAILED.en;
    throw new Fatal(`Error: ${prefix} ${redact(oneLine(e), config.authDb.password)}`);
  }
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

/** The whole pre-flight. Returns the configuration. */
export async function preflight(loc: ConfigLocation): Promise<Config> {
  const config = readConfig(loc);
  await verifyAuthDb(config);
  dropPrivileges(config.taskServer.runAs);
  return config;
}
