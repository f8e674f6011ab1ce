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
import type { JobPackage } from './types';

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
