import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkBaseId, decodeEntry } from '../../src/shared/queue/codec.js';
import { chunkItems } from '../../src/shared/queue/queue.js';

describe('chunkItems', () => {
  const cases: [number, number, { offset: number; json: string }[]][] = [
    [1, 100, [{ offset: 0, json: '[0]' }]],
    [3, 2, [{ offset: 0, json: '[0,1]' }, { offset: 2, json: '[2]' }]],
    [4, 2, [{ offset: 0, json: '[0,1]' }, { offset: 2, json: '[2,3]' }]],
    [2, 1, [{ offset: 0, json: '[0]' }, { offset: 1, json: '[1]' }]],
  ];
  for (const [n, max, expected] of cases) {
    it(`${n} items at ${max} per entry`, () => {
      assert.deepEqual(chunkItems(Array.from({ length: n }, (_, i) => String(i)), max), expected);
    });
  }
});

describe('chunkBaseId', () => {
  const cases: [string, string | undefined, string | undefined][] = [
    ['1700000000000-5', '2', '1700000000000-3'],
    ['1700000000000-5', '0', '1700000000000-5'],
    ['1700000000000-1', '2', undefined],
    ['1700000000000-18446744073709551615', '1', '1700000000000-18446744073709551614'],
    ['1700000000000-5', 'x', undefined],
    ['1700000000000-5', undefined, undefined],
    ['nope', '1', undefined],
  ];
  for (const [id, c, expected] of cases) it(`${id} chunk ${c} -> ${expected}`, () => assert.equal(chunkBaseId(id, c), expected));
});

describe('decodeEntry of a chunk', () => {
  it('numbers its postbacks from the first entry of the request', () => {
    const out = decodeEntry('1700000000000-7', ['tpl', '[{"n":1},{"n":2}]', 'c', '2', 'o', '200']);
    assert.ok(Array.isArray(out));
    assert.deepEqual(out.map((p) => [p.entryId, p.index, p.entrySize, p.id]), [
      ['1700000000000-7', 0, 2, '1700000000000-5:200'],
      ['1700000000000-7', 1, 2, '1700000000000-5:201'],
    ]);
  });
  const bad: [string, string[]][] = [
    ['chunk number past the start of the ms', ['tpl', '[{"n":1}]', 'c', '9', 'o', '100']],
    ['negative offset', ['tpl', '[{"n":1}]', 'c', '1', 'o', '-1']],
    ['offset without chunk', ['tpl', '[{"n":1}]', 'o', '100']],
    ['chunk and retry id at once', ['tpl', '[{"n":1}]', 'c', '1', 'o', '1', 'i', 'x:0']],
  ];
  for (const [name, fields] of bad) {
    it(`is malformed: ${name}`, () => assert.ok(!Array.isArray(decodeEntry('1700000000000-3', fields))));
  }
});
