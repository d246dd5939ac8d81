/**
 * Metrics and statistics on the real pipeline (real Redis, real HTTP): what /stats and /metrics say
 * matches what really happened, counted by the test itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Stack } from '../helpers/stack.js';
import { parseMetrics, sample } from '../helpers/prom.js';

describe('monitoring on the in-process stack', () => {
  let stack: Stack;
  const GOOD = 7; // requests to /ok, 3 postbacks each
  const BAD = 2; // requests to /fail, 1 postback each: 500 every time, 2 attempts, then dead letter

  before(async () => {
    stack = await Stack.start({
      monitoring: true,
      env: { DELIVERY_MAX_ATTEMPTS: '2', STATS_FLUSH_INTERVAL_MS: '200' },
      handler: (req) => (req.url.startsWith('/fail') ? { status: 500, body: 'partner broke' } : { status: 200 }),
    });
    for (let i = 0; i < GOOD; i++) {
      const r = await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/ok?n={n}` }, data: [{ n: 1 }, { n: 2 }, { n: 3 }] });
      assert.equal(r.status, 202);
    }
    for (let i = 0; i < BAD; i++) {
      const r = await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/fail?n={n}` }, data: [{ n: i }] });
      assert.equal(r.status, 202);
    }
    await stack.waitForEvents('delivery_succeeded', GOOD * 3);
    await stack.waitForEvents('delivery_dead_lettered', BAD);
    // The log line comes before the settle reaches Redis: wait for the queue to show it, so the
    // queue sample taken by the flush below sees the final state.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const st = await stack.queue.status();
      if (st.deadLetters === BAD && st.live === 0) break;
      assert.ok(Date.now() < deadline, `queue never settled: ${JSON.stringify(st)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await stack.flushStats();
  });

  after(async () => {
    await stack?.stop();
  });

  it('/stats counts what was accepted, delivered, retried and dead-lettered', async () => {
    const res = await fetch(`${stack.ingestBase}/stats?window=600`);
    assert.equal(res.status, 200);
    const s = (await res.json()) as any;
    assert.equal(s.resolutionS, 10);
    assert.equal(s.series.t.length, 60);
    assert.deepEqual(
      { ...s.totals, latencyP50Ms: undefined, latencyP95Ms: undefined, latencyP99Ms: undefined, latencyMeanMs: undefined },
      {
        accepted: GOOD * 3 + BAD,
        delivered: GOOD * 3,
        retried: BAD,
        deadLettered: BAD,
        failed: BAD * 2,
        latencyP50Ms: undefined,
        latencyP95Ms: undefined,
        latencyP99Ms: undefined,
        latencyMeanMs: undefined,
        deadLetteredByReason: { attempts_exhausted: BAD },
      },
    );
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    assert.equal(sum(s.series.delivered), GOOD * 3, 'the series add up to the totals');
    assert.ok(s.totals.latencyP50Ms > 0 && s.totals.latencyP99Ms >= s.totals.latencyP50Ms);
    const host = new URL(stack.endpoint).host;
    assert.deepEqual(s.failingHosts.map((h: any) => [h.host, h.failed, h.deadLettered, h.lastError.status, h.lastError.error]), [
      [host, BAD * 2, BAD, 500, 'HTTP 500'],
    ]);
    assert.equal(s.queue.deadLetters, BAD);
    assert.equal(s.queue.live, 0);
    // The worker samples the queue into the buckets on every flush.
    const last = (a: (number | null)[]) => a.filter((v) => v !== null).at(-1);
    assert.equal(last(s.series.queueDead), BAD);
    assert.equal(last(s.series.queueLive), 0);
    assert.equal(last(s.series.queueRetry), 0);
  });

  it('/stats at 1-minute resolution says the same, and refuses a bad window', async () => {
    const s = (await (await fetch(`${stack.ingestBase}/stats?window=7200`)).json()) as any;
    assert.equal(s.resolutionS, 60);
    assert.equal(s.totals.delivered, GOOD * 3);
    assert.equal(s.totals.accepted, GOOD * 3 + BAD);
    for (const q of ['window=5', 'window=abc', 'res=30']) {
      const bad = await fetch(`${stack.ingestBase}/stats?${q}`);
      assert.equal(bad.status, 400, q);
      assert.equal(((await bad.json()) as any).error.code, 'ERR_BAD_REQUEST');
    }
  });

  it('/metrics has request, enqueue, delivery, queue and process metrics', async () => {
    // /metrics asks the worker for its registry over pub/sub (the stack's worker has its own exchange).
    const res = await fetch(`${stack.ingestBase}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const m = parseMetrics(await res.text());
    const host = new URL(stack.endpoint).host;
    assert.equal(sample(m, 'postback_http_requests_total', { route: '/i', method: 'POST', status: '202', service: 'ingest' }), GOOD + BAD);
    assert.equal(sample(m, 'postback_http_request_duration_seconds_count', { route: '/i' }), GOOD + BAD);
    assert.equal(sample(m, 'postback_postbacks_enqueued_total', {}), GOOD * 3 + BAD);
    assert.equal(sample(m, 'postback_deliveries_total', { outcome: 'delivered', host, service: 'delivery', instance: 'test-worker' }), GOOD * 3);
    assert.equal(sample(m, 'postback_deliveries_total', { outcome: 'retried', host }), BAD);
    assert.equal(sample(m, 'postback_deliveries_total', { outcome: 'dead_lettered', host }), BAD);
    assert.equal(sample(m, 'postback_delivery_duration_seconds_count', { outcome: 'delivered' }), GOOD * 3);
    assert.equal(sample(m, 'postback_delivery_latency_seconds_count', {}), GOOD * 3);
    assert.equal(sample(m, 'postback_dead_letters', {}), BAD);
    assert.equal(sample(m, 'postback_queue_live', {}), 0);
    assert.equal(sample(m, 'postback_retry_scheduled', {}), 0);
    assert.equal(sample(m, 'postback_metrics_processes', {}), 2);
    for (const service of ['ingest', 'delivery']) {
      assert.ok(sample(m, 'process_resident_memory_bytes', { service })! > 0, `${service} memory`);
      assert.ok(sample(m, 'nodejs_eventloop_lag_seconds', { service }) !== undefined, `${service} event-loop lag`);
    }
  });

  it('counts refused requests by their status', async () => {
    await stack.post('{"endpoint":');
    const m = parseMetrics(await (await fetch(`${stack.ingestBase}/metrics`)).text());
    assert.equal(sample(m, 'postback_http_requests_total', { route: '/i', status: '400' }), 1);
  });

  it('/metrics still answers while Redis is down, saying so', async () => {
    await stack.redisServer.stop();
    try {
      const res = await fetch(`${stack.ingestBase}/metrics`);
      assert.equal(res.status, 200);
      const m = parseMetrics(await res.text());
      assert.equal(sample(m, 'postback_redis_up', {}), 0);
      assert.ok(sample(m, 'postback_http_requests_total', { route: '/i', status: '202' })! > 0, 'its own metrics are there');
      assert.equal(sample(m, 'postback_queue_live', {}), undefined, 'no queue gauges it could not read');
    } finally {
      await stack.redisServer.launch();
    }
    // Back to 1 once ingest has reconnected by itself.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const m = parseMetrics(await (await fetch(`${stack.ingestBase}/metrics`)).text());
      if (sample(m, 'postback_redis_up', {}) === 1) break;
      assert.ok(Date.now() < deadline, 'postback_redis_up stayed 0 after Redis came back');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
});
