import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ledger } from '../../src/bench/ledger.js';
import { NumberSeries, percentile, ratePerSecond, ratio, round, summarise } from '../../src/bench/stats.js';

describe('percentile (nearest rank)', () => {
  const cases: [number[], number, number][] = [
    [[1], 50, 1],
    [[1], 99, 1],
    [[1, 2], 50, 1],
    [[1, 2], 51, 2],
    [[3, 1, 2], 50, 2],
    [[1, 2, 3, 4], 100, 4],
    [Array.from({ length: 100 }, (_, i) => i + 1), 99, 99],
    [Array.from({ length: 100 }, (_, i) => i + 1), 50, 50],
    [Array.from({ length: 1000 }, (_, i) => 1000 - i), 99, 990],
    [[5, 5, 5, 100], 99, 100],
    [[0.1, 0.2, 0.3], 1, 0.1],
  ];
  for (const [values, p, want] of cases) {
    it(`p${p} of ${values.length} values = ${want}`, () => assert.equal(percentile(values, p), want));
  }
  it('is NaN for no values', () => assert.ok(Number.isNaN(percentile([], 50))));
  it('refuses p outside (0, 100]', () => {
    assert.throws(() => percentile([1], 0), RangeError);
    assert.throws(() => percentile([1], 101), RangeError);
  });
  it('does not reorder its input', () => {
    const v = [3, 1, 2];
    percentile(v, 50);
    assert.deepEqual(v, [3, 1, 2]);
  });
});

describe('summarise', () => {
  it('gives count, p50, p99, max', () => {
    const v = Array.from({ length: 200 }, (_, i) => i + 1);
    assert.deepEqual(summarise(v), { count: 200, p50: 100, p99: 198, max: 200 });
  });
  it('of nothing is NaN with count 0', () => {
    const s = summarise([]);
    assert.equal(s.count, 0);
    assert.ok(Number.isNaN(s.p50) && Number.isNaN(s.max));
  });
});

describe('rates and ratios', () => {
  const rates: [number, number, number][] = [
    [1000, 1000, 1000],
    [500, 250, 2000],
    [0, 1000, 0],
  ];
  for (const [count, ms, want] of rates) it(`${count} in ${ms} ms = ${want}/s`, () => assert.equal(ratePerSecond(count, ms), want));
  it('an empty window is NaN', () => assert.ok(Number.isNaN(ratePerSecond(5, 0))));

  const ratios: [number | undefined, number | undefined, number][] = [
    [5, 10, 0.5],
    [10, 5, 2],
    [0, 5, 0],
    [5, 0, NaN],
    [undefined, 5, NaN],
    [5, undefined, NaN],
    [NaN, 5, NaN],
  ];
  for (const [a, b, want] of ratios) it(`ratio(${a}, ${b}) = ${want}`, () => assert.deepEqual(ratio(a, b), want));

  const rounds: [number, number, number][] = [
    [1.2345, 2, 1.23],
    [1.235, 1, 1.2],
    [0.3333333, 3, 0.333],
    [12345.6, 0, 12346],
  ];
  for (const [n, d, want] of rounds) it(`round(${n}, ${d}) = ${want}`, () => assert.equal(round(n, d), want));
  it('round keeps NaN', () => assert.ok(Number.isNaN(round(NaN))));
});

describe('NumberSeries', () => {
  it('keeps every value past its initial capacity, in order', () => {
    const s = new NumberSeries();
    for (let i = 0; i < 5000; i++) s.push(i);
    assert.equal(s.length, 5000);
    const v = s.values();
    assert.equal(v.length, 5000);
    assert.equal(v[0], 0);
    assert.equal(v[4999], 4999);
  });
});

describe('Ledger: the bench counts exactly', () => {
  it('all acknowledged and arrived once: ok, nothing missing, no duplicates', () => {
    const l = new Ledger();
    assert.ok(l.acknowledgeBody('{"accepted":2,"ids":["1-0:0","1-0:1"]}'));
    l.arrive('1-0:0', 'a');
    l.arrive('1-0:1', 'b');
    assert.deepEqual(l.counts(), {
      acknowledged: 2, arrivals: 2, arrivedUnique: 2, missing: 0, duplicates: 0, unacknowledgedArrived: 0, duplicateValues: 0, ok: true,
    });
  });

  it('a postback arriving twice is one duplicate, not a missing one', () => {
    const l = new Ledger();
    l.acknowledge(['1-0:0', '1-0:1']);
    l.arrive('1-0:0', 'a');
    l.arrive('1-0:1', 'b');
    l.arrive('1-0:1', 'b');
    const c = l.counts();
    assert.equal(c.duplicates, 1);
    assert.equal(c.arrivals, 3);
    assert.equal(c.arrivedUnique, 2);
    assert.equal(c.missing, 0);
    assert.equal(c.duplicateValues, 0);
    assert.ok(c.ok);
  });

  it('an acknowledged postback that never arrives is missing, and the run is not ok', () => {
    const l = new Ledger();
    l.acknowledge(['1-0:0', '1-0:1', '2-0:0']);
    l.arrive('1-0:0');
    const c = l.counts();
    assert.equal(c.missing, 2);
    assert.equal(c.ok, false);
    assert.deepEqual(l.missingIds(), ['1-0:1', '2-0:0']);
    assert.deepEqual(l.missingIds(1), ['1-0:1']);
  });

  it('an arrival the client never saw acknowledged (in flight at cut-off) is counted apart', () => {
    const l = new Ledger();
    l.acknowledge(['1-0:0']);
    l.arrive('1-0:0');
    l.arrive('9-0:0');
    const c = l.counts();
    assert.equal(c.unacknowledgedArrived, 1);
    assert.equal(c.missing, 0);
    assert.ok(c.ok);
  });

  it('the same value under two postback ids means it was enqueued twice', () => {
    const l = new Ledger();
    l.arrive('1-0:0', 'seq-1');
    l.arrive('2-0:0', 'seq-1');
    l.arrive('1-0:0', 'seq-1'); // a plain repeat of the first: a duplicate, not a second enqueue
    const c = l.counts();
    assert.equal(c.duplicateValues, 1);
    assert.equal(c.duplicates, 1);
  });

  it('answers that are not ingest answers are refused', () => {
    const l = new Ledger();
    assert.equal(l.acknowledgeBody('{}'), false);
    assert.equal(l.acknowledgeBody('not json'), false);
    assert.equal(l.acknowledgedCount, 0);
  });
});
