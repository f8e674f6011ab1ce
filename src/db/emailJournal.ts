// The client's e-mail journal (spec task-server.md §9.3): what SL::Mailer stores after each send
// attempt when defaults.email_journal > 0. Level 1 records the mail and its attachments' names and
// types with a single blank as content; level 2 and above also stores the attachment contents.
// The sender is "the current employee": the employee row whose login is the task server user's.
import { formatLocalTimestamp } from '../clock';
import type { DbParams } from '../config/config';
import type { JournalEntry } from '../mail/mailer';
import { openConnection, type Client } from './pg';

export type JournalHook = (entry: JournalEntry) => Promise<number>;

/** defaults.email_journal; NULL counts as 0, as Perl's numeric compare does. */
export async function journalLevel(db: Client): Promise<number> {
  const r = await db.query<{ email_journal: number | null }>('SELECT email_journal FROM defaults LIMIT 1');
  return Number(r.rows[0]?.email_journal ?? 0) || 0;
}

/** Inserts one journal row with its attachments; returns the email_journal id. */
export async function insertJournalEntry(db: Client, level: number, employeeLogin: string, sentOn: Date, e: JournalEntry): Promise<number> {
  const row = await db.query<{ id: number }>(
    `INSERT INTO email_journal (sender_id, "from", recipients, sent_on, subject, body, headers, status, extended_status)
     VALUES ((SELECT id FROM employee WHERE login = $1 ORDER BY id LIMIT 1), $2, $3, $4, $5, $6, $7, $8, $9)
     RETURNING id`,
    [employeeLogin, e.from, e.recipients, formatLocalTimestamp(sentOn), e.subject, e.body, e.headers, e.status, e.extendedStatus],
  );
  const id = row.rows[0].id;
  let position = 0;
  for (const a of e.attachments) {
    position += 1;
    await db.query(
      `INSERT INTO email_journal_attachments (position, email_journal_id, name, mime_type, content, file_id)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [position, id, a.name, a.mimeType, level > 1 ? a.content : Buffer.from(' '), a.fileId],
    );
  }
  return id;
}

/**
 * The journal hook for mails sent over `db`, or undefined when the client keeps no journal.
 * The rows go through `db` itself, so they belong to whatever transaction is open on it.
 */
export async function journalWriter(db: Client, employeeLogin: string, now: () => Date = () => new Date()): Promise<JournalHook | undefined> {
  const level = await journalLevel(db);
  if (level <= 0) return undefined;
  return (entry) => insertJournalEntry(db, level, employeeLogin, now(), entry);
}

/**
 * journalWriter that looks at defaults.email_journal only when the first mail is sent, so a job
 * that sends nothing costs no query. The level is then kept for the rest of the run, as kivitendo
 * reads its instance configuration once per job run.
 */
export function lazyJournal(db: Client, employeeLogin: string, now: () => Date = () => new Date()): (entry: JournalEntry) => Promise<number | undefined> {
  let writer: Promise<JournalHook | undefined> | undefined;
  return async (entry) => {
    writer ??= journalWriter(db, employeeLogin, now);
    const w = await writer;
    return w ? await w(entry) : undefined;
  };
}

/**
 * For mails sent outside a job (the failure notification): a short-lived connection to the
 * client DB per mail, in autocommit.
 */
export function clientJournal(params: DbParams, employeeLogin: string, now: () => Date = () => new Date()): (entry: JournalEntry) => Promise<number | undefined> {
  return async (entry) => {
    const db = await openConnection(params, { applicationName: 'kivitendo-task-server e-mail journal' });
    try {
      const w = await journalWriter(db, employeeLogin, now);
      return w ? await w(entry) : undefined;
    } finally {
      await db.end().catch(() => undefined);
    }
  };
}
