// Perl value semantics as Template Toolkit applies them: kivitendo's templates were written against
// Perl's truthiness, stringification and numeric conversion, so a JS default would change output
// (e.g. an empty list is true in TT, `0.1 + 0.2` prints `0.3`, `==` compares strings).

/** Perl truth: undef, '' and '0' (and the number 0) are false; every reference is true. */
export function truthy(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return v !== '' && v !== '0';
  return true;
}

/** Perl's "%.15g" rendering of a number (integers print in full). */
export function perlNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Inf';
  if (n === -Infinity) return '-Inf';
  if (Number.isSafeInteger(n)) return String(n);
  if (n === 0) return '0';
  const [mantissa, expPart] = n.toExponential(14).split('e');
  const exp = Number(expPart);
  if (exp < -4 || exp >= 15) {
    const m = mantissa.replace(/\.?0+$/, '');
    return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return n.toFixed(14 - exp).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

/** How TT prints a value: undef as '', numbers like Perl, objects via their own toString if any. */
export function str(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return perlNumber(v);
  // DBD::Pg hands booleans to templates as 1 / 0.
  if (typeof v === 'boolean') return v ? '1' : '0';
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return 'ARRAY(0x0)';
  if (typeof v === 'function') return 'CODE(0x0)';
  if (typeof v === 'object') {
    const own = (v as { toString?: unknown }).toString;
    if (typeof own === 'function' && own !== Object.prototype.toString) return String(own.call(v));
    return 'HASH(0x0)';
  }
  return String(v);
}

/** Perl's numeric conversion: the leading number of the string, else 0. */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v === undefined || v === null) return 0;
  const m = /^\s*([+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))/i.exec(str(v));
  if (!m) return 0;
  const t = m[1].toLowerCase().replace(/^\+/, '');
  if (/^-?inf/.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  if (/nan$/.test(t)) return NaN;
  return Number(t);
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Perl `cmp` on strings: code point order. */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
