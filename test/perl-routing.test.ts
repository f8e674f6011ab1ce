// Which way a job package runs (pure: a temporary ROOT with SL/BackgroundJob files, no database).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { buildConfig, ConfigError } from '../src/config/config';
import { routeJobPackage } from '../src/jobs/registry';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-route-'));
fs.mkdirSync(path.join(root, 'SL', 'BackgroundJob'), { recursive: true });
for (const n of ['Test', 'CsvImport', 'MyOwnJob']) fs.writeFileSync(path.join(root, 'SL', 'BackgroundJob', `${n}.pm`), '1;\n');
after(() => fs.rmSync(root, { recursive: true, force: true }));

const config = (ts: Record<string, string> = {}) => buildConfig(root, 'config/kivitendo.conf', [], { task_server: ts });
const kind = (ts: Record<string, string>, name: string | null) => {
  const r = routeJobPackage(config(ts), name);
  return r.kind === 'unavailable' ? `unavailable: ${r.reason}` : r.kind === 'perl' ? `perl${r.forced ? ' (forced)' : ''}` : 'native';
};

test('a native module wins; packages without one run through Perl when their .pm exists', () => {
  assert.equal(kind({}, 'Test'), 'native');
  assert.equal(kind({}, 'CsvImport'), 'perl');
  assert.equal(kind({}, 'MyOwnJob'), 'perl', "an admin's own package in SL/BackgroundJob runs too, as in kivitendo");
});

test('perl_packages forces Perl; perl = 0 switches the Perl path off (natives still run)', () => {
  assert.equal(kind({ perl_packages: 'Test, CleanAuthSessions' }, 'Test'), 'perl (forced)');
  assert.equal(kind({ perl_packages: 'Test, CleanAuthSessions' }, 'CleanAuthSessions'), `unavailable: job package CleanAuthSessions is to run through kivitendo's Perl code ([task_server] perl_packages), but ${path.join(root, 'SL/BackgroundJob/CleanAuthSessions.pm')} does not exist`);
  assert.equal(kind({ perl: '0', perl_packages: 'Test' }, 'Test'), 'native');
  assert.match(kind({ perl: '0' }, 'CsvImport'), /^unavailable: job package CsvImport is not supported by kivitendo-task-server \S+ natively, and running kivitendo's Perl code is switched off \(\[task_server\] perl = 0\)$/);
});

test('missing .pm and unknown names', () => {
  assert.match(kind({}, 'SyncWebDAV'), new RegExp(`^unavailable: job package SyncWebDAV is not supported by kivitendo-task-server \\S+ natively, and kivitendo's SL/BackgroundJob/SyncWebDAV.pm is not in ${root}$`));
  assert.equal(kind({}, 'NoSuchJob'), "unavailable: unknown job package 'NoSuchJob'");
  assert.equal(kind({}, '../../etc/passwd'), "unavailable: unknown job package '../../etc/passwd'");
  assert.equal(kind({}, null), "unavailable: unknown job package 'null'");
});

test('config: perl binary and package list', () => {
  assert.equal(config().taskServer.perl, 'perl');
  assert.equal(config({ perl: '/opt/perl/bin/perl' }).taskServer.perl, '/opt/perl/bin/perl');
  assert.equal(config({ perl: '0' }).taskServer.perl, null);
  assert.deepEqual(config({ perl_packages: 'CsvImport,Test  SetClosedTo' }).taskServer.perlPackages, ['CsvImport', 'Test', 'SetClosedTo']);
  assert.throws(() => config({ perl_packages: 'Csv-Import' }), (e: Error) => e instanceof ConfigError && e.message === "Invalid package name 'Csv-Import' in [task_server] perl_packages: expected names like CsvImport, separated by commas");
});
