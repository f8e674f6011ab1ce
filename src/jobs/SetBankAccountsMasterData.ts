// PLACEHOLDER until implemented: fails every run with a clear "not supported" history row.
import { NotSupportedError, type JobPackage } from './types';
import { VERSION } from '../version';

export const SetBankAccountsMasterData: JobPackage = {
  name: 'SetBankAccountsMasterData',
  async run() {
    throw new NotSupportedError('job package SetBankAccountsMasterData', VERSION);
  },
};
