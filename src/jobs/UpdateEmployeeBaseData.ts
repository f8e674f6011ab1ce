// kivitendo's UpdateEmployeeBaseData (spec jobs.md; Employee manager's
// update_entries_for_authorized_users): every auth user assigned to this client gets an employee row
// with the user's name and deleted = false. Each save is its own statement, as in kivitendo.
// kivitendo updates the one row its login → employee map holds; employee.login has a unique index
// (employee_login_key) in kivitendo's schema, so `WHERE login = $1` is that row and no other.
import { readDataOptions, warnUnknownKeys } from './dataOptions';
import type { JobPackage } from './types';
import { RELEASES_4_0_TO_4_1 } from './releases';

export const UpdateEmployeeBaseData: JobPackage = {
  name: 'UpdateEmployeeBaseData',
  verifiedReleases: RELEASES_4_0_TO_4_1,
  async run(ctx) {
    readDataOptions(ctx.data, {}, 'UpdateEmployeeBaseData', warnUnknownKeys(ctx));
    const auth = await ctx.authDb();
    const users = await auth.query<{ login: string; name: string | null }>(
      `SELECT u.login,
              (SELECT cfg_value FROM auth.user_config c WHERE c.user_id = u.id AND c.cfg_key = 'name' LIMIT 1) AS name
         FROM auth.clients_users cu
         JOIN auth."user" u ON u.id = cu.user_id
        WHERE cu.client_id = $1
        ORDER BY u.id`,
      [ctx.client.id],
    );
    for (const user of users.rows) {
      const updated = await ctx.db.query('UPDATE employee SET name = $2, deleted = false WHERE login = $1', [user.login, user.name]);
      if (updated.rowCount === 0) {
        await ctx.db.query('INSERT INTO employee (login, name, deleted) VALUES ($1, $2, false)', [user.login, user.name]);
      }
    }
    return 1;
  },
};
