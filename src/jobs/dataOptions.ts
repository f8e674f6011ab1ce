// Validation of a job's `data` mapping. kivitendo reads keys from `data` without checking them; a
// list where a number belongs silently falls back to a default there. Here a wrong type fails the
// run with one line naming the key, so the admin sees the mistake in the history. Unknown keys are
// treated as kivitendo's package treats them: nearly all ignore them, so here they are ignored with
// a WARN line naming the key (a job kivitendo runs must not fail here for a stray key); the few
// packages that refuse them (SendFollowUpReminder: "Not a valid parameter") still fail.
import { JobError, type JobContext } from './types';

export type OptionType = 'int' | 'number' | 'string' | 'bool' | 'list' | 'map';

const TYPE_NAMES: Record<OptionType, string> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  bool: 'a boolean',
  list: 'a list',
  map: 'a mapping',
};

/** A key the package does not read: 'fail' (the run fails naming it) or a warning sink. */
export type UnknownKeys = 'fail' | ((message: string) => void);

/** The usual policy: a WARN line in the log naming job, package and key; the job runs. */
export function warnUnknownKeys(ctx: Pick<JobContext, 'job' | 'log'>): (message: string) => void {
  return (message) => ctx.log.warn(`BackgroundJob ID ${ctx.job.id}: ${message}`);
}

/**
 * Checks `data` against `spec` (key → type) and returns the normalised values of the keys that are
 * present. A key with an empty YAML value (null) counts as absent: Perl sees undef there and uses
 * its default. Numbers given as digit strings are accepted (YAML.pm writes `'14'` as often as `14`);
 * `bool` follows Perl truthiness for scalars. Throws JobError for wrong types, and for unknown keys
 * when `unknownKeys` is 'fail' (else they are reported to it and ignored).
 */
export function readDataOptions(
  data: Record<string, unknown> | null | undefined,
  spec: Record<string, OptionType>,
  jobName: string,
  unknownKeys: UnknownKeys,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (data === null || data === undefined) return out;
  for (const [key, value] of Object.entries(data)) {
    if (!Object.prototype.hasOwnProperty.call(spec, key)) {
      if (unknownKeys === 'fail') throw new JobError(`${jobName}: unknown key '${key}' in data`);
      unknownKeys(`${jobName}: unknown key '${key}' in data ignored (kivitendo's ${jobName} does not read it either)`);
      continue;
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
