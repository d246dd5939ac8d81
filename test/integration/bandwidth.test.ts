/**
 * Bytes crossing Redis per postback, measured from Redis's own INFO stats counters
 * (total_net_input_bytes + total_net_output_bytes), for the real pipeline and for a naive design that
 * puts the whole request JSON in the queue once per postback. Reported as a test diagnostic; the
 * assertion is only that ours stays well below naive (the bench, `npm run bench`, reports the ratio).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisServer } from '../helpers/redis-server.js';
import { Stack } from '../helpers/stack.js';

const sampleText = readFileSync(new URL('../fixtures/sample.json', import.meta.url), 'utf8');
const sample = JSON.parse(sampleText);
const REQUESTS = 500;

async function netBytes(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  const read = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)![1]);
  return read('total_net_input_bytes') + read('total_net_output_bytes');
}

/** Bytes Redis counted while `work` ran, minus the cost of the measuring INFO calls themselves. */
async function measure(redis: Redis, work: () => Promise<void>): Promise<number> {
  const a = await netBytes(redis);
  const b = await netBytes(redis);
  const infoCost = b - a;
  await work();
  const c = await netBytes(redis);
  return c - b - infoCost;
}

describe('bandwidth between ingest and delivery', () => {
  it('reports bytes per postback, ours against the naive encoding', async (t) => {
    const server = await RedisServer.start();
    const probe = server.client();
    try {
      // Ours: the real ingest app and worker, production timings (maintenance once a second).
      const stack = await Stack.start({
        redis: server,
        pinned: true,
        env: { DELIVERY_BLOCK_MS: '2000', DELIVERY_MAINTENANCE_INTERVAL_MS: '1000' },
      });
      let ours: number;
      try {
        await stack.post(sample); // first request of a template also stores the template text
        await stack.receiver.waitFor(2);
        ours = await measure(probe, async () => {
          for (let i = 0; i < REQUESTS; i++) {
            const res = await stack.post(sampleText);
            assert.equal(res.status, 202);
          }
          await stack.receiver.waitFor(2 + REQUESTS * 2, 60_000);
          await stack.waitForEvents('delivery_succeeded', 2 + REQUESTS * 2);
        });
      } finally {
        await stack.stop();
      }

      // Naive: the whole request JSON per postback, read back by a consumer group, acked and deleted.
      const compact = JSON.stringify(sample);
      const naive = await measure(probe, async () => {
        const producer = server.client();
        const consumer = server.client();
        await producer.xgroup('CREATE', 'naive', 'g', '0', 'MKSTREAM');
        for (let i = 0; i < REQUESTS; i++) {
          const p = producer.multi();
          for (let j = 0; j < sample.data.length; j++) p.xadd('naive', '*', 'request', compact, 'index', String(j));
          await p.exec();
        }
        let done = 0;
        while (done < REQUESTS * 2) {
          const reply = (await consumer.xreadgroup('GROUP', 'g', 'c', 'COUNT', 128, 'STREAMS', 'naive', '>')) as [string, [string, string[]][]][];
          const ids = reply[0]![1].map(([id]) => id);
          await consumer.multi().xack('naive', 'g', ...ids).xdel('naive', ...ids).exec();
          done += ids.length;
        }
        producer.disconnect();
        consumer.disconnect();
      });

      const postbacks = REQUESTS * 2;
      const oursPer = Math.round(ours / postbacks);
      const naivePer = Math.round(naive / postbacks);
      t.diagnostic(`bytes crossing Redis per postback: ours ${oursPer}, naive ${naivePer} (ratio ${(oursPer / naivePer).toFixed(2)}), sample request, ${postbacks} postbacks`);
      console.log(`# bandwidth: ours ${oursPer} B/postback, naive ${naivePer} B/postback, ratio ${(oursPer / naivePer).toFixed(2)}`);
      assert.ok(oursPer < naivePer * 0.8, `ours ${oursPer} B is not well below naive ${naivePer} B`);
    } finally {
      probe.disconnect();
      await server.destroy();
    }
  });
});
