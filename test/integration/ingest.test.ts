/**
 * The ingest HTTP service against a real redis-server: what clients send (any Content-Type), what they
 * get back (202 with ids, or a JSON 4xx naming the field, or 503 when Redis is away), and what lands in
 * Redis (one entry per data object, all of a request or nothing).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisServer } from '../helpers/redis-server.js';
import { Stack } from '../helpers/stack.js';

const sampleText = readFileSync(new URL('../fixtures/sample.json', import.meta.url), 'utf8');
const sample = JSON.parse(sampleText);

describe('ingest', () => {
  let stack: Stack;
  let redis: Redis;
  /** Postbacks in Redis not yet delivered (no worker runs here, so: all accepted so far). */
  const queued = async () => (await stack.queue.status()).live;

  before(async () => {
    stack = await Stack.start({ worker: false, env: { INGEST_MAX_BODY_BYTES: '4096', INGEST_MAX_DATA_ITEMS: '50' } });
    redis = stack.redisServer.client();
  });
  after(async () => {
    redis.disconnect();
    await stack.stop();
  });

  describe('accepts raw JSON whatever the Content-Type', () => {
    const types = [
      'application/json',
      'application/json; charset=utf-8',
      'application/x-www-form-urlencoded', // curl -d
      'text/plain',
      'multipart/form-data; boundary=x',
      undefined, // PHP's file_get_contents with a bare stream context
    ];
    for (const path of ['/i', '/ingest.php']) {
      for (const type of types) {
        it(`${path} with ${type ?? 'no Content-Type'}`, async () => {
          const before = await queued();
          const headers: Record<string, string> = type ? { 'content-type': type } : {};
          const res = await stack.post(sampleText, path, headers);
          assert.equal(res.status, 202, JSON.stringify(res.json));
          assert.equal(res.json.accepted, 2);
          assert.equal(res.json.ids.length, 2);
          assert.equal(await queued(), before + 2);
        });
      }
    }
  });

  it('stores a request as one compact entry holding its data objects, with the ids it answered', async () => {
    const res = await stack.post(sample);
    const entryId = res.json.ids[0].split(':')[0];
    assert.deepEqual(res.json.ids, [`${entryId}:0`, `${entryId}:1`]);
    const [id, fields] = (await redis.xrange(stack.queue.keys.stream, entryId, entryId))[0]!;
    assert.equal(id, entryId);
    // [template id, data array]: no field names, the endpoint by id only.
    assert.equal(fields.length, 2);
    assert.equal(fields[1], JSON.stringify(sample.data), 'the data objects as one compact JSON array');
    assert.equal(await redis.hget(stack.queue.keys.templates, fields[0]!), `GET ${sample.endpoint.url}`);
  });

  describe('refuses bad input with a JSON 4xx naming the field, and enqueues nothing', () => {
    const big = JSON.stringify({ endpoint: sample.endpoint, data: [{ k: 'x'.repeat(5000) }] });
    const table: [string, string, number, string, string[] | undefined][] = [
      ['an empty body', '', 400, 'ERR_EMPTY_BODY', ['body']],
      ['whitespace only', '  \n', 400, 'ERR_EMPTY_BODY', ['body']],
      ['broken JSON', '{"endpoint":', 400, 'ERR_INVALID_JSON', ['body']],
      ['a form body', 'endpoint=x&data=y', 400, 'ERR_INVALID_JSON', ['body']],
      ['a JSON array', '[1,2]', 400, 'ERR_VALIDATION', ['body']],
      ['a JSON string', '"hello"', 400, 'ERR_INVALID_JSON', ['body']],
      ['a body over INGEST_MAX_BODY_BYTES', big, 413, 'ERR_BODY_TOO_LARGE', ['body']],
      ['method PUT', JSON.stringify({ ...sample, endpoint: { ...sample.endpoint, method: 'PUT' } }), 400, 'ERR_VALIDATION', ['endpoint.method']],
      ['a relative URL', JSON.stringify({ ...sample, endpoint: { ...sample.endpoint, url: '/data?x={x}' } }), 400, 'ERR_VALIDATION', ['endpoint.url']],
      ['no data', JSON.stringify({ endpoint: sample.endpoint }), 400, 'ERR_VALIDATION', ['data']],
      ['empty data', JSON.stringify({ endpoint: sample.endpoint, data: [] }), 400, 'ERR_VALIDATION', ['data']],
      ['more than INGEST_MAX_DATA_ITEMS', JSON.stringify({ endpoint: sample.endpoint, data: Array(51).fill({}) }), 400, 'ERR_VALIDATION', ['data']],
      ['one bad object among many', JSON.stringify({ endpoint: sample.endpoint, data: [...Array(49).fill({ a: 1 }), { key: [1] }] }), 400, 'ERR_VALIDATION', ['data[49].key']],
    ];
    for (const [name, body, status, code, paths] of table) {
      it(`${name} -> ${status} ${code}`, async () => {
        const before = await queued();
        const res = await stack.post(body);
        assert.equal(res.status, status, JSON.stringify(res.json));
        assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
        assert.equal(res.json.error.code, code);
        assert.equal(typeof res.json.error.message, 'string');
        if (paths) assert.deepEqual(res.json.error.details.map((d: { path: string }) => d.path), paths);
        assert.equal(await queued(), before, 'nothing enqueued');
      });
    }
  });

  describe('routes', () => {
    const table: [string, string, number, string, string | undefined][] = [
      ['GET', '/i', 405, 'ERR_METHOD_NOT_ALLOWED', 'POST'],
      ['PUT', '/ingest.php', 405, 'ERR_METHOD_NOT_ALLOWED', 'POST'],
      ['DELETE', '/i', 405, 'ERR_METHOD_NOT_ALLOWED', 'POST'],
      ['POST', '/health', 405, 'ERR_METHOD_NOT_ALLOWED', 'GET, HEAD'],
      ['GET', '/', 404, 'ERR_NOT_FOUND', undefined],
      ['POST', '/ingest', 404, 'ERR_NOT_FOUND', undefined],
      ['POST', '/i/', 404, 'ERR_NOT_FOUND', undefined],
    ];
    for (const [method, path, status, code, allow] of table) {
      it(`${method} ${path} -> ${status}`, async () => {
        const res = await fetch(stack.ingestBase + path, { method, ...(method === 'GET' ? {} : { body: sampleText }) });
        assert.equal(res.status, status);
        const body = (await res.json()) as { error: { code: string } };
        assert.equal(body.error.code, code);
        if (allow) assert.equal(res.headers.get('allow'), allow);
      });
    }
  });

  it('refuses a whole request when the queue is full: 503, nothing half-enqueued', async () => {
    const full = await Stack.start({ worker: false, env: { QUEUE_MAX_LENGTH: '3' } });
    try {
      assert.equal((await full.post(sample)).status, 202);
      const res = await full.post(sample); // 2 more would make 4 > 3
      assert.equal(res.status, 503);
      assert.equal(res.json.error.code, 'ERR_QUEUE_FULL');
      assert.equal(res.headers.get('retry-after'), '1');
      assert.equal((await full.queue.status()).live, 2);
      // A refused request leaves nothing behind, not even its template (pb:tpl grew per refusal once).
      const r = full.redisServer.client();
      const templates = await r.hlen(full.queue.keys.templates);
      for (let i = 0; i < 5; i++) {
        const refused = await full.post({ endpoint: { method: 'GET', url: `http://refused-${i}.example/x` }, data: [{}, {}] });
        assert.equal(refused.status, 503);
      }
      assert.equal(await r.hlen(full.queue.keys.templates), templates, 'no template stored for a refused request');
      r.disconnect();
    } finally {
      await full.stop();
    }
  });

  it('refuses new work while Redis uses more than QUEUE_MAX_MEMORY_PERCENT of maxmemory, before Redis is full, and accepts again once it drained', async () => {
    const redisServer = await RedisServer.start({ extraArgs: ['--maxmemory', '16mb'] });
    const full = await Stack.start({ worker: false, redis: redisServer, env: { QUEUE_MAX_MEMORY_PERCENT: '50', QUEUE_MEMORY_SAMPLE_INTERVAL_MS: '50' } });
    const r = redisServer.client();
    try {
      const pad = 'p'.repeat(2000);
      let refused: { status: number; json: any } | undefined;
      let accepted = 0;
      for (let i = 0; i < 2000 && !refused; i++) {
        const res = await full.post({ endpoint: { method: 'GET', url: 'http://partner.example/x?i={i}' }, data: Array.from({ length: 20 }, (_, j) => ({ i: `${i}-${j}`, pad })) });
        if (res.status === 202) accepted += 20;
        else refused = res;
      }
      assert.ok(refused, 'ingest never refused');
      assert.equal(refused.status, 503);
      assert.equal(refused.json.error.code, 'ERR_QUEUE_FULL');
      assert.match(refused.json.error.message, /Redis memory at \d+% of maxmemory, limit 50%/);
      const info = await r.info('memory');
      const used = Number(/used_memory:(\d+)/.exec(info)![1]);
      assert.ok(used < 16 * 1024 * 1024, `Redis itself never got full (${used} bytes used)`);
      assert.ok((await r.set('probe', 'x')) === 'OK', 'Redis still takes writes: the headroom is there');
      assert.equal(full.events('queue_memory_full').length, 1);
      assert.equal((await full.queue.status()).live, accepted, 'every 202 is in Redis, nothing of the refused');
      // The queue drains (a worker delivers everything: the endpoint does not exist, so dead letters,
      // which are kept: drop them too, as an operator purging them would).
      await r.del(full.queue.keys.stream, full.queue.keys.live);
      const deadline = Date.now() + 10_000;
      let again = await full.post(sample);
      while (again.status !== 202 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        again = await full.post(sample);
      }
      assert.equal(again.status, 202, 'accepting again once below the limit');
      assert.equal(full.events('queue_memory_ok').length, 1);
    } finally {
      r.disconnect();
      await full.stop();
      await redisServer.destroy();
    }
  });

  describe('the charset of the body: UTF-8 or 415', () => {
    const table: [string, number, string | undefined][] = [
      ['application/json; charset=utf-8', 202, undefined],
      ['application/json; charset=UTF-8', 202, undefined],
      ['text/plain; charset="utf8"', 202, undefined],
      ['application/json; charset=utf-16', 415, 'ERR_UNSUPPORTED_ENCODING'],
      ['application/json;charset=x-bogus', 415, 'ERR_UNSUPPORTED_ENCODING'],
      ['application/x-www-form-urlencoded; charset=iso-8859-1', 415, 'ERR_UNSUPPORTED_ENCODING'],
    ];
    for (const [type, status, code] of table) {
      it(`${type} -> ${status}`, async () => {
        const before = await queued();
        const res = await stack.post(sampleText, '/i', { 'content-type': type });
        assert.equal(res.status, status, JSON.stringify(res.json));
        if (code) {
          assert.equal(res.json.error.code, code);
          assert.deepEqual(res.json.error.details.map((d: { path: string }) => d.path), ['headers.content-type']);
          assert.equal(await queued(), before, 'nothing enqueued');
        }
      });
    }
  });

  it('never logs the content of a body it refuses', async () => {
    const secret = 'SECRET-4242-do-not-log';
    const bodies = [
      `{"endpoint":{"method":"GET","url":"http://h/?t=${secret}"},"data":[{"a":1},]}`, // broken JSON
      `${secret} is not JSON`,
      JSON.stringify({ endpoint: { method: 'PUT', url: `http://h/?t=${secret}` }, data: [{ a: secret }] }),
      JSON.stringify({ endpoint: { method: 'GET', url: `http://169.254.169.254/?t=${secret}` }, data: [{ a: 1 }] }),
      JSON.stringify({ endpoint: { method: 'GET', url: `http://h/?t={a}{a}{a}{a}` }, data: [{ a: secret.repeat(100) }] }),
    ];
    const from = stack.logs.length;
    for (const body of bodies) assert.equal((await stack.post(body)).status, 400);
    const lines = stack.logs.slice(from);
    assert.equal(lines.filter((l) => l.event === 'ingest_request_failed').length, bodies.length);
    for (const line of lines) assert.ok(!JSON.stringify(line).includes('SECRET'), `logged: ${JSON.stringify(line)}`);
    // ... and the client is told where, not shown its own text back either
    const res = await stack.post(bodies[1]!);
    assert.equal(res.json.error.code, 'ERR_INVALID_JSON');
    assert.ok(!JSON.stringify(res.json).includes('SECRET'), JSON.stringify(res.json));
  });

  it('refuses odd templates and what would be too large once expanded, naming the field', async () => {
    const table: [unknown, string][] = [
      [{ endpoint: { method: 'GET', url: 'http://h.example/?a={a' }, data: [{ a: 1 }] }, 'endpoint.url'],
      [{ endpoint: { method: 'GET', url: 'http://h.example/?a={}' }, data: [{ a: 1 }] }, 'endpoint.url'],
      [{ endpoint: { method: 'GET', url: 'http://h.example:0/' }, data: [{ a: 1 }] }, 'endpoint.url'],
      // the poison pill: 674 placeholders (a 2,032-character template), one 150,000-character value
      [{ endpoint: { method: 'GET', url: `http://h.example/?${'{a}'.repeat(674)}` }, data: [{ a: 'x'.repeat(150_000) }] }, 'data[0]'],
    ];
    const big = await Stack.start({ worker: false, redis: stack.redisServer, env: { INGEST_MAX_BODY_BYTES: '1048576' } });
    try {
      for (const [body, path] of table) {
        const before = await queued();
        const res = await big.post(body);
        assert.equal(res.status, 400, JSON.stringify(res.json));
        assert.equal(res.json.error.code, 'ERR_VALIDATION');
        assert.deepEqual(res.json.error.details.map((d: { path: string }) => d.path), [path]);
        assert.equal(await queued(), before);
      }
    } finally {
      await big.stop();
    }
  });

  it('GET /health says whether Redis answers', async () => {
    const res = await fetch(stack.ingestBase + '/health');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok', redis: 'up' });
  });
});

describe('ingest with Redis down', () => {
  it('answers 503 within INGEST_REDIS_TIMEOUT_MS, enqueues nothing, and recovers when Redis is back', async () => {
    const stack = await Stack.start({ worker: false, env: { INGEST_REDIS_TIMEOUT_MS: '500' } });
    try {
      assert.equal((await stack.post(sample)).status, 202);
      await stack.redisServer.stop(); // clean shutdown: AOF flushed

      const started = Date.now();
      const res = await stack.post(sample);
      const took = Date.now() - started;
      assert.equal(res.status, 503);
      assert.equal(res.json.error.code, 'ERR_QUEUE_UNAVAILABLE');
      assert.equal(res.headers.get('retry-after'), '1');
      // Not a speed test: a bound on the configured timeout, with a wide margin for a busy machine.
      assert.ok(took < 500 + 2000, `503 took ${took} ms`);
      // The log line says why, for the on-call engineer (not an empty `err: {}`).
      const failed = stack.events('ingest_request_failed').at(-1);
      assert.equal(failed?.errCode, 'ERR_QUEUE_UNAVAILABLE');
      assert.ok(typeof failed?.err === 'string' && failed.err.length > 0, `err logged as ${JSON.stringify(failed?.err)}`);

      const health = await fetch(stack.ingestBase + '/health');
      assert.equal(health.status, 503);
      assert.deepEqual(await health.json(), { status: 'unavailable', redis: 'down' });

      await stack.redisServer.launch();
      const deadline = Date.now() + 10_000;
      let again = await stack.post(sample);
      while (again.status !== 202 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        again = await stack.post(sample);
      }
      assert.equal(again.status, 202);
      assert.equal((await stack.queue.status()).live, 4, 'the 2 accepted before, the 2 after; none of the refused');
    } finally {
      await stack.stop();
    }
  });

  it('answers 503 when Redis hangs (SIGSTOP), and a request cut off that way is in Redis wholly or not at all', async () => {
    const stack = await Stack.start({ worker: false, env: { INGEST_REDIS_TIMEOUT_MS: '300' } });
    const redis = stack.redisServer.client();
    try {
      const data = Array.from({ length: 20 }, (_, i) => ({ i, tag: 'hung' }));
      process.kill(stack.redisServer.pid!, 'SIGSTOP');
      const res = await stack.post({ endpoint: sample.endpoint, data });
      process.kill(stack.redisServer.pid!, 'SIGCONT');
      assert.equal(res.status, 503);
      assert.equal(res.json.error.code, 'ERR_QUEUE_UNAVAILABLE');
      // The script may still have run once Redis woke up (the client was told 503 = "not known to be
      // accepted, retry"), but it ran whole or not at all.
      await new Promise((r) => setTimeout(r, 200));
      const n = Number(await redis.get(stack.queue.keys.live));
      const entries = await redis.xlen(stack.queue.keys.stream);
      assert.ok((n === 0 && entries === 0) || (n === 20 && entries === 1), `found ${n} of 20 postbacks in ${entries} entries`);
    } finally {
      redis.disconnect();
      await stack.stop();
    }
  });
});
