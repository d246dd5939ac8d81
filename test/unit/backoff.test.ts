import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRetryAfter, retryDelayMs } from '../../src/delivery/backoff.js';

const policy = { baseMs: 1000, maxMs: 60_000 };

describe('retryDelayMs', () => {
  // [attempt that failed, random in [0,1), Retry-After ms, expected delay]
  const table: [number, number, number | undefined, number][] = [
    [1, 0, undefined, 500], // ceiling 1 s, equal jitter: [0.5 s, 1 s]
    [1, 0.999999, undefined, 1000],
    [2, 0, undefined, 1000], // ceiling 2 s
    [2, 0.5, undefined, 1500],
    [3, 0, undefined, 2000], // ceiling 4 s
    [4, 1, undefined, 8000],
    [7, 0, undefined, 30_000], // ceiling 64 s capped at 60 s
    [7, 1, undefined, 60_000],
    [60, 0.5, undefined, 45_000], // huge attempt numbers do not overflow
    [1, 0, 5000, 5000], // Retry-After is a floor
    [3, 1, 1000, 4000], // ...that only raises the delay
    [1, 0, 3_600_000, 60_000], // ...and never beyond the cap
    [0, 0, undefined, 500], // defensive: attempt 0 behaves like 1
  ];
  for (const [attempt, random, retryAfter, want] of table) {
    it(`attempt ${attempt}, random ${random}, Retry-After ${retryAfter ?? '-'} -> ${want} ms`, () =>
      assert.equal(retryDelayMs(policy, attempt, random, retryAfter), want));
  }

  it('grows exponentially in expectation and always stays within [ceiling/2, ceiling]', () => {
    for (let attempt = 1; attempt <= 10; attempt++) {
      const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
      for (const r of [0, 0.1, 0.5, 0.9, 0.99]) {
        const d = retryDelayMs(policy, attempt, r);
        assert.ok(d >= ceiling / 2 && d <= ceiling, `attempt ${attempt} r ${r}: ${d} not in [${ceiling / 2}, ${ceiling}]`);
      }
    }
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-11-25T12:00:00Z');
  const table: [string | undefined, number | undefined][] = [
    [undefined, undefined],
    ['', undefined],
    ['  ', undefined],
    ['0', 0],
    ['5', 5000],
    [' 120 ', 120_000],
    ['Wed, 25 Nov 2026 12:00:30 GMT', 30_000],
    ['Wed, 25 Nov 2026 11:59:00 GMT', 0], // a date in the past means now
    ['soon', undefined],
    ['-5', undefined],
    ['1.5', undefined],
  ];
  for (const [header, want] of table) it(`${JSON.stringify(header)} -> ${want}`, () => assert.equal(parseRetryAfter(header, now), want));
});
