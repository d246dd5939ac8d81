/**
 * One delivery attempt over HTTP with got: keep-alive agents, an explicit timeout, got's own retries off
 * (the queue owns retries), and a bounded read of the response body. Never throws: every failure comes
 * back as an AttemptResult the classifier understands.
 */
import http from 'node:http';
import https from 'node:https';
import got, { type Got } from 'got';
import type { HttpMethod } from '../shared/queue.js';
import { valueText, type DataObject } from '../shared/template.js';
import type { AttemptResult } from './classify.js';

export interface DelivererOptions {
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly postFormat: 'json' | 'form';
  readonly userAgent: string;
  /** Sockets kept per partner host; in-flight deliveries never exceed the worker's concurrency anyway. */
  readonly maxSockets: number;
  /**
   * Connection agents to use instead of the keep-alive ones built here. Tests pass agents that pin
   * every connection to a local endpoint (like curl --resolve), so the brief's own URLs can be sent.
   */
  readonly agents?: { readonly http: http.Agent; readonly https: https.Agent };
}

export interface DeliveryRequest {
  readonly method: HttpMethod;
  readonly url: string;
  /** The data object as compact JSON, sent as-is for JSON POSTs. */
  readonly dataJson: string;
  readonly data: DataObject;
  readonly postbackId: string;
  readonly attempt: number;
  readonly signal?: AbortSignal;
}

export interface AttemptOutcome {
  readonly result: AttemptResult;
  readonly durationMs: number;
  /** The first maxResponseBytes of the response body, as text ('' without a response). */
  readonly body: string;
  /** Raw Retry-After header, when the partner sent one. */
  readonly retryAfter?: string;
  /** Error message when there was no response. */
  readonly errorMessage?: string;
}

export type Deliverer = ((req: DeliveryRequest) => Promise<AttemptOutcome>) & { close(): void };

export function formBody(data: DataObject): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(data)) params.append(k, valueText(v) ?? '');
  return params.toString();
}

export function createDeliverer(options: DelivererOptions): Deliverer {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, maxFreeSockets: options.maxSockets, scheduling: 'lifo' as const };
  const agent = options.agents ?? { http: new http.Agent(agentOptions), https: new https.Agent(agentOptions) };
  const client: Got = got.extend({
    agent,
    retry: { limit: 0 },
    timeout: { request: options.timeoutMs },
    throwHttpErrors: false,
    followRedirect: true,
    maxRedirects: 5,
    decompress: true,
    headers: { 'user-agent': options.userAgent },
  });

  const deliver = async (req: DeliveryRequest): Promise<AttemptOutcome> => {
    const started = performance.now();
    const headers: Record<string, string> = {
      'x-postback-id': req.postbackId,
      'x-postback-attempt': String(req.attempt),
    };
    let body: string | undefined;
    if (req.method === 'POST') {
      if (options.postFormat === 'form') {
        body = formBody(req.data);
        headers['content-type'] = 'application/x-www-form-urlencoded';
      } else {
        body = req.dataJson;
        headers['content-type'] = 'application/json';
      }
    }
    let status: number | undefined;
    let retryAfter: string | undefined;
    const chunks: Buffer[] = [];
    let received = 0;
    try {
      const stream = client.stream(req.url, { method: req.method, headers, body, signal: req.signal });
      stream.once('response', (res: http.IncomingMessage) => {
        status = res.statusCode;
        const ra = res.headers['retry-after'];
        if (typeof ra === 'string') retryAfter = ra;
      });
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        const room = options.maxResponseBytes - received;
        if (room > 0) chunks.push(room >= chunk.length ? chunk : chunk.subarray(0, room));
        received += chunk.length;
        // Enough to log: stop reading, the socket is not reused.
        if (received >= options.maxResponseBytes) {
          stream.destroy();
          break;
        }
      }
    } catch (err: any) {
      if (status === undefined) {
        return {
          result: { kind: 'error', code: errorCode(err) },
          durationMs: elapsed(started),
          body: '',
          errorMessage: String(err?.message ?? err),
        };
      }
      // The response started, then broke: judge by its status.
    }
    if (status === undefined) {
      return { result: { kind: 'error', code: 'ERR_NO_RESPONSE' }, durationMs: elapsed(started), body: '', errorMessage: 'no response' };
    }
    return {
      result: { kind: 'response', status },
      durationMs: elapsed(started),
      body: Buffer.concat(chunks).toString('utf8'),
      ...(retryAfter !== undefined ? { retryAfter } : {}),
    };
  };
  return Object.assign(deliver, {
    close() {
      agent.http.destroy();
      agent.https.destroy();
    },
  });
}

function elapsed(startedMs: number): number {
  return Math.round((performance.now() - startedMs) * 100) / 100;
}

function errorCode(err: any): string {
  if (err?.name === 'AbortError' || err?.code === 'ABORT_ERR') return 'ERR_ABORTED';
  if (err?.code === 'ERR_INVALID_URL' || err?.name === 'TypeError' && /Invalid URL/i.test(err?.message)) return 'ERR_INVALID_URL';
  if (err?.code === 'ERR_UNSUPPORTED_PROTOCOL') return 'ERR_UNSUPPORTED_PROTOCOL';
  return typeof err?.code === 'string' ? err.code : 'ERR_REQUEST';
}
