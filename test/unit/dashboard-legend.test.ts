import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { latestIndexes } from '../../src/dashboard/legend.js';

describe("latestIndexes: what the dashboard's legends show until hovered", () => {
  const _ = null;
  const cases: [string, (number | null)[][], (number | null)[]][] = [
    ['no data at all', [[]], [null]],
    ['series without values', [[10, 20, 30], [_, _, _]], [null, null]],
    ['the last bucket has values', [[10, 20, 30], [1, 2, 3], [4, 5, 6]], [2, 2, 2]],
    ['low traffic: each series at its own last value', [[10, 20, 30, 40], [5, _, _, _], [_, 7, _, _]], [1, 0, 1]],
    ['a zero is a value', [[10, 20], [3, 0]], [1, 1]],
    ['one series empty, the other not', [[10, 20, 30], [_, _, _], [_, 9, _]], [1, null, 1]],
  ];
  for (const [name, data, want] of cases) it(name, () => assert.deepEqual(latestIndexes(data), want));
});
