// Invoice number allocation as kivitendo's TransNumberGenerator + PrefixedNumber do it (spec
// periodic-invoices.md §4.6): prefix + trailing digit run + 1, zero-padded to the run's length,
// skipping every number already used in ar. Holes below the stored value are never filled.

interface Parsed {
  prefix: string;
  ref: bigint;
  minPlaces: number;
}

function parse(start: string): Parsed {
  const digits = /^(.*?)(\d+)$/.exec(start);
  const nonDigitEnd = /^(.*[^\d])$/s.exec(start);
  const prefix = nonDigitEnd ? nonDigitEnd[1] : digits ? digits[1] : '';
  const refText = digits ? digits[2] : '0';
  return { prefix, ref: BigInt(refText), minPlaces: refText.length };
}

function format(p: Parsed, n: bigint): string {
  const s = n.toString();
  return p.prefix + '0'.repeat(Math.max(p.minPlaces - s.length, 0)) + s;
}

/** The next free number after `start` (defaults.invnumber; NULL counts as "0"). */
export function nextInvoiceNumber(start: string | null, inUse: ReadonlySet<string>): string {
  const p = parse(start ?? '0');
  let n = p.ref;
  let candidate: string;
  do {
    n += 1n;
    candidate = format(p, n);
  } while (inUse.has(candidate));
  return candidate;
}
