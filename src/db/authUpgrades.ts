// Control headers of kivitendo's auth upgrade scripts (sql/Pg-upgrade2-auth/*.sql, *.pl), to refuse
// starting while one is unapplied, as task_server.pl does (spec task-server.md §3.1).
import fs from 'node:fs';
import path from 'node:path';
import { perlTrue } from '../config/configStd';

export class UpgradeControlError extends Error {
  constructor(readonly file: string, reason: string) {
    super(`Error in database control file '${file}': ${reason}`);
    this.name = 'UpgradeControlError';
  }
}

export interface UpgradeControl {
  file: string;
  tag: string;
  description: string;
  depends: string[];
  ignore: boolean;
}

const KNOWN_KEYS = new Set(['tag', 'description', 'depends', 'required_by', 'locales', 'may_fail', 'priority', 'superuser_privileges', 'ignore']);
const LIST_KEYS = new Set(['depends', 'required_by', 'locales']);

export function parseControlHeader(file: string, text: string): UpgradeControl {
  const values: Record<string, string> = {};
  const lists: Record<string, string[]> = { depends: [], required_by: [], locales: [] };
  for (const line of text.split('\n')) {
    const m = /^(?:--|#)\s*@([^:]+?)\s*:\s*(.*?)\s*$/.exec(line);
    if (!m || m[2] === '') continue;
    const key = m[1].trim();
    if (!KNOWN_KEYS.has(key)) throw new UpgradeControlError(file, `Unknown control key '${key}'`);
    if (LIST_KEYS.has(key)) lists[key].push(...m[2].split(/\s+/).filter(Boolean));
    else values[key] = m[2];
  }
  if (!values.tag) throw new UpgradeControlError(file, 'Missing tag');
  if (!/^[A-Za-z0-9_()-]+$/.test(values.tag)) throw new UpgradeControlError(file, `Tag '${values.tag}' contains invalid characters`);
  if (!values.description) throw new UpgradeControlError(file, 'Missing description');
  return { file, tag: values.tag, description: values.description, depends: lists.depends, ignore: perlTrue(values.ignore) };
}

/** All control headers of ROOT/sql/Pg-upgrade2-auth; checks duplicates and unknown dependencies. */
export function readAuthUpgradeControls(kivitendoDir: string): UpgradeControl[] {
  return readUpgradeControls(path.join(kivitendoDir, 'sql', 'Pg-upgrade2-auth'));
}

/**
 * All control headers of one of kivitendo's upgrade folders (sql/Pg-upgrade2 for client databases,
 * sql/Pg-upgrade2-auth); `withIgnored` keeps the scripts marked `@ignore` (their tags are known).
 */
export function readUpgradeControls(dir: string, withIgnored = false): UpgradeControl[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const controls: UpgradeControl[] = [];
  for (const ext of ['.sql', '.pl']) {
    for (const name of names.filter((n) => n.endsWith(ext)).sort()) {
      const file = path.join(dir, name);
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch {
        continue; // unreadable files are skipped, as kivitendo does
      }
      const c = parseControlHeader(file, text);
      if (!c.ignore || withIgnored) controls.push(c);
    }
  }
  if (withIgnored) return controls;
  const byTag = new Map<string, UpgradeControl>();
  for (const c of controls) {
    if (byTag.has(c.tag)) throw new UpgradeControlError(c.file, `More than one control file with tag '${c.tag}'`);
    byTag.set(c.tag, c);
  }
  for (const c of controls) {
    for (const d of c.depends) {
      if (!byTag.has(d)) throw new UpgradeControlError(c.file, `Unknown dependency '${d}'`);
    }
  }
  return controls;
}

/** Tags of control files not yet recorded in auth.schema_info. */
export function pendingUpgrades(controls: UpgradeControl[], applied: Set<string>): UpgradeControl[] {
  return controls.filter((c) => !applied.has(c.tag));
}
