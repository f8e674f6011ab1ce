// Validation of a job's `data` mapping. kivitendo reads keys from `data` without checking them; a
// misspelt key or a list where a number belongs silently falls back to a default there. Here such a
// row fails with one line naming the key, so the admin sees the mistake in the history.
import { JobError } from './types';

export type OptionType = 'int' | 'number' | 'string' | 'bool' | 'list' | 'map';

const TYPE_NAMES: Record<OptionType, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  bool: 'a boolean',
  list: 'a list',
  map: 'a mapping',
};

/**
 * Checks `data` against `spec` (key → type) and returns the normalised values of the keys that are
 * present. A key with an empty YAML value (null) counts as absent: Perl sees undef there and uses
 * its default. Numbers given as digit strings are accepted (YAML.pm writes `'14'` as often as `14`);
 * `bool` follows Perl truthiness for scalars. Throws JobError for unknown keys and wrong types.
 */
export function readDataOptions(
  data: Record<string, unknown> | null | undefined,
  spec: Record<string, OptionType>,
  jobName: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (data === null || data === undefined) return out;
  for (const [key, value] of Object.entries(data)) {
    if (!Object.prototype.hasOwnProperty.call(spec, key)) {
      throw new JobError(`${jobName}: unknown key '${key}' in data`);
    }
    if (value === null || value === undefined) continue;
    const type = spec[key];
    const normalised = normalise(value, type);
    if (normalised === INVALID) {
      throw new JobError(`${jobName}: key '${key}' in data must be ${TYPE_NAMES[type]}, got ${describe(value)}`);
    }
    out[key] = normalised;
  }
  return out;
}

const INVALID = Symbol('invalid');

function normalise(value: unknown, type: OptionType): unknown {
  switch (type) {
    case 'int':
      if (typeof value === 'number') return Number.isInteger(value) ? value : INVALID;
      if (typeof value === 'string' && /^\s*[-+]?\d+\s*$/.test(value)) return parseInt(value, 10);
      return INVALID;
    case 'number':
      if (typeof value === 'number') return Number.isFinite(value) ? value : INVALID;
      if (typeof value === 'string' && /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(value)) return Number(value);
      return INVALID;
    case 'string':
      if (typeof value === 'string') return value;
      if (typeof value === 'number' || typeof value === 'bigint') return String(value);
      // The YAML 1.1 schema turns an unquoted 2024-01-31 into a timestamp; the job wanted the text.
      if (value instanceof Date) {
        const iso = value.toISOString();
        return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso;
      }
      return INVALID;
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'number') return value !== 0;
      if (typeof value === 'string') return value !== '' && value !== '0';
      return INVALID;
    case 'list':
      return Array.isArray(value) ? value : INVALID;
    case 'map':
      return typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date) ? value : INVALID;
  }
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Date) return `'${value.toISOString()}'`;
  if (typeof value === 'object' && value !== null) return 'a mapping';
  if (typeof value === 'string') return `'${value.length > 60 ? value.slice(0, 57) + '...' : value}'`;
  return String(value);
}
