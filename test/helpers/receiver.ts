/**
 * A real HTTP endpoint on 127.0.0.1 standing in for a partner: records every request, and answers with
 * whatever the test's handler decides (status, body, delay, headers).
 */
import http from 'node:http';
import type net from 'node:net';

export interface ReceivedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

export interface Reply {
  readonly status?: number;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  readonly delayMs?: number;
}

export type Handler = (req: ReceivedRequest, index: number) => Reply | undefined;

export class Receiver {
  readonly requests: ReceivedRequest[] = [];
  handler: Handler = () => undefined;
  private waiters: { n: number; resolve: () => void }[] = [];
  private constructor(
    private readonly server: http.Server,
    readonly host: string,
  ) {}

  /** Listens on `host` (another loopback address, 127.0.0.2, when a test needs two). */
  static async start(handler?: Handler, host = '127.0.0.1'): Promise<Receiver> {
    const server = http.createServer();
    const r = new Receiver(server, host);
    if (handler) r.handler = handler;
    server.keepAliveTimeout = 30_000;
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rec: ReceivedRequest = {
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          at: Date.now(),
        };
        const index = r.requests.length;
        r.requests.push(rec);
        const reply = r.handler(rec, index) ?? {};
        const send = () => {
          res.writeHead(reply.status ?? 200, { 'content-type': 'text/plain', ...reply.headers });
          res.end(reply.body ?? 'ok');
        };
        if (reply.delayMs) setTimeout(send, reply.delayMs);
        else send();
        r.notify();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    return r;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get base(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** Resolves once `n` requests have arrived in all; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs = 15_000): Promise<void> {
    if (this.requests.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`receiver got ${this.requests.length} of ${n} requests in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  private notify(): void {
    const done = this.waiters.filter((w) => this.requests.length >= w.n);
    this.waiters = this.waiters.filter((w) => this.requests.length < w.n);
    for (const w of done) w.resolve();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
