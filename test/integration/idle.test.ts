/**
 * Idle means quiet: with nothing to deliver, one ingest and two workers (real processes, short
 * intervals so a few seconds show many cycles) append nothing to Redis's AOF but the workers'
 * heartbeats: no statistics flush, no queue sample, no metrics. And it stays correct while quiet:
 * /metrics (asked over pub/sub, which the AOF never sees) still shows every process, /stats still
 * shows the queue as last sampled, and the workers are alive by their heartbeats.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { AppProcess } from '../helpers/app-process.js';
import { aofCommandsSince, aofSize, countByName } from '../helpers/aof.js';
import { parseMetrics, sample } from '../helpers/prom.js';
import { Receiver } from '../helpers/receiver.js';
import { RedisServer, freePort } from '../helpers/redis-server.js';
import { QueueInspector } from '../../src/shared/queue.js';

const HEARTBEAT_MS = 1500;
const ENV = {
  STATS_FLUSH_INTERVAL_MS: '100',
  DELIVERY_BLOCK_MS: '100',
  DELIVERY_MAINTENANCE_INTERVAL_MS: '50',
  DELIVERY_HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS),
  DELIVERY_ALLOW_NETWORKS: '127.0.0.0/8',
};
const IDLE_MS = 6000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('an idle appliance writes nothing but heartbeats', () => {
  let redis: RedisServer;
  let receiver: Receiver;
  let port: number;
  const procs: AppProcess[] = [];

  before(async () => {
    redis = await RedisServer.start({ appendonly: true, appendfsync: 'everysec' });
    receiver = await Receiver.start();
    port = await freePort();
    procs.push(AppProcess.start('ingest', { ...ENV, REDIS_URL: redis.url, INGEST_PORT: String(port) }));
    for (const i of [0, 1]) procs.push(AppProcess.start('delivery', { ...ENV, REDIS_URL: redis.url, NODE_APP_INSTANCE: String(i), DELIVERY_CONSUMER_NAME: `idle-${i}` }));
    await Promise.all(procs.map((p) => p.waitForEvent(p.service === 'ingest' ? 'ingest_ready' : 'worker_started')));
    const res = await fetch(`http://127.0.0.1:${port}/i`, {
      method: 'POST',
      body: JSON.stringify({ endpoint: { method: 'GET', url: `${receiver.base}/idle?n={n}` }, data: [{ n: 1 }, { n: 2 }, { n: 3 }] }),
    });
    assert.equal(res.status, 202);
    await receiver.waitFor(3);
    // The statistics of that request, and the queue back at 0, reach Redis within a few flushes.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const s = (await (await fetch(`http://127.0.0.1:${port}/stats?window=300`)).json()) as any;
      if (s.totals.delivered === 3 && s.series.queueLive.at(-1) === 0) break;
      assert.ok(Date.now() < deadline, `statistics never caught up: ${JSON.stringify(s.totals)}`);
      await sleep(100);
    }
    await sleep(1500); // the last flushes and everysec's write
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await receiver?.close();
    await redis?.destroy();
  });

  it(`for ${IDLE_MS / 1000} s (60 flushes per process), and while /metrics is scraped`, async () => {
    const from = aofSize(redis.dir);
    const t0 = Date.now();
    const end = t0 + IDLE_MS;
    let scrapes = 0;
    while (Date.now() < end) {
      const m = parseMetrics(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
      assert.equal(sample(m, 'postback_metrics_processes', {}), 3, 'every process answers while idle');
      assert.equal(sample(m, 'postback_deliveries_total', { outcome: 'delivered' }), 3);
      scrapes++;
      await sleep(1000);
    }
    await sleep(1200); // appendfsync everysec
    const commands = aofCommandsSince(redis.dir, from);
    const counts = countByName(commands);
    const others = commands.filter((c) => !(c[0] === 'SET' && /^pb:hb:idle-[01]$/.test(c[1] ?? '')));
    assert.deepEqual(others, [], `only heartbeats may be written while idle; got ${JSON.stringify(counts)}`);
    // One heartbeat per worker per interval, no more.
    const elapsed = Date.now() - t0;
    const beats = counts.SET ?? 0;
    const most = 2 * (Math.ceil(elapsed / HEARTBEAT_MS) + 1);
    assert.ok(beats >= 2 && beats <= most, `${beats} heartbeats in ${elapsed} ms, expected 2..${most}`);
    assert.ok(scrapes >= 5);
  });

  it('the dashboard still shows the queue as last sampled, held across the quiet buckets', async () => {
    const c = new Redis(redis.url);
    try {
      // The last sample any process wrote, and the 10 s bucket it went into; be a bucket past it.
      const at = Number(await c.hget('pb:stq', 'at'));
      const written = Math.floor(at / 10_000);
      while (Math.floor(Date.now() / 10_000) <= written) await sleep(200);
      const s = (await (await fetch(`http://127.0.0.1:${port}/stats?window=300`)).json()) as any;
      assert.equal(s.totals.delivered, 3);
      const t: number[] = s.series.t;
      const since = t.findIndex((start) => start >= written * 10);
      assert.ok(since >= 0 && since < t.length - 1);
      // No sample was written in the buckets after it, yet each shows the queue as it is: empty.
      assert.deepEqual(s.series.queueLive.slice(since), t.slice(since).map(() => 0));
      assert.deepEqual(s.series.queueDead.slice(since), t.slice(since).map(() => 0));
      for (const start of t.slice(since + 1)) assert.equal(await c.hget(`pb:st:10:${start}`, 'qlive'), null);
    } finally {
      c.disconnect();
    }
  });

  it('the workers are alive by their heartbeats, which the Redis version does not change', async () => {
    const c = new Redis(redis.url);
    try {
      const { consumers } = await new QueueInspector(c, 'pb').inspect();
      assert.deepEqual(consumers.map((x) => x.name).sort(), ['idle-0', 'idle-1']);
      for (const x of consumers) {
        assert.ok(x.heartbeatAgeMs !== undefined && x.heartbeatAgeMs <= HEARTBEAT_MS + 1000, `${x.name}: heartbeat ${x.heartbeatAgeMs} ms old`);
      }
    } finally {
      c.disconnect();
    }
  });
});
