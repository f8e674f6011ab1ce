// kivitendo's BackgroundJobCleanup (spec jobs.md): removes `once` jobs that ran more than a day ago.
// One set-based DELETE, so a table with many once rows is never loaded into memory.
import { formatLocalTimestamp } from '../clock';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import type { JobPackage } from './types';
import { RELEASES_4_0_TO_4_1 } from './releases';

export const BackgroundJobCleanup: JobPackage = {
  name: 'BackgroundJobCleanup',
  verifiedReleases: RELEASES_4_0_TO_4_1,
  async run(ctx) {
    readDataOptions(ctx.data, {}, 'BackgroundJobCleanup', warnUnknownKeys(ctx));
    const now = ctx.clock.now();
    // DateTime's subtract(days => 1) keeps the wall-clock time across a DST change.
    const dayAgo = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1, now.getHours(), now.getMinutes(), now.getSeconds());
    // Rows never run (last_run_at NULL) are kept: NULL < x is not true.
    await ctx.db.query(`DELETE FROM background_jobs WHERE type = 'once' AND last_run_at < $1`, [formatLocalTimestamp(dayAgo)]);
    return 1;
  },
};
