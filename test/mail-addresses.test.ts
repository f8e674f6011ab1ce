// Address lists read the way kivitendo's mailer (Email::Address) reads them: pure functions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressListProblem, formatMailbox, parseAddressList, parseMailboxes } from '../src/mail/addresses';

test('parseAddressList: separators kivitendo accepts', () => {
  assert.deepEqual(parseAddressList('a@x.de b@y.de'), ['a@x.de', 'b@y.de']);
  assert.deepEqual(parseAddressList('a@x.de, b@y.de'), ['a@x.de', 'b@y.de']);
  assert.deepEqual(parseAddressList('a@x.de;b@y.de'), ['a@x.de', 'b@y.de']);
  assert.deepEqual(parseAddressList('a@x.de  ,\t  b@y.de'), ['a@x.de', 'b@y.de']);
  assert.deepEqual(parseAddressList('stock@example.com extra@example.com'), ['stock@example.com', 'extra@example.com']);
});

test('parseAddressList: names, quotes, comments and angle brackets', () => {
  assert.deepEqual(parseAddressList('"Smith, John" <js@ex.com>, Ann <ann@ex.com> (work)'), ['js@ex.com', 'ann@ex.com']);
  assert.deepEqual(parseAddressList('<a@b.c>'), ['a@b.c']);
  const [ann] = parseMailboxes('Ann Other <ann@ex.com> (work)');
  assert.equal(ann.phrase, 'Ann Other');
  assert.equal(ann.comment, '(work)');
  assert.equal(formatMailbox(ann), '"Ann Other" <ann@ex.com> (work)');
  const [q] = parseMailboxes('"a\\"b" <q@w.e>');
  assert.equal(q.phrase, 'a"b');
  assert.equal(formatMailbox(q), '"a\\"b" <q@w.e>');
  assert.equal(formatMailbox(parseMailboxes('plain@ex.com')[0]), 'plain@ex.com');
  assert.equal(parseMailboxes('Jürgen Groß <jg@ex.de>')[0].phrase, 'Jürgen Groß');
});

test('parseAddressList: quirks of the regex grammar are kept', () => {
  // The first pass takes name-addr mailboxes; "x@y" is then no longer a complete address.
  const [only] = parseMailboxes('x@y <a@b>');
  assert.equal(only.address, 'a@b');
  assert.equal(only.phrase, 'y');
  // Addresses with non-ASCII characters are dropped, not rejected.
  assert.deepEqual(parseAddressList('jü@ex.de, b@c.de'), ['b@c.de']);
  // An unclosed angle bracket: the bare address is found inside.
  assert.deepEqual(parseAddressList('foo <a@b.de'), ['a@b.de']);
  assert.deepEqual(parseAddressList('just some words'), []);
  assert.deepEqual(parseAddressList(''), []);
  assert.deepEqual(parseAddressList('0'), []);
});

test('addressListProblem: no address, or more than 3 stray characters per address', () => {
  assert.deepEqual(addressListProblem('just some words'), { kind: 'none' });
  assert.equal(addressListProblem('a@b.c xyz'), undefined); // 3 stray characters: accepted
  assert.deepEqual(addressListProblem('a@b.c wxyz'), { kind: 'stray', found: ['a@b.c '] });
  assert.equal(addressListProblem('a@b.c, d@e.f'), undefined);
  assert.equal(addressListProblem('a@b.de x, c@d.de y'), undefined); // 4 stray over 2 addresses
  assert.deepEqual(addressListProblem('foo <a@b.de'), { kind: 'stray', found: ['a@b.de'] });
  // Blank runs are collapsed before parsing but count as stray characters of the list as given.
  assert.equal(addressListProblem('a@b.de    c@d.de'), undefined);
  assert.equal(addressListProblem('a@b.de' + ' '.repeat(9))?.kind, 'stray');
});

test('parseAddressList: a long hostile list finishes quickly', () => {
  const t0 = Date.now();
  const junk = '"'.repeat(2000) + ' (((( ' + 'a.'.repeat(3000) + '@ <<< ' + 'x '.repeat(3000);
  parseAddressList(junk);
  parseAddressList(Array.from({ length: 500 }, (_, i) => `User ${i} <u${i}@example.com>`).join(', '));
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
});
