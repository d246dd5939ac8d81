/**
 * One delivery attempt over HTTP with got: keep-alive agents, an explicit timeout, got's own retries off
 * (the queue owns retries), and a bounded read of the response body. Never throws: every failure comes
 * back as an AttemptResult the classifier understands.
 *
 * DELIVERY_HTTP_CLIENT=node sends the same requests with node:http directly (http-node.ts), which the
 * bench measured at a quarter of got's CPU per request; headers, body and outcome are built here for both.
 */
import http from 'node:http';
import https from 'node:https';
import got, { type Got } from 'got';
import type { DestinationPolicy } from '../shared/destination-policy.js';
import type { HttpMethod } from '../shared/queue.js';
import { valueText, type DataObject } from '../shared/template.js';
import type { AttemptResult } from './classify.js';
import { guardAgent } from './destination-guard.js';
import { RequestFailure, nodeRequest } from './http-node.js';

export interface DelivererOptions {
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly postFormat: 'json' | 'form';
  readonly userAgent: string;
  /** Which HTTP client sends: got (the default) or node:http directly (DELIVERY_HTTP_CLIENT). */
  readonly client?: 'got' | 'node';
  /** Sockets kept per partner host; in-flight deliveries never exceed the worker's concurrency anyway. */
  readonly maxSockets: number;
  /** Where deliveries may connect (config.destinationPolicy): enforced on the agents, for both clients. */
  readonly policy: DestinationPolicy;
  /**
   * Connection agents to use instead of the keep-alive ones built here. Tests pass agents that pin
   * every connection to a local endpoint (like curl --resolve), so the brief's own URLs can be sent.
   * The destination policy is enforced on these too.
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

/** Redirects followed per attempt (both clients). */
export const MAX_REDIRECTS = 5;

export function createDeliverer(options: DelivererOptions): Deliverer {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, maxFreeSockets: options.maxSockets, scheduling: 'lifo' as const };
  const agent = {
    http: guardAgent(options.agents?.http ?? new http.Agent(agentOptions), options.policy),
    https: guardAgent(options.agents?.https ?? new https.Agent(agentOptions), options.policy),
  };
  const send = options.client === 'node' ? nodeSender(options, agent) : gotSender(options, agent);

  const deliver = async (req: DeliveryRequest): Promise<AttemptOutcome> => {
    const started = performance.now();
    const headers: Record<string, string> = {
      'user-agent': options.userAgent,
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
    const r = await send(req, headers, body);
    if (r.status === undefined) {
      return {
        result: { kind: 'error', code: r.errorCode ?? 'ERR_NO_RESPONSE' },
        durationMs: elapsed(started),
        body: '',
        errorMessage: r.errorMessage ?? 'no response',
      };
    }
    return {
      result: { kind: 'response', status: r.status },
      durationMs: elapsed(started),
      body: r.body.toString('utf8'),
      ...(r.retryAfter !== undefined ? { retryAfter: r.retryAfter } : {}),
    };
  };
  return Object.assign(deliver, {
    close() {
      agent.http.destroy();
      agent.https.destroy();
    },
  });
}

/** What a client saw: a status and the start of the body, or no response and why. */
interface Sent {
  readonly status: number | undefined;
  readonly body: Buffer;
  readonly retryAfter?: string;
  readonly errorCode?: string;
  readonly errorMessage?: string;
}

type Sender = (req: DeliveryRequest, headers: Record<string, string>, body: string | undefined) => Promise<Sent>;

const NO_BODY = Buffer.alloc(0);

function gotSender(options: DelivererOptions, agent: { http: http.Agent; https: https.Agent }): Sender {
  const client: Got = got.extend({
    agent,
    retry: { limit: 0 },
    timeout: { request: options.timeoutMs },
    throwHttpErrors: false,
    followRedirect: true,
    maxRedirects: MAX_REDIRECTS,
    decompress: true,
  });
  return async (req, headers, body) => {
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
      // Without a status there was no response; with one, the response started and then broke: judge by its status.
      if (status === undefined) return { status, body: NO_BODY, errorCode: errorCode(err), errorMessage: String(err?.message ?? err) };
    }
    return { status, body: Buffer.concat(chunks), ...(retryAfter !== undefined ? { retryAfter } : {}) };
  };
}

function nodeSender(options: DelivererOptions, agents: { http: http.Agent; https: https.Agent }): Sender {
  return async (req, headers, body) => {
    try {
      const res = await nodeRequest({
        method: req.method,
        url: req.url,
        headers: Object.assign(headers, { 'accept-encoding': 'gzip, deflate, br' }), // what got asks for with decompress
        body,
        signal: req.signal,
        timeoutMs: options.timeoutMs,
        maxResponseBytes: options.maxResponseBytes,
        maxRedirects: MAX_REDIRECTS,
        agents,
      });
      return { status: res.status, body: res.body, ...(res.retryAfter !== undefined ? { retryAfter: res.retryAfter } : {}) };
    } catch (err: any) {
      return { status: undefined, body: NO_BODY, errorCode: err instanceof RequestFailure ? err.code : errorCode(err), errorMessage: String(err?.message ?? err) };
    }
  };
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
