/**
 * Delivery statistics: time-bucketed counters in Redis, for the dashboard and GET /stats.
 *
 * Writing is cheap on purpose: every process counts in memory (a few Map increments per postback) and
 * a timer flushes what it gathered to Redis every STATS_FLUSH_INTERVAL_MS in ONE pipeline of HINCRBYs
 * and EXPIREs, whatever the traffic. Nothing is sent per postback.
 *
 * Two resolutions, each a hash per time bucket (key names come from the queue module, `statsKeys`):
 *   pb:st:10:<bucket start, s>   10-second buckets, kept STATS_FINE_RETENTION_S (24 h by default)
 *   pb:st:60:<bucket start, s>   1-minute buckets, kept STATS_COARSE_RETENTION_S (7 days by default)
 *   pb:sth:<bucket start, s>     per endpoint host, 1-minute buckets, the top STATS_TOP_HOSTS hosts of
 *                                each flush (the rest counted under "(other)"), same retention as pb:st:60
 * Fields of a bucket: acc (postbacks accepted by ingest), ok (delivered), retry (attempts failed and
 * retried), dead (dead-lettered), `d:<reason>` (dead-lettered, by reason: d:destination_forbidden...), l0..l15 (ingest-to-delivery latency histogram of delivered postbacks:
 * counts per LATENCY_BOUNDS_MS bucket), lsum (sum of those latencies, ms). Host fields:
 * `<host>|ok`, `<host>|fail` (failed attempts), `<host>|dead`, `<host>|err` (the last error, JSON).
 * Processes that sample the queue (ingest and the delivery workers) also set qlive, qretry, qdead: the
 * queue's live postbacks, retry set and dead letters (the bucket keeps the last). Every flush looks at
 * the queue, but writes only when the numbers differ from the last sample written by any process
 * (pb:stq), or that sample is QUEUE_SAMPLE_REFRESH_MS old: an idle appliance writes one small sample
 * every five minutes, not three per second. Readers hold a sample until the next one (holdGauges).
 *
 * Idle means quiet: a flush with nothing counted and an unchanged queue sends no write at all (the
 * comparison runs inside the sampling script, which then writes nothing, so nothing reaches the AOF).
 *
 * Memory is bounded by the number of buckets (one hash per bucket, each with a fixed set of fields,
 * expired by Redis) and the host cap: about 8,640 + 10,080 small hashes with the defaults.
 * Percentiles are computed when reading, from the histogram counts.
 */
import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import { queueKeys, statsKeys, type QueueKeys, type StatsKeys } from './queue.js';

/** Upper bounds (ms) of the latency histogram buckets; one more bucket holds everything above. */
export const LATENCY_BOUNDS_MS: readonly number[] = Object.freeze([
  10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000,
]);

export const FINE_S = 10;
export const COARSE_S = 60;
export const OTHER_HOST = '(other)';

/** Start (s since the epoch) of the `widthS`-second bucket holding the instant `atMs`. */
export function bucketStart(atMs: number, widthS: number): number {
  const s = Math.floor(atMs / 1000);
  return s - (((s % widthS) + widthS) % widthS);
}

/** Index of the latency histogram bucket for `ms` (the last index is the overflow bucket). */
export function latencyBucket(ms: number): number {
  for (let i = 0; i < LATENCY_BOUNDS_MS.length; i++) if (ms <= LATENCY_BOUNDS_MS[i]!) return i;
  return LATENCY_BOUNDS_MS.length;
}

/**
 * The `q`-quantile (0..1) of a histogram of counts per LATENCY_BOUNDS_MS bucket, interpolated linearly
 * inside the bucket that holds it (as Prometheus's histogram_quantile does). Undefined for no samples.
 * A quantile in the overflow bucket is reported as the last bound (the histogram knows no more).
 */
export function percentile(counts: readonly number[], q: number, bounds: readonly number[] = LATENCY_BOUNDS_MS): number | undefined {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return undefined;
  const rank = Math.min(Math.max(q, 0), 1) * total;
  let cum = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c > 0 && cum + c >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      const upper = bounds[i]!;
      return lower + ((upper - lower) * (rank - cum)) / c;
    }
    cum += c;
  }
  return bounds[bounds.length - 1];
}

/** What the delivery side tells the recorder about one attempt. */
export interface AttemptStat {
  readonly action: 'delivered' | 'retried' | 'dead_lettered';
  readonly host: string;
  /** When the attempt ended, ms since the epoch. */
  readonly at: number;
  /** Ingest to the end of this attempt, ms (used for delivered postbacks). */
  readonly latencyMs: number;
  /** HTTP status, or null when there was no response. */
  readonly status: number | null;
  /** Error code or short text for a failed attempt. */
  readonly error?: string;
  /** Why it was dead-lettered (dead_lettered only): counted as `d:<reason>`. */
  readonly reason?: string;
}

export interface StatsOptions {
  readonly prefix: string;
  readonly flushIntervalMs: number;
  readonly fineRetentionS: number;
  readonly coarseRetentionS: number;
  readonly topHosts: number;
  /** Also sample the queue's depth, retry set and dead letters into the current buckets (when they change). */
  readonly sampleQueue?: boolean;
  /** Write an unchanged queue sample again after this long, ms (QUEUE_SAMPLE_REFRESH_MS). */
  readonly queueSampleRefreshMs?: number;
  readonly now?: () => number;
}

/** The recorder's options from the one config (both entry points build it the same way). */
export function statsOptionsFrom(
  config: Pick<Config, 'queuePrefix' | 'statsFlushIntervalMs' | 'statsFineRetentionS' | 'statsCoarseRetentionS' | 'statsTopHosts'>,
  extra: Pick<StatsOptions, 'sampleQueue'> = {},
): StatsOptions {
  return {
    prefix: config.queuePrefix,
    flushIntervalMs: config.statsFlushIntervalMs,
    fineRetentionS: config.statsFineRetentionS,
    coarseRetentionS: config.statsCoarseRetentionS,
    topHosts: config.statsTopHosts,
    ...extra,
  };
}

/**
 * How often the queue sample is written even when it has not changed, ms: readers hold a sample for
 * this long (plus a bucket) before they show "no sample" (every sampling process stopped).
 */
export const QUEUE_SAMPLE_REFRESH_MS = 300_000;

/**
 * KEYS live retry dead fineBucket coarseBucket lastSample; ARGV fineTtl coarseTtl now refreshMs.
 * One command per flush; it writes only when the queue's numbers differ from the last sample any
 * process wrote, or that sample is refreshMs old. Returns 1 when it wrote, 0 when not.
 */
const SAMPLE_QUEUE_LUA = `
local live = tonumber(redis.call('GET', KEYS[1]) or '0')
local retry = redis.call('ZCARD', KEYS[2])
local dead = redis.call('XLEN', KEYS[3])
local now = tonumber(ARGV[3])
local last = redis.call('HMGET', KEYS[6], 'live', 'retry', 'dead', 'at')
if tonumber(last[1]) == live and tonumber(last[2]) == retry and tonumber(last[3]) == dead
   and last[4] and now - tonumber(last[4]) < tonumber(ARGV[4]) then
  return 0
end
for i = 4, 5 do
  redis.call('HSET', KEYS[i], 'qlive', live, 'qretry', retry, 'qdead', dead)
  redis.call('EXPIRE', KEYS[i], ARGV[i - 3])
end
redis.call('HSET', KEYS[6], 'live', live, 'retry', retry, 'dead', dead, 'at', now)
return 1`;

interface HostTally {
  ok: number;
  fail: number;
  dead: number;
  err?: string;
}

/** Most pending buckets kept while Redis is unreachable; older counts are dropped past this. */
const MAX_PENDING_KEYS = 4096;

/** Counts in memory, flushes to Redis in one pipeline per interval. Never throws into the hot path. */
export class StatsRecorder {
  private readonly keys: StatsKeys;
  private readonly queue: QueueKeys;
  /** Bucket key -> field -> count, gathered since the last flush. */
  private counters = new Map<string, Map<string, number>>();
  /** Bucket key -> its time to live, s. */
  private readonly ttls = new Map<string, number>();
  /** Host hash key -> host -> tally, gathered since the last flush. */
  private hosts = new Map<string, Map<string, HostTally>>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private readonly now: () => number;
  /** Flushes that failed (Redis away); their counts are retried with the next flush. */
  failedFlushes = 0;
  /** Queue samples this recorder wrote (the others found the queue as last sampled). */
  queueSamplesWritten = 0;

  constructor(
    private readonly redis: Redis,
    private readonly options: StatsOptions,
  ) {
    this.keys = statsKeys(options.prefix);
    this.queue = queueKeys(options.prefix);
    this.now = options.now ?? Date.now;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs);
    this.timer.unref();
  }

  /** Stop the timer and flush what is left. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  // The bucket keys of the current second, kept so the hot path does not build strings per postback.
  private keySecond = -1;
  private fineKey = '';
  private coarseKey = '';

  private add(field: string, n: number, atMs: number): void {
    const second = Math.floor(atMs / 1000);
    if (second !== this.keySecond) {
      this.keySecond = second;
      this.fineKey = this.keys.bucket(FINE_S, bucketStart(atMs, FINE_S));
      this.coarseKey = this.keys.bucket(COARSE_S, bucketStart(atMs, COARSE_S));
    }
    this.incr(this.fineKey, field, n, this.options.fineRetentionS + FINE_S);
    this.incr(this.coarseKey, field, n, this.options.coarseRetentionS + COARSE_S);
  }

  private incr(key: string, field: string, n: number, ttlS: number): void {
    let m = this.counters.get(key);
    if (!m) {
      m = new Map();
      this.counters.set(key, m);
      this.ttls.set(key, ttlS);
    }
    m.set(field, (m.get(field) ?? 0) + n);
  }

  /** Postbacks accepted by ingest. */
  accepted(count: number, atMs = this.now()): void {
    this.add('acc', count, atMs);
  }

  attempt(a: AttemptStat): void {
    const hostKey = this.keys.hosts(bucketStart(a.at, COARSE_S));
    let hm = this.hosts.get(hostKey);
    if (!hm) {
      hm = new Map();
      this.hosts.set(hostKey, hm);
    }
    let h = hm.get(a.host);
    if (!h) {
      h = { ok: 0, fail: 0, dead: 0 };
      hm.set(a.host, h);
    }
    if (a.action === 'delivered') {
      this.add('ok', 1, a.at);
      const ms = Math.max(0, Math.round(a.latencyMs));
      this.add(`l${latencyBucket(ms)}`, 1, a.at);
      this.add('lsum', ms, a.at);
      h.ok++;
      return;
    }
    this.add(a.action === 'retried' ? 'retry' : 'dead', 1, a.at);
    if (a.action === 'dead_lettered' && a.reason) this.add(`d:${a.reason}`, 1, a.at);
    h.fail++;
    if (a.action === 'dead_lettered') h.dead++;
    h.err = JSON.stringify({ at: a.at, status: a.status, error: a.error ?? (a.status === null ? '' : `HTTP ${a.status}`) });
  }

  /** Send what was counted since the last flush, in one pipeline. Concurrent calls share one flush. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    const sample = this.options.sampleQueue === true;
    if (this.counters.size === 0 && this.hosts.size === 0 && !sample) return Promise.resolve();
    const counters = this.counters;
    const hosts = this.hosts;
    this.counters = new Map();
    this.hosts = new Map();
    const p = this.redis.pipeline();
    const coarseTtl = this.options.coarseRetentionS + COARSE_S;
    if (sample) {
      const now = this.now();
      const q = this.queue;
      p.eval(
        SAMPLE_QUEUE_LUA, 6, q.live, q.retry, q.dead,
        this.keys.bucket(FINE_S, bucketStart(now, FINE_S)), this.keys.bucket(COARSE_S, bucketStart(now, COARSE_S)), this.keys.queueSample,
        this.options.fineRetentionS + FINE_S, coarseTtl, now, this.options.queueSampleRefreshMs ?? QUEUE_SAMPLE_REFRESH_MS,
      );
    }
    for (const [key, fields] of counters) {
      for (const [field, n] of fields) p.hincrby(key, field, n);
      p.expire(key, this.ttls.get(key) ?? coarseTtl);
    }
    const ttls = new Map(this.ttls);
    this.ttls.clear();
    for (const [key, byHost] of hosts) {
      for (const [host, t] of topHosts(byHost, this.options.topHosts)) {
        if (t.ok) p.hincrby(key, `${host}|ok`, t.ok);
        if (t.fail) p.hincrby(key, `${host}|fail`, t.fail);
        if (t.dead) p.hincrby(key, `${host}|dead`, t.dead);
        if (t.err) p.hset(key, `${host}|err`, t.err);
      }
      p.expire(key, coarseTtl);
    }
    this.flushing = p
      .exec()
      .then((replies) => {
        if (replies?.some(([err]) => err)) throw replies.find(([err]) => err)![0];
        if (sample && replies?.[0]?.[1] === 1) this.queueSamplesWritten++;
      })
      .catch(() => {
        // Redis away: keep the counts for the next flush (bounded), so a short outage loses nothing.
        this.failedFlushes++;
        this.mergeBack(counters, ttls, hosts);
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  private mergeBack(
    counters: Map<string, Map<string, number>>,
    ttls: Map<string, number>,
    hosts: Map<string, Map<string, HostTally>>,
  ): void {
    for (const [key, fields] of counters) {
      if (this.counters.size >= MAX_PENDING_KEYS && !this.counters.has(key)) continue;
      for (const [field, n] of fields) this.incr(key, field, n, ttls.get(key) ?? this.options.coarseRetentionS + COARSE_S);
    }
    for (const [key, byHost] of hosts) {
      if (this.hosts.size >= MAX_PENDING_KEYS && !this.hosts.has(key)) continue;
      let hm = this.hosts.get(key);
      if (!hm) {
        hm = new Map();
        this.hosts.set(key, hm);
      }
      for (const [host, t] of byHost) {
        const h = hm.get(host);
        if (!h) hm.set(host, t);
        else {
          h.ok += t.ok;
          h.fail += t.fail;
          h.dead += t.dead;
          h.err ??= t.err;
        }
      }
    }
  }
}

/**
 * The `n` busiest hosts (failures first, then volume) with the rest folded into OTHER_HOST, so a
 * flood of distinct hosts cannot grow the host hashes without bound.
 */
export function topHosts<T extends HostTally>(byHost: ReadonlyMap<string, T>, n: number): [string, HostTally][] {
  const all = [...byHost.entries()];
  if (all.length <= n) return all;
  all.sort(([, a], [, b]) => b.fail - a.fail || b.ok + b.fail - (a.ok + a.fail));
  const kept: [string, HostTally][] = all.slice(0, Math.max(0, n - 1));
  const other: HostTally = { ok: 0, fail: 0, dead: 0 };
  for (const [, t] of all.slice(kept.length)) {
    other.ok += t.ok;
    other.fail += t.fail;
    other.dead += t.dead;
    if (t.err) other.err = t.err;
  }
  kept.push([OTHER_HOST, other]);
  return kept;
}

// ------------------------------------------------------------------------------------- reading

export interface StatsSeries {
  /** Bucket starts, s since the epoch. */
  readonly t: number[];
  readonly accepted: number[];
  readonly delivered: number[];
  readonly retried: number[];
  readonly deadLettered: number[];
  /** Failed attempts: retried + dead-lettered. */
  readonly failed: number[];
  /** Ingest-to-delivery latency percentiles of the postbacks delivered in each bucket, ms (null: none). */
  readonly p50: (number | null)[];
  readonly p95: (number | null)[];
  readonly p99: (number | null)[];
  /** The queue as last sampled in each bucket (null: no sample): live postbacks, retry set, dead letters. */
  readonly queueLive: (number | null)[];
  readonly queueRetry: (number | null)[];
  readonly queueDead: (number | null)[];
}

export interface StatsTotals {
  readonly accepted: number;
  readonly delivered: number;
  readonly retried: number;
  readonly deadLettered: number;
  readonly failed: number;
  readonly latencyP50Ms: number | null;
  readonly latencyP95Ms: number | null;
  readonly latencyP99Ms: number | null;
  readonly latencyMeanMs: number | null;
  /** Dead letters by reason (destination_forbidden, attempts_exhausted, ...): only the reasons seen. */
  readonly deadLetteredByReason: Record<string, number>;
}

export interface HostStat {
  readonly host: string;
  readonly delivered: number;
  readonly failed: number;
  readonly deadLettered: number;
  readonly lastError: { at: number; status: number | null; error: string } | null;
}

export interface StatsView {
  readonly resolutionS: number;
  readonly from: number;
  readonly to: number;
  readonly series: StatsSeries;
  readonly totals: StatsTotals;
  /** Hosts with failed attempts in the window, most failures first. */
  readonly failingHosts: HostStat[];
}

const num = (v: string | undefined) => (v === undefined ? 0 : Number(v) || 0);
const round1 = (v: number | undefined) => (v === undefined ? null : Math.round(v * 10) / 10);

function histogramOf(h: Record<string, string> | null): number[] {
  const out = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  if (h) for (let i = 0; i < out.length; i++) out[i] = num(h[`l${i}`]);
  return out;
}

/**
 * A gauge series with its gaps filled: a bucket without a sample holds the last sample before it
 * (looked for in `prior`, the buckets just before the window, oldest first, then in the window), for
 * at most `maxGapBuckets` buckets; after that, null (nothing sampled that long: every sampler stopped).
 * Samplers write a sample only when the value changes or gets old, so a gap means "unchanged".
 */
export function holdGauges(values: readonly (number | null)[], prior: readonly (number | null)[], maxGapBuckets: number): (number | null)[] {
  let last: number | null = null;
  let gap = Infinity;
  for (const v of prior) {
    if (v !== null) {
      last = v;
      gap = 0;
    } else gap++;
  }
  return values.map((v) => {
    if (v !== null) {
      last = v;
      gap = 0;
      return v;
    }
    gap++;
    return last !== null && gap <= maxGapBuckets ? last : null;
  });
}

export interface HeldGauges {
  /** The buckets just before the window (oldest first; null: no sample), for the queue gauges. */
  readonly prior: readonly (Record<string, string> | null)[];
  /** Buckets a queue sample holds for (QUEUE_SAMPLE_REFRESH_MS plus one bucket, in buckets). */
  readonly maxGapBuckets: number;
}

/**
 * Turn bucket hashes (oldest first, null for a bucket with no data) into series and totals. Pure, so
 * the arithmetic is tested without Redis. With `held`, the queue gauges hold their last sample.
 */
export function summarize(
  starts: readonly number[],
  buckets: readonly (Record<string, string> | null)[],
  held?: HeldGauges,
): { series: StatsSeries; totals: StatsTotals } {
  const series: StatsSeries = {
    t: [...starts], accepted: [], delivered: [], retried: [], deadLettered: [], failed: [], p50: [], p95: [], p99: [],
    queueLive: [], queueRetry: [], queueDead: [],
  };
  const gauge = (v: string | undefined) => (v === undefined ? null : num(v));
  const all = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  let lsum = 0;
  const byReason: Record<string, number> = {};
  buckets.forEach((h) => {
    const f = h ?? {};
    for (const field in f) if (field.startsWith('d:')) byReason[field.slice(2)] = (byReason[field.slice(2)] ?? 0) + num(f[field]);
    const ok = num(f.ok), retry = num(f.retry), dead = num(f.dead);
    series.accepted.push(num(f.acc));
    series.delivered.push(ok);
    series.retried.push(retry);
    series.deadLettered.push(dead);
    series.failed.push(retry + dead);
    const hist = histogramOf(h);
    hist.forEach((c, i) => (all[i]! += c));
    lsum += num(f.lsum);
    series.p50.push(round1(percentile(hist, 0.5)));
    series.p95.push(round1(percentile(hist, 0.95)));
    series.p99.push(round1(percentile(hist, 0.99)));
    series.queueLive.push(gauge(f.qlive));
    series.queueRetry.push(gauge(f.qretry));
    series.queueDead.push(gauge(f.qdead));
  });
  if (held) {
    const prior = (field: string) => held.prior.map((h) => gauge(h?.[field]));
    series.queueLive.splice(0, Infinity, ...holdGauges(series.queueLive, prior('qlive'), held.maxGapBuckets));
    series.queueRetry.splice(0, Infinity, ...holdGauges(series.queueRetry, prior('qretry'), held.maxGapBuckets));
    series.queueDead.splice(0, Infinity, ...holdGauges(series.queueDead, prior('qdead'), held.maxGapBuckets));
  }
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const delivered = sum(series.delivered);
  return {
    series,
    totals: {
      accepted: sum(series.accepted),
      delivered,
      retried: sum(series.retried),
      deadLettered: sum(series.deadLettered),
      failed: sum(series.failed),
      latencyP50Ms: round1(percentile(all, 0.5)),
      latencyP95Ms: round1(percentile(all, 0.95)),
      latencyP99Ms: round1(percentile(all, 0.99)),
      latencyMeanMs: delivered > 0 ? round1(lsum / delivered) : null,
      deadLetteredByReason: byReason,
    },
  };
}

/** Fold host bucket hashes into per-host totals: the failing ones, most failures first, at most `limit`. */
export function failingHosts(buckets: readonly (Record<string, string> | null)[], limit: number): HostStat[] {
  const by = new Map<string, { delivered: number; failed: number; deadLettered: number; lastError: HostStat['lastError'] }>();
  for (const h of buckets) {
    if (!h) continue;
    for (const [field, value] of Object.entries(h)) {
      const bar = field.lastIndexOf('|');
      if (bar < 0) continue;
      const host = field.slice(0, bar);
      let s = by.get(host);
      if (!s) {
        s = { delivered: 0, failed: 0, deadLettered: 0, lastError: null };
        by.set(host, s);
      }
      switch (field.slice(bar + 1)) {
        case 'ok':
          s.delivered += num(value);
          break;
        case 'fail':
          s.failed += num(value);
          break;
        case 'dead':
          s.deadLettered += num(value);
          break;
        case 'err':
          try {
            const e = JSON.parse(value) as { at: number; status: number | null; error: string };
            if (!s.lastError || e.at > s.lastError.at) s.lastError = e;
          } catch {
            /* a damaged field: ignore it */
          }
      }
    }
  }
  return [...by.entries()]
    .filter(([, s]) => s.failed > 0)
    .sort(([ha, a], [hb, b]) => b.failed - a.failed || (ha < hb ? -1 : 1))
    .slice(0, limit)
    .map(([host, s]) => ({ host, ...s }));
}

export interface ReadOptions {
  readonly resolutionS: typeof FINE_S | typeof COARSE_S;
  /** Length of the window ending now, s. */
  readonly windowS: number;
  readonly now?: number;
  readonly hostLimit?: number;
  /** How often samplers refresh an unchanged queue sample, ms (QUEUE_SAMPLE_REFRESH_MS). */
  readonly queueSampleRefreshMs?: number;
}

/**
 * Read a window of statistics: one pipelined HGETALL per bucket, plus the queue sample fields of the
 * buckets just before the window (a sample holds until the next: see holdGauges).
 */
export async function readStats(redis: Redis, prefix: string, o: ReadOptions): Promise<StatsView> {
  const keys = statsKeys(prefix);
  const now = o.now ?? Date.now();
  const width = o.resolutionS;
  const last = bucketStart(now, width);
  const n = Math.max(1, Math.ceil(o.windowS / width));
  const starts = Array.from({ length: n }, (_, i) => last - (n - 1 - i) * width);
  const hostStarts: number[] = [];
  for (let s = bucketStart(starts[0]! * 1000, COARSE_S); s <= last; s += COARSE_S) hostStarts.push(s);
  const holdBuckets = Math.ceil((o.queueSampleRefreshMs ?? QUEUE_SAMPLE_REFRESH_MS) / 1000 / width) + 1;
  const p = redis.pipeline();
  for (const s of starts) p.hgetall(keys.bucket(width, s));
  for (const s of hostStarts) p.hgetall(keys.hosts(s));
  for (let i = holdBuckets; i >= 1; i--) p.hmget(keys.bucket(width, starts[0]! - i * width), 'qlive', 'qretry', 'qdead');
  const replies = (await p.exec()) ?? [];
  const hashes = replies.slice(0, starts.length + hostStarts.length).map(([err, v]) => {
    if (err) throw err;
    const h = v as Record<string, string>;
    return Object.keys(h).length ? h : null;
  });
  const prior = replies.slice(starts.length + hostStarts.length).map(([err, v]) => {
    if (err) throw err;
    const [qlive, qretry, qdead] = v as (string | null)[];
    return qlive === null || qlive === undefined ? null : { qlive, qretry: qretry ?? "0", qdead: qdead ?? "0" };
  });
  const { series, totals } = summarize(starts, hashes.slice(0, starts.length), { prior, maxGapBuckets: holdBuckets });
  return {
    resolutionS: width,
    from: starts[0]!,
    to: last + width,
    series,
    totals,
    failingHosts: failingHosts(hashes.slice(starts.length), o.hostLimit ?? 10),
  };
}
