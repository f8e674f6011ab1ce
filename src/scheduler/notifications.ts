// Connects the scheduler's failure events to the failure notification mail (spec task-server.md §9):
// one mail per failed job run, one per client outage (the scheduler reports an outage once).
import type { Config } from '../config/config';
import type { Logger } from '../log/logger';
import { clientJournal } from '../db/emailJournal';
import { notifyFailure } from '../mail/failureNotification';
import { createMailer } from '../mail/mailer';
import { clientDbParams } from '../db/pg';
import type { FailureEvent } from './scheduler';

export function failureMailer(
  config: () => Config,
  log: Logger,
  lookupUserEmail: (login: string) => Promise<string | undefined>,
): (event: FailureEvent) => Promise<void> {
  return async (event) => {
    if (event.kind === 'client-recovered') return;
    const cfg = config();
    // A job's failure mail goes into the client's e-mail journal like kivitendo's; during an outage
    // the client database is usually unreachable, so that mail is not journaled.
    const mailer =
      event.kind === 'job'
        ? createMailer(cfg, event.user.settings.email, {
            journal: clientJournal(clientDbParams(event.client), event.user.login),
            warn: (m) => log.warn(m),
          })
        : undefined;
    await notifyFailure({
      config: cfg,
      mailer,
      client: event.client,
      history: event.kind === 'job' ? event.history : undefined,
      exception: event.kind === 'client-outage' ? event.message : undefined,
      userSettings: event.kind === 'job' ? event.user.settings : undefined,
      lookupUserEmail,
      log,
    });
  };
}
