// Reader for the Config::Std dialect kivitendo.conf is written in (spec task-server.md §4.2).
// The `ini` package is close but not the same: Config::Std accepts ':' as separator, has
// continuation lines, no trailing comments, no quoting, and treats unknown lines as fatal.
// So this is a small line parser of its own; `ini` is used for nothing that would differ.

export type Sections = Record<string, Record<string, string>>;

export class ConfigSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly text: string,
  ) {
    super(`Error in config file '${file}' line ${line} near: ${text.trim().slice(0, 40)}`);
    this.name = 'ConfigSyntaxError';
  }
}

const COMMENT = /^\s*[#;]/;
const GAP = /^\s*$/;
const SECTION = /^\s*\[([^\]\n]*)\]\s*(?:[#;].*)?$/;
const KEY_VALUE = /^\s*([^=:\n]+?)\s*([=:])(.*)$/;
const CONTINUATION = /^\s*([=:])(.*)$/;

/**
 * Parses one Config::Std file. A key given twice in a section keeps its last value
 * (Config::Std would make a list; no task server key expects one).
 */
export function parseConfigStd(text: string, file: string): Sections {
  const sections: Sections = {};
  let current: Record<string, string> | undefined; // undefined = before the first section: ignored
  let last: { key: string; sep: string; target: Record<string, string> | undefined; continued: boolean } | undefined;
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, idx) => {
    if (GAP.test(line) || COMMENT.test(line)) {
      last = undefined;
      return;
    }
    const cont = CONTINUATION.exec(line);
    if (cont && last && cont[1] === last.sep) {
      if (last.target) {
        const prev = last.continued ? last.target[last.key] : last.target[last.key];
        last.target[last.key] = `${prev}\n${cont[2]}`;
      }
      last.continued = true;
      return;
    }
    const sec = SECTION.exec(line);
    if (sec) {
      const name = sec[1].trim();
      current = sections[name] ??= {};
      last = undefined;
      return;
    }
    const kv = KEY_VALUE.exec(line);
    if (kv) {
      const key = kv[1].trim();
      if (current) current[key] = kv[3].trim();
      last = { key, sep: kv[2], target: current, continued: false };
      return;
    }
    throw new ConfigSyntaxError(file, idx + 1, line);
  });
  return sections;
}

/** Per-section merge: overlay keys replace base keys, base keys not mentioned stay (§4.1). */
export function mergeSections(base: Sections, overlay: Sections): Sections {
  const out: Sections = {};
  for (const [name, keys] of Object.entries(base)) out[name] = { ...keys };
  for (const [name, keys] of Object.entries(overlay)) out[name] = { ...(out[name] ?? {}), ...keys };
  return out;
}

/** Perl truthiness of a config or data value: absent, '' and '0' are false, everything else true. */
export function perlTrue(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  const s = String(value);
  return s !== '' && s !== '0';
}
