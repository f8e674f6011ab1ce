// Job packages by kivitendo package name. A fixed table: the name in background_jobs is looked up,
// never evaluated (task_server.pl string-evals it; spec task-server.md §14.21).
import { BackgroundJobCleanup } from './BackgroundJobCleanup';
import { CleanAuthSessions } from './CleanAuthSessions';
import { CleanBackgroundJobHistory } from './CleanBackgroundJobHistory';
import { CreateOrUpdateFileFullTexts } from './CreateOrUpdateFileFullTexts';
import { CreatePeriodicInvoices } from './CreatePeriodicInvoices';
import { SelfTest } from './SelfTest';
import { UpdateEmployeeBaseData } from './UpdateEmployeeBaseData';
import { ValidityTokenCleanup } from './ValidityTokenCleanup';
import { Test } from './Test';
import { SetClosedTo } from './SetClosedTo';
import { SetNumberRange } from './SetNumberRange';
import { CloseQuotations } from './CloseQuotations';
import { CloseProjectsBelongingToClosedSalesOrders } from './CloseProjectsBelongingToClosedSalesOrders';
import { SetBankAccountsMasterData } from './SetBankAccountsMasterData';
import { InventoryClearAll } from './InventoryClearAll';
import { RemoveInvalidFileEntries } from './RemoveInvalidFileEntries';
import { FailedBackgroundJobsReport } from './FailedBackgroundJobsReport';
import { CheckBelowMinimumStock } from './CheckBelowMinimumStock';
import { SendFollowUpReminder } from './SendFollowUpReminder';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config';
import { VERSION } from '../version';
import type { JobPackage } from './types';
import { nativeVerdict, type ClientKivitendo } from './releases';

const IMPLEMENTED: JobPackage[] = [
  BackgroundJobCleanup,
  CleanAuthSessions,
  CleanBackgroundJobHistory,
  CreateOrUpdateFileFullTexts,
  CreatePeriodicInvoices,
  SelfTest,
  UpdateEmployeeBaseData,
  ValidityTokenCleanup,
  Test,
  SetClosedTo,
  SetNumberRange,
  CloseQuotations,
  CloseProjectsBelongingToClosedSalesOrders,
  SetBankAccountsMasterData,
  InventoryClearAll,
  RemoveInvalidFileEntries,
  FailedBackgroundJobsReport,
  CheckBelowMinimumStock,
  SendFollowUpReminder,
];

/** Every top-level package of kivitendo's SL/BackgroundJob/ (for the "not supported" message). */
export const KIVITENDO_PACKAGES = [
  'BackgroundJobCleanup', 'CheckBelowMinimumStock', 'CleanAuthSessions', 'CleanBackgroundJobHistory',
  'CleanUpEmailSubfolders', 'CloseProjectsBelongingToClosedSalesOrders', 'CloseQuotations', 'ConvertTimeRecordings',
  'CreateOrUpdateFileFullTexts', 'CreatePeriodicInvoices', 'CsvImport', 'FailedBackgroundJobsReport',
  'ImportRecordEmails', 'InventoryClearAll', 'MassDeliveryOrderPrinting', 'MassRecordCreationAndPrinting',
  'RemoveInvalidFileEntries', 'SelfTest', 'SendFollowUpReminder', 'SetBankAccountsMasterData', 'SetClosedTo',
  'SetNumberRange', 'ShopOrderMassTransfer', 'ShopPartMassCreate', 'ShopPartMassUpload', 'ShopwareSetPaid',
  'SyncEmailFolder', 'SyncWebDAV', 'Test', 'UpdateEmployeeBaseData', 'UpdateExchangerates', 'ValidityTokenCleanup',
];

const byName = new Map(IMPLEMENTED.map((p) => [p.name, p]));

export function findJobPackage(name: string | null): JobPackage | undefined {
  return name ? byName.get(name) : undefined;
}

export function registeredPackageNames(): string[] {
  return [...byName.keys()].sort();
}

/**
 * How a job package runs here: a native module, kivitendo's own Perl code, or not at all (why).
 * `why` says, when the client's kivitendo decided it, what was proven for which release.
 */
export type JobRoute =
  | { kind: 'native'; pkg: JobPackage; why?: string }
  | { kind: 'perl'; file: string; forced: boolean; why?: string }
  | { kind: 'unavailable'; reason: string };

/** kivitendo's own module of a package in the installation (valid package names only). */
export function kivitendoPackageFile(kivitendoDir: string, name: string): string | undefined {
  if (!/^[A-Z][A-Za-z0-9]+$/.test(name)) return undefined;
  return path.join(kivitendoDir, 'SL', 'BackgroundJob', `${name}.pm`);
}

/**
 * A native module wins where it is proven for the client's kivitendo (`kivi`; see releases.ts), unless
 * [task_server] perl_packages names the package; everything else runs through kivitendo's Perl code
 * when the installation has SL/BackgroundJob/<Name>.pm and the Perl path is not switched off
 * ([task_server] perl = 0). [task_server] force_native_packages runs a native module where it is not
 * proven, at the admin's risk. Without `kivi` (tests of the plain rules) every native module counts
 * as proven.
 */
export function routeJobPackage(config: Config, name: string | null, kivi?: ClientKivitendo): JobRoute {
  const native = findJobPackage(name);
  const file = name ? kivitendoPackageFile(config.kivitendoDir, name) : undefined;
  const hasFile = !!file && fs.existsSync(file);
  const forced = !!name && config.taskServer.perlPackages.includes(name);
  const verdict = native && kivi ? nativeVerdict(native, kivi) : undefined;
  if (native && (!forced || !config.taskServer.perl)) {
    if (!verdict || verdict.proven) return { kind: 'native', pkg: native, why: verdict?.why };
    if (config.taskServer.forceNativePackages.includes(native.name)) {
      return { kind: 'native', pkg: native, why: `${verdict.why}; forced by [task_server] force_native_packages at the admin's risk` };
    }
    if (hasFile && config.taskServer.perl) return { kind: 'perl', file: file!, forced: false, why: verdict.why };
    const perlOff = config.taskServer.perl ? `${file} does not exist` : "running kivitendo's Perl code is switched off ([task_server] perl = 0)";
    return { kind: 'unavailable', reason: `job package ${native.name}: ${verdict.why}, and ${perlOff}` };
  }
  if (hasFile && config.taskServer.perl) return { kind: 'perl', file: file!, forced };
  const known = KIVITENDO_PACKAGES.includes(name ?? '');
  if (forced) {
    return { kind: 'unavailable', reason: `job package ${name} is to run through kivitendo's Perl code ([task_server] perl_packages), but ${file ?? `SL/BackgroundJob/${name}.pm`} does not exist` };
  }
  if (!known && !hasFile) return { kind: 'unavailable', reason: `unknown job package '${name}'` };
  const notNative = `job package ${name} is not supported by kivitendo-task-server ${VERSION} natively`;
  if (!config.taskServer.perl) return { kind: 'unavailable', reason: `${notNative}, and running kivitendo's Perl code is switched off ([task_server] perl = 0)` };
  return { kind: 'unavailable', reason: `${notNative}, and kivitendo's ${path.join('SL', 'BackgroundJob', `${name}.pm`)} is not in ${config.kivitendoDir}` };
}
