/**
 * High availability: Redis as master + replica watched by Sentinel. The master is killed -9 mid-stream;
 * Sentinel promotes the replica; ingest and the worker follow it (REDIS_URL=redis-sentinel://...), and
 * with REDIS_MIN_REPLICAS=1 no postback that got a 202 is lost to asynchronous replication.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppProcess } from '../helpers/app-process.js';
import { Receiver } from '../helpers/receiver.js';
import { RedisSentinel, RedisServer, freePort } from '../helpers/redis-server.js';
import { PostingClients, Tally } from '../helpers/tally.js';

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Redis failover under Sentinel', () => {
  it('loses none of the acknowledged postbacks when the master is killed and the replica promoted', async (t) => {
    const master = await RedisServer.start();
    const replica = await RedisServer.start({ replicaOf: master.port });
    const sentinel = await RedisSentinel.start('postback', master.port);
    const tally = new Tally();
    const receiver = await Receiver.start((req) => {
      tally.add(req.url);
      return {};
    });
    const url = `redis-sentinel://127.0.0.1:${sentinel.port}/postback`;
    const port = await freePort();
    const env = { REDIS_URL: url, REDIS_MIN_REPLICAS: '1', INGEST_REDIS_TIMEOUT_MS: '1000' };
    let ingest: AppProcess | undefined;
    let worker: AppProcess | undefined;
    let clients: PostingClients | undefined;
    try {
      const r = replica.client();
      await until('the replica to sync', async () => /master_link_status:up/.test(await r.info('replication')));
      r.disconnect();
      await until('sentinel to see the replica', async () => {
        const c = sentinel.client();
        const replicas = (await c.call('SENTINEL', 'replicas', 'postback')) as unknown[];
        c.disconnect();
        return replicas.length === 1;
      });

      ingest = AppProcess.start('ingest', { ...env, INGEST_PORT: String(port) });
      worker = AppProcess.start('delivery', {
        ...env,
        DELIVERY_CONSUMER_NAME: 'ha',
        DELIVERY_TIMEOUT_MS: '1000',
        DELIVERY_CLAIM_MIN_IDLE_MS: '2500',
        DELIVERY_MAINTENANCE_INTERVAL_MS: '200',
        DELIVERY_BLOCK_MS: '500',
      });
      await ingest.waitForEvent('ingest_ready');
      await worker.waitForEvent('worker_started');
      clients = new PostingClients(`http://127.0.0.1:${port}/i`, receiver.base);
      await clients.waitAcknowledged(2000);

      await master.kill(); // the master dies without warning
      await until('sentinel to promote the replica', async () => (await sentinel.masterPort('postback')) === replica.port);
      // The old master comes back; Sentinel turns it into a replica of the new one, and acknowledgements
      // (which need one replica) resume.
      await master.launch();
      const before = clients.acknowledged.length;
      await clients.waitAcknowledged(before + 2000, 60_000);
      await clients.stop();

      await tally.waitForAll(clients.acknowledged, 90_000);
      t.diagnostic(
        `${clients.acknowledged.length} postbacks acknowledged across a failover, all delivered; ` +
          `${tally.duplicates} delivered twice; refused meanwhile: ${JSON.stringify(clients.refused)}`,
      );
      assert.deepEqual(tally.missing(clients.acknowledged), []);
      assert.ok(Object.keys(clients.refused).every((s) => s === '503'), `only 503s during the failover: ${JSON.stringify(clients.refused)}`);
      assert.ok(ingest.running && worker.running, 'neither process crashed');
    } finally {
      await clients?.stop();
      await worker?.stop(10_000);
      await ingest?.stop(10_000);
      await receiver.close();
      await sentinel.destroy();
      await replica.destroy();
      await master.destroy();
    }
  });
});
