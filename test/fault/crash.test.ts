/**
 * Fault injection with counts: postbacks that ingest accepted are delivered (at least once) whatever
 * crashes. The delivery worker and ingest run as real processes (dist/*), killed with real signals;
 * Redis is a real redis-server with AOF, stopped and killed mid-stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { AppProcess } from '../helpers/app-process.js';
import { Receiver } from '../helpers/receiver.js';
import { RedisServer, freePort } from '../helpers/redis-server.js';
import { Stack } from '../helpers/stack.js';
import { PostingClients, Tally } from '../helpers/tally.js';

/** Delivery-worker settings for fault tests: short timeouts so take-overs happen within seconds. */
const WORKER_ENV = {
  DELIVERY_TIMEOUT_MS: '1000',
  DELIVERY_CLAIM_MIN_IDLE_MS: '2500',
  DELIVERY_MAINTENANCE_INTERVAL_MS: '200',
  DELIVERY_BLOCK_MS: '500',
  DELIVERY_SHUTDOWN_TIMEOUT_MS: '2000',
  DELIVERY_BACKOFF_BASE_MS: '50',
  DELIVERY_BACKOFF_MAX_MS: '500',
  DELIVERY_CONCURRENCY: '64',
  DELIVERY_REDIS_DOWN_EXIT_MS: '60000',
  LOG_LEVEL: 'info',
};

async function queueIsEmpty(redis: Redis, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [len, pending, retry, dead] = await Promise.all([
      redis.xlen('pb:queue'),
      redis.xpending('pb:queue', 'delivery').then((r) => Number((r as unknown[])[0])),
      redis.zcard('pb:retry'),
      redis.xlen('pb:dead'),
    ]);
    if (len === 0 && pending === 0 && retry === 0 && dead === 0) return;
    if (Date.now() > deadline) assert.fail(`queue not empty: stream ${len}, pending ${pending}, retry ${retry}, dead ${dead}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Enqueue `total` postbacks through the ingest app, `perRequest` data objects per request. */
async function ingest(stack: Stack, endpoint: string, total: number, perRequest: number, seqPrefix = ''): Promise<string[]> {
  const seqs: string[] = [];
  for (let start = 0; start < total; start += perRequest) {
    const data = [];
    for (let i = start; i < Math.min(total, start + perRequest); i++) {
      data.push({ seq: `${seqPrefix}${i}` });
      seqs.push(`${seqPrefix}${i}`);
    }
    const res = await stack.post({ endpoint: { method: 'GET', url: `${endpoint}/pb?seq={seq}` }, data });
    assert.equal(res.status, 202);
  }
  return seqs;
}

describe('faults', () => {
  let redisServer: RedisServer;
  let redis: Redis;
  let receiver: Receiver;
  let tally: Tally;
  let stack: Stack; // the ingest side, in-process
  const workers: AppProcess[] = [];
  /** How long the endpoint takes to answer; tests that want deliveries in flight raise it. */
  let endpointDelayMs = 2;

  const startWorker = async (name: string, env: Record<string, string> = {}) => {
    const w = AppProcess.start('delivery', { ...WORKER_ENV, REDIS_URL: redisServer.url, DELIVERY_CONSUMER_NAME: name, ...env });
    workers.push(w);
    await w.waitForEvent('worker_started');
    return w;
  };

  before(async () => {
    redisServer = await RedisServer.start({ appendonly: true, appendfsync: 'everysec' });
    redis = redisServer.client();
    tally = new Tally();
    receiver = await Receiver.start((req) => {
      tally.add(req.url);
      return { delayMs: endpointDelayMs };
    });
    stack = await Stack.start({ redis: redisServer, worker: false });
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.stop(5000)));
    redis.disconnect();
    await stack.stop();
    await receiver.close();
    await redisServer.destroy();
  });

  it('kill -9 of the delivery process with 10,000 postbacks in flight: a new one delivers every one', async (t) => {
    const seqs = await ingest(stack, receiver.base, 10_000, 100, 'k');
    const first = await startWorker('crash-a');
    // Let it get well into the backlog, then kill it without warning.
    while (tally.seen.size < 2000) await new Promise((r) => setTimeout(r, 10));
    first.kill('SIGKILL');
    await first.waitExit();
    const deliveredBeforeKill = tally.seen.size;
    const pendingAfterKill = Number(((await redis.xpending('pb:queue', 'delivery')) as unknown[])[0]);
    assert.ok(pendingAfterKill > 0, 'the killed worker left postbacks unsettled (the test really cut it mid-flight)');

    // A different worker takes over what the dead one held (XAUTOCLAIM after the min idle time)...
    const second = await startWorker('crash-b');
    await tally.waitForAll(seqs, 60_000);
    await queueIsEmpty(redis);
    assert.ok(second.events('postbacks_claimed').length > 0, 'the new worker claimed the dead one\'s postbacks');
    t.diagnostic(
      `10,000 postbacks: ${deliveredBeforeKill} delivered before kill -9, ${pendingAfterKill} left pending, ` +
        `all 10,000 delivered after; ${tally.duplicates} delivered twice`,
    );
    assert.deepEqual(tally.missing(seqs), []);
    await second.stop();
  });

  it('kill -9 and restart under the same name: the worker resumes its own pending postbacks at once', async () => {
    const seqs = await ingest(stack, receiver.base, 3000, 100, 's');
    const first = await startWorker('same-name');
    const start = tally.seen.size;
    while (tally.seen.size < start + 500) await new Promise((r) => setTimeout(r, 10));
    first.kill('SIGKILL');
    await first.waitExit();
    const again = await startWorker('same-name');
    await again.waitForEvent('pending_resumed');
    await tally.waitForAll(seqs, 60_000);
    await queueIsEmpty(redis);
    await again.stop();
  });

  it('SIGTERM mid-stream: the worker finishes or hands back what it holds, exits 0, and nothing is lost', async () => {
    endpointDelayMs = 300; // slow, so that many deliveries are in flight when the signal comes
    try {
      const seqs = await ingest(stack, receiver.base, 2000, 100, 't');
      const w = await startWorker('term-a');
      const start = tally.seen.size;
      while (tally.seen.size < start + 200) await new Promise((r) => setTimeout(r, 10));
      w.kill('SIGTERM');
      const code = await w.waitExit(15_000);
      assert.equal(code, 0);
      const stopped = w.events('worker_stopped')[0];
      assert.ok(stopped, 'logged worker_stopped');
      // Nothing it read is left pending: finished (acked) or released back to the stream.
      const pending = Number(((await redis.xpending('pb:queue', 'delivery')) as unknown[])[0]);
      assert.equal(pending, 0, 'a SIGTERMed worker leaves nothing pending');
      const next = await startWorker('term-b');
      await tally.waitForAll(seqs, 60_000);
      await queueIsEmpty(redis);
      await next.stop();
    } finally {
      endpointDelayMs = 2;
    }
  });

  it('SIGTERM with deliveries slower than the shutdown timeout: they are aborted, handed back, and redelivered', async () => {
    endpointDelayMs = 900;
    try {
      const seqs = await ingest(stack, receiver.base, 100, 100, 'u');
      const w = await startWorker('abort-a', { DELIVERY_SHUTDOWN_TIMEOUT_MS: '100', DELIVERY_TIMEOUT_MS: '5000', DELIVERY_CLAIM_MIN_IDLE_MS: '20000' });
      const start = tally.seen.size;
      while (tally.seen.size < start + 50) await new Promise((r) => setTimeout(r, 10));
      w.kill('SIGTERM');
      assert.equal(await w.waitExit(15_000), 0);
      assert.ok(w.events('shutdown_abort_in_flight').length === 1, 'in-flight deliveries were aborted');
      assert.equal(Number(((await redis.xpending('pb:queue', 'delivery')) as unknown[])[0]), 0);
      endpointDelayMs = 0;
      const next = await startWorker('abort-b');
      await tally.waitForAll(seqs, 30_000);
      await queueIsEmpty(redis);
      await next.stop();
    } finally {
      endpointDelayMs = 2;
    }
  });
});

describe('Redis stopped, killed and restarted mid-stream (AOF on)', () => {
  it('loses none of the postbacks ingest acknowledged', async (t) => {
    const redisServer = await RedisServer.start({ appendonly: true, appendfsync: 'everysec' });
    const tally = new Tally();
    const receiver = await Receiver.start((req) => {
      tally.add(req.url);
      return {};
    });
    const port = await freePort();
    const ingestProc = AppProcess.start('ingest', { REDIS_URL: redisServer.url, INGEST_PORT: String(port), INGEST_REDIS_TIMEOUT_MS: '500' });
    const worker = AppProcess.start('delivery', { ...WORKER_ENV, REDIS_URL: redisServer.url, DELIVERY_CONSUMER_NAME: 'redis-fault' });
    let clients: PostingClients | undefined;
    try {
      await ingestProc.waitForEvent('ingest_ready');
      await worker.waitForEvent('worker_started');
      clients = new PostingClients(`http://127.0.0.1:${port}/i`, receiver.base);

      await clients.waitAcknowledged(2000);
      await redisServer.stop(); // SHUTDOWN: clean stop
      await new Promise((r) => setTimeout(r, 500));
      await redisServer.launch();
      await clients.waitAcknowledged(clients.acknowledged.length + 2000);
      await redisServer.kill(); // kill -9: no chance to flush anything
      await new Promise((r) => setTimeout(r, 500));
      await redisServer.launch();
      await clients.waitAcknowledged(clients.acknowledged.length + 2000);
      await clients.stop();
      const { acknowledged, refused } = clients;

      await tally.waitForAll(acknowledged, 90_000);
      t.diagnostic(
        `${acknowledged.length} postbacks acknowledged across a Redis stop and a kill -9, all delivered; ` +
          `${tally.duplicates} delivered twice; refused while Redis was down: ${JSON.stringify(refused)}`,
      );
      assert.deepEqual(tally.missing(acknowledged), []);
      assert.ok(Object.keys(refused).every((s) => s === '503'), `only 503s while Redis was away: ${JSON.stringify(refused)}`);
      assert.ok(ingestProc.running && worker.running, 'neither process crashed');
    } finally {
      await clients?.stop();
      await worker.stop(10_000);
      await ingestProc.stop(10_000);
      await receiver.close();
      await redisServer.destroy();
    }
  });
});

describe('ingest SIGTERM', () => {
  it('finishes the request in progress (its enqueue included), refuses new connections, exits 0', async () => {
    const redisServer = await RedisServer.start();
    const redis = redisServer.client();
    const port = await freePort();
    const ingestProc = AppProcess.start('ingest', { REDIS_URL: redisServer.url, INGEST_PORT: String(port) });
    try {
      await ingestProc.waitForEvent('ingest_ready');
      const body = JSON.stringify({ endpoint: { method: 'GET', url: 'http://127.0.0.1:9/x?a={a}' }, data: [{ a: 1 }, { a: 2 }, { a: 3 }] });
      // Send the headers and half the body, then SIGTERM, then the rest: the request must still succeed.
      const { default: net } = await import('node:net');
      const sock = net.connect(port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      let answer = '';
      sock.on('data', (c) => (answer += c.toString()));
      const closed = new Promise((r) => sock.once('close', r));
      sock.write(`POST /i HTTP/1.1\r\nHost: x\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body.slice(0, 20)}`);
      await new Promise((r) => setTimeout(r, 200));
      ingestProc.kill('SIGTERM');
      await ingestProc.waitForEvent('shutdown_started');
      const refused = await fetch(`http://127.0.0.1:${port}/health`).then(
        () => false,
        () => true,
      );
      assert.ok(refused, 'no new connections once stopping');
      sock.write(body.slice(20));
      await closed;
      assert.match(answer, /^HTTP\/1\.1 202 /, JSON.stringify(ingestProc.logs) + ingestProc.stderr.join(""));
      assert.equal(Number(await redis.get('pb:live')), 3);
      assert.equal(await redis.xlen('pb:queue'), 1, 'one entry for the request');
      assert.equal(await ingestProc.waitExit(10_000), 0);
    } finally {
      redis.disconnect();
      await ingestProc.stop();
      await redisServer.destroy();
    }
  });
});
