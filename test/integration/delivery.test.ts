/**
 * The pipeline end to end in one process, on real parts: HTTP into the ingest app, a real redis-server,
 * the delivery worker sending real HTTP requests to a local endpoint.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { Queue } from '../../src/shared/queue.js';
import { readStats } from '../../src/shared/stats.js';
import { Receiver } from '../helpers/receiver.js';
import { RedisServer } from '../helpers/redis-server.js';
import { Stack } from '../helpers/stack.js';

const sample = JSON.parse(readFileSync(new URL('../fixtures/sample.json', import.meta.url), 'utf8'));

/** Resolves once the queue is empty with `deadLetters` dead letters (the log line comes before the settle). */
async function settled(stack: Stack, deadLetters: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const st = await stack.queue.status();
    if (st.live === 0 && st.deadLetters === deadLetters) return;
    assert.ok(Date.now() < deadline, `queue never settled: ${JSON.stringify(st)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('delivery', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it("delivers the brief's sample request to exactly the brief's sample URLs", async () => {
    stack = await Stack.start({ pinned: true });
    const res = await stack.post(sample, '/ingest.php');
    assert.equal(res.status, 202);
    assert.equal(res.json.accepted, 2);
    await stack.receiver.waitFor(2);
    const got = stack.receiver.requests.map((r) => `${r.method} http://${r.headers.host}${r.url}`).sort();
    assert.deepEqual(got, [
      'GET http://sample_domain_endpoint.com/data?key=Azureus&value=Dendrobates&foo=',
      'GET http://sample_domain_endpoint.com/data?key=Phyllobates&value=Terribilis&foo=',
    ]);
    // The log has the URLs as sent, but for `key`, a name on the default redaction list (LOG_REDACT_QUERY_PARAMS).
    const lines = await stack.waitForEvents('delivery_succeeded', 2);
    assert.deepEqual(lines.map((l) => l.url).sort(), [
      'http://sample_domain_endpoint.com/data?key=[REDACTED]&value=Dendrobates&foo=',
      'http://sample_domain_endpoint.com/data?key=[REDACTED]&value=Terribilis&foo=',
    ]);
  });

  it('logs one JSON line per attempt with time, status, duration, body, method, url, id and attempt', async () => {
    stack = await Stack.start({ handler: () => ({ status: 201, body: 'thanks '.repeat(400) }) });
    const res = await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/cb?c={c}&token={t}` }, data: [{ c: 'x', t: 's3cret' }] });
    const [line] = await stack.waitForEvents('delivery_succeeded', 1);
    assert.equal(line!.postbackId, res.json.ids[0]);
    assert.equal(line!.attempt, 1);
    assert.equal(line!.method, 'GET');
    assert.equal(line!.url, `${stack.endpoint}/cb?c=x&token=[REDACTED]`, 'secrets in the query are redacted');
    assert.equal(line!.status, 201);
    assert.equal(typeof line!.durationMs, 'number');
    assert.ok(!Number.isNaN(Date.parse(String(line!.deliveredAt))), 'deliveredAt is a timestamp');
    const max = stack.config.logResponseBodyMaxChars;
    assert.equal(line!.responseBody, `${'thanks '.repeat(400).slice(0, max)}…[+${2800 - max} chars]`, 'body cut to the configured size');
    assert.equal(stack.receiver.requests[0]!.url, '/cb?c=x&token=s3cret', 'the partner gets the real value');
    assert.equal(stack.receiver.requests[0]!.headers['x-postback-id'], res.json.ids[0]);
  });

  it('POST delivery carries the data object as a JSON body', async () => {
    stack = await Stack.start();
    const data = { event: 'install', n: 3, ok: true, none: null, text: 'żółw & co' };
    await stack.post({ endpoint: { method: 'post', url: `${stack.endpoint}/hook/{event}` }, data: [data] });
    await stack.receiver.waitFor(1);
    const req = stack.receiver.requests[0]!;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/hook/install');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(req.body), data);
  });

  it('POST delivery can send the data form-encoded (DELIVERY_POST_FORMAT=form)', async () => {
    stack = await Stack.start({ env: { DELIVERY_POST_FORMAT: 'form' } });
    await stack.post({ endpoint: { method: 'POST', url: `${stack.endpoint}/hook` }, data: [{ a: 'x y', b: 2, c: null }] });
    await stack.receiver.waitFor(1);
    const req = stack.receiver.requests[0]!;
    assert.equal(req.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(req.body, 'a=x+y&b=2&c=');
  });

  it('uses the configured default for keys the data lacks', async () => {
    stack = await Stack.start({ env: { UNMATCHED_PLACEHOLDER_DEFAULT: 'unknown' } });
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/x?a={a}&b={b}` }, data: [{ a: '1' }] });
    await stack.receiver.waitFor(1);
    assert.equal(stack.receiver.requests[0]!.url, '/x?a=1&b=unknown');
  });

  it('retries 5xx, timeouts and 429 with backoff, then succeeds', async () => {
    // attempt 1: 503, attempt 2: 429 with Retry-After 0, attempt 3: too slow (timeout), attempt 4: 200
    stack = await Stack.start({
      env: { DELIVERY_TIMEOUT_MS: '300', DELIVERY_CLAIM_MIN_IDLE_MS: '5000' },
      handler: (_req, i) => [{ status: 503 }, { status: 429, headers: { 'retry-after': '0' } }, { status: 200, delayMs: 1000 }, { status: 200 }][i],
    });
    const res = await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/r` }, data: [{}] });
    const [ok] = await stack.waitForEvents('delivery_succeeded', 1);
    assert.equal(ok!.attempt, 4);
    const retries = stack.events('delivery_retry_scheduled');
    assert.deepEqual(retries.map((r) => [r.attempt, r.status ?? r.errCode]), [[1, 503], [2, 429], [3, 'ETIMEDOUT']]);
    assert.ok(retries.every((r) => r.postbackId === res.json.ids[0]));
    const status = await stack.queue.status();
    assert.equal(status.retryScheduled, 0);
    assert.equal(status.deadLetters, 0);
  });

  it('dead-letters after the last attempt, keeping the reason', async () => {
    stack = await Stack.start({ env: { DELIVERY_MAX_ATTEMPTS: '3' }, handler: () => ({ status: 500, body: 'boom' }) });
    const res = await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/d?k={k}` }, data: [{ k: 'v' }] });
    const [dead] = await stack.waitForEvents('delivery_dead_lettered', 1);
    assert.equal(dead!.attempt, 3);
    assert.equal(stack.receiver.requests.length, 3);
    const letters = await stack.queue.listDeadLetters();
    assert.equal(letters.length, 1);
    assert.equal(letters[0]!.id, res.json.ids[0]);
    assert.equal(letters[0]!.reason, 'attempts_exhausted');
    assert.equal(letters[0]!.status, '500');
    assert.equal(letters[0]!.attempts, 3);
    assert.equal(letters[0]!.url, `${stack.endpoint}/d?k={k}`);
    assert.deepEqual(JSON.parse(letters[0]!.data), { k: 'v' });
    const status = await stack.queue.status();
    assert.equal(status.streamLength, 0, 'nothing left in the stream');
    assert.equal(status.retryScheduled, 0);
  });

  it('a destination the policy refuses is dead-lettered at once (destination_forbidden), counted in metrics and statistics', async () => {
    // Only the partner on 127.0.0.2 is allowed; it redirects into 127.0.0.1, where the appliance's own
    // monitoring would be. The redirect hop is refused; nothing reaches 127.0.0.1; no retry.
    stack = await Stack.start({ monitoring: true, env: { DELIVERY_ALLOW_NETWORKS: '127.0.0.2/32', DELIVERY_MAX_ATTEMPTS: '5' } });
    const partner = await Receiver.start((req) => ({ status: 302, headers: { location: `${stack!.endpoint}/metrics?from=${encodeURIComponent(req.url)}` } }), '127.0.0.2');
    try {
      const res = await stack.post({ endpoint: { method: 'GET', url: `${partner.base}/cb?c={c}` }, data: [{ c: 'a' }, { c: 'b' }] });
      assert.equal(res.status, 202, JSON.stringify(res.json));
      const dead = await stack.waitForEvents('delivery_dead_lettered', 2);
      for (const line of dead) {
        assert.equal(line.reason, 'destination_forbidden');
        assert.equal(line.errCode, 'ERR_DESTINATION_FORBIDDEN');
        assert.equal(line.attempt, 1);
        assert.match(String(line.error), /127\.0\.0\.1 is not allowed \(loopback\)/);
      }
      await new Promise((r) => setTimeout(r, 400)); // time for a wrongly scheduled retry (backoff max 200 ms)
      assert.equal(partner.requests.length, 2, 'one attempt each');
      assert.equal(stack.receiver.requests.length, 0, 'nothing reached the forbidden address');
      assert.equal(stack.events('delivery_retry_scheduled').length, 0);
      await settled(stack, 2);
      const letters = await stack.queue.listDeadLetters();
      assert.deepEqual(letters.map((l) => l.reason), ['destination_forbidden', 'destination_forbidden']);
      assert.match(letters[0]!.error, /^ERR_DESTINATION_FORBIDDEN: destination 127\.0\.0\.1 is not allowed/);
      // Metrics: the dead letters by reason. Statistics: the same, and the host's last error.
      const metrics = await stack.deliveryMetrics!.registry.getSingleMetricAsString('postback_dead_lettered_total');
      assert.match(metrics, /postback_dead_lettered_total\{reason="destination_forbidden"[^}]*\} 2/);
      await stack.flushStats();
      const stats = await readStats(stack.ingestRedis, stack.config.queuePrefix, { resolutionS: 10, windowS: 60 });
      assert.deepEqual(stats.totals.deadLetteredByReason, { destination_forbidden: 2 });
      assert.equal(stats.failingHosts[0]!.lastError!.error, 'ERR_DESTINATION_FORBIDDEN');
    } finally {
      await partner.close();
    }
  });

  it('ingest refuses a template whose host is a literal address the policy refuses: 400 naming endpoint.url', async () => {
    stack = await Stack.start({ worker: false, env: { DELIVERY_ALLOW_NETWORKS: '127.0.0.2/32' } });
    for (const url of [`${stack.endpoint}/x`, 'http://2130706433/', 'http://[::1]/', 'http://169.254.169.254/latest/meta-data/', 'http://localhost:9000/']) {
      const res = await stack.post({ endpoint: { method: 'GET', url }, data: [{}] });
      assert.equal(res.status, 400, url);
      assert.equal(res.json.error.code, 'ERR_VALIDATION');
      assert.deepEqual(res.json.error.details.map((d: { path: string }) => d.path), ['endpoint.url'], url);
      assert.match(res.json.error.message, /^endpoint\.url points at .* address deliveries may not connect to$/);
    }
    assert.equal((await stack.queue.status()).live, 0);
    const ok = await stack.post({ endpoint: { method: 'GET', url: 'http://127.0.0.2:8080/x' }, data: [{}] });
    assert.equal(ok.status, 202, 'the allowed network is accepted');
  });

  it('a postback too large to send (from an older release, or other limits) ends as a dead letter without a request', async () => {
    stack = await Stack.start({ monitoring: true, env: { DELIVERY_MAX_URL_LENGTH: '1024', DELIVERY_MAX_BODY_BYTES: '512' } });
    // Queued directly, as an ingest with other limits would have: this ingest refuses them (400).
    const queue = new Queue(stack.ingestRedis, { prefix: stack.config.queuePrefix, maxLength: 0, templateGcGraceS: 60 });
    const tooLongUrl = await queue.enqueue({ method: 'GET', url: `${stack.endpoint}/u?a={a}` }, [JSON.stringify({ a: 'x'.repeat(2000) }), JSON.stringify({ a: 'fine' })]);
    const tooBigBody = await queue.enqueue({ method: 'POST', url: `${stack.endpoint}/b` }, [JSON.stringify({ a: 'y'.repeat(600) })]);
    assert.ok(tooLongUrl.ok && tooBigBody.ok);
    const dead = await stack.waitForEvents('delivery_dead_lettered', 2);
    await stack.receiver.waitFor(1);
    assert.deepEqual(stack.receiver.requests.map((r) => r.url), ['/u?a=fine'], 'only the postback that fits was sent');
    assert.deepEqual(dead.map((d) => [d.reason, d.errCode]).sort(), [['too_large', 'ERR_BODY_TOO_LARGE'], ['too_large', 'ERR_URL_TOO_LONG']]);
    await settled(stack, 2);
    const letters = await stack.queue.listDeadLetters();
    assert.equal(letters.length, 2);
    for (const l of letters) assert.equal(l.attempts, 0, 'no attempt was made');
    const metrics = await stack.deliveryMetrics!.registry.getSingleMetricAsString('postback_dead_lettered_total');
    assert.match(metrics, /reason="too_large"[^}]*\} 2/);
  });

  it('a postback whose preparation throws is dead-lettered (preparation_failed), not handed back forever', async () => {
    stack = await Stack.start({ worker: false });
    const queue = new Queue(stack.ingestRedis, { prefix: stack.config.queuePrefix, maxLength: 0, templateGcGraceS: 60 });
    // The deliverer throws on one postback, as any bug in preparing a request would (the was
    // `Invalid string length` while expanding a template).
    const r = await queue.enqueue({ method: 'GET', url: `${stack.endpoint}/p?a={a}` }, [JSON.stringify({ a: 'boom' }), JSON.stringify({ a: 'ok' })]);
    assert.ok(r.ok);
    await stack.startWorker({ wrapDeliver: (deliver) => async (req) => {
      if (req.url.endsWith('a=boom')) throw new RangeError('Invalid string length');
      return deliver(req);
    } });
    const [dead] = await stack.waitForEvents('delivery_dead_lettered', 1);
    assert.equal(dead!.reason, 'preparation_failed');
    assert.equal(dead!.errCode, 'ERR_PREPARE_FAILED');
    await stack.receiver.waitFor(1);
    await settled(stack, 1);
    const letters = await stack.queue.listDeadLetters();
    assert.equal(letters.length, 1);
    assert.match(letters[0]!.error, /Invalid string length/);
    assert.equal((await stack.queue.status()).live, 0, 'the entry is settled: nothing goes round again');
    assert.equal(stack.worker!.counters.released, 0);
  });

  it('does not retry a 404: dead-lettered after one attempt', async () => {
    stack = await Stack.start({ handler: () => ({ status: 404 }) });
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/gone` }, data: [{}] });
    const [dead] = await stack.waitForEvents('delivery_dead_lettered', 1);
    assert.equal(dead!.attempt, 1);
    // Give a wrongly scheduled retry the time to happen (backoff max is 200 ms here).
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(stack.receiver.requests.length, 1);
    const [letter] = await stack.queue.listDeadLetters();
    assert.equal(letter!.reason, 'permanent_status');
    assert.equal(letter!.status, '404');
  });

  it('a dead letter replayed is delivered again', async () => {
    let fail = true;
    stack = await Stack.start({ handler: () => ({ status: fail ? 410 : 200 }) });
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/p?x={x}` }, data: [{ x: '1' }, { x: '2' }] });
    await stack.waitForEvents('delivery_dead_lettered', 2);
    fail = false;
    assert.equal(await stack.queue.replayDeadLetters(await stack.queue.listDeadLetters()), 2);
    await stack.waitForEvents('delivery_succeeded', 2);
    assert.deepEqual(stack.receiver.requests.slice(2).map((r) => r.url).sort(), ['/p?x=1', '/p?x=2']);
    assert.equal((await stack.queue.status()).deadLetters, 0);
  });

  it('runs deliveries concurrently up to DELIVERY_CONCURRENCY, never more', async () => {
    let inFlight = 0;
    let peak = 0;
    stack = await Stack.start({ env: { DELIVERY_CONCURRENCY: '8' }, worker: false });
    const receiverHandler = () => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      setTimeout(() => inFlight--, 100);
      return { delayMs: 100 };
    };
    stack.receiver.handler = receiverHandler;
    const data = Array.from({ length: 40 }, (_, i) => ({ i }));
    const res = await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/c?i={i}` }, data });
    assert.equal(res.status, 202);
    const worker = await stack.startWorker();
    let workerPeak = 0;
    const sampler = setInterval(() => (workerPeak = Math.max(workerPeak, worker.inFlightCount)), 5);
    await stack.receiver.waitFor(40);
    clearInterval(sampler);
    assert.equal(peak, 8, 'the endpoint saw 8 at once');
    assert.equal(workerPeak, 8, 'the worker held 8 deliveries at once, the rest of the request waiting');
  });

  it('survives Redis losing everything (FLUSHALL): group recreated, template resent, delivery goes on', async () => {
    stack = await Stack.start();
    const req = { endpoint: { method: 'GET', url: `${stack.endpoint}/f?n={n}` }, data: [{ n: 1 }] };
    assert.equal((await stack.post(req)).status, 202);
    await stack.receiver.waitFor(1);
    const admin = stack.redisServer.client();
    try {
      await admin.flushall(); // the stream, the consumer group and the stored template are gone
    } finally {
      admin.disconnect();
    }
    // Ingest still believes Redis has the template and sends only its id: the script says no, ingest resends.
    const res = await stack.post({ ...req, data: [{ n: 2 }] });
    assert.equal(res.status, 202);
    // The worker's blocking read hits NOGROUP, recreates the group from the stream's start, and delivers.
    await stack.receiver.waitFor(2);
    assert.equal(stack.receiver.requests[1]!.url, '/f?n=2');
  });

  it('survives Redis losing its functions (FUNCTION FLUSH): the library is loaded again on first use', async () => {
    stack = await Stack.start();
    const req = (n: number) => ({ endpoint: { method: 'GET', url: `${stack!.endpoint}/fn?n={n}` }, data: [{ n }] });
    assert.equal((await stack.post(req(1))).status, 202);
    await stack.receiver.waitFor(1);
    const admin = stack.redisServer.client();
    try {
      assert.deepEqual(((await admin.function('LIST')) as unknown[][]).length, 1, 'enqueue loaded the library');
      await admin.function('FLUSH');
      // Ingest's enqueue and the worker's settle each find their function gone, load it and go on.
      assert.equal((await stack.post(req(2))).status, 202);
      await stack.receiver.waitFor(2);
      await waitUntil(async () => Number(await admin.get(stack!.queue.keys.live)) === 0, 'settled');
      assert.equal(Number(await admin.xlen(stack.queue.keys.stream)), 0, 'the entry was settled (acked and deleted)');
      assert.equal(((await admin.function('LIST')) as unknown[][]).length, 1);
    } finally {
      admin.disconnect();
    }
  });

  it('works on a Redis without functions (FCALL unknown, as before Redis 7): the same code as scripts', async () => {
    const redis = await RedisServer.start({ extraArgs: ['--rename-command', 'FCALL', ''] });
    stack = await Stack.start({ redis, handler: (r) => (r.url === '/nf?n=bad' ? { status: 404 } : undefined) });
    const post = (n: string) => stack!.post({ endpoint: { method: 'GET', url: `${stack!.endpoint}/nf?n={n}` }, data: [{ n }, { n: `${n}-2` }] });
    assert.equal((await post('a')).status, 202);
    assert.equal((await post('bad')).status, 202); // one of its two is dead-lettered: the long settle form
    await stack.receiver.waitFor(4);
    const admin = redis.client();
    try {
      await waitUntil(async () => Number(await admin.get(stack!.queue.keys.live)) === 0, 'settled');
      assert.equal(Number(await admin.xlen(stack.queue.keys.stream)), 0);
      assert.equal(Number(await admin.xlen(stack.queue.keys.dead)), 1);
      assert.deepEqual(await admin.function('LIST'), [], 'no function was loaded: scripts did the work');
    } finally {
      admin.disconnect();
      await stack.stop(); // before the Redis it does not own
      stack = undefined;
      await redis.destroy();
    }
  });

  it('an idle worker waits in a blocking read: no busy polling', async () => {
    stack = await Stack.start({ env: { DELIVERY_BLOCK_MS: '500', DELIVERY_MAINTENANCE_INTERVAL_MS: '1000' } });
    const admin = stack.redisServer.client();
    try {
      const calls = async (cmd: string) => {
        const m = new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(await admin.info('commandstats'));
        return m ? Number(m[1]) : 0;
      };
      const before = await calls('xreadgroup');
      await new Promise((r) => setTimeout(r, 2000));
      const reads = (await calls('xreadgroup')) - before;
      // 2 s idle with 500 ms blocking reads: about 4 reads, not thousands.
      assert.ok(reads >= 2 && reads <= 6, `${reads} reads in 2 s of idling`);
    } finally {
      admin.disconnect();
    }
  });

  it('reads at most DELIVERY_MAX_RESPONSE_BYTES of a response, and still settles the postback', async () => {
    stack = await Stack.start({ env: { DELIVERY_MAX_RESPONSE_BYTES: '1000' }, handler: () => ({ body: 'x'.repeat(5_000_000) }) });
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/big` }, data: [{}] });
    const [line] = await stack.waitForEvents('delivery_succeeded', 1);
    assert.equal(line!.status, 200);
    assert.ok(String(line!.responseBody).length <= 1000);
  });

  it('a slow endpoint does not hold up deliveries to a fast one', async () => {
    stack = await Stack.start({
      env: { DELIVERY_CONCURRENCY: '16' },
      handler: (req) => (req.url.startsWith('/slow') ? { delayMs: 1500 } : {}),
    });
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/slow?i={i}` }, data: Array.from({ length: 8 }, (_, i) => ({ i })) });
    await stack.post({ endpoint: { method: 'GET', url: `${stack.endpoint}/fast?i={i}` }, data: Array.from({ length: 20 }, (_, i) => ({ i })) });
    const done = await stack.waitForEvents('delivery_succeeded', 28);
    const order = done.map((l) => (String(l.url).includes('/fast') ? 'fast' : 'slow'));
    assert.deepEqual(order, [...Array(20).fill('fast'), ...Array(8).fill('slow')], 'every fast delivery finished before any slow one');
  });
});

async function waitUntil(ok: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`not ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
