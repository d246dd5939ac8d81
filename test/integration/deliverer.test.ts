/**
 * One delivery attempt, both HTTP clients (DELIVERY_HTTP_CLIENT=got and =node), against a real HTTP
 * server on 127.0.0.1: every case must give the same outcome (status or error code, body, Retry-After)
 * from both, and the partner must see the same request. The node client only exists because it is
 * cheaper; this suite is what makes it a drop-in.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import zlib from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { createDeliverer, type AttemptOutcome, type Deliverer, type DeliveryRequest } from '../../src/delivery/deliver.js';
import { createDestinationPolicy } from '../../src/shared/destination-policy.js';
import { freePort } from '../helpers/redis-server.js';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

const MAX_BYTES = 1000;
/** The partners of these tests listen on loopback: allowed, as an operator allows a partner's network. */
const policy = createDestinationPolicy({ allowNetworks: '127.0.0.0/8,::1/128' });
const TIMEOUT_MS = 400;

describe('deliverer: got and node:http give the same outcomes', () => {
  let server: http.Server;
  let base: string;
  let seen: Seen[] = [];
  const sockets = new Set<net.Socket>();

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = req.url ?? '';
        seen.push({ method: req.method ?? '', url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        const path = url.split('?')[0]!;
        const hops = /^\/hops\/(\d+)$/.exec(path);
        if (hops) {
          const n = Number(hops[1]);
          if (n === 0) return void res.end(`landed ${req.method}`);
          res.writeHead(302, { location: `/hops/${n - 1}` });
          return void res.end();
        }
        switch (path) {
          case '/ok':
            return void res.end('ok');
          case '/created':
            res.writeHead(201, { 'content-type': 'text/plain' });
            return void res.end('thanks');
          case '/echo':
            res.writeHead(200, { 'content-type': 'text/plain' });
            return void res.end(`${req.method} ${req.headers['content-type'] ?? '-'} ${Buffer.concat(chunks).toString('utf8')}`);
          case '/busy':
            res.writeHead(503, { 'retry-after': '7' });
            return void res.end('come back later');
          case '/missing':
            res.writeHead(404);
            return void res.end('no such thing');
          case '/see-other':
            res.writeHead(303, { location: '/echo' });
            return void res.end();
          case '/temporary':
            res.writeHead(307, { location: `${base}/echo` });
            return void res.end();
          case '/moved':
            res.writeHead(301, { location: '/echo' });
            return void res.end();
          case '/loop':
            res.writeHead(302, { location: '/loop' });
            return void res.end();
          case '/gzip':
            res.writeHead(200, { 'content-encoding': 'gzip' });
            return void res.end(zlib.gzipSync('hello from gzip'));
          case '/deflate':
            res.writeHead(200, { 'content-encoding': 'deflate' });
            return void res.end(zlib.deflateSync('hello from deflate'));
          case '/br':
            res.writeHead(200, { 'content-encoding': 'br' });
            return void res.end(zlib.brotliCompressSync('hello from br'));
          case '/big':
            res.writeHead(200);
            return void res.end('x'.repeat(256 * 1024));
          case '/big-gzip':
            res.writeHead(200, { 'content-encoding': 'gzip' });
            return void res.end(zlib.gzipSync('y'.repeat(256 * 1024)));
          case '/never':
            return; // no answer: the timeout decides
          case '/trickle':
            res.writeHead(200);
            return void res.write('partial'); // the status line, then the body stalls
          case '/hang-up':
            return void req.socket.destroy();
          case '/broken':
            res.writeHead(200, { 'content-length': '100' });
            res.write('partial');
            return void setTimeout(() => req.socket.destroy(), 20);
          default:
            res.writeHead(500);
            return void res.end('unknown test path');
        }
      });
    });
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  const clients = ['got', 'node'] as const;
  const deliverers = new Map<string, Deliverer>();
  const deliverer = (client: (typeof clients)[number], postFormat: 'json' | 'form' = 'json') => {
    const key = `${client}/${postFormat}`;
    let d = deliverers.get(key);
    if (!d) {
      d = createDeliverer({ timeoutMs: TIMEOUT_MS, maxResponseBytes: MAX_BYTES, postFormat, userAgent: 'pb-test/1', maxSockets: 8, client, policy });
      deliverers.set(key, d);
    }
    return d;
  };
  after(() => {
    for (const d of deliverers.values()) d.close();
  });

  const request = (url: string, extra: Partial<DeliveryRequest> = {}): DeliveryRequest => ({
    method: 'GET',
    url,
    dataJson: '{"a":"1","b":null}',
    data: { a: '1', b: null },
    postbackId: '1700000000000-0.1',
    attempt: 2,
    ...extra,
  });

  /** The outcome without its duration, which differs by nature. */
  const strip = ({ durationMs, ...rest }: AttemptOutcome) => {
    assert.ok(durationMs >= 0);
    return rest;
  };

  interface Case {
    readonly name: string;
    readonly req: () => DeliveryRequest;
    readonly postFormat?: 'json' | 'form';
    readonly expect: (o: ReturnType<typeof strip>) => void;
  }

  const cases: Case[] = [
    { name: '200', req: () => request(`${base}/ok`), expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'ok' }) },
    { name: '201 with a body', req: () => request(`${base}/created`), expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 201 }, body: 'thanks' }) },
    {
      name: '503 with Retry-After',
      req: () => request(`${base}/busy`),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 503 }, body: 'come back later', retryAfter: '7' }),
    },
    { name: '404', req: () => request(`${base}/missing`), expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 404 }, body: 'no such thing' }) },
    {
      name: 'POST sends the data object as JSON',
      req: () => request(`${base}/echo`, { method: 'POST' }),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'POST application/json {"a":"1","b":null}' }),
    },
    {
      name: 'POST form-encoded',
      postFormat: 'form',
      req: () => request(`${base}/echo`, { method: 'POST' }),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'POST application/x-www-form-urlencoded a=1&b=' }),
    },
    {
      name: 'redirects are followed (5 hops)',
      req: () => request(`${base}/hops/5`),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'landed GET' }),
    },
    {
      name: 'a sixth redirect is an error',
      req: () => request(`${base}/hops/6`),
      expect: (o) => assert.deepEqual({ ...o.result, body: o.body }, { kind: 'error', code: 'ERR_TOO_MANY_REDIRECTS', body: '' }),
    },
    { name: 'a redirect loop is an error', req: () => request(`${base}/loop`), expect: (o) => assert.deepEqual(o.result, { kind: 'error', code: 'ERR_TOO_MANY_REDIRECTS' }) },
    {
      // got keeps the Content-Type header on the bodiless GET; harmless, and the node client does the same.
      name: '303 after a POST becomes a GET without a body',
      req: () => request(`${base}/see-other`, { method: 'POST' }),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'GET application/json ' }),
    },
    {
      name: '307 keeps the method and the body',
      req: () => request(`${base}/temporary`, { method: 'POST' }),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'POST application/json {"a":"1","b":null}' }),
    },
    {
      name: '301 keeps the method and the body',
      req: () => request(`${base}/moved`, { method: 'POST' }),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'POST application/json {"a":"1","b":null}' }),
    },
    { name: 'gzip body decoded', req: () => request(`${base}/gzip`), expect: (o) => assert.equal(o.body, 'hello from gzip') },
    { name: 'deflate body decoded', req: () => request(`${base}/deflate`), expect: (o) => assert.equal(o.body, 'hello from deflate') },
    { name: 'br body decoded', req: () => request(`${base}/br`), expect: (o) => assert.equal(o.body, 'hello from br') },
    {
      name: 'a large body is cut at the bound',
      req: () => request(`${base}/big`),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'x'.repeat(MAX_BYTES) }),
    },
    {
      name: 'a large compressed body is cut at the bound, decoded',
      req: () => request(`${base}/big-gzip`),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'y'.repeat(MAX_BYTES) }),
    },
    { name: 'no answer: timeout', req: () => request(`${base}/never`), expect: (o) => assert.deepEqual(o.result, { kind: 'error', code: 'ETIMEDOUT' }) },
    { name: 'connection closed without an answer', req: () => request(`${base}/hang-up`), expect: (o) => assert.deepEqual(o.result, { kind: 'error', code: 'ECONNRESET' }) },
    {
      name: 'a body that breaks after the status: judged by the status',
      req: () => request(`${base}/broken`),
      expect: (o) => assert.deepEqual(o.result, { kind: 'response', status: 200 }),
    },
    {
      name: 'a body slower than the timeout: judged by the status, with what arrived',
      req: () => request(`${base}/trickle`),
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'partial' }),
    },
    {
      name: 'aborted after the status line: judged by the status',
      req: () => {
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 100);
        return request(`${base}/trickle`, { signal: ac.signal });
      },
      expect: (o) => assert.deepEqual(o, { result: { kind: 'response', status: 200 }, body: 'partial' }),
    },
    { name: 'invalid URL', req: () => request('http://exa mple.com/x'), expect: (o) => assert.deepEqual(o.result, { kind: 'error', code: 'ERR_INVALID_URL' }) },
    { name: 'unsupported protocol', req: () => request('ftp://127.0.0.1/x'), expect: (o) => assert.deepEqual(o.result, { kind: 'error', code: 'ERR_UNSUPPORTED_PROTOCOL' }) },
    {
      name: 'aborted by the signal (shutdown)',
      req: () => {
        const ac = new AbortController(); // as the worker aborts at shutdown
        setTimeout(() => ac.abort(), 50);
        return request(`${base}/never`, { signal: ac.signal });
      },
      expect: (o) => assert.deepEqual(o.result, { kind: 'error', code: 'ERR_ABORTED' }),
    },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const outcomes = [];
      for (const client of clients) {
        const o = strip(await deliverer(client, c.postFormat)(c.req()));
        c.expect(o);
        if (o.result.kind === 'error') assert.ok(o.errorMessage, `${client}: an error has a message`);
        outcomes.push({ ...o, errorMessage: undefined });
      }
      assert.deepEqual(outcomes[1], outcomes[0], 'got and node give the same outcome');
    });
  }

  it('a closed port: ECONNREFUSED', async () => {
    const port = await freePort();
    for (const client of clients) {
      const o = await deliverer(client)(request(`http://127.0.0.1:${port}/x`));
      assert.deepEqual(o.result, { kind: 'error', code: 'ECONNREFUSED' }, client);
    }
  });

  it('the partner sees the same request from both clients', async () => {
    const requests: Record<string, Seen> = {};
    for (const client of clients) {
      for (const method of ['GET', 'POST'] as const) {
        seen = [];
        await deliverer(client)(request(`${base}/echo?k=v%20w`, { method }));
        assert.equal(seen.length, 1);
        requests[`${client} ${method}`] = seen[0]!;
      }
    }
    for (const method of ['GET', 'POST']) {
      const [g, n] = [requests[`got ${method}`]!, requests[`node ${method}`]!];
      const pick = (s: Seen) => ({
        method: s.method,
        url: s.url,
        body: s.body,
        headers: Object.fromEntries(
          ['host', 'user-agent', 'x-postback-id', 'x-postback-attempt', 'content-type', 'content-length', 'accept-encoding', 'transfer-encoding'].map((h) => [
            h,
            s.headers[h],
          ]),
        ),
      });
      assert.deepEqual(pick(n), pick(g), method);
      assert.equal(g.headers['user-agent'], 'pb-test/1');
      assert.equal(g.headers['x-postback-id'], '1700000000000-0.1');
      assert.equal(g.headers['x-postback-attempt'], '2');
      assert.equal(g.url, '/echo?k=v%20w');
    }
    assert.equal(requests['got POST']!.headers['content-length'], String('{"a":"1","b":null}'.length));
  });

  it('keeps connections alive: many deliveries, few sockets', async () => {
    for (const client of clients) {
      const before = new Set<net.Socket>();
      const onConn = (s: net.Socket) => before.add(s);
      server.on('connection', onConn);
      const d = createDeliverer({ timeoutMs: 2000, maxResponseBytes: MAX_BYTES, postFormat: 'json', userAgent: 'x', maxSockets: 4, client, policy });
      for (let round = 0; round < 5; round++) {
        const outcomes = await Promise.all(Array.from({ length: 4 }, () => d(request(`${base}/ok`))));
        for (const o of outcomes) assert.deepEqual(o.result, { kind: 'response', status: 200 });
      }
      server.off('connection', onConn);
      d.close();
      assert.ok(before.size <= 4, `${client}: 20 deliveries over ${before.size} connections`);
    }
  });
});

describe('deliverer over HTTPS and IPv6, both clients', () => {
  const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url));
  let tlsServer: https.Server;
  let v6Server: http.Server | undefined;
  let tlsPort: number;
  before(async () => {
    // A self-signed certificate for localhost and 127.0.0.1, valid until 2126 (test/fixtures).
    tlsServer = https.createServer({ key: fixture('tls-key.pem'), cert: fixture('tls-cert.pem') }, (req, res) => {
      req.resume();
      req.on('end', () => res.end(`tls ${req.method} ${req.headers.host}`));
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    tlsPort = (tlsServer.address() as net.AddressInfo).port;
    const v6 = http.createServer((req, res) => res.end(`v6 ${req.headers.host}`));
    v6Server = await new Promise<http.Server | undefined>((resolve) => {
      v6.once('error', () => resolve(undefined)); // no IPv6 loopback on this machine
      v6.listen(0, '::1', () => resolve(v6));
    });
  });
  after(async () => {
    tlsServer.closeAllConnections();
    await new Promise((r) => tlsServer.close(r));
    v6Server?.closeAllConnections();
    if (v6Server) await new Promise((r) => v6Server!.close(r));
  });
  const req = (url: string): DeliveryRequest => ({ method: 'GET', url, dataJson: '{}', data: {}, postbackId: '1-0.1', attempt: 1 });
  const make = (client: 'got' | 'node', trust: boolean) =>
    createDeliverer({
      timeoutMs: 2000,
      maxResponseBytes: 1000,
      postFormat: 'json',
      userAgent: 'x',
      maxSockets: 4,
      client,
      policy,
      ...(trust ? { agents: { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true, ca: fixture('tls-cert.pem') }) } } : {}),
    });

  it('HTTPS to a partner whose certificate is trusted: delivered, the certificate checked against the host name, the Host header kept', async () => {
    for (const client of ['got', 'node'] as const) {
      const d = make(client, true);
      for (const host of ['localhost', '127.0.0.1']) {
        const o = await d(req(`https://${host}:${tlsPort}/x`));
        assert.deepEqual({ result: o.result, body: o.body }, { result: { kind: 'response', status: 200 }, body: `tls GET ${host}:${tlsPort}` }, `${client} ${host}`);
      }
      d.close();
    }
  });

  it('HTTPS to a partner whose certificate is not trusted: the same TLS error code from both', async () => {
    const codes = [];
    for (const client of ['got', 'node'] as const) {
      const d = make(client, false);
      const o = await d(req(`https://localhost:${tlsPort}/x`));
      d.close();
      assert.equal(o.result.kind, 'error', client);
      codes.push(o.result.kind === 'error' ? o.result.code : '');
    }
    assert.equal(codes[0], 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.deepEqual(codes[1], codes[0]);
  });

  it('an IPv6 literal host', async (t) => {
    if (!v6Server) return t.diagnostic('no IPv6 loopback here: not applicable');
    const port = (v6Server.address() as net.AddressInfo).port;
    for (const client of ['got', 'node'] as const) {
      const d = make(client, false);
      const o = await d(req(`http://[::1]:${port}/x`));
      d.close();
      assert.deepEqual({ result: o.result, body: o.body }, { result: { kind: 'response', status: 200 }, body: `v6 [::1]:${port}` }, client);
    }
  });
});

describe('destination policy, both clients: refused where the connection is made', () => {
  // Two partners on loopback addresses of their own (Linux routes all of 127.0.0.0/8 to lo): the one on
  // 127.0.0.2 is the allowed partner, the one on 127.0.0.1 stands for what must stay out of reach (the
  // appliance's own /metrics, Redis, a metadata service...).
  let allowed: http.Server;
  let forbidden: http.Server;
  let allowedPort: number;
  let forbiddenPort: number;
  /** Connections and requests that reached the forbidden server. */
  let forbiddenConnections = 0;
  let forbiddenRequests = 0;
  const start = async (host: string, handler: http.RequestListener) => {
    const s = http.createServer(handler);
    await new Promise<void>((resolve) => s.listen(0, host, resolve));
    return s;
  };
  before(async () => {
    forbidden = await start('127.0.0.1', (req, res) => {
      forbiddenRequests++;
      res.end('you should not be here');
    });
    forbidden.on('connection', () => forbiddenConnections++);
    forbiddenPort = (forbidden.address() as net.AddressInfo).port;
    allowed = await start('127.0.0.2', (req, res) => {
      if (req.url === '/to-loopback') {
        res.writeHead(302, { location: `http://127.0.0.1:${forbiddenPort}/metrics` });
        return void res.end();
      }
      if (req.url === '/to-localhost') {
        res.writeHead(307, { location: `http://localhost:${forbiddenPort}/stats` });
        return void res.end();
      }
      res.end('partner ok');
    });
    allowedPort = (allowed.address() as net.AddressInfo).port;
  });
  after(async () => {
    for (const s of [allowed, forbidden]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  const req = (url: string): DeliveryRequest => ({ method: 'GET', url, dataJson: '{}', data: {}, postbackId: '1-0.1', attempt: 1 });
  const only127002 = createDestinationPolicy({ allowNetworks: '127.0.0.2/32' });
  const clients = ['got', 'node'] as const;

  /** Deliver `url` with each client under `p`; returns the outcomes, after checking none reached the forbidden server. */
  const attempt = async (p: ReturnType<typeof createDestinationPolicy>, url: string, extra: Partial<Parameters<typeof createDeliverer>[0]> = {}) => {
    const out: Record<string, AttemptOutcome> = {};
    for (const client of clients) {
      const d = createDeliverer({ timeoutMs: 2000, maxResponseBytes: 1000, postFormat: 'json', userAgent: 'x', maxSockets: 4, client, policy: p, ...extra });
      try {
        out[client] = await d(req(url));
      } finally {
        d.close();
      }
    }
    return out;
  };
  const assertForbidden = (o: AttemptOutcome, client: string, message: RegExp) => {
    assert.deepEqual(o.result, { kind: 'error', code: 'ERR_DESTINATION_FORBIDDEN' }, `${client}: ${o.errorMessage}`);
    assert.match(o.errorMessage ?? '', message, client);
  };

  it('the allowed partner is reached by both clients', async () => {
    const out = await attempt(only127002, `http://127.0.0.2:${allowedPort}/x`);
    for (const client of clients) assert.deepEqual({ result: out[client]!.result, body: out[client]!.body }, { result: { kind: 'response', status: 200 }, body: 'partner ok' }, client);
  });

  it('a literal loopback address is refused before connecting, in every spelling the URL parser accepts', async () => {
    forbiddenConnections = 0;
    for (const host of ['127.0.0.1', '2130706433', '0177.0.0.1', '0x7f.0.0.1', '127.1']) {
      const out = await attempt(only127002, `http://${host}:${forbiddenPort}/metrics`);
      for (const client of clients) assertForbidden(out[client]!, `${client} ${host}`, /127\.0\.0\.1 is not allowed \(loopback\)/);
    }
    assert.equal(forbiddenConnections, 0, 'no connection was even opened');
  });

  it('the default policy refuses loopback (and the IPv6 loopback) too', async () => {
    const out = await attempt(createDestinationPolicy(), `http://127.0.0.2:${allowedPort}/x`);
    for (const client of clients) assertForbidden(out[client]!, client, /loopback/);
    const v6 = await attempt(createDestinationPolicy(), `http://[::1]:${allowedPort}/x`);
    for (const client of clients) assertForbidden(v6[client]!, client, /::1 is not allowed \(loopback\)/);
    const mapped = await attempt(createDestinationPolicy(), `http://[::ffff:127.0.0.1]:${forbiddenPort}/x`);
    for (const client of clients) assertForbidden(mapped[client]!, client, /ipv4Mapped:loopback/);
  });

  it('a host name that resolves to loopback (localhost) is refused at the lookup, before connecting', async () => {
    forbiddenConnections = 0;
    const out = await attempt(only127002, `http://localhost:${forbiddenPort}/stats`);
    for (const client of clients) assertForbidden(out[client]!, client, /localhost resolves to (127\.0\.0\.1|::1)/);
    assert.equal(forbiddenConnections, 0);
  });

  it('a name allowed by DELIVERY_ALLOW_HOSTS may resolve to a private address', async () => {
    const out = await attempt(createDestinationPolicy({ allowHosts: 'localhost' }), `http://localhost:${forbiddenPort}/x`);
    for (const client of clients) assert.deepEqual(out[client]!.result, { kind: 'response', status: 200 }, client);
  });

  it('a redirect from the allowed partner into loopback is refused at the hop', async () => {
    forbiddenRequests = 0;
    for (const path of ['/to-loopback', '/to-localhost']) {
      const out = await attempt(only127002, `http://127.0.0.2:${allowedPort}${path}`);
      for (const client of clients) assertForbidden(out[client]!, `${client} ${path}`, /loopback/);
    }
    assert.equal(forbiddenRequests, 0, 'the forbidden server got no request');
  });

  it('what a connection really reached is checked again once connected (a resolver or agent that lies: DNS rebinding)', async () => {
    // An agent whose own connection ignores the name's lookup and goes to 127.0.0.1, as a DNS answer
    // changed between the check and the connect would: the guard checks the socket's remote address.
    class Rebinding extends http.Agent {
      override createConnection(options: any, cb: any) {
        return super.createConnection({ ...options, host: '127.0.0.1', port: forbiddenPort, lookup: undefined }, cb);
      }
    }
    forbiddenRequests = 0;
    forbiddenConnections = 0;
    const out = await attempt(only127002, 'http://partner.example/x', { agents: { http: new Rebinding({ keepAlive: true }), https: new https.Agent() } });
    for (const client of clients) assertForbidden(out[client]!, client, /partner\.example connected to 127\.0\.0\.1, which is not allowed \(loopback\)/);
    assert.equal(forbiddenConnections, clients.length, 'each client connected once...');
    assert.equal(forbiddenRequests, 0, '...and was cut off before sending its request');
  });

  it('over HTTPS too: a literal and a name resolving to loopback are refused before any TLS', async () => {
    forbiddenConnections = 0;
    for (const url of [`https://127.0.0.1:${forbiddenPort}/x`, `https://localhost:${forbiddenPort}/x`, `https://[::1]:${forbiddenPort}/x`]) {
      const out = await attempt(only127002, url);
      for (const client of clients) assertForbidden(out[client]!, `${client} ${url}`, /loopback/);
    }
    assert.equal(forbiddenConnections, 0);
  });

  it('ports outside DELIVERY_ALLOW_PORTS are refused, port 0 always', async () => {
    const p = createDestinationPolicy({ allowNetworks: '127.0.0.0/8', allowPorts: '80,443' });
    const out = await attempt(p, `http://127.0.0.2:${allowedPort}/x`);
    for (const client of clients) assertForbidden(out[client]!, client, new RegExp(`port ${allowedPort} is not allowed \\(port_not_allowed\\)`));
  });

  it('denied networks win over allowed ones', async () => {
    const p = createDestinationPolicy({ allowNetworks: '127.0.0.0/8', denyNetworks: '127.0.0.2/32' });
    const out = await attempt(p, `http://127.0.0.2:${allowedPort}/x`);
    for (const client of clients) assertForbidden(out[client]!, client, /denied_network/);
  });
});
