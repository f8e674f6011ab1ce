// Connects the scheduler's failure events to the failure notification mail (spec task-server.md §9):
// one mail per failed job run, one per client outage (the scheduler reports an outage once).
import type { Config } from '../config/config';
import type { Logger } from '../log/logger';
import { notifyFailure } from '../mail/failureNotification';
import type { FailureEvent } from './scheduler';

export function failureMailer(
  config: () => Config,
  log: Logger,
  lookupUserEmail: (login: string) => Promise<string | undefined>,
): (event: FailureEvent) => Promise<void> {
  return async (event) => {
    if (event.kind === 'client-recovered') return;
    await notifyFailure({
      config: config(),
      client: event.client,
      history: event.kind === 'job' ? event.history : undefined,
      exception: event.kind === 'client-outage' ? event.message : undefined,
      userSettings: event.kind === 'job' ? event.user.settings : undefined,
      lookupUserEmail,
      log,
    });
  };
}
