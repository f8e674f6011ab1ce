// Which kivitendo a client runs on and what that means for each package's route (pure: a temporary
// ROOT with VERSION, sql/Pg-upgrade2 control headers and SL/BackgroundJob files, no database).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { buildConfig } from '../src/config/config';
import { readInstallationRelease } from '../src/db/schemaInfo';
import { describeRoute } from '../src/jobs/clientRouting';
import { routeJobPackage } from '../src/jobs/registry';
import { clientKivitendo, describeClientDatabase, nativeVerdict, releaseOf, type ClientKivitendo } from '../src/jobs/releases';
import { CreatePeriodicInvoices } from '../src/jobs/CreatePeriodicInvoices';
import { Test } from '../src/jobs/Test';
import { isSchemaMismatch, schemaMismatchText, sqlStateOf } from '../src/jobs/schemaErrors';
import { DbObjectError } from '../src/jobs/periodic-invoices/errors';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-releases-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function installation(version: string | null, tags: string[], ignored: string[] = []) {
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(path.join(root, 'sql', 'Pg-upgrade2'), { recursive: true });
  fs.mkdirSync(path.join(root, 'SL', 'BackgroundJob'), { recursive: true });
  for (const n of ['Test', 'CreatePeriodicInvoices']) fs.writeFileSync(path.join(root, 'SL', 'BackgroundJob', `${n}.pm`), '1;\n');
  if (version !== null) fs.writeFileSync(path.join(root, 'VERSION'), `${version}\n`);
  for (const t of tags) fs.writeFileSync(path.join(root, 'sql', 'Pg-upgrade2', `${t}.sql`), `-- @tag: ${t}\n-- @description: ${t}\n`);
  for (const t of ignored) fs.writeFileSync(path.join(root, 'sql', 'Pg-upgrade2', `${t}.pl`), `# @tag: ${t}\n# @description: ${t}\n# @ignore: 1\n`);
  return readInstallationRelease(root);
}

const config = (ts: Record<string, string> = {}) => buildConfig(root, 'config/kivitendo.conf', [], { task_server: ts });

test('the release number of VERSION; development heads count as their release', () => {
  assert.equal(releaseOf('4.0.0'), '4.0.0');
  assert.equal(releaseOf('4.1.1-unstable'), '4.1.1');
  assert.equal(releaseOf('3.9.2'), '3.9.2');
  assert.equal(releaseOf('4.1'), null);
  assert.equal(releaseOf('4.1.0.1'), null);
  assert.equal(releaseOf(null), null);
});

test('a client database against its installation: matches, lags behind (pending upgrades), or has upgrades the installation does not know', () => {
  const inst = installation('4.1.1-unstable', ['a', 'b', 'c'], ['old']);
  assert.equal(describeClientDatabase(clientKivitendo(inst, new Set(['a', 'b', 'c']))), 'database matches kivitendo 4.1.1-unstable');
  assert.equal(describeClientDatabase(clientKivitendo(inst, new Set(['a', 'b', 'c', 'old']))), 'database matches kivitendo 4.1.1-unstable', 'an @ignore script is known, not pending');
  assert.equal(
    describeClientDatabase(clientKivitendo(inst, new Set(['a']))),
    'database does not match kivitendo 4.1.1-unstable: 2 database upgrades of kivitendo 4.1.1-unstable pending (kivitendo applies them at the next login to this client)',
  );
  assert.equal(
    describeClientDatabase(clientKivitendo(inst, new Set(['a', 'b', 'c', 'future_1']))),
    "database does not match kivitendo 4.1.1-unstable: 1 upgrade applied that kivitendo 4.1.1-unstable does not know (a newer kivitendo's?): future_1",
  );
});

test('the installation is read again after an upgrade replaced VERSION and the upgrade folder', () => {
  assert.equal(installation('4.0.0', ['a']).version, '4.0.0');
  const later = installation('4.1.0', ['a', 'b']);
  assert.equal(later.version, '4.1.0');
  assert.deepEqual([...later.tags].sort(), ['a', 'b']);
  const none = installation(null, ['a']);
  assert.match(none.problem ?? '', /VERSION cannot be read \(ENOENT\)/);
});

const kivi = (over: Partial<ClientKivitendo>): ClientKivitendo => ({ version: '4.1.1-unstable', release: '4.1.1', pending: [], unknown: [], ...over });

test('native only where proven: the release must be one the module was verified for and the database must match it', () => {
  assert.deepEqual(nativeVerdict(CreatePeriodicInvoices, kivi({})), { proven: true, why: 'verified for kivitendo 4.1.0 and 4.1.1' });
  assert.deepEqual(nativeVerdict(CreatePeriodicInvoices, kivi({ version: '4.0.0', release: '4.0.0' })), {
    proven: false, why: 'native module verified for kivitendo 4.1.0 and 4.1.1, this installation is kivitendo 4.0.0',
  });
  assert.equal(nativeVerdict(Test, kivi({ version: '4.0.0', release: '4.0.0' })).proven, true, 'Test is verified for 4.0.0 too');
  assert.equal(nativeVerdict(Test, kivi({ version: '3.9.2', release: '3.9.2' })).proven, false);
  assert.equal(nativeVerdict(Test, kivi({ version: '4.2.0', release: '4.2.0' })).proven, false, 'a newer release is not proven');
  assert.deepEqual(nativeVerdict(Test, kivi({ pending: ['x', 'y'] })), {
    proven: false, why: "native module verified for kivitendo 4.0.0, 4.1.0 and 4.1.1, this client's database lags behind kivitendo 4.1.1-unstable (2 upgrades pending)",
  });
  assert.deepEqual(nativeVerdict(Test, kivi({ unknown: ['future_1'] })), {
    proven: false, why: "native module verified for kivitendo 4.0.0, 4.1.0 and 4.1.1, this client's database has 1 upgrade kivitendo 4.1.1-unstable does not know (future_1)",
  });
  assert.equal(nativeVerdict(Test, kivi({ version: null, release: null, problem: 'VERSION cannot be read' })).proven, false);
});

test("routes: unproven native modules give way to kivitendo's Perl; force_native_packages; perl = 0", () => {
  installation('4.0.0', ['a']);
  const on400 = kivi({ version: '4.0.0', release: '4.0.0' });
  const cpi = routeJobPackage(config(), 'CreatePeriodicInvoices', on400);
  assert.equal(
    describeRoute(cpi, root),
    "kivitendo's Perl code (SL/BackgroundJob/CreatePeriodicInvoices.pm): native module verified for kivitendo 4.1.0 and 4.1.1, this installation is kivitendo 4.0.0",
  );
  assert.equal(describeRoute(routeJobPackage(config(), 'Test', on400), root), 'native (verified for kivitendo 4.0.0, 4.1.0 and 4.1.1)');
  const forced = routeJobPackage(config({ force_native_packages: 'CreatePeriodicInvoices' }), 'CreatePeriodicInvoices', on400);
  assert.equal(forced.kind, 'native');
  assert.match(describeRoute(forced, root), /forced by \[task_server\] force_native_packages at the admin's risk\)$/);
  const perlWins = routeJobPackage(config({ force_native_packages: 'Test', perl_packages: 'Test' }), 'Test', on400);
  assert.equal(perlWins.kind, 'perl', 'perl_packages still forces Perl');
  const off = routeJobPackage(config({ perl: '0' }), 'CreatePeriodicInvoices', on400);
  assert.deepEqual(off, {
    kind: 'unavailable',
    reason: "job package CreatePeriodicInvoices: native module verified for kivitendo 4.1.0 and 4.1.1, this installation is kivitendo 4.0.0, and running kivitendo's Perl code is switched off ([task_server] perl = 0)",
  });
  fs.rmSync(path.join(root, 'SL', 'BackgroundJob', 'CreatePeriodicInvoices.pm'));
  assert.match((routeJobPackage(config(), 'CreatePeriodicInvoices', on400) as { reason: string }).reason, /this installation is kivitendo 4\.0\.0, and .*CreatePeriodicInvoices\.pm does not exist$/);
});

test('SQLSTATE class 42 is told apart, also as the cause of an object-save error', () => {
  const undefinedColumn = Object.assign(new Error('column "tax_point_start" of relation "ar" does not exist'), { code: '42703' });
  const unique = Object.assign(new Error('duplicate key value violates unique constraint "ar_invnumber_key"'), { code: '23505' });
  assert.equal(sqlStateOf(new DbObjectError('Invoice', undefinedColumn)), '42703');
  assert.equal(isSchemaMismatch(new DbObjectError('Invoice', undefinedColumn)), true);
  assert.equal(isSchemaMismatch(new DbObjectError('Invoice', unique)), false, 'a data error stays kivitendo\'s "success with an empty result"');
  assert.equal(isSchemaMismatch(Object.assign(new Error('relation "countries" does not exist'), { code: '42P01' })), true);
  assert.equal(isSchemaMismatch(new Error('plain')), false);
  assert.match(
    schemaMismatchText('CreatePeriodicInvoices', new DbObjectError('Invoice', undefinedColumn), 'kivitendo 4.0.0, database matches kivitendo 4.0.0'),
    /^job package CreatePeriodicInvoices: the SQL of kivitendo-task-server \S+ does not fit this client's database \(kivitendo 4\.0\.0, database matches kivitendo 4\.0\.0\): column "tax_point_start" of relation "ar" does not exist \(SQLSTATE 42703\)\. This is a bug of the task server, not of the data; .* perl_packages = CreatePeriodicInvoices$/,
  );
});
