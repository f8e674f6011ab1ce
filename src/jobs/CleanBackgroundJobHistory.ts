// kivitendo's CleanBackgroundJobHistory (spec jobs.md): deletes old success/failure history rows.
// Set-based DELETEs; each is its own statement (autocommit), as in kivitendo.
import { formatLocalTimestamp } from '../clock';
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import type { JobPackage } from './types';
import { RELEASES_4_0_TO_4_1 } from './releases';

const DEFAULT_RETENTION = { success: 14, failure: 90 } as const;

export const CleanBackgroundJobHistory: JobPackage = {
  name: 'CleanBackgroundJobHistory',
  verifiedReleases: RELEASES_4_0_TO_4_1,
  async run(ctx) {
    const opts = readDataOptions(ctx.data, { retention_success: 'int', retention_failure: 'int' }, 'CleanBackgroundJobHistory', warnUnknownKeys(ctx));
    const now = ctx.clock.now();
    for (const status of ['success', 'failure'] as const) {
      // 0 counts as "not given" (Perl's ||=).
      const days = (opts[`retention_${status}`] as number | undefined) || DEFAULT_RETENTION[status];
      const cutoff = new Date(now.getFullYear(), now.getMonth(), now.getDate() - days);
      await ctx.db.query('DELETE FROM background_job_histories WHERE status = $1 AND run_at < $2', [status, formatLocalTimestamp(cutoff)]);
    }
    return 1;
  },
};
