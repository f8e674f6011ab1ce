// PLACEHOLDER until implemented: fails every run with a clear "not supported" history row.
import { NotSupportedError, type JobPackage } from './types';
import { VERSION } from '../version';

export const UpdateEmployeeBaseData: JobPackage = {
  name: 'UpdateEmployeeBaseData',
  async run() {
    throw new NotSupportedError('job package UpdateEmployeeBaseData', VERSION);
  },
};
