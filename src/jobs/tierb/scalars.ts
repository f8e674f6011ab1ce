// Plain values from `data` as Perl would print them, for keys that take any scalar.
import { JobError } from '../types';

/** A YAML scalar as the Perl job sees it (true → 1, false → ''); lists and mappings are refused. */
export function perlScalar(value: unknown, key: string, jobName: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'boolean') return value ? '1' : '';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) {
    const iso = value.toISOString();
    return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso;
  }
  throw new JobError(`${jobName}: key '${key}' in data must be a single value, got ${Array.isArray(value) ? 'a list' : 'a mapping'}`);
}
