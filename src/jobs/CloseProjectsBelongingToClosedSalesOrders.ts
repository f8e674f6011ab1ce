// kivitendo's CloseProjectsBelongingToClosedSalesOrders (spec jobs.md): gives the projects of closed
// sales orders a final status (and deactivates them). One set-based UPDATE, as kivitendo's update_all.
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import { JobError, type JobPackage } from './types';
import { RELEASES_4_1 } from './releases';

const NAME = 'CloseProjectsBelongingToClosedSalesOrders';

export const CloseProjectsBelongingToClosedSalesOrders: JobPackage = {
  name: NAME,
  verifiedReleases: RELEASES_4_1,
  async run(ctx) {
    const opts = readDataOptions(ctx.data, { new_status: 'string', set_inactive: 'bool' }, NAME, warnUnknownKeys(ctx));
    const newStatus = (opts.new_status as string | undefined) || 'done';
    // An absent key means "deactivate"; a key given without a value (Perl undef) means "don't".
    const setInactive = 'set_inactive' in ctx.data ? !!opts.set_inactive : true;

    const status = await ctx.db.query<{ id: number }>('SELECT id FROM project_statuses WHERE name = $1 LIMIT 1', [newStatus]);
    if (status.rows.length === 0) throw new JobError(`No project status named '${newStatus}' found!`);

    await ctx.db.query(
      `UPDATE project SET project_status_id = $1${setInactive ? ', active = false' : ''}
        WHERE project_status_id <> $1
          AND id IN (SELECT oe.globalproject_id FROM oe
                      WHERE oe.globalproject_id IS NOT NULL
                        AND oe.record_type = 'sales_order'
                        AND COALESCE(oe.closed, false))`,
      [status.rows[0].id],
    );
    return 1;
  },
};
