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

export function parseJobData(text: string | null, jobId: number, packageName: string | null): Record<string, unknown> {
  if (text === null || text.trim() === '') return {};
  let doc: unknown;
  try {
    doc = YAML.parse(text, { version: '1.1', uniqueKeys: false });
  } catch (e) {
    throw new JobDataError(jobId, packageName, (e as Error).message.split('\n')[0]);
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
