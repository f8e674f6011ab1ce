import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createInstallation } from './harness/installation';

test('the harness builds an installation with a kivitendo auth DB and client DB', async () => {
  const inst = await createInstallation({ clients: [{ name: 'A' }, { name: 'Off', taskServerLogin: null }] });
  const db = await inst.clientDb('A');
  const jobs = await db.query('SELECT package_name FROM background_jobs ORDER BY id');
  assert.ok(jobs.rows.length >= 8);
  await db.end();
  const auth = await inst.authConnection();
  const c = await auth.query('SELECT name, task_server_user_id FROM auth.clients ORDER BY id');
  assert.deepEqual(c.rows.map((r) => [r.name, r.task_server_user_id !== null]), [['A', true], ['Off', false]]);
  await auth.end();
  inst.remove();
});
