// The TT2 subset. Expected outputs were checked against Template Toolkit 2.27 itself.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { formatKivitendoDate, formatKivitendoTime, templateTimestamp } from '../src/mail/kivitendoDate';
import { renderTemplate, renderTemplateFile, TemplateError } from '../src/mail/template';

const r = (src: string, vars: Record<string, unknown> = {}) => renderTemplate(src, vars, 'test.txt');

function throwsAt(src: string, line: number, pattern: RegExp, vars: Record<string, unknown> = {}) {
  assert.throws(
    () => r(src, vars),
    (e: unknown) => {
      assert.ok(e instanceof TemplateError, `not a TemplateError: ${e}`);
      assert.equal(e.file, 'test.txt');
      assert.equal(e.line, line);
      assert.match(e.message, pattern);
      assert.match(e.message, new RegExp(`^template test\\.txt line ${line}: `));
      return true;
    },
  );
}

describe('variables and values', () => {
  test('plain, dotted, numeric index and $var keys; undefined prints nothing', () => {
    assert.equal(r('[% a %]|[% h.b.c %]|[% l.1 %]|[% m.0.1 %]|[% nope %]|[% nope.deeper %]', { a: 'A', h: { b: { c: 'C' } }, l: ['x', 'y'], m: [['p', 'q']] }), 'A|C|y|q||');
    assert.equal(r('[% FOREACH k = h.keys.sort %][% k %]=[% h.$k %];[% END %]', { h: { b: 2, a: 1 } }), 'a=1;b=2;');
    assert.equal(r('[% h.${k} %]', { h: { xy: 'XY' }, k: 'xy' }), 'XY');
  });

  test('functions are called, as TT calls code refs and methods', () => {
    class Aggregator {
      constructor(private readonly status: string) {}
      get_status() {
        return this.status;
      }
    }
    const vars = { SELF: { aggreg: new Aggregator('PASS') }, f: (x: unknown) => `f(${x})`, o: { greet: (n: string) => `hi ${n}` } };
    assert.equal(r('[% SELF.aggreg.get_status %] [% f(2) %] [% o.greet("you") %]', vars), 'PASS f(2) hi you');
  });

  test('numbers and booleans print as Perl prints them', () => {
    assert.equal(r('[% 1 + 2 %] [% 10 / 4 %] [% 0.1 + 0.2 %] [% 10 / 3 %] [% 7 div 2 %] [% -7 % 3 %] [% 2 * 3.5 %] [% "3abc" + 1 %]'), '3 2.5 0.3 3.33333333333333 3 2 7 4');
    assert.equal(r('[% t %]|[% f %]|[% n %]|[% 100000000000000000000 %]', { t: true, f: false, n: 12.5 }), '1|0|12.5|1e+20');
  });

  test('string literals: single quotes raw, double quotes with escapes and interpolation', () => {
    assert.equal(r(`[% 'it\\'s $x' %]|[% "t\\tx=$x h=$h.a \${x}!" %]`, { x: 1, h: { a: 'A' } }), "it's $x|t\tx=1 h=A 1!");
  });

  test('virtual methods: .size .length .keys .join .first .last .sort .reverse and friends', () => {
    const vars = { l: ['b', 'A', 'c'], h: { a: 1, b: 2 }, s: 'hällo', e: [] };
    assert.equal(r('[% l.size %] [% h.size %] [% s.size %] [% s.length %] [% e.size %] [% u.size %]|', vars), '3 2 1 5 0 |');
    assert.equal(r('[% l.join(", ") %]|[% l.join %]|[% l.first %][% l.last %]|[% l.sort.join("") %]|[% l.reverse.join("") %]|[% l.max %]', vars), 'b, A, c|b A c|bc|Abc|cAb|2');
    assert.equal(r('[% s.upper %] [% s.replace("l+", "L") %] [% s.split("l").join("|") %] [% s.substr(1, 2) %]', vars), 'HÄLLO häLo hä||o äl');
    assert.equal(r('[% h.exists("a") %][% h.exists("z") %] [% h.values.sort.join %] [% h.pairs.1.key %]', vars), '1 1 2 b');
    assert.equal(r('[% n = [10, 9, 100, 9] %][% n.nsort.join(",") %] [% n.sort.join(",") %] [% n.unique.size %]'), '9,9,10,100 10,100,9,9 3');
  });

  test('a hash key wins over a virtual method of the same name', () => {
    assert.equal(r('[% h.size %] [% h.keys.size %]', { h: { size: 'S', a: 1 } }), 'S 2');
  });
});

describe('conditions', () => {
  test('IF / ELSIF / ELSE / UNLESS', () => {
    const t = '[% IF a %]A[% ELSIF b %]B[% ELSIF c %]C[% ELSE %]D[% END %]';
    assert.equal(r(t, { a: 1 }), 'A');
    assert.equal(r(t, { b: 1 }), 'B');
    assert.equal(r(t, { c: 1 }), 'C');
    assert.equal(r(t, {}), 'D');
    assert.equal(r('[% UNLESS x %]no x[% ELSE %]x[% END %]', {}), 'no x');
  });

  test('Perl truth: empty lists are true, "0" and "" false, "0.0" true', () => {
    const t = (v: unknown) => r('[% IF v %]T[% ELSE %]F[% END %]', { v });
    assert.deepEqual([[], {}, 0, '0', '', '0.0', ' ', null, undefined, 1].map(t).join(''), 'TTFFFTTFFT');
    assert.equal(r('[% IF e.size %]T[% ELSE %]F[% END %]', { e: [] }), 'F');
  });

  test('== and != compare strings; < > compare numbers; && || return values; NOT and !', () => {
    assert.equal(r('[% a == b %]|[% n == m %]|[% 10 < 9 %]|[% 9 < 10 %]|[% a != b %]', { a: 'x', b: 'x', n: 1, m: '1.0' }), '1|||1|');
    assert.equal(r('[% a && b %]|[% a || b %]|[% z || "def" %]|[% a AND z %]|[% z OR a %]|[% NOT a %]|[% !z %]', { a: 'A', b: 'B', z: 0 }), 'B|A|def|0|A||1');
    assert.equal(r('[% l.size > 1 ? "many" : "few" %] [% NOT l.size %] [% l.size == 2 AND 1 %]', { l: [1, 2] }), 'many  1');
  });

  test('postfix IF / UNLESS', () => {
    assert.equal(r('[% x IF y %][% x UNLESS y %][% "z" IF n %]', { x: 'X', y: 1 }), 'X');
    assert.equal(r('[% a = 1 IF 1 %][% a %][% b = 2 IF 0 %][% b %]'), '1');
  });
});

describe('FOREACH', () => {
  test('loop variables', () => {
    const t = '[% FOREACH i = l %][% loop.count %]/[% loop.size %]:[% i %][% UNLESS loop.last %], [% END %][% END %]';
    assert.equal(r(t, { l: ['a', 'b', 'c'] }), '1/3:a, 2/3:b, 3/3:c');
    assert.equal(r('[% FOREACH i IN l %][% loop.index %][% loop.first %][% loop.last %][% loop.parity %] [% END %]', { l: [1, 2] }), '010odd 101even ');
  });

  test('nested loops restore the outer loop; NEXT and LAST; ranges', () => {
    assert.equal(r('[% FOREACH o = outer %][% FOREACH i = o %][% loop.count %][% END %]-[% loop.count %] [% END %]', { outer: [[1, 2], [3]] }), '12-1 1-2 ');
    assert.equal(r('[% FOREACH x = [1..5] %][% NEXT IF x == 2 %][% LAST IF x == 4 %][% x %][% END %]'), '13');
  });

  test('hashes iterate as sorted key/value pairs; scalars once; undefined never; items without a variable are imported', () => {
    assert.equal(r('[% FOREACH p = h %][% p.key %]=[% p.value %] [% END %]', { h: { b: 2, a: 1 } }), 'a=1 b=2 ');
    assert.equal(r('[% FOREACH x = y %]<[% x %]>[% END %][% FOREACH x = nope %]never[% END %]', { y: 's' }), '<s>');
    assert.equal(r('[% FOREACH l %][% a %][% END %]', { l: [{ a: 1 }, { a: 2 }] }), '12');
  });
});

describe('assignment', () => {
  test('SET, bare assignment, several in one directive, DEFAULT, dotted targets, literals', () => {
    assert.equal(r('[% SET a = 1 %][% b = 2 %][% c = a + b; c %] [% d = 1 e = 2 %][% d %][% e %][% DEFAULT f = "F" %][% f %][% DEFAULT a = 9 %][% a %]'), '3 12F1');
    assert.equal(r('[% x = { a => 1, b = 2 } %][% x.a %][% x.b %] [% y.z = 5 %][% y.z %] [% l = [1, 2] %][% l.size %]'), '12 5 2');
  });

  test('template variables do not leak into the caller\'s object', () => {
    const vars: Record<string, unknown> = { a: 1 };
    r('[% a = 2 %][% FOREACH i = [1] %][% END %]', vars);
    assert.deepEqual(vars, { a: 1 });
  });
});

describe('whitespace chomping and comments', () => {
  test('[%- -%] remove the newline and the indentation on their side', () => {
    assert.equal(r('a\n[% IF x -%]\nyes\n[% ELSE -%]\nno\n[% END -%]\nb\n', { x: 1 }), 'a\nyes\nb\n');
    assert.equal(r('a\n  [%- x %]\n  [%- y -%]  \n c', { x: 1, y: 2 }), 'a12 c');
    assert.equal(r('[% IF 1 %]\n  [%- FOREACH i = [1,2] -%]\n    [% i %]\n  [%- END %]\n[% END %]\n'), '    1    2\n\n');
    assert.equal(r('a\r\n[%- x -%]\r\nb', { x: 1 }), 'a1b');
  });

  test('~ removes all whitespace, = collapses it to one space', () => {
    assert.equal(r('a   [%~ x ~%]   \n\n b [%= y =%]\n\n c', { x: 1, y: 2 }), 'a1b 2 c');
  });

  test('comments', () => {
    assert.equal(r('[% # a comment\n%]x[%# whole\n comment %]y[% x # trailing\n%]', { x: 'X' }), 'xyX');
  });
});

describe('filters and plugins', () => {
  test('html and other filters, chained, with arguments', () => {
    const x = `<a href="x">&'</a>`;
    assert.equal(r('[% x | html %] [% x FILTER html %] [% x | upper | html %]', { x }), '&lt;a href=&quot;x&quot;&gt;&amp;\'&lt;/a&gt; &lt;a href=&quot;x&quot;&gt;&amp;\'&lt;/a&gt; &lt;A HREF=&quot;X&quot;&gt;&amp;\'&lt;/A&gt;');
    assert.equal(r('[% "a b/ä" | uri %] [% "  a   b " | collapse %]|[% "  t " | trim %]|[% "x" | repeat(3) %] [% "abcdefghij" | truncate(5) %] [% "aXbX" | replace("X", "-") %]'), 'a%20b%2F%C3%A4 a b|t|xxx ab... a-b-');
  });

  test('USE HTML and USE T8 as kivitendo\'s web templates use them', () => {
    const t = '[%- USE T8 %][%- USE HTML %][% "Hello #1" | $T8(name) %] [% HTML.escape(s) %]';
    assert.equal(r(t, { name: 'Ann', s: '<b>' }), 'Hello Ann &lt;b&gt;');
    const translated = renderTemplate(t, { name: 'Ann', s: '' }, 'x', { translate: (text, args) => `Hallo ${args[0]}` });
    assert.equal(translated, 'Hallo Ann ');
  });
});

describe('errors name the file and line', () => {
  test('unsupported directives', () => {
    throwsAt('a\nb\n[% PERL %]x[% END %]', 3, /unsupported directive PERL/);
    throwsAt('a\n\n[% MACRO foo BLOCK %]x[% END %]', 3, /unsupported directive MACRO/);
    throwsAt('[% INCLUDE "other.txt" %]', 1, /unsupported directive INCLUDE/);
    throwsAt('x\n[% USE Dumper %]', 2, /unsupported plugin Dumper/);
  });

  test('unbalanced blocks', () => {
    throwsAt('a\n[% IF x %]\n[% END %]\n[% END %]', 4, /unexpected END/);
    throwsAt('a\n[% IF x %]\nb', 2, /missing END/);
    throwsAt('[% FOREACH i = l %]\n[% ELSE %]', 2, /ELSE without IF/);
    throwsAt('a\n[% x ', 2, /missing '%\]'/);
  });

  test('syntax and runtime errors', () => {
    throwsAt('\n\n[% a ** b %]', 3, /unexpected '\*'/);
    throwsAt('[% x | nosuch %]', 1, /filter not found: nosuch/);
    throwsAt('\n[% 1 / 0 %]', 2, /division by zero/);
    throwsAt('[% f() %]', 1, /boom/, { f: () => { throw new Error('boom'); } });
    throwsAt('[%\n  a = 1\n  b = ( \n%]', 4, /unexpected end of directive/);
  });

  test('a file that cannot be read', () => {
    assert.throws(() => renderTemplateFile('/nonexistent', 'x.txt', {}), /template x\.txt line 0: cannot read template: ENOENT/);
  });
});

describe('files and dates', () => {
  test('renderTemplateFile resolves relative paths against ROOT and accepts absolute ones', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kts-tt-'));
    try {
      fs.mkdirSync(path.join(dir, 'templates'));
      fs.writeFileSync(path.join(dir, 'templates', 't.txt'), '\uFEFFHallo [% name %] – ü\n');
      assert.equal(renderTemplateFile(dir, 'templates/t.txt', { name: 'Jörg' }), 'Hallo Jörg – ü\n');
      assert.equal(renderTemplateFile('/elsewhere', path.join(dir, 'templates', 't.txt'), { name: 'X' }), 'Hallo X – ü\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('kivitendo date formats', () => {
    const ts = '2024-10-27 02:30:59';
    assert.equal(formatKivitendoDate(ts, { dateformat: 'dd.mm.yy' }, 'minute'), '27.10.2024 02:30');
    assert.equal(formatKivitendoDate(ts, { dateformat: 'mm/dd/yy' }), '10/27/2024');
    assert.equal(formatKivitendoDate(ts, { dateformat: 'yyyy-mm-dd' }, 'second'), '2024-10-27 02:30:59');
    assert.equal(formatKivitendoDate(ts, {}), '2024-10-27');
    assert.equal(formatKivitendoDate('27.10.2024 02:30:00', { dateformat: 'dd.mm.yy' }, 'minute'), '27.10.2024 02:30');
    assert.equal(formatKivitendoDate('10/27/2024 02:30:00', { dateformat: 'mm/dd/yy' }, 'day'), '10/27/2024');
    assert.equal(formatKivitendoTime(ts, { timeformat: 'hh:mm:ss' }), '02:30:59');
    const t = templateTimestamp(ts, { dateformat: 'dd/mm/yy' });
    assert.equal(r('[% t.to_kivitendo %] [% t.to_kivitendo_time %] [% t %]', { t }), '27/10/2024 02:30 2024-10-27T02:30:59');
  });
});
