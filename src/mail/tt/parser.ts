// Parses the TT2 subset into a tree. Anything outside the subset is a syntax error naming the line,
// so an operator sees at once why a customised template cannot be used.
import { splitTemplate, Token, tokenize, TTError } from './lexer';

export type Expr =
  | { k: 'lit'; v: string | number }
  | { k: 'str'; parts: (string | Expr)[] }
  | { k: 'var'; segs: Seg[] }
  | { k: 'list'; items: Expr[] }
  | { k: 'range'; from: Expr; to: Expr }
  | { k: 'hash'; pairs: [Expr, Expr][] }
  | { k: 'bin'; op: string; l: Expr; r: Expr }
  | { k: 'not'; e: Expr }
  | { k: 'neg'; e: Expr }
  | { k: 'tern'; c: Expr; a: Expr; b: Expr };

export interface Seg {
  name: string | Expr;
  args?: Expr[];
}
export type VarExpr = Extract<Expr, { k: 'var' }>;
export interface FilterCall {
  name: string | Expr;
  args: Expr[];
}

export type Node =
  | { n: 'text'; text: string }
  | { n: 'get'; e: Expr; filters: FilterCall[]; line: number }
  | { n: 'call'; e: Expr; line: number }
  | { n: 'set'; assigns: [VarExpr, Expr][]; onlyIfFalse: boolean; line: number }
  | { n: 'if'; branches: { cond?: Expr; negate: boolean; body: Node[] }[]; line: number }
  | { n: 'foreach'; varName?: string; list: Expr; body: Node[]; line: number }
  | { n: 'loopctl'; what: 'next' | 'last'; line: number }
  | { n: 'use'; alias: string; plugin: string; line: number };

/** TT directives deliberately left out; naming them gives a clearer error than "unexpected token". */
const UNSUPPORTED = new Set([
  'PERL', 'RAWPERL', 'MACRO', 'BLOCK', 'INCLUDE', 'PROCESS', 'INSERT', 'WRAPPER', 'FILTER', 'SWITCH', 'CASE',
  'TRY', 'CATCH', 'FINAL', 'THROW', 'WHILE', 'CLEAR', 'STOP', 'RETURN', 'TAGS', 'META', 'VIEW', 'DEBUG',
]);
const KEYWORDS = new Set([
  ...UNSUPPORTED, 'IF', 'UNLESS', 'ELSIF', 'ELSE', 'END', 'FOREACH', 'FOR', 'SET', 'DEFAULT', 'GET', 'CALL', 'USE',
  'NEXT', 'LAST', 'IN', 'AND', 'OR', 'NOT', 'DIV', 'MOD',
]);
const CMP_OPS = new Set(['==', '!=', '<', '<=', '>', '>=']);

type Stmt =
  | Exclude<Node, { n: 'text' } | { n: 'if' } | { n: 'foreach' }>
  | { n: 'open-if'; cond: Expr; negate: boolean; line: number }
  | { n: 'elsif'; cond: Expr; line: number }
  | { n: 'else'; line: number }
  | { n: 'end'; line: number }
  | { n: 'open-foreach'; varName?: string; list: Expr; line: number }
  | { n: 'postfix'; inner: Stmt; wrap: { kind: 'if' | 'unless'; cond: Expr } | { kind: 'foreach'; varName?: string; list: Expr } };

class DirectiveParser {
  private pos = 0;
  constructor(private readonly toks: Token[]) {}

  private peek(offset = 0): Token {
    return this.toks[Math.min(this.pos + offset, this.toks.length - 1)];
  }
  private next(): Token {
    return this.toks[Math.min(this.pos++, this.toks.length - 1)];
  }
  private isOp(value: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.type === 'op' && t.value === value;
  }
  private isWord(...values: string[]): boolean {
    const t = this.peek();
    return t.type === 'ident' && values.includes(t.value);
  }
  private fail(message: string, tok = this.peek()): never {
    throw new TTError(tok.line, message);
  }
  private describe(t: Token): string {
    return t.type === 'eof' ? 'end of directive' : `'${t.value}'`;
  }
  private expectOp(value: string): void {
    if (!this.isOp(value)) this.fail(`expected '${value}', found ${this.describe(this.peek())}`);
    this.pos++;
  }

  statements(): Stmt[] {
    const out: Stmt[] = [];
    while (this.peek().type !== 'eof') {
      if (this.isOp(';')) {
        this.pos++;
        continue;
      }
      out.push(this.statement());
      if (this.peek().type !== 'eof' && !this.isOp(';')) this.fail(`unexpected ${this.describe(this.peek())}`);
    }
    return out;
  }

  private statement(): Stmt {
    const t = this.peek();
    const line = t.line;
    if (t.type === 'ident' && KEYWORDS.has(t.value) && t.value !== 'NOT') {
      this.pos++;
      switch (t.value) {
        case 'IF':
        case 'UNLESS':
          return { n: 'open-if', cond: this.expr(), negate: t.value === 'UNLESS', line };
        case 'ELSIF':
          return { n: 'elsif', cond: this.expr(), line };
        case 'ELSE':
          return { n: 'else', line };
        case 'END':
          return { n: 'end', line };
        case 'FOREACH':
        case 'FOR':
          return { n: 'open-foreach', ...this.loopHead(), line };
        case 'SET':
          return this.postfix({ n: 'set', assigns: this.assignments(), onlyIfFalse: false, line });
        case 'DEFAULT':
          return this.postfix({ n: 'set', assigns: this.assignments(), onlyIfFalse: true, line });
        case 'GET':
          return this.postfix({ n: 'get', e: this.expr(), filters: this.filters(), line });
        case 'CALL':
          return this.postfix({ n: 'call', e: this.expr(), line });
        case 'NEXT':
        case 'LAST':
          return this.postfix({ n: 'loopctl', what: t.value === 'NEXT' ? 'next' : 'last', line });
        case 'USE':
          return this.use(line);
        default:
          if (UNSUPPORTED.has(t.value)) this.fail(`unsupported directive ${t.value}`, t);
          this.fail(`unexpected ${t.value}`, t);
      }
    }
    if (this.assignmentAhead()) return this.postfix({ n: 'set', assigns: this.assignments(), onlyIfFalse: false, line });
    return this.postfix({ n: 'get', e: this.expr(), filters: this.filters(), line });
  }

  private postfix(inner: Stmt): Stmt {
    let s = inner;
    while (this.isWord('IF', 'UNLESS', 'FOREACH', 'FOR')) {
      const kw = this.next().value;
      s =
        kw === 'IF' || kw === 'UNLESS'
          ? { n: 'postfix', inner: s, wrap: { kind: kw === 'IF' ? 'if' : 'unless', cond: this.expr() } }
          : { n: 'postfix', inner: s, wrap: { kind: 'foreach', ...this.loopHead() } };
    }
    return s;
  }

  private loopHead(): { varName?: string; list: Expr } {
    const t = this.peek();
    if (t.type === 'ident' && !KEYWORDS.has(t.value) && (this.isOp('=', 1) || (this.peek(1).type === 'ident' && this.peek(1).value === 'IN'))) {
      this.pos += 2;
      return { varName: t.value, list: this.expr() };
    }
    return { list: this.expr() };
  }

  private use(line: number): Stmt {
    const first = this.next();
    if (first.type !== 'ident') this.fail('expected a plugin name after USE', first);
    let alias = first.value;
    let plugin = first.value;
    if (this.isOp('=')) {
      this.pos++;
      const p = this.next();
      if (p.type !== 'ident') this.fail('expected a plugin name after USE', p);
      plugin = p.value;
    }
    if (this.isOp('(')) this.fail(`plugin arguments are not supported (USE ${plugin})`);
    return { n: 'use', alias, plugin, line };
  }

  private assignmentAhead(): boolean {
    const save = this.pos;
    try {
      const t = this.peek();
      if (!(t.type === 'ident' && !KEYWORDS.has(t.value)) && !this.isOp('$') && !this.isOp('${')) return false;
      this.variable();
      return this.isOp('=');
    } catch {
      return false;
    } finally {
      this.pos = save;
    }
  }

  private assignments(): [VarExpr, Expr][] {
    const out: [VarExpr, Expr][] = [];
    do {
      if (this.isOp(',')) this.pos++;
      const target = this.variable();
      this.expectOp('=');
      out.push([target, this.expr()]);
    } while (this.isOp(',') || this.assignmentAhead());
    return out;
  }

  private filters(): FilterCall[] {
    const out: FilterCall[] = [];
    while (this.isOp('|') || this.isWord('FILTER')) {
      this.pos++;
      let name: string | Expr;
      if (this.isOp('$') || this.isOp('${')) name = this.dynamicName();
      else {
        const t = this.next();
        if (t.type !== 'ident') this.fail('expected a filter name', t);
        name = t.value;
      }
      out.push({ name, args: this.isOp('(') ? this.args() : [] });
    }
    return out;
  }

  expr(): Expr {
    const c = this.or();
    if (!this.isOp('?')) return c;
    this.pos++;
    const a = this.expr();
    this.expectOp(':');
    return { k: 'tern', c, a, b: this.expr() };
  }
  private or(): Expr {
    let l = this.and();
    while (this.isOp('||') || this.isWord('OR', 'or')) {
      this.pos++;
      l = { k: 'bin', op: '||', l, r: this.and() };
    }
    return l;
  }
  private and(): Expr {
    let l = this.not();
    while (this.isOp('&&') || this.isWord('AND', 'and')) {
      this.pos++;
      l = { k: 'bin', op: '&&', l, r: this.not() };
    }
    return l;
  }
  private not(): Expr {
    if (this.isOp('!') || this.isWord('NOT', 'not')) {
      this.pos++;
      return { k: 'not', e: this.not() };
    }
    return this.cat();
  }
  private cat(): Expr {
    let l = this.cmp();
    while (this.isOp('_')) {
      this.pos++;
      l = { k: 'bin', op: '_', l, r: this.cmp() };
    }
    return l;
  }
  private cmp(): Expr {
    let l = this.add();
    while (this.peek().type === 'op' && CMP_OPS.has(this.peek().value)) {
      const op = this.next().value;
      l = { k: 'bin', op, l, r: this.add() };
    }
    return l;
  }
  private add(): Expr {
    let l = this.mul();
    while (this.isOp('+') || this.isOp('-')) {
      const op = this.next().value;
      l = { k: 'bin', op, l, r: this.mul() };
    }
    return l;
  }
  private mul(): Expr {
    let l = this.unary();
    while (this.isOp('*') || this.isOp('/') || this.isOp('%') || this.isWord('div', 'DIV', 'mod', 'MOD')) {
      const op = this.next().value.toLowerCase();
      l = { k: 'bin', op: op === '%' ? 'mod' : op, l, r: this.unary() };
    }
    return l;
  }
  private unary(): Expr {
    if (this.isOp('-')) {
      this.pos++;
      return { k: 'neg', e: this.unary() };
    }
    if (this.isOp('+')) this.pos++;
    return this.primary();
  }

  private primary(): Expr {
    const t = this.peek();
    switch (t.type) {
      case 'num':
        this.pos++;
        return { k: 'lit', v: Number(t.value) };
      case 'sq':
        this.pos++;
        return { k: 'lit', v: t.value };
      case 'dq':
        this.pos++;
        return interpolate(t.value, t.line);
      case 'ident':
        if (KEYWORDS.has(t.value)) {
          if (UNSUPPORTED.has(t.value)) this.fail(`unsupported directive ${t.value}`, t);
          this.fail(`unexpected ${t.value}`, t);
        }
        return this.variable();
      case 'op':
        if (t.value === '$' || t.value === '${') return this.variable();
        if (t.value === '(') {
          this.pos++;
          const e = this.expr();
          this.expectOp(')');
          return e;
        }
        if (t.value === '[') return this.listLiteral();
        if (t.value === '{') return this.hashLiteral();
        break;
    }
    return this.fail(`unexpected ${this.describe(t)}`, t);
  }

  private listLiteral(): Expr {
    this.expectOp('[');
    const items: Expr[] = [];
    while (!this.isOp(']')) {
      if (this.isOp(',')) {
        this.pos++;
        continue;
      }
      const e = this.expr();
      if (this.isOp('..')) {
        this.pos++;
        const to = this.expr();
        this.expectOp(']');
        return { k: 'range', from: e, to };
      }
      items.push(e);
    }
    this.pos++;
    return { k: 'list', items };
  }

  private hashLiteral(): Expr {
    this.expectOp('{');
    const pairs: [Expr, Expr][] = [];
    while (!this.isOp('}')) {
      if (this.isOp(',')) {
        this.pos++;
        continue;
      }
      const t = this.next();
      let key: Expr;
      if (t.type === 'ident' || t.type === 'sq' || t.type === 'num') key = { k: 'lit', v: t.value };
      else if (t.type === 'dq') key = interpolate(t.value, t.line);
      else return this.fail(`unexpected ${this.describe(t)} in hash`, t);
      if (this.isOp('=') || this.isOp('=>')) this.pos++;
      else this.fail(`expected '=>' after hash key`);
      pairs.push([key, this.expr()]);
    }
    this.pos++;
    return { k: 'hash', pairs };
  }

  private dynamicName(): Expr {
    if (this.isOp('${')) {
      this.pos++;
      const e = this.expr();
      this.expectOp('}');
      return e;
    }
    this.expectOp('$');
    const t = this.next();
    if (t.type !== 'ident') this.fail("expected a variable name after '$'", t);
    return { k: 'var', segs: [{ name: t.value }] };
  }

  variable(): VarExpr {
    const segs: Seg[] = [];
    const segment = (): Seg => {
      let name: string | Expr;
      const t = this.peek();
      if (this.isOp('$') || this.isOp('${')) name = this.dynamicName();
      else if (t.type === 'ident' || (segs.length > 0 && t.type === 'num')) {
        this.pos++;
        name = t.value;
      } else return this.fail(`expected a variable name, found ${this.describe(t)}`, t);
      return this.isOp('(') ? { name, args: this.args() } : { name };
    };
    segs.push(segment());
    while (this.isOp('.')) {
      this.pos++;
      segs.push(segment());
    }
    return { k: 'var', segs };
  }

  private args(): Expr[] {
    this.expectOp('(');
    const out: Expr[] = [];
    while (!this.isOp(')')) {
      if (this.isOp(',')) {
        this.pos++;
        continue;
      }
      if (this.peek().type === 'eof') this.fail("missing ')'");
      out.push(this.expr());
    }
    this.pos++;
    return out;
  }
}

const DQ_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', $: '$' };

/** A double-quoted string: escapes plus `$var.path` and `${expr}` interpolation. */
function interpolate(raw: string, line: number): Expr {
  const parts: (string | Expr)[] = [];
  let text = '';
  let i = 0;
  while (i < raw.length) {
    const c = raw[i];
    if (c === '\\' && i + 1 < raw.length) {
      text += DQ_ESCAPES[raw[i + 1]] ?? '\\' + raw[i + 1];
      i += 2;
      continue;
    }
    if (c === '$') {
      let src: string | undefined;
      if (raw[i + 1] === '{') {
        const close = raw.indexOf('}', i + 2);
        if (close < 0) throw new TTError(line, "missing '}' in string");
        src = raw.slice(i + 2, close);
        i = close + 1;
      } else {
        const m = /^[A-Za-z_]\w*(?:\.(?:[A-Za-z_]\w*|\d+))*/.exec(raw.slice(i + 1));
        if (m) {
          src = m[0];
          i += 1 + m[0].length;
        }
      }
      if (src !== undefined) {
        if (text) parts.push(text);
        text = '';
        const p = new DirectiveParser(tokenize(src, line));
        parts.push(p.expr());
        continue;
      }
    }
    text += c;
    i++;
  }
  if (text || parts.length === 0) parts.push(text);
  return parts.length === 1 && typeof parts[0] === 'string' ? { k: 'lit', v: parts[0] } : { k: 'str', parts };
}

type OpenBlock =
  | { kind: 'if'; node: Extract<Node, { n: 'if' }>; body: Node[]; line: number; elseSeen?: boolean }
  | { kind: 'foreach'; node: Extract<Node, { n: 'foreach' }>; body: Node[]; line: number };

function toNode(s: Stmt): Node {
  if (s.n === 'postfix') {
    const inner = toNode(s.inner);
    const line = 'line' in s.inner ? s.inner.line : 0;
    return s.wrap.kind === 'foreach'
      ? { n: 'foreach', varName: s.wrap.varName, list: s.wrap.list, body: [inner], line }
      : { n: 'if', branches: [{ cond: s.wrap.cond, negate: s.wrap.kind === 'unless', body: [inner] }], line };
  }
  return s as Node;
}

/** Parses a whole template; throws TTError with the line. */
export function parseTemplate(source: string): Node[] {
  const root: Node[] = [];
  const stack: OpenBlock[] = [];
  const current = () => (stack.length ? stack[stack.length - 1].body : root);
  for (const chunk of splitTemplate(source)) {
    if (chunk.type === 'text') {
      current().push({ n: 'text', text: chunk.text });
      continue;
    }
    const stmts = new DirectiveParser(tokenize(chunk.text, chunk.line)).statements();
    for (const s of stmts) {
      switch (s.n) {
        case 'open-if': {
          const node: Extract<Node, { n: 'if' }> = { n: 'if', branches: [], line: s.line };
          const body: Node[] = [];
          node.branches.push({ cond: s.cond, negate: s.negate, body });
          current().push(node);
          stack.push({ kind: 'if', node, body, line: s.line });
          break;
        }
        case 'elsif':
        case 'else': {
          const top = stack[stack.length - 1];
          const word = s.n === 'elsif' ? 'ELSIF' : 'ELSE';
          if (!top || top.kind !== 'if') throw new TTError(s.line, `unexpected ${word} without IF`);
          if (top.elseSeen) throw new TTError(s.line, `unexpected ${word} after ELSE`);
          const body: Node[] = [];
          top.node.branches.push(s.n === 'elsif' ? { cond: s.cond, negate: false, body } : { negate: false, body });
          top.body = body;
          if (s.n === 'else') top.elseSeen = true;
          break;
        }
        case 'open-foreach': {
          const body: Node[] = [];
          const node: Extract<Node, { n: 'foreach' }> = { n: 'foreach', varName: s.varName, list: s.list, body, line: s.line };
          current().push(node);
          stack.push({ kind: 'foreach', node, body, line: s.line });
          break;
        }
        case 'end':
          if (!stack.pop()) throw new TTError(s.line, 'unexpected END without a matching IF, UNLESS or FOREACH');
          break;
        default:
          current().push(toNode(s));
      }
    }
  }
  const open = stack.pop();
  if (open) throw new TTError(open.line, `missing END for the ${open.kind === 'if' ? 'IF/UNLESS' : 'FOREACH'} opened here`);
  return root;
}
