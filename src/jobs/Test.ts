// kivitendo's Test package (spec jobs.md "Test"): the reference job for checking a set-up.
import { perlTrue } from '../config/configStd';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { perlScalar } from './tierb/scalars';
import { JobError, type JobPackage } from './types';
import { RELEASES_4_0_TO_4_1 } from './releases';

const NAME = 'Test';

export const Test: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_0_TO_4_1,
  async run(ctx) {
    // `exception` and `result` take any scalar; the validator only reports the other keys.
    const { exception, result, ...rest } = ctx.data;
    readDataOptions(rest, {}, NAME, warnUnknownKeys(ctx));
    const exceptionText = perlScalar(exception, 'exception', NAME);
    const resultText = perlScalar(result, 'result', NAME);
    // Level 0 (ctx.log.notice) is written whatever [debug] global_level says, as in kivitendo.
    ctx.log.notice(`Test job ID ${ctx.job.id} is being executed on node ${ctx.nodeId}.`);
    if (perlTrue(exceptionText)) throw new JobError(`Oh cruel world: ${exceptionText}`);
    return 'result' in ctx.data ? resultText : 1;
  },
};
