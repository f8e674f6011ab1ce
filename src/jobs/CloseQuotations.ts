// PLACEHOLDER until implemented: fails every run with a clear "not supported" history row.
import { NotSupportedError, type JobPackage } from './types';
import { VERSION } from '../version';

export const CloseQuotations: JobPackage = {
  name: 'CloseQuotations',
  async run() {
    throw new NotSupportedError('job package CloseQuotations', VERSION);
  },
};
