// The shared validator of background_jobs.data options (src/jobs/dataOptions.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readDataOptions } from '../src/jobs/dataOptions';

const spec = { n: 'int', x: 'number', s: 'string', b: 'bool', l: 'list', m: 'map' } as const;

test('normalises the allowed types; null counts as absent', () => {
  assert.deepEqual(readDataOptions({ n: '14', x: '1.5', s: 42, b: '0', l: [1], m: { a: 1 }, }, spec, 'J', 'fail'), {
    n: 14, x: 1.5, s: '42', b: false, l: [1], m: { a: 1 },
  });
  assert.deepEqual(readDataOptions({ n: null, b: 1 }, spec, 'J', 'fail'), { b: true });
  assert.deepEqual(readDataOptions(undefined, spec, 'J', 'fail'), {});
  assert.deepEqual(readDataOptions({ s: new Date(Date.UTC(2026, 0, 31)) }, spec, 'J', 'fail'), { s: '2026-01-31' });
});

test('unknown keys and wrong types throw one line naming job and key', () => {
  assert.throws(() => readDataOptions({ z: 1 }, spec, 'J', 'fail'), { name: 'JobError', message: "J: unknown key 'z' in data" });
  assert.throws(() => readDataOptions({ n: 1.5 }, spec, 'J', 'fail'), { message: "J: key 'n' in data must be an integer, got 1.5" });
  assert.throws(() => readDataOptions({ n: [1] }, spec, 'J', 'fail'), { message: "J: key 'n' in data must be an integer, got a list" });
  assert.throws(() => readDataOptions({ l: 'a' }, spec, 'J', 'fail'), { message: "J: key 'l' in data must be a list, got 'a'" });
  assert.throws(() => readDataOptions({ m: [] }, spec, 'J', 'fail'), { message: "J: key 'm' in data must be a mapping, got a list" });
  assert.throws(() => readDataOptions({ b: { a: 1 } }, spec, 'J', 'fail'), { message: "J: key 'b' in data must be a boolean, got a mapping" });
  assert.throws(() => readDataOptions({ x: 'abc' }, spec, 'J', 'fail'), { message: "J: key 'x' in data must be a number, got 'abc'" });
});

test("unknown keys: 'fail' names the key; a warning sink gets one line per key and the known keys are still read", () => {
  const warnings: string[] = [];
  assert.deepEqual(readDataOptions({ z: 1, n: '3', y: null }, spec, 'J', (m) => warnings.push(m)), { n: 3 });
  assert.deepEqual(warnings, [
    "J: unknown key 'z' in data ignored (kivitendo's J does not read it either)",
    "J: unknown key 'y' in data ignored (kivitendo's J does not read it either)",
  ]);
  // Type errors still fail, also with a warning sink.
  assert.throws(() => readDataOptions({ z: 1, n: 1.5 }, spec, 'J', () => undefined), { message: "J: key 'n' in data must be an integer, got 1.5" });
});
