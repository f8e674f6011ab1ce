// Mail transport from kivitendo's [mail_delivery] (spec task-server.md §9.3). PLACEHOLDER: the mail
// helper replaces this file; the interface below is the contract jobs and the scheduler use.
import type { Config } from '../config/config';

export interface MailMessage {
  from: string;
  to: string;
  cc?: string;
  bcc?: string;
  subject: string;
  text?: string;
  html?: string;
  attachments?: { filename: string; content: Buffer | string; contentType?: string }[];
}

export class MailError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MailError';
  }
}

export interface Mailer {
  /** Sends one message; throws MailError with a one-line reason. */
  send(msg: MailMessage): Promise<void>;
}

/** The transport for a sender whose kivitendo user e-mail is `userEmail` (per-sender sections). */
export function createMailer(config: Config, userEmail?: string): Mailer {
  void config;
  void userEmail;
  return {
    async send() {
      throw new MailError('mail delivery is not implemented yet');
    },
  };
}
