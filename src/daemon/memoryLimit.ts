// [system] memory_limit_rss / memory_limit_vsz (spec task-server.md §7.7), checked by the scheduler
// after each sweep. Deliberate fixes of kivitendo's parser (§14.1):
//  * memory_limit_vsz is honoured on its own (Perl only looks at it when memory_limit_rss is set);
//  * the trailing B is optional: `500M`, `500MB`, `500 MiB` all mean 500 MiB (Perl reads `500M` as
//    500 bytes and then exits after every sweep); a plain number is bytes;
//  * a value that is not a size (`abc`) is a configuration error reported at start-up
//    (validateMemoryLimits) and ignored by the check (Perl reads it as 0 bytes → exit every sweep).
// Usage is read from /proc/self/status (VmRSS, VmSize) like kivitendo. Note that a Node process
// reserves a lot of address space: VmSize is typically > 1 GiB right after start, so a vsz limit
// must be generous; the rss limit is the meaningful one.
import fs from 'node:fs';
import type { Config } from '../config/config';
import { ConfigError } from '../config/config';

const FACTORS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const SIZE = /^\s*(\d+)\s*(?:([KMGT])(?:I?B)?|B)?\s*$/i;

/** Bytes of a size value; undefined for '' / '0' (limit disabled); NaN for garbage. */
export function parseSize(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === '' || v === '0') return undefined;
  const m = SIZE.exec(v);
  if (!m) return NaN;
  const bytes = Number(m[1]) * FACTORS[(m[2] ?? '').toUpperCase()];
  return bytes === 0 ? undefined : bytes;
}

export interface MemoryUsage {
  rss?: number;
  size?: number;
}

/** VmRSS and VmSize of this process in bytes (Linux); {} where /proc is not available. */
export function readMemoryUsage(statusFile = '/proc/self/status'): MemoryUsage {
  let text: string;
  try {
    text = fs.readFileSync(statusFile, 'utf8');
  } catch {
    return {};
  }
  const usage: MemoryUsage = {};
  for (const line of text.split('\n')) {
    const m = /^Vm(RSS|Size):\s*(\d+\s*[kmg]B)\s*$/i.exec(line);
    if (m) usage[m[1].toLowerCase() === 'rss' ? 'rss' : 'size'] = parseSize(m[2]);
  }
  return usage;
}

type LimitConfig = Pick<Config, 'system'>;

/** Throws ConfigError for a limit that is set but not a size (called in the pre-flight). */
export function validateMemoryLimits(config: LimitConfig): void {
  for (const [key, value] of [
    ['memory_limit_rss', config.system.memoryLimitRss],
    ['memory_limit_vsz', config.system.memoryLimitVsz],
  ] as const) {
    if (Number.isNaN(parseSize(value))) {
      throw new ConfigError(`Invalid value '${value}' for [system] ${key}: expected a size such as 800M, 2G or a number of bytes`);
    }
  }
}

/**
 * The WARN message when a limit is exceeded (usage strictly greater than the limit), else undefined.
 * The wording is kivitendo's, including the type name `size` for the vsz limit.
 */
export function memoryLimitExceeded(config: LimitConfig, usage: MemoryUsage = readMemoryUsage()): string | undefined {
  if (config.system.hasSection === false) return undefined;
  const limits = { rss: parseSize(config.system.memoryLimitRss), size: parseSize(config.system.memoryLimitVsz) };
  for (const type of ['rss', 'size'] as const) {
    const limit = limits[type];
    const used = usage[type];
    if (limit === undefined || Number.isNaN(limit) || used === undefined) continue;
    if (used > limit) {
      return `Exiting due to memory size limit reached for type '${type}': limit ${limit} bytes, usage ${used} bytes`;
    }
  }
  return undefined;
}
