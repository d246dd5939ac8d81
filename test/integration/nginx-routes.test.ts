/**
 * The repository's nginx routes (nginx/locations.conf) in front of the real ingest process: both ingest
 * paths reach ingest whatever Content-Type the client sets, health passes through, anything else is a
 * JSON 404 from nginx itself.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { AppProcess } from '../helpers/app-process.js';
import { Nginx } from '../helpers/nginx.js';
import { RedisServer, freePort } from '../helpers/redis-server.js';

const sample = readFileSync(new URL('../fixtures/sample.json', import.meta.url), 'utf8');

describe('nginx routes to ingest', () => {
  let redis: RedisServer;
  let ingest: AppProcess;
  let nginx: Nginx;

  before(async () => {
    redis = await RedisServer.start();
    const port = await freePort();
    ingest = AppProcess.start('ingest', { REDIS_URL: redis.url, INGEST_PORT: String(port) });
    await ingest.waitForEvent('ingest_ready');
    nginx = await Nginx.start({ upstreamPorts: [port] });
  });

  after(async () => {
    await nginx?.stop();
    await ingest?.stop();
    await redis?.destroy();
  });

  for (const route of ['/i', '/ingest.php']) {
    for (const contentType of ['application/json', 'application/x-www-form-urlencoded', undefined]) {
      it(`POST ${route} with Content-Type ${contentType ?? '(none)'} is accepted`, async () => {
        const headers: Record<string, string> = contentType ? { 'content-type': contentType } : {};
        const res = await fetch(nginx.base + route, { method: 'POST', headers, body: sample });
        assert.equal(res.status, 202);
        const body = (await res.json()) as { accepted: number; ids: string[] };
        assert.equal(body.accepted, 2);
        assert.equal(body.ids.length, 2);
      });
    }
  }

  it('GET /health passes through to ingest', async () => {
    const res = await fetch(nginx.base + '/health');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok', redis: 'up' });
  });

  it('anything else is a JSON 404 from nginx', async () => {
    for (const p of ['/', '/index.php', '/i/extra', '/admin']) {
      const res = await fetch(nginx.base + p);
      assert.equal(res.status, 404, p);
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'ERR_NOT_FOUND');
    }
  });

  it('a bad request through nginx is ingest\'s JSON 400 naming the field', async () => {
    const res = await fetch(nginx.base + '/i', {
      method: 'POST',
      body: JSON.stringify({ endpoint: { method: 'PUT', url: 'http://x.test/' }, data: [{ a: 1 }] }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; details: { path: string }[] } };
    assert.equal(body.error.code, 'ERR_VALIDATION');
    assert.deepEqual(body.error.details.map((d) => d.path), ['endpoint.method']);
  });

  it('writes one JSON access-log line per request with the request time', async () => {
    await fetch(nginx.base + '/i', { method: 'POST', body: sample });
    const lines = readFileSync(nginx.accessLog, 'utf8').trim().split('\n');
    const last = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
    assert.equal(last.uri, '/i');
    assert.equal(last.status, 202);
    assert.equal(typeof last.request_time, 'number');
    assert.match(String(last.request_id), /^[0-9a-f]{32}$/);
  });

  it('a body above nginx\'s limit is a JSON 413 with ingest\'s code', async () => {
    const res = await fetch(nginx.base + '/i', { method: 'POST', body: 'x'.repeat(3 * 1024 * 1024) });
    assert.equal(res.status, 413);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'ERR_BODY_TOO_LARGE');
  });

  it("a rejected request's ingest log line carries nginx's request id", async () => {
    const res = await fetch(nginx.base + '/i', { method: 'POST', body: '{"endpoint":' });
    assert.equal(res.status, 400);
    const lines = readFileSync(nginx.accessLog, 'utf8').trim().split('\n');
    const requestId = (JSON.parse(lines.at(-1)!) as { request_id: string }).request_id;
    const deadline = Date.now() + 5000;
    while (!ingest.events('ingest_request_failed').some((l) => l.requestId === requestId)) {
      assert.ok(Date.now() < deadline, `no ingest log line with requestId ${requestId}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  });
});

describe('nginx with ingest down', () => {
  let nginx: Nginx;

  before(async () => {
    // An upstream port nothing listens on: every proxied request fails to connect (502 in nginx).
    nginx = await Nginx.start({ upstreamPorts: [await freePort()] });
  });

  after(async () => {
    await nginx?.stop();
  });

  for (const route of ['/i', '/ingest.php', '/health']) {
    it(`${route} answers a JSON 503 ERR_INGEST_UNAVAILABLE with Retry-After, not an HTML 502`, async () => {
      const res = await fetch(nginx.base + route, { method: route === '/health' ? 'GET' : 'POST', body: route === '/health' ? undefined : sample });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get('retry-after'), '5');
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'ERR_INGEST_UNAVAILABLE');
    });
  }
});
