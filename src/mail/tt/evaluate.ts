// Runs a parsed TT2 tree against a stash with Template::Stash's lookup rules: hash key or object
// member first (calling functions, as TT calls code refs and methods), then virtual methods;
// anything undefined prints as ''.
import { TTError } from './lexer';
import type { Expr, FilterCall, Node, Seg, VarExpr } from './parser';
import { isPlainObject, num, str, truthy } from './perl';
import { escapeHtml, FILTERS, vmethod } from './vmethods';

export interface EvalOptions {
  /** Backs kivitendo's `[% USE T8 %]` … `[% 'text' | $T8 %]`; default: the text with #1, #2 … filled in. */
  translate?: (text: string, args: unknown[]) => string;
}

export function defaultTranslate(text: string, args: unknown[]): string {
  return text.replace(/#(\d+)/g, (m, n: string) => (args[Number(n) - 1] !== undefined ? str(args[Number(n) - 1]) : m));
}

class LoopControl {
  constructor(readonly what: 'next' | 'last', readonly line: number) {}
}

const BUILTIN_PROTOS = new Set<unknown>([Object.prototype, Array.prototype, Function.prototype, null]);

/** Own keys and methods of the object's class, never Object.prototype internals like `constructor`. */
function hasMember(obj: object, key: string): boolean {
  for (let o: object | null = obj; o && !BUILTIN_PROTOS.has(o); o = Object.getPrototypeOf(o)) {
    if (Object.prototype.hasOwnProperty.call(o, key)) return key !== 'constructor';
  }
  return false;
}

function toList(v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v;
  if (isPlainObject(v)) {
    return Object.keys(v)
      .sort()
      .map((key) => ({ key, value: v[key] }));
  }
  return [v];
}

function loopIterator(index: number, items: unknown[]) {
  const count = index + 1;
  return {
    index,
    count,
    number: count,
    size: items.length,
    max: items.length - 1,
    first: index === 0 ? 1 : 0,
    last: index === items.length - 1 ? 1 : 0,
    prev: items[index - 1],
    next: items[index + 1],
    odd: count % 2 ? 1 : 0,
    even: count % 2 ? 0 : 1,
    parity: count % 2 ? 'odd' : 'even',
  };
}

export class Evaluator {
  private readonly translate: (text: string, args: unknown[]) => string;

  constructor(
    private readonly stash: Record<string, unknown>,
    options: EvalOptions = {},
  ) {
    this.translate = options.translate ?? defaultTranslate;
  }

  render(nodes: Node[]): string {
    const out: string[] = [];
    try {
      this.run(nodes, out);
    } catch (e) {
      if (e instanceof LoopControl) throw new TTError(e.line, `${e.what.toUpperCase()} outside of FOREACH`);
      throw e;
    }
    return out.join('');
  }

  private run(nodes: Node[], out: string[]): void {
    for (const node of nodes) {
      if (node.n === 'text') {
        out.push(node.text);
        continue;
      }
      try {
        this.runNode(node, out);
      } catch (e) {
        if (e instanceof LoopControl || e instanceof TTError) throw e;
        throw new TTError(node.line, e instanceof Error ? e.message : String(e));
      }
    }
  }

  private runNode(node: Exclude<Node, { n: 'text' }>, out: string[]): void {
    switch (node.n) {
      case 'get':
        out.push(this.applyFilters(str(this.expr(node.e)), node.filters));
        return;
      case 'call':
        this.expr(node.e);
        return;
      case 'set':
        for (const [target, value] of node.assigns) {
          if (node.onlyIfFalse && truthy(this.expr(target))) continue;
          this.assign(target, this.expr(value));
        }
        return;
      case 'if':
        for (const b of node.branches) {
          if (!b.cond || truthy(this.expr(b.cond)) !== b.negate) {
            this.run(b.body, out);
            return;
          }
        }
        return;
      case 'foreach':
        return this.foreach(node, out);
      case 'loopctl':
        throw new LoopControl(node.what, node.line);
      case 'use':
        this.stash[node.alias] = this.plugin(node.plugin, node.line);
        return;
    }
  }

  private foreach(node: Extract<Node, { n: 'foreach' }>, out: string[]): void {
    const items = [...toList(this.expr(node.list))];
    const outerLoop = this.stash.loop;
    try {
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (node.varName) this.stash[node.varName] = item;
        else if (isPlainObject(item)) Object.assign(this.stash, item);
        this.stash.loop = loopIterator(i, items);
        try {
          this.run(node.body, out);
        } catch (e) {
          if (!(e instanceof LoopControl)) throw e;
          if (e.what === 'last') break;
        }
      }
    } finally {
      this.stash.loop = outerLoop;
    }
  }

  private plugin(name: string, line: number): unknown {
    switch (name) {
      case 'HTML':
        return {
          escape: (s: unknown) => escapeHtml(str(s)),
          url: (s: unknown) => FILTERS.uri(str(s)),
        };
      case 'T8':
        // Like Template::Plugin::Filter: the variable holds an object whose `filter` does the work.
        return { filter: (text: unknown, ...args: unknown[]) => this.translate(str(text), args) || str(text) };
      default:
        throw new TTError(line, `unsupported plugin ${name} (only HTML and T8 are available)`);
    }
  }

  private applyFilters(text: string, filters: FilterCall[]): string {
    let t = text;
    for (const f of filters) {
      const args = f.args.map((a) => this.expr(a));
      let fn: unknown = typeof f.name === 'string' ? FILTERS[f.name] : this.expr(f.name);
      if (typeof fn === 'string') fn = FILTERS[fn];
      if (fn && typeof fn === 'object' && typeof (fn as { filter?: unknown }).filter === 'function') {
        const obj = fn as { filter: (...a: unknown[]) => unknown };
        fn = (...a: unknown[]) => obj.filter(...a);
      }
      if (typeof fn !== 'function') {
        throw new Error(`filter not found: ${typeof f.name === 'string' ? f.name : str(fn) || '(undefined variable)'}`);
      }
      t = str((fn as (...a: unknown[]) => unknown)(t, ...args));
    }
    return t;
  }

  private segName(seg: Seg): string {
    return typeof seg.name === 'string' ? seg.name : str(this.expr(seg.name));
  }

  private args(seg: Seg): unknown[] {
    return (seg.args ?? []).map((a) => this.expr(a));
  }

  private lookup(segs: Seg[]): unknown {
    const first = segs[0];
    const name = this.segName(first);
    let v = Object.prototype.hasOwnProperty.call(this.stash, name) ? this.stash[name] : undefined;
    if (typeof v === 'function') v = v(...this.args(first));
    for (const seg of segs.slice(1)) v = this.dot(v, this.segName(seg), this.args(seg));
    return v;
  }

  private dot(value: unknown, key: string, args: unknown[]): unknown {
    if (value === undefined || value === null) return undefined;
    if (Array.isArray(value) && /^-?\d+$/.test(key)) {
      const i = Number(key);
      return value[i < 0 ? value.length + i : i];
    }
    if (typeof value === 'object' && !Array.isArray(value) && hasMember(value, key)) {
      const member = (value as Record<string, unknown>)[key];
      return typeof member === 'function' ? member.apply(value, args) : member;
    }
    const vm = vmethod(value, key, args);
    return vm.found ? vm.value : undefined;
  }

  private assign(target: VarExpr, value: unknown): void {
    const segs = target.segs;
    let container: Record<string, unknown> = this.stash;
    for (const seg of segs.slice(0, -1)) {
      const key = this.segName(seg);
      let next = hasMember(container, key) ? container[key] : undefined;
      if (next === undefined || next === null) container[key] = next = {};
      if (typeof next !== 'object') throw new Error(`cannot assign to '${key}.…': not a hash`);
      container = next as Record<string, unknown>;
    }
    container[this.segName(segs[segs.length - 1])] = value;
  }

  expr(e: Expr): unknown {
    switch (e.k) {
      case 'lit':
        return e.v;
      case 'str':
        return e.parts.map((p) => (typeof p === 'string' ? p : str(this.expr(p)))).join('');
      case 'var':
        return this.lookup(e.segs);
      case 'list':
        return e.items.map((i) => this.expr(i));
      case 'range': {
        const from = Math.trunc(num(this.expr(e.from)));
        const to = Math.trunc(num(this.expr(e.to)));
        return from > to ? [] : Array.from({ length: to - from + 1 }, (_, i) => from + i);
      }
      case 'hash':
        return Object.fromEntries(e.pairs.map(([k, v]) => [str(this.expr(k)), this.expr(v)]));
      case 'not':
        return truthy(this.expr(e.e)) ? '' : 1;
      case 'neg':
        return -num(this.expr(e.e));
      case 'tern':
        return truthy(this.expr(e.c)) ? this.expr(e.a) : this.expr(e.b);
      case 'bin':
        return this.binary(e.op, e.l, e.r);
    }
  }

  private binary(op: string, le: Expr, re: Expr): unknown {
    const l = this.expr(le);
    if (op === '||') return truthy(l) ? l : this.expr(re);
    if (op === '&&') return truthy(l) ? this.expr(re) : l;
    const r = this.expr(re);
    const b = (x: boolean) => (x ? 1 : '');
    switch (op) {
      case '_':
        return str(l) + str(r);
      case '==':
        return b(str(l) === str(r));
      case '!=':
        return b(str(l) !== str(r));
      case '<':
        return b(num(l) < num(r));
      case '<=':
        return b(num(l) <= num(r));
      case '>':
        return b(num(l) > num(r));
      case '>=':
        return b(num(l) >= num(r));
      case '+':
        return num(l) + num(r);
      case '-':
        return num(l) - num(r);
      case '*':
        return num(l) * num(r);
      case '/':
        if (num(r) === 0) throw new Error('Illegal division by zero');
        return num(l) / num(r);
      case 'div':
        if (num(r) === 0) throw new Error('Illegal division by zero');
        return Math.trunc(num(l) / num(r));
      case 'mod': {
        const a = Math.trunc(num(l));
        const m = Math.trunc(num(r));
        if (m === 0) throw new Error('Illegal modulus zero');
        const rem = a % m;
        return rem !== 0 && rem < 0 !== m < 0 ? rem + m : rem;
      }
    }
    throw new Error(`unknown operator ${op}`);
  }
}
