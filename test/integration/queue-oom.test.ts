/**
 * The queue's calls that drain it, against a real Redis at maxmemory (noeviction), one by one: each
 * still works (settle through the function flagged allow-oom, or through the allow-oom script when
 * even FUNCTION LOAD is refused; group creation and retry promotion through their allow-oom scripts;
 * the blocking read and keep-alive as plain commands), while an enqueue is refused whole.
 * test/fault/redis-full.test.ts does the same under load with real processes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { Queue } from '../../src/shared/queue.js';
import { RedisServer } from '../helpers/redis-server.js';

describe('the queue at maxmemory', () => {
  let server: RedisServer;
  let redis: Redis;
  let blocking: Redis;
  const queue = () => new Queue(redis, { prefix: 'pb', maxLength: 0, templateGcGraceS: 60 });
  const template = { method: 'GET' as const, url: 'http://partner.example/x?n={n}' };

  /** Make Redis full: maxmemory just under what it uses now. */
  const fill = async () => {
    const info = await redis.info('memory');
    const used = Number(/^used_memory:(\d+)/m.exec(info)![1]);
    await redis.config('SET', 'maxmemory', String(used - 64 * 1024));
    await assert.rejects(redis.set('probe', 'x'), /^ReplyError: OOM /, 'Redis is full');
  };
  const unfill = () => redis.config('SET', 'maxmemory', '0');

  before(async () => {
    server = await RedisServer.start();
    redis = server.client();
    blocking = server.client();
  });
  after(async () => {
    redis.disconnect();
    blocking.disconnect();
    await server.destroy();
  });

  it('creates the consumer group (XGROUP CREATE is refused as a plain command)', async () => {
    await redis.xadd('pb:queue', '*', 'x', '[]'); // a stream with an entry, no group yet: a new worker at the limit
    await redis.xtrim('pb:queue', 'MAXLEN', 0);
    await fill();
    try {
      await assert.rejects(redis.xgroup('CREATE', 'pb:queue', 'other', '0'), /^ReplyError: OOM /);
      await queue().ensureGroup();
      await queue().ensureGroup(); // again: the group exists (BUSYGROUP) is fine
      const groups = (await redis.xinfo('GROUPS', 'pb:queue')) as unknown[][];
      assert.deepEqual(groups.map((g) => g[1]), ['delivery']);
    } finally {
      await unfill();
    }
  });

  it('reads, keeps alive, settles (delivered, retry, dead letter), promotes retries; refuses an enqueue whole', async () => {
    const q = queue();
    const enqueued = await q.enqueue(template, [0, 1, 2].map((n) => JSON.stringify({ n })));
    assert.ok(enqueued.ok);
    await fill();
    try {
      const read = await q.read(blocking, 'w1', 10, 100);
      assert.equal(read.postbacks.length, 3, 'the blocking read works at the limit');
      await q.keepAlive('w1', [read.postbacks[0]!.entryId]);
      const [p0, p1, p2] = read.postbacks as [typeof read.postbacks[0], typeof read.postbacks[0], typeof read.postbacks[0]];
      // A new release at the limit: its library is not in Redis, and FUNCTION LOAD is refused.
      await redis.function('FLUSH');
      await assert.rejects(redis.function('LOAD', '#!lua name=probe\nredis.register_function("probe", function() return 1 end)'), /^ReplyError: OOM /);
      const settled = await q.settle([
        {
          entryId: p0.entryId,
          size: 3,
          retries: [{ postback: p1, attempts: 1, dueAtMs: Date.now() - 1 }],
          deadLetters: [{ fields: Queue.deadLetterFields(p2, { reason: 'permanent_status', status: '404', error: 'HTTP 404', attempts: 1, template }) }],
        },
      ]);
      assert.equal(settled, 1, 'settled at the limit');
      assert.equal(await redis.xlen('pb:dead'), 1);
      assert.equal(await redis.zcard('pb:retry'), 1);
      assert.equal(await redis.get('pb:live'), '1', 'the retry is still live');
      assert.equal(await q.promoteDueRetries(), 1, 'promoted at the limit');
      assert.equal(await redis.zcard('pb:retry'), 0);
      const again = await q.read(blocking, 'w1', 10, 100);
      assert.deepEqual(again.postbacks.map((p) => [p.id, p.attempts]), [[p1.id, 1]]);
      // Ingest's enqueue is refused before it runs: nothing of it is stored.
      const entries = await redis.xlen('pb:queue');
      await assert.rejects(q.enqueue({ method: 'GET', url: 'http://new.example/' }, ['{}']), /OOM/);
      assert.equal(await redis.xlen('pb:queue'), entries);
      assert.equal(await redis.hexists('pb:tpl', q.templateIdOf({ method: 'GET', url: 'http://new.example/' })), 0);
      // Settling the last one frees the memory it held.
      assert.equal(await q.settle([{ entryId: again.postbacks[0]!.entryId, size: 1, retries: [], deadLetters: [] }]), 1);
      assert.equal(await redis.get('pb:live'), '0');
    } finally {
      await unfill();
    }
  });
});
