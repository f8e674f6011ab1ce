// kivitendo's ValidityTokenCleanup (spec jobs.md): drops expired validity tokens.
import { formatLocalTimestamp } from '../clock';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import type { JobPackage } from './types';
import { RELEASES_4_0_TO_4_1 } from './releases';

export const ValidityTokenCleanup: JobPackage = {
  name: 'ValidityTokenCleanup',
  verifiedReleases: RELEASES_4_0_TO_4_1,
  async run(ctx) {
    readDataOptions(ctx.data, {}, 'ValidityTokenCleanup', warnUnknownKeys(ctx));
    // "now" is the local wall clock in whole seconds, as DateTime->now_local is formatted for the query.
    await ctx.db.query('DELETE FROM validity_tokens WHERE valid_until < $1', [formatLocalTimestamp(ctx.clock.now())]);
    return 1;
  },
};
