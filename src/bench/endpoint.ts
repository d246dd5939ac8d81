/**
 * The counting endpoint: a plain node:http server standing in for the partners. Every delivery is
 * booked in the Ledger by its X-Postback-Id (and the data's `seq`, when the URL carries one), its
 * ingest-to-delivery latency taken from the `ts` (µs since the epoch, set by the client at send time)
 * in the URL, or from the enqueue time in the postback id when there is none. Paths under /slow answer
 * after a delay, to play a slow partner.
 */
import http from 'node:http';
import type net from 'node:net';
import { Ledger } from './ledger.js';
import { NumberSeries } from './stats.js';

/** Microseconds since the epoch, with sub-millisecond precision. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Milliseconds since the epoch at which Redis made the stream entry a postback id starts with. */
export function enqueueMsOfId(postbackId: string): number {
  return Number(postbackId.slice(0, postbackId.indexOf('-')));
}

export interface Arrivals {
  /** Arrival times, µs since the epoch, one per arrival (repeats included). */
  readonly at: NumberSeries;
  /** Ingest-to-delivery latency, ms, one per first arrival of a postback. */
  readonly latencyMs: NumberSeries;
}

export class CountingEndpoint {
  readonly ledger = new Ledger();
  readonly fast: Arrivals = { at: new NumberSeries(), latencyMs: new NumberSeries() };
  readonly slow: Arrivals = { at: new NumberSeries(), latencyMs: new NumberSeries() };
  /** Requests without an X-Postback-Id (not from the delivery workers). */
  strays = 0;
  slowInFlight = 0;
  slowMaxConcurrent = 0;
  /** The latest delivery booked (tests replay it to check that a repeat is counted). */
  lastArrival: { readonly id: string; readonly url: string } | undefined;
  private readonly seen = new Set<string>();
  private readonly server: http.Server;
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(readonly slowDelayMs = 200) {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 65_000;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(port, host, resolve));
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const at = nowUs();
    const url = req.url ?? '/';
    const id = req.headers['x-postback-id'];
    const slow = url.startsWith('/slow');
    req.resume();
    if (typeof id !== 'string') this.strays++;
    else this.book(id, url, at, slow ? this.slow : this.fast);
    if (slow) {
      this.slowInFlight++;
      if (this.slowInFlight > this.slowMaxConcurrent) this.slowMaxConcurrent = this.slowInFlight;
      setTimeout(() => {
        this.slowInFlight--;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      }, this.slowDelayMs);
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    }
    if (this.waiters.length) this.notify();
  }

  private book(id: string, url: string, atUs: number, into: Arrivals): void {
    const q = url.indexOf('?');
    const params = q >= 0 ? new URLSearchParams(url.slice(q + 1)) : undefined;
    const seq = params?.get('seq') ?? undefined;
    this.ledger.arrive(id, seq);
    this.lastArrival = { id, url };
    into.at.push(atUs);
    if (this.seen.has(id)) return;
    this.seen.add(id);
    const ts = params?.get('ts');
    const sentUs = ts ? Number(ts) : enqueueMsOfId(id) * 1000;
    if (Number.isFinite(sentUs)) into.latencyMs.push((atUs - sentUs) / 1000);
  }

  /** Resolves once `check()` holds (checked at every arrival); false if `timeoutMs` passed first. */
  until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(check());
      }, timeoutMs);
      const waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      this.waiters.push(waiter);
    });
  }

  private notify(): void {
    const done = this.waiters.filter((w) => w.check());
    if (!done.length) return;
    this.waiters = this.waiters.filter((w) => !done.includes(w));
    for (const w of done) w.resolve();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
