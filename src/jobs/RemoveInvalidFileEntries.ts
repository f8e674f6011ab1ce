// PLACEHOLDER until implemented: fails every run with a clear "not supported" history row.
import { NotSupportedError, type JobPackage } from './types';
import { VERSION } from '../version';

export const RemoveInvalidFileEntries: JobPackage = {
  name: 'RemoveInvalidFileEntries',
  async run() {
    throw new NotSupportedError('job package RemoveInvalidFileEntries', VERSION);
  },
};
