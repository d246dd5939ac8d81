import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  LATENCY_BOUNDS_MS,
  OTHER_HOST,
  bucketStart,
  failingHosts,
  holdGauges,
  latencyBucket,
  percentile,
  summarize,
  topHosts,
} from '../../src/shared/stats.js';
import { statsKeys } from '../../src/shared/queue.js';

const H = LATENCY_BOUNDS_MS.length + 1; // histogram buckets, overflow included
const hist = (pairs: Record<number, number>) => Array.from({ length: H }, (_, i) => pairs[i] ?? 0);

describe('bucketStart', () => {
  const cases: [string, number, number, number][] = [
    ['start of a 10 s bucket', 1_700_000_000_000, 10, 1_700_000_000],
    ['inside a 10 s bucket', 1_700_000_009_999, 10, 1_700_000_000],
    ['next 10 s bucket', 1_700_000_010_000, 10, 1_700_000_010],
    ['minute bucket', 1_700_000_059_000, 60, 1_700_000_040],
    ['minute bucket boundary', 1_700_000_040_000, 60, 1_700_000_040],
    ['epoch', 0, 60, 0],
  ];
  for (const [name, at, width, want] of cases) {
    it(name, () => assert.equal(bucketStart(at, width), want));
  }
});

describe('latencyBucket', () => {
  const cases: [number, number][] = [
    [0, 0],
    [10, 0],
    [11, 1],
    [25, 1],
    [99, 3],
    [100, 3],
    [1000, 6],
    [3_600_000, LATENCY_BOUNDS_MS.length - 1],
    [3_600_001, LATENCY_BOUNDS_MS.length],
    [Number.MAX_SAFE_INTEGER, LATENCY_BOUNDS_MS.length],
  ];
  for (const [ms, want] of cases) {
    it(`${ms} ms -> bucket ${want}`, () => assert.equal(latencyBucket(ms), want));
  }
});

describe('percentile', () => {
  const cases: [string, number[], number, number | undefined][] = [
    ['no samples', hist({}), 0.5, undefined],
    ['one bucket, median is its middle', hist({ 3: 10 }), 0.5, 75], // (50,100], rank 5 of 10
    ['one bucket, p100 is its upper bound', hist({ 3: 10 }), 1, 100],
    ['first bucket interpolates from 0', hist({ 0: 4 }), 0.5, 5],
    ['two buckets, median at the boundary', hist({ 0: 5, 1: 5 }), 0.5, 10],
    ['two buckets, p90 inside the second', hist({ 0: 5, 1: 5 }), 0.9, 10 + (15 * 4) / 5],
    ['empty buckets between are skipped', hist({ 0: 1, 6: 1 }), 0.99, 500 + 500 * 0.98],
    ['overflow bucket reports the last bound', hist({ [H - 1]: 3 }), 0.5, LATENCY_BOUNDS_MS.at(-1)],
    ['q clamped below 0', hist({ 2: 2 }), -1, 25],
  ];
  for (const [name, counts, q, want] of cases) {
    it(name, () => {
      const got = percentile(counts, q);
      if (want === undefined) assert.equal(got, undefined);
      else assert.ok(Math.abs(got! - want) < 1e-9, `got ${got}, want ${want}`);
    });
  }
});

describe('summarize', () => {
  it('turns bucket hashes into series and totals, missing buckets as zeros', () => {
    const { series, totals } = summarize(
      [100, 110, 120],
      [
        { acc: '5', ok: '4', retry: '1', l0: '4', lsum: '20' },
        null,
        { acc: '2', ok: '2', dead: '1', 'd:destination_forbidden': '1', retry: '2', l3: '2', lsum: '150', qlive: '7', qretry: '2', qdead: '1' },
      ],
    );
    assert.deepEqual(series.t, [100, 110, 120]);
    assert.deepEqual(series.accepted, [5, 0, 2]);
    assert.deepEqual(series.delivered, [4, 0, 2]);
    assert.deepEqual(series.retried, [1, 0, 2]);
    assert.deepEqual(series.deadLettered, [0, 0, 1]);
    assert.deepEqual(series.failed, [1, 0, 3]);
    assert.deepEqual(series.p50, [5, null, 75]);
    assert.deepEqual(series.queueLive, [null, null, 7], 'queue samples are gauges, null where none was taken');
    assert.deepEqual(series.queueRetry, [null, null, 2]);
    assert.deepEqual(series.queueDead, [null, null, 1]);
    assert.deepEqual(totals, {
      accepted: 7,
      delivered: 6,
      retried: 3,
      deadLettered: 1,
      failed: 4,
      latencyP50Ms: 7.5, // rank 3 of 6, in (0,10] holding 4
      latencyP95Ms: 92.5, // rank 5.7: (50,100] holding 2, 1.7 in
      latencyP99Ms: 98.5,
      latencyMeanMs: 28.3,
      deadLetteredByReason: { destination_forbidden: 1 },
    });
  });
});

describe('topHosts', () => {
  const tally = (ok: number, fail: number, dead = 0, err?: string) => ({ ok, fail, dead, ...(err ? { err } : {}) });
  it('keeps all hosts when there are few enough', () => {
    const m = new Map([['a', tally(1, 0)], ['b', tally(0, 1)]]);
    assert.deepEqual(topHosts(m, 2).map(([h]) => h), ['a', 'b']);
  });
  it('keeps the failing hosts first and folds the rest into (other)', () => {
    const m = new Map([
      ['quiet', tally(1, 0)],
      ['busy', tally(100, 0)],
      ['failing', tally(0, 5, 1, 'x')],
      ['flaky', tally(10, 2, 0, 'y')],
    ]);
    const got = topHosts(m, 3);
    assert.deepEqual(got.map(([h]) => h), ['failing', 'flaky', OTHER_HOST]);
    assert.deepEqual(got[2]![1], { ok: 101, fail: 0, dead: 0 });
  });
});

describe('failingHosts', () => {
  it('adds up hosts across buckets, keeps the latest error, lists only failing ones', () => {
    const e1 = JSON.stringify({ at: 1000, status: 500, error: 'HTTP 500' });
    const e2 = JSON.stringify({ at: 2000, status: null, error: 'ECONNREFUSED' });
    const got = failingHosts(
      [
        { 'a.test|ok': '3', 'a.test|fail': '1', 'a.test|err': e2, 'ok.test|ok': '9' },
        null,
        { 'a.test|fail': '2', 'a.test|dead': '1', 'a.test|err': e1, 'b.test:8080|fail': '1', 'b.test:8080|err': e1 },
      ],
      10,
    );
    assert.deepEqual(got, [
      { host: 'a.test', delivered: 3, failed: 3, deadLettered: 1, lastError: { at: 2000, status: null, error: 'ECONNREFUSED' } },
      { host: 'b.test:8080', delivered: 0, failed: 1, deadLettered: 0, lastError: { at: 1000, status: 500, error: 'HTTP 500' } },
    ]);
  });
  it('stops at the limit', () => {
    const h: Record<string, string> = {};
    for (let i = 0; i < 5; i++) h[`h${i}|fail`] = String(i + 1);
    assert.deepEqual(failingHosts([h], 2).map((s) => s.host), ['h4', 'h3']);
  });
});

describe('statsKeys', () => {
  it('names every statistics key under the queue prefix', () => {
    const k = statsKeys('pb');
    assert.equal(k.bucket(10, 1_700_000_000), 'pb:st:10:1700000000');
    assert.equal(k.bucket(60, 1_699_999_980), 'pb:st:60:1699999980');
    assert.equal(k.hosts(1_699_999_980), 'pb:sth:1699999980');
    assert.equal(k.queueSample, 'pb:stq');
    assert.equal(k.metricsRequests, 'pb:metrics:req');
    assert.equal(k.metricsReplies('web1-ingest-0'), 'pb:metrics:rep:web1-ingest-0');
    assert.equal(k.legacyMetrics, 'pb:metrics');
  });
});

describe('holdGauges: a queue sample holds until the next one, for a while', () => {
  const _ = null;
  const cases: [string, (number | null)[], (number | null)[], number, (number | null)[]][] = [
    ['no samples anywhere', [_, _, _], [], 5, [_, _, _]],
    ['samples in every bucket stay as they are', [3, 0, 7], [], 5, [3, 0, 7]],
    ['a gap holds the sample before it', [4, _, _, 2, _], [], 5, [4, 4, 4, 2, 2]],
    ['a zero holds too', [0, _, _], [], 5, [0, 0, 0]],
    ['the window starts with the sample before it', [_, _, 9], [_, 5, _], 5, [5, 5, 9]],
    ['the latest prior sample wins', [_, _], [1, 2, _], 5, [2, 2]],
    ['held at most maxGapBuckets after the sample', [6, _, _, _, _], [], 2, [6, 6, 6, _, _]],
    ['the prior gap counts toward the limit', [_, _, _], [8, _], 2, [8, _, _]],
    ['an old prior sample is not held', [_, _], [8, _, _, _], 2, [_, _]],
  ];
  for (const [name, values, prior, max, want] of cases) {
    it(name, () => assert.deepEqual(holdGauges(values, prior, max), want));
  }
  it('summarize holds the queue gauges, not the counters', () => {
    const { series } = summarize([0, 10, 20], [{ qlive: '5', qretry: '1', qdead: '2', ok: '3' }, null, { acc: '1' }], {
      prior: [],
      maxGapBuckets: 31,
    });
    assert.deepEqual(series.queueLive, [5, 5, 5]);
    assert.deepEqual(series.queueRetry, [1, 1, 1]);
    assert.deepEqual(series.queueDead, [2, 2, 2]);
    assert.deepEqual(series.delivered, [3, 0, 0]);
    assert.deepEqual(series.accepted, [0, 0, 1]);
  });
});

describe('metric labels stay bounded whatever clients send', async () => {
  const { routeLabel, methodLabel } = await import('../../src/shared/metrics.js');
  const routes: [string, string][] = [
    ['/i', '/i'],
    ['/ingest.php', '/ingest.php'],
    ['/health', '/health'],
    ['/metrics', '/metrics'],
    ['/stats', '/stats'],
    ['/dashboard', '/dashboard'],
    ['/dashboard/dashboard.js', '/dashboard'],
    ['/i/', 'other'],
    ['/wp-login.php', 'other'],
  ];
  for (const [path, want] of routes) it(`route ${path} -> ${want}`, () => assert.equal(routeLabel(path), want));
  const methods: [string, string][] = [
    ['GET', 'GET'],
    ['POST', 'POST'],
    ['PROPFIND', 'other'],
    ['X'.repeat(100), 'other'],
  ];
  for (const [m, want] of methods) it(`method ${m.slice(0, 10)} -> ${want}`, () => assert.equal(methodLabel(m), want));
});
