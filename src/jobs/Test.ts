// kivitendo's Test package (spec jobs.md "Test"): the reference job for checking a set-up.
import { perlTrue } from '../config/configStd';
import { JobError, type JobPackage } from './types';

export const Test: JobPackage = {
  name: 'Test',
  async run(ctx) {
    ctx.log.error(`Test job ID ${ctx.job.id} is being executed on node ${ctx.nodeId}.`);
    if (perlTrue(ctx.data.exception)) throw new JobError(`Oh cruel world: ${String(ctx.data.exception)}`);
    return 'result' in ctx.data ? (ctx.data.result as string) : 1;
  },
};
