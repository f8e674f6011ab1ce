// kivitendo's money arithmetic (spec periodic-invoices.md §4.1, §4.2). kivitendo computes with
// IEEE doubles and rounds with a string-based routine; reproducing its rows needs the same doubles,
// the same rounding and the same number-to-text step, so nothing here uses a decimal library.

/**
 * Fixed-notation text of a non-negative double with `decimals` decimals, correctly rounded from the
 * exact binary value with ties to even, as C's printf("%.*f") does. Number#toFixed is exact too but
 * breaks ties upwards; a tie is only possible when the exact expansion has exactly decimals+1 digits.
 */
export function toFixedExact(a: number, decimals: number): string {
  const s = a.toFixed(decimals);
  if (!Number.isFinite(a) || a === 0 || a >= 1e21) return s;
  if (decimalDigitsOfExact(a) !== decimals + 1) return s;
  // Exact expansion = m / 2^k = m·5^k / 10^k with k = decimals + 1; the last digit is 5 (a tie).
  const { mantissa, k } = splitDouble(a);
  const scaled = mantissa * 5n ** BigInt(k); // value · 10^k
  let q = scaled / 10n; // value · 10^decimals, truncated
  const last = scaled % 10n;
  if (last > 5n || (last === 5n && q % 2n === 1n)) q += 1n;
  const digits = q.toString().padStart(decimals + 1, '0');
  return decimals === 0 ? digits : `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);

/** a = mantissa / 2^k with an odd mantissa (k may be ≤ 0 for integers). */
function splitDouble(a: number): { mantissa: bigint; k: number } {
  f64[0] = a;
  const bits = u64[0];
  const exp = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & 0xfffffffffffffn;
  let e: number;
  if (exp === 0) {
    e = -1074;
  } else {
    mantissa |= 1n << 52n;
    e = exp - 1075;
  }
  while (mantissa !== 0n && (mantissa & 1n) === 0n) {
    mantissa >>= 1n;
    e += 1;
  }
  return { mantissa, k: -e };
}

/** Number of decimals of the exact decimal expansion of a double (0 for integers). */
function decimalDigitsOfExact(a: number): number {
  const { k } = splitDouble(a);
  return k > 0 ? k : 0;
}

/**
 * kivitendo's round_amount(x, places): snaps to about 15 significant digits, then rounds half away
 * from zero on the decimal text. Never Math.round(x*100)/100 (1.005 → 1.00 there, 1.01 here).
 */
export function roundAmount(x: number | null | undefined, places = 0): number {
  if (x === null || x === undefined) return 0;
  if (Number.isNaN(x)) return x;
  const a = Math.abs(x);
  const intLen = String(Math.trunc(a)).length;
  const extra = Math.max(Math.min(10, 15 - intLen - places), places);
  const text = toFixedExact(a, places + extra);
  const m = /^(\d+)\.(\d+)$/.exec(text);
  if (!m) return x;
  let pre = BigInt(m[1]);
  const post = m[2];
  let decimals = BigInt('1' + post.slice(0, places));
  if (Number(post.charAt(places)) >= 5) decimals += 1n;
  const decText = decimals.toString();
  if (decText.charAt(0) === '2') pre += 1n;
  const result = Number(`${pre}.${decText.slice(1)}`);
  return x < 0 ? -result : x > 0 ? result : 0 * Math.sign(x);
}

/** round_amount(x, 2) — "round2" in the spec. */
export function round2(x: number | null | undefined): number {
  return roundAmount(x, 2);
}

/** Cash rounding to defaults.precision (0/NULL → 0.01), then to 2 places. */
export function roundCash(x: number, precision: number | null | undefined): number {
  const q = precision || 0.01;
  return roundAmount(roundAmount(x / q, 0) * q, 2);
}

/**
 * A computed double as Perl writes it into SQL: "%.15g" (15 significant digits, no trailing zeros).
 * PostgreSQL then rounds that text to the column's scale. String(x) would send 17 digits, which can
 * round differently at the 5th decimal.
 */
export function numText(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  return String(Number(x.toPrecision(15)));
}

/** Parses a numeric/real column value as PostgreSQL prints it ("333.33000", "0.1"); NULL → null. */
export function num(v: string | number | null | undefined): number | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'number' ? v : Number(v);
}

/** Perl truthiness of a number: 0, NaN-free NULL → false. */
export function truthyNum(v: number | null | undefined): boolean {
  return v !== null && v !== undefined && v !== 0 && !Number.isNaN(v);
}
