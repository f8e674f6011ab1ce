// The shared validator of background_jobs.data options (src/jobs/dataOptions.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readDataOptions } from '../src/jobs/dataOptions';

const spec = { n: 'int', x: 'number', s: 'string', b: 'bool', l: 'list', m: 'map' } as const;

test('normalises the allowed types; null counts as absent', () => {
  assert.deepEqual(readDataOptions({ n: '14', x: '1.5', s: 42, b: '0', l: [1], m: { a: 1 }, }, spec, 'J'), {
    n: 14, x: 1.5, s: '42', b: false, l: [1], m: { a: 1 },
  });
  assert.deepEqual(readDataOptions({ n: null, b: 1 }, spec, 'J'), { b: true });
  assert.deepEqual(readDataOptions(undefined, spec, 'J'), {});
  assert.deepEqual(readDataOptions({ s: new Date(Date.UTC(2026, 0, 31)) }, spec, 'J'), { s: '2026-01-31' });
});

test('unknown keys and wrong types throw one line naming job and key', () => {
  assert.throws(() => readDataOptions({ z: 1 }, spec, 'J'), { name: 'JobError', message: "J: unknown key 'z' in data" });
  assert.throws(() => readDataOptions({ n: 1.5 }, spec, 'J'), { message: "J: key 'n' in data must be an integer, got 1.5" });
  assert.throws(() => readDataOptions({ n: [1] }, spec, 'J'), { message: "J: key 'n' in data must be an integer, got a list" });
  assert.throws(() => readDataOptions({ l: 'a' }, spec, 'J'), { message: "J: key 'l' in data must be a list, got 'a'" });
  assert.throws(() => readDataOptions({ m: [] }, spec, 'J'), { message: "J: key 'm' in data must be a mapping, got a list" });
  assert.throws(() => readDataOptions({ b: { a: 1 } }, spec, 'J'), { message: "J: key 'b' in data must be a boolean, got a mapping" });
  assert.throws(() => readDataOptions({ x: 'abc' }, spec, 'J'), { message: "J: key 'x' in data must be a number, got 'abc'" });
});
