// The few kivitendo strings the tier B jobs return or mail, with the German texts of kivitendo's
// locale/de/all (jobs run in the task server user's `countrycode`, spec jobs.md §0).
import type { JobContext } from '../types';

const DE: Record<string, string> = {
  'Request quotations closed: #1 Sales quotations closed: #2': 'Preisanfragen geschlossen: #1 Angebote geschlossen: #2',
  'Request quotations not yet closed: #1 Sales quotations not yet closed: #2':
    'Preisanfragen noch nicht geschlossen: #1 Angebote noch nicht geschlossen: #2',
  'Inventory: #1 transactions executed to clear all inventory slots. Parts: #2':
    'Lager: #1 Buchungen ausgeführt, um alle Lagerplätze zu leeren. Artikel: #2',
  'Inventory: #1 transactions not yet executed to clear all inventory slots. Parts: #2':
    'Lager: #1 Buchungen noch nicht ausgeführt, um alle Lagerplätze zu leeren. Artikel: #2',
  'Mailer error #1': 'Emailfehler: #1',
  Partnumber: 'Artikelnummer',
  ROP: 'Mindestlagerbestand',
  Onhand: 'Auf Lager',
  'Follow ups reminder sent.': 'Erinnerung an Wiedervorlagen versendet.',
  'The following errors occurred:': 'Folgende Fehler sind aufgetreten:',
  'Cannot convert date.': 'Kann das Datum nicht verarbeiten',
  'Input from string: #1': 'Eingabe Von-Zeichenkette: #1',
  'Input to string: #1': 'Eingabe Bis-Zeichenkette: #1',
  'Details: #1': 'Details: #1',
  'No email sender address given.': 'Es ist keine E-Mail-Absender-Adresse angegeben.',
  'Unfinished follow-ups': 'Nicht erledigte Wiedervorlagen',
  'Follow-Up Date': 'Wiedervorlagedatum',
  Subject: 'Betreff',
  'Created by': 'Erstellt von',
  by: 'von',
  'backend "#1" not enabled': 'Dateimanagement-Subsystem "#1" nicht aktiviert',
  'backend "#1" not found': 'Dateimanagement-Subsystem "#1" unbekannt',
  'no backend enabled': 'Kein Dateimanagement-Subsystem aktiviert',
};

/** Form::format_string: `#1`, `#{1}` → arguments (not after another `#`), then `##` → `#`. */
export function formatString(text: string, args: unknown[]): string {
  const arg = (n: string) => {
    const v = args[Number(n) - 1];
    return v === undefined || v === null ? '' : String(v);
  };
  return text
    .replace(/(^|[^#])#(\d+)/g, (_m, pre: string, n: string) => pre + arg(n))
    .replace(/(^|[^#])#\{(\d+)\}/g, (_m, pre: string, n: string) => pre + arg(n))
    .replace(/##/g, '#');
}

export type Translator = (text: string, ...args: unknown[]) => string;

export function translatorFor(countrycode: string | undefined): Translator {
  const table = countrycode === 'de' ? DE : {};
  return (text, ...args) => {
    const t = table[text] || text;
    return args.length ? formatString(t, args) : t;
  };
}

export function t8For(ctx: Pick<JobContext, 'user'>): Translator {
  return translatorFor(ctx.user.settings.countrycode);
}
