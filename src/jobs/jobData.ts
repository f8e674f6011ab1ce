// background_jobs.data is YAML written by Perl's YAML.pm (spec task-server.md §5.2): read any YAML
// 1.1 block document; write plain block style with a `---` header, readable by YAML.pm and YAML::XS.
import YAML from 'yaml';
import { JobError } from './types';

export class JobDataError extends JobError {
  constructor(jobId: number, packageName: string | null, detail: string) {
    super(`invalid YAML in data of background job ${jobId} (${packageName ?? '?'}): ${detail}`);
    this.name = 'JobDataError';
  }
}

/**
 * The parser's reason in one line. The yaml package's first line is "<reason> at line L, column C:"
 * followed by a code excerpt; put the position first so the message ends with the reason.
 */
function yamlReason(e: unknown): string {
  const first = (e instanceof Error ? e.message : String(e)).split('\n')[0].trim();
  const m = /^(.*?) at line (\d+), column (\d+):?$/.exec(first);
  return m ? `line ${m[2]}, column ${m[3]}: ${m[1]}` : first.replace(/:$/, '');
}

export function parseJobData(text: string | null, jobId: number, packageName: string | null): Record<string, unknown> {
  if (text === null || text.trim() === '') return {};
  let doc: unknown;
  try {
    doc = YAML.parse(text, { version: '1.1', uniqueKeys: false });
  } catch (e) {
    throw new JobDataError(jobId, packageName, yamlReason(e));
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new JobDataError(jobId, packageName, 'the document is not a mapping');
  }
  return doc as Record<string, unknown>;
}

export function dumpJobData(data: Record<string, unknown>): string {
  if (Object.keys(data).length === 0) return '--- {}\n';
  return '---\n' + YAML.stringify(data, { version: '1.1', indent: 2, lineWidth: 0, aliasDuplicateObjects: false });
}
