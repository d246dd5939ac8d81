/**
 * Big requests are stored in chunks (QUEUE_ENTRY_MAX_POSTBACKS postbacks per stream entry) with
 * consecutive stream ids, so workers share them, while every postback keeps the id the 202 answer gave
 * (`<first entry id>:<index>`). Against a real Redis, with functions (FCALL) and without (scripts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { Queue } from '../../src/shared/queue.js';
import { RedisServer } from '../helpers/redis-server.js';

const template = { method: 'GET' as const, url: 'http://partner.example/x?n={n}' };

for (const functions of [true, false]) {
  describe(`a big request in chunks (${functions ? 'Redis functions' : 'scripts, FCALL renamed away'})`, () => {
    let server: RedisServer;
    let redis: Redis;
    let blocking: Redis;

    before(async () => {
      server = await RedisServer.start(functions ? {} : { extraArgs: ['--rename-command', 'FCALL', ''] });
      redis = server.client();
      blocking = server.client();
    });
    after(async () => {
      redis.disconnect();
      blocking.disconnect();
      await server.destroy();
    });

    it('writes ceil(n/max) entries with consecutive ids; read back, each postback has the id the client was given', async () => {
      const q = new Queue(redis, { prefix: 'pb', maxLength: 0, templateGcGraceS: 60, entryMaxPostbacks: 7 });
      await q.ensureGroup();
      const data = Array.from({ length: 30 }, (_, n) => JSON.stringify({ n }));
      const r = await q.enqueue(template, data);
      assert.ok(r.ok);
      assert.equal(r.ids.length, 30);
      const first = r.ids[0]!.split(':')[0]!;
      assert.deepEqual(r.ids, data.map((_, i) => `${first}:${i}`), 'the 202 ids keep their shape');
      const entries = await redis.xrange('pb:queue', '-', '+');
      assert.equal(entries.length, 5, '30 postbacks at 7 per entry');
      const [ms, seq] = first.split('-');
      assert.deepEqual(entries.map((e) => e[0]), [0, 1, 2, 3, 4].map((c) => `${ms}-${Number(seq) + c}`));
      assert.equal(await redis.get('pb:live'), '30');

      // Read one entry at a time: chunks go to whichever reader asks, ids intact.
      const seen = new Map<string, string>();
      for (let i = 0; i < 5; i++) {
        const got = await q.read(blocking, `w${i % 2}`, 1, 100);
        assert.equal(got.entries, 1);
        for (const p of got.postbacks) seen.set(p.id, p.data);
      }
      assert.equal(seen.size, 30);
      for (let i = 0; i < 30; i++) assert.equal(seen.get(`${first}:${i}`), JSON.stringify({ n: i }));

      // A second request right after gets an id after the last chunk's.
      const next = await q.enqueue(template, [JSON.stringify({ n: 99 })]);
      assert.ok(next.ok);
      const [ms2, seq2] = next.ids[0]!.split(':')[0]!.split('-');
      assert.ok(BigInt(ms2!) > BigInt(ms!) || (ms2 === ms && Number(seq2) > Number(seq) + 4));
    });

    it('a template unknown to Redis is sent again with every chunk intact', async () => {
      await redis.flushall();
      const q = new Queue(redis, { prefix: 'pb', maxLength: 0, templateGcGraceS: 60, entryMaxPostbacks: 2 });
      await q.ensureGroup();
      const a = await q.enqueue(template, [1, 2, 3].map((n) => JSON.stringify({ n })));
      assert.ok(a.ok);
      await redis.del('pb:tpl'); // the template collected behind ingest's back: the first call answers 0
      const b = await q.enqueue(template, [4, 5, 6, 7, 8].map((n) => JSON.stringify({ n })));
      assert.ok(b.ok);
      assert.equal(await redis.hlen('pb:tpl'), 1);
      assert.equal(await redis.xlen('pb:queue'), 2 + 3);
      assert.equal(await redis.get('pb:live'), '8');
      assert.equal(await redis.hget('pb:tplref', q.templateIdOf(template)), '8');
    });

    it('a request over the limit writes no chunk at all', async () => {
      await redis.flushall();
      const q = new Queue(redis, { prefix: 'pb', maxLength: 10, templateGcGraceS: 60, entryMaxPostbacks: 3 });
      const r = await q.enqueue(template, Array.from({ length: 11 }, (_, n) => JSON.stringify({ n })));
      assert.deepEqual(r, { ok: false, reason: 'full', length: 0 });
      assert.equal(await redis.exists('pb:queue'), 0);
    });
  });
}
