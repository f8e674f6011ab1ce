// PLACEHOLDER until implemented: fails every run with a clear "not supported" history row.
import { NotSupportedError, type JobPackage } from './types';
import { VERSION } from '../version';

export const SendFollowUpReminder: JobPackage = {
  name: 'SendFollowUpReminder',
  async run() {
    throw new NotSupportedError('job package SendFollowUpReminder', VERSION);
  },
};
