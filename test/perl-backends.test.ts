// After a stopped or failed Perl run the server terminates the backends the run left behind, found by
// the job's application_name. Job ids are per client database and several clients share a cluster,
// so only the run's own client database may be searched: client B's job 7 is not client A's job 7.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jobApplicationName, perlRunApplicationName } from '../src/db/jobBackends';
import { openConnection, type Client } from '../src/db/pg';
import type { ClientRow } from '../src/db/rows';
import { terminatePerlRunBackends } from '../src/jobs/perl/child';
import { createInstallation, type Installation } from './harness/installation';

let inst: Installation;

before(async () => {
  inst = await createInstallation({ clients: [{ name: 'A' }, { name: 'B' }] });
});

after(() => inst?.remove());

function clientRow(name: string): ClientRow {
  const c = inst.clients[name];
  return {
    id: c.id, name, dbhost: inst.pg.host, dbport: inst.pg.port, dbname: c.dbname,
    dbuser: inst.pg.user, dbpasswd: inst.pg.password, is_default: false, task_server_user_id: null,
  };
}

async function jobConnection(name: string, jobId: number, perl = true): Promise<Client> {
  const db = await openConnection(
    { host: inst.pg.host, port: inst.pg.port, database: inst.clients[name].dbname, user: inst.pg.user, password: inst.pg.password },
    { applicationName: perl ? perlRunApplicationName(jobId) : jobApplicationName(jobId) },
  );
  db.on('error', () => undefined);
  return db;
}

async function alive(db: Client): Promise<boolean> {
  try {
    await db.query('SELECT 1');
    return true;
  } catch {
    return false;
  }
}

test("terminating a Perl run's backends leaves other clients' jobs with the same id alone", async () => {
  const leftOverA = await jobConnection('A', 7);
  const runningB = await jobConnection('B', 7);
  const otherJobA = await jobConnection('A', 8);
  // The native run that started the Perl step (CreatePeriodicInvoices' print/e-mail) keeps its own.
  const nativeA = await jobConnection('A', 7, false);
  try {
    assert.equal(await terminatePerlRunBackends(clientRow('A'), 7), 1);
    assert.equal(await alive(leftOverA), false, "client A's job 7 Perl backend is terminated");
    assert.equal(await alive(runningB), true, "client B's job 7 backend lives on");
    assert.equal(await alive(otherJobA), true, "client A's job 8 backend lives on");
    assert.equal(await alive(nativeA), true, "client A's job 7 own (native) connection lives on");
  } finally {
    for (const db of [leftOverA, runningB, otherJobA, nativeA]) await db.end().catch(() => undefined);
  }
});
