// Template Toolkit's virtual methods (`list.size`, `hash.keys`, `text.length`, …) and the text filters.
// Only the common ones; an unknown name yields undef like TT's stash does.
import { cmp, num, str } from './perl';

type VMethod = (self: any, ...args: unknown[]) => unknown;

const perlBool = (b: boolean) => (b ? 1 : '');

/** A Perl regex given as a template string; the common syntax is the same in JS. */
function regex(pattern: unknown, flags = ''): RegExp {
  return new RegExp(str(pattern), flags);
}

/** Perl's `split` of a scalar: ' ' (default) splits on whitespace and drops leading empties. */
function perlSplit(s: string, sep: unknown): string[] {
  const parts = sep === undefined || sep === ' ' ? s.trimStart().split(/\s+/) : s.split(regex(sep));
  while (parts.length && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

function byField(item: unknown, field: unknown): unknown {
  if (field === undefined) return item;
  return item !== null && typeof item === 'object' ? (item as Record<string, unknown>)[str(field)] : undefined;
}

export const LIST_VMETHODS: Record<string, VMethod> = {
  size: (l: unknown[]) => l.length,
  max: (l: unknown[]) => l.length - 1,
  first: (l: unknown[], n?: unknown) => (n === undefined ? l[0] : l.slice(0, num(n))),
  last: (l: unknown[], n?: unknown) => (n === undefined ? l[l.length - 1] : l.slice(-num(n))),
  join: (l: unknown[], sep: unknown = ' ') => l.map(str).join(str(sep)),
  sort: (l: unknown[], field?: unknown) =>
    [...l].sort((a, b) => cmp(str(byField(a, field)).toLowerCase(), str(byField(b, field)).toLowerCase())),
  nsort: (l: unknown[], field?: unknown) => [...l].sort((a, b) => num(byField(a, field)) - num(byField(b, field))),
  reverse: (l: unknown[]) => [...l].reverse(),
  unique: (l: unknown[]) => {
    const seen = new Set<string>();
    return l.filter((x) => !seen.has(str(x)) && seen.add(str(x)));
  },
  grep: (l: unknown[], pattern: unknown) => l.filter((x) => regex(pattern).test(str(x))),
  list: (l: unknown[]) => l,
  slice: (l: unknown[], from: unknown = 0, to?: unknown) => l.slice(num(from), to === undefined ? undefined : num(to) + 1),
  defined: (l: unknown[], i?: unknown) => perlBool(i === undefined ? true : l[num(i)] !== undefined && l[num(i)] !== null),
  push: (l: unknown[], ...items: unknown[]) => (l.push(...items), ''),
  unshift: (l: unknown[], ...items: unknown[]) => (l.unshift(...items), ''),
  pop: (l: unknown[]) => l.pop(),
  shift: (l: unknown[]) => l.shift(),
};

export const HASH_VMETHODS: Record<string, VMethod> = {
  keys: (h: object) => Object.keys(h),
  values: (h: object) => Object.values(h),
  size: (h: object) => Object.keys(h).length,
  each: (h: object) => Object.entries(h).flat(),
  pairs: (h: object) =>
    Object.keys(h)
      .sort(cmp)
      .map((key) => ({ key, value: (h as Record<string, unknown>)[key] })),
  list: (h: object) => Object.entries(h).map(([key, value]) => ({ key, value })),
  sort: (h: Record<string, unknown>) => Object.keys(h).sort((a, b) => cmp(str(h[a]).toLowerCase(), str(h[b]).toLowerCase())),
  nsort: (h: Record<string, unknown>) => Object.keys(h).sort((a, b) => num(h[a]) - num(h[b])),
  exists: (h: object, k: unknown) => perlBool(Object.prototype.hasOwnProperty.call(h, str(k))),
  defined: (h: Record<string, unknown>, k?: unknown) =>
    perlBool(k === undefined ? true : h[str(k)] !== undefined && h[str(k)] !== null),
  item: (h: Record<string, unknown>, k: unknown) => h[str(k)],
  delete: (h: Record<string, unknown>, ...ks: unknown[]) => (ks.forEach((k) => delete h[str(k)]), ''),
};

export const SCALAR_VMETHODS: Record<string, VMethod> = {
  length: (s: unknown) => [...str(s)].length,
  size: () => 1,
  defined: (s: unknown) => perlBool(s !== undefined && s !== null),
  upper: (s: unknown) => str(s).toUpperCase(),
  lower: (s: unknown) => str(s).toLowerCase(),
  ucfirst: (s: unknown) => str(s).charAt(0).toUpperCase() + str(s).slice(1),
  lcfirst: (s: unknown) => str(s).charAt(0).toLowerCase() + str(s).slice(1),
  trim: (s: unknown) => str(s).trim(),
  collapse: (s: unknown) => str(s).trim().replace(/\s+/g, ' '),
  repeat: (s: unknown, n: unknown = 1) => str(s).repeat(Math.max(0, Math.trunc(num(n)))),
  replace: (s: unknown, search: unknown, repl: unknown = '') => str(s).replace(regex(search, 'g'), str(repl)),
  remove: (s: unknown, search: unknown) => str(s).replace(regex(search, 'g'), ''),
  split: (s: unknown, sep?: unknown) => perlSplit(str(s), sep),
  match: (s: unknown, pattern: unknown) => {
    const m = regex(pattern).exec(str(s));
    return m ? (m.length > 1 ? m.slice(1) : [m[0]]) : '';
  },
  search: (s: unknown, pattern: unknown) => perlBool(regex(pattern).test(str(s))),
  substr: (s: unknown, offset: unknown = 0, length?: unknown) => {
    const chars = [...str(s)];
    const from = num(offset) < 0 ? chars.length + num(offset) : num(offset);
    return chars.slice(from, length === undefined ? undefined : from + num(length)).join('');
  },
  list: (s: unknown) => [s],
};

/** `value.name(args)` for a name that is not a key of the value itself. */
export function vmethod(value: unknown, name: string, args: unknown[]): { found: boolean; value?: unknown } {
  if (Array.isArray(value)) {
    const m = LIST_VMETHODS[name];
    return m ? { found: true, value: m(value, ...args) } : { found: false };
  }
  if (value !== null && typeof value === 'object') {
    const m = HASH_VMETHODS[name];
    return m ? { found: true, value: m(value, ...args) } : { found: false };
  }
  const m = SCALAR_VMETHODS[name];
  if (m) return { found: true, value: m(value, ...args) };
  // TT promotes a scalar to a one-element list for list methods (`text.first`, `text.join`).
  const l = LIST_VMETHODS[name];
  return l ? { found: true, value: l([value], ...args) } : { found: false };
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function percentEncode(s: string, keep: RegExp): string {
  return Array.from(Buffer.from(s, 'utf8'))
    .map((b) => (keep.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
}

type Filter = (text: string, ...args: unknown[]) => string;

export const FILTERS: Record<string, Filter> = {
  html: escapeHtml,
  html_entity: escapeHtml,
  html_line_break: (t) => t.replace(/(\r?\n)/g, '<br />$1'),
  html_break: (t) => t.replace(/(\r?\n\s*\r?\n)/g, '$1<p>$1'),
  uri: (t) => percentEncode(t, /[A-Za-z0-9\-._~]/),
  url: (t) => percentEncode(t, /[A-Za-z0-9\-._~;/?:@&=+$,[\]#!'()*]/),
  upper: (t) => t.toUpperCase(),
  lower: (t) => t.toLowerCase(),
  ucfirst: (t) => t.charAt(0).toUpperCase() + t.slice(1),
  lcfirst: (t) => t.charAt(0).toLowerCase() + t.slice(1),
  trim: (t) => t.trim(),
  collapse: (t) => t.trim().replace(/\s+/g, ' '),
  null: () => '',
  replace: (t, search, repl = '') => t.replace(regex(search, 'g'), str(repl)),
  remove: (t, search) => t.replace(regex(search, 'g'), ''),
  repeat: (t, n = 1) => t.repeat(Math.max(0, Math.trunc(num(n)))),
  truncate: (t, len = 32, suffix = '...') => {
    const chars = [...t];
    const n = num(len);
    const s = str(suffix);
    if (chars.length <= n) return t;
    return chars.slice(0, Math.max(0, n - s.length)).join('') + s;
  },
};
