// kivitendo's Test package (spec jobs.md "Test"): the reference job for checking a set-up.
import { perlTrue } from '../config/configStd';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { perlScalar } from './tierb/scalars';
import { JobError, type JobPackage } from './types';
import { RELEASES_4_0_TO_4_1 } from './releases';

const NAME = 'Test';
/** Where kivitendo's Test.pm dies (the same line in 4.0.0 and 4.1.x). */
const DIE_LINE = 15;

/**
 * kivitendo's history text of the failing Test job: Perl's die appends where it died and a newline.
 * The path is the one our Perl path's @INC gives; task_server.pl's reads `scripts/../SL/...` and
 * adds `, <GEN4> line 21` (the handle its own process read last), which says nothing about the job.
 */
export function testExceptionText(exception: string, kivitendoDir: string): string {
  return `Oh cruel world: ${exception} at ${kivitendoDir}/SL/BackgroundJob/Test.pm line ${DIE_LINE}.\n`;
}

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
    if (perlTrue(exceptionText)) throw new JobError(testExceptionText(exceptionText ?? '', ctx.kivitendoDir));
    return 'result' in ctx.data ? resultText : 1;
  },
};
