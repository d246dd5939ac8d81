/**
 * One coherent view from several real processes (two ingest, two delivery workers, as pm2 runs them):
 * whichever ingest answers /metrics or /stats, the answer covers every process. And nginx keeps the
 * monitoring routes to loopback or the operator's network (postback-access.d).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppProcess } from '../helpers/app-process.js';
import { Nginx } from '../helpers/nginx.js';
import { parseMetrics, sample, type Sample } from '../helpers/prom.js';
import { Receiver } from '../helpers/receiver.js';
import { RedisServer, freePort } from '../helpers/redis-server.js';

const ENV = {
  STATS_FLUSH_INTERVAL_MS: '200',
  DELIVERY_BLOCK_MS: '100',
  DELIVERY_MAINTENANCE_INTERVAL_MS: '50',
};

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await get();
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last).slice(0, 500)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('metrics and statistics across processes', () => {
  let redis: RedisServer;
  let receiver: Receiver;
  const ingest: AppProcess[] = [];
  const workers: AppProcess[] = [];
  let ports: number[] = [];
  let nginx: Nginx;
  let denied: Nginx;
  const REQUESTS = 20;
  const PER_REQUEST = 5;

  before(async () => {
    redis = await RedisServer.start();
    receiver = await Receiver.start();
    ports = [await freePort(), await freePort()];
    ports.forEach((port, i) =>
      ingest.push(AppProcess.start('ingest', { ...ENV, REDIS_URL: redis.url, INGEST_PORT: String(port), NODE_APP_INSTANCE: String(i) })),
    );
    for (let i = 0; i < 2; i++) {
      workers.push(AppProcess.start('delivery', { ...ENV, REDIS_URL: redis.url, NODE_APP_INSTANCE: String(i), DELIVERY_CONSUMER_NAME: `w${i}` }));
    }
    await Promise.all([...ingest.map((p) => p.waitForEvent('ingest_ready')), ...workers.map((p) => p.waitForEvent('worker_started'))]);
    nginx = await Nginx.start({ upstreamPorts: ports });
    denied = await Nginx.start({ upstreamPorts: ports, monitoringAccess: 'deny 127.0.0.1;\n' });
    // Every request to the first ingest only.
    for (let r = 0; r < REQUESTS; r++) {
      const data = Array.from({ length: PER_REQUEST }, (_, i) => ({ n: `${r}-${i}` }));
      const res = await fetch(`http://127.0.0.1:${ports[0]}/i`, {
        method: 'POST',
        body: JSON.stringify({ endpoint: { method: 'GET', url: `${receiver.base}/pb?n={n}` }, data }),
      });
      assert.equal(res.status, 202);
    }
    await receiver.waitFor(REQUESTS * PER_REQUEST);
  });

  after(async () => {
    await nginx?.stop();
    await denied?.stop();
    await Promise.all([...ingest, ...workers].map((p) => p.stop()));
    await receiver?.close();
    await redis?.destroy();
  });

  it('the ingest that served no request reports every process, and the counts add up', async () => {
    const get = async () => parseMetrics(await (await fetch(`http://127.0.0.1:${ports[1]}/metrics`)).text());
    const m = await until<Sample[]>(
      'metrics from the other ingest',
      get,
      // Each process pushes its snapshot on its own interval, so wait until every count is in: the
      // deliveries can finish before ingest 0 has pushed the snapshot that holds its last requests.
      (m) =>
        sample(m, 'postback_deliveries_total', { outcome: 'delivered' }) === REQUESTS * PER_REQUEST &&
        sample(m, 'postback_postbacks_enqueued_total', {}) === REQUESTS * PER_REQUEST &&
        sample(m, 'postback_http_requests_total', { route: '/i', status: '202' }) === REQUESTS &&
        sample(m, 'postback_metrics_processes', {}) === 4,
    );
    assert.equal(sample(m, 'postback_http_requests_total', { route: '/i', status: '202', instance: ingest0(m) }), REQUESTS);
    assert.equal(sample(m, 'postback_postbacks_enqueued_total', {}), REQUESTS * PER_REQUEST);
    const instances = new Set(m.filter((s) => s.name === 'process_resident_memory_bytes').map((s) => s.labels.instance));
    assert.equal(instances.size, 4, `one memory series per process: ${[...instances].join(', ')}`);
    assert.ok(instances.has('w0') && instances.has('w1'));
    // Workers share the work; each has its own series, and they add up.
    const perWorker = ['w0', 'w1'].map((w) => sample(m, 'postback_deliveries_total', { outcome: 'delivered', instance: w }) ?? 0);
    assert.equal(perWorker[0]! + perWorker[1]!, REQUESTS * PER_REQUEST);
    // Queue-wide gauges appear once, not once per process.
    assert.equal(m.filter((s) => s.name === 'postback_queue_live').length, 1);
  });

  it('/stats through nginx counts the postbacks of every process', async () => {
    const s = await until<any>(
      'stats through nginx',
      async () => (await fetch(`${nginx.base}/stats?window=300`)).json(),
      (s) => s.totals?.delivered === REQUESTS * PER_REQUEST,
    );
    assert.equal(s.totals.accepted, REQUESTS * PER_REQUEST);
    assert.equal(s.totals.failed, 0);
    assert.equal(s.queue.live, 0);
  });

  it('nginx serves /metrics, /stats and /dashboard/ to loopback', async () => {
    for (const p of ['/metrics', '/stats', '/dashboard/', '/dashboard/dashboard.js']) {
      const res = await fetch(nginx.base + p);
      assert.equal(res.status, 200, p);
      await res.arrayBuffer();
    }
  });

  it('with every delivery worker stopped, ingest still samples the backlog into the statistics', async () => {
    await Promise.all(workers.map((w) => w.stop()));
    const BACKLOG = 7;
    const res = await fetch(`http://127.0.0.1:${ports[1]}/i`, {
      method: 'POST',
      body: JSON.stringify({ endpoint: { method: 'GET', url: `${receiver.base}/pb?n={n}` }, data: Array.from({ length: BACKLOG }, (_, i) => ({ n: `b${i}` })) }),
    });
    assert.equal(res.status, 202);
    const s = await until<any>(
      'the backlog in the sampled series',
      async () => (await fetch(`${nginx.base}/stats?window=300`)).json(),
      (s) => s.series?.queueLive?.at(-1) === BACKLOG,
    );
    assert.equal(s.queue.live, BACKLOG);
  });

  it('a deny rule in postback-access.d closes the monitoring routes, and only them', async () => {
    for (const p of ['/metrics', '/stats', '/dashboard', '/dashboard/', '/dashboard/dashboard.js']) {
      const res = await fetch(denied.base + p, { redirect: 'manual' });
      assert.equal(res.status, 403, p);
      await res.arrayBuffer();
    }
    const health = await fetch(denied.base + '/health');
    assert.equal(health.status, 200);
    const post = await fetch(denied.base + '/i', {
      method: 'POST',
      body: JSON.stringify({ endpoint: { method: 'GET', url: `${receiver.base}/x` }, data: [{}] }),
    });
    assert.equal(post.status, 202);
  });
});

/** The instance label of the first ingest process (hostname-ingest-0). */
function ingest0(m: Sample[]): string {
  const name = m.find((s) => s.labels.service === 'ingest' && s.labels.instance?.endsWith('-ingest-0'))?.labels.instance;
  assert.ok(name, 'no series from ingest instance 0');
  return name;
}
