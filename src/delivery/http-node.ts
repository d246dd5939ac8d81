/**
 * The same delivery attempt as got's (deliver.ts), made with node:http directly: DELIVERY_HTTP_CLIENT=node.
 *
 * Why it exists: the bench measured got at about 250 µs of CPU per request on this kind of machine against
 * 65 µs for node:http with the same keep-alive agent (docs/benchmarks.md, "HTTP client"), and got's share
 * was the largest single cost of a delivery worker. got stays the default; this is the measured alternative
 * for operators who need the throughput.
 *
 * It behaves as got does with our options (test/integration/deliverer.test.ts runs every case against both):
 * one whole-attempt timeout (ETIMEDOUT), redirects followed up to `maxRedirects` (303 turns the request into
 * a GET without a body (other headers kept), the others keep method and body; one more is ERR_TOO_MANY_REDIRECTS), gzip, deflate
 * and br bodies decoded, the body read up to a bound, abort by signal (ERR_ABORTED), and the error codes of
 * node's sockets (ECONNREFUSED, ECONNRESET, ...) passed through.
 */
import http from 'node:http';
import https from 'node:https';
import zlib from 'node:zlib';
import type { Readable } from 'node:stream';

export interface NodeRequestOptions {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
  readonly signal: AbortSignal | undefined;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  readonly maxRedirects: number;
  readonly agents: { readonly http: http.Agent; readonly https: https.Agent };
}

export interface NodeResponse {
  readonly status: number;
  readonly body: Buffer;
  readonly retryAfter: string | undefined;
}

/** An error with the code the classifier and the log line use. */
export class RequestFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * One attempt: resolves with the final response's status and the first `maxResponseBytes` of its (decoded)
 * body, or rejects with a RequestFailure. Once the final response's status line is in, the status decides
 * (as with got): a body that breaks, times out or is aborted resolves with what was read.
 */
export function nodeRequest(o: NodeRequestOptions): Promise<NodeResponse> {
  return new Promise<NodeResponse>((resolve, reject) => {
    let settled = false;
    let current: http.ClientRequest | undefined;
    let timer: NodeJS.Timeout | undefined;
    /** The final response, once its status line arrived, and its body so far. */
    let final: { status: number; retryAfter: string | undefined; body: Buffer[] } | undefined;
    const finish = (err: RequestFailure | undefined, res?: NodeResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      if (err) current?.destroy();
      if (err && final) resolve({ status: final.status, body: Buffer.concat(final.body), retryAfter: final.retryAfter });
      else if (err) reject(err);
      else resolve(res!);
    };
    const onAbort = () => finish(new RequestFailure('ERR_ABORTED', 'This operation was aborted'));
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => finish(new RequestFailure('ETIMEDOUT', `Timeout awaiting 'request' for ${o.timeoutMs}ms`)), o.timeoutMs);

    const send = (urlText: string, method: string, body: string | undefined, hops: number) => {
      let url: URL;
      try {
        url = new URL(urlText);
      } catch {
        // Not the URL itself: it can carry the partner's secrets, and this message is logged.
        return finish(new RequestFailure('ERR_INVALID_URL', 'Invalid URL'));
      }
      const secure = url.protocol === 'https:';
      if (!secure && url.protocol !== 'http:') {
        return finish(new RequestFailure('ERR_UNSUPPORTED_PROTOCOL', `Unsupported protocol: ${url.protocol}`));
      }
      // After a 303 the body is gone but, as with got, the other headers stay (Content-Type included).
      const headers: Record<string, string> = body === undefined ? o.headers : { ...o.headers, 'content-length': String(Buffer.byteLength(body)) };
      let req: http.ClientRequest;
      try {
        req = (secure ? https : http).request({
          protocol: url.protocol,
          hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
          port: url.port || undefined,
          path: url.pathname + url.search,
          method,
          headers,
          agent: secure ? o.agents.https : o.agents.http,
          ...(url.username || url.password ? { auth: `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` } : {}),
        });
      } catch (err: any) {
        // Invalid header values and the like: the postback cannot be sent as it is.
        return finish(new RequestFailure(typeof err?.code === 'string' ? err.code : 'ERR_REQUEST', String(err?.message ?? err)));
      }
      current = req;
      req.on('error', (err: NodeJS.ErrnoException) => finish(new RequestFailure(err.code ?? 'ERR_REQUEST', err.message)));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if (REDIRECTS.has(status) && location) {
          res.resume();
          if (hops >= o.maxRedirects) {
            return finish(new RequestFailure('ERR_TOO_MANY_REDIRECTS', `Redirected ${o.maxRedirects} times. Aborting.`));
          }
          let next: string;
          try {
            next = new URL(location, url).toString();
          } catch {
            return finish(new RequestFailure('ERR_INVALID_URL', 'Invalid redirect URL'));
          }
          const rewrite = status === 303 && method !== 'GET' && method !== 'HEAD';
          return send(next, rewrite ? 'GET' : method, rewrite ? undefined : body, hops + 1);
        }
        const ra = res.headers['retry-after'];
        const started = { status, retryAfter: typeof ra === 'string' ? ra : undefined, body: [] as Buffer[] };
        final = started;
        readBounded(decoded(res), o.maxResponseBytes, started.body, () => res.destroy()).then(() =>
          finish(undefined, { status, body: Buffer.concat(started.body), retryAfter: started.retryAfter }),
        );
      });
      req.end(body);
    };
    send(o.url, o.method, o.body, 0);
  });
}

/** The response body decoded as got's decompress option does (gzip, deflate, br); as sent otherwise. */
function decoded(res: http.IncomingMessage): Readable {
  const encoding = (res.headers['content-encoding'] ?? '').trim().toLowerCase();
  let inflate: zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | undefined;
  const flush = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  if (encoding === 'gzip' || encoding === 'x-gzip') inflate = zlib.createGunzip(flush);
  else if (encoding === 'deflate') inflate = zlib.createInflate(flush);
  else if (encoding === 'br') inflate = zlib.createBrotliDecompress();
  if (!inflate) return res;
  const out = inflate;
  res.on('error', (err) => out.destroy(err));
  res.pipe(out);
  return out;
}

/**
 * Collects the first `max` bytes of a stream into `chunks`; calls `stop` once it has them. Never rejects:
 * a broken body ends the read.
 */
function readBounded(stream: Readable, max: number, chunks: Buffer[], stop: () => void): Promise<void> {
  return new Promise((resolve) => {
    let received = 0;
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      resolve();
    };
    stream.on('data', (chunk: Buffer) => {
      if (done) return;
      const room = max - received;
      if (room > 0) chunks.push(room >= chunk.length ? chunk : chunk.subarray(0, room));
      received += chunk.length;
      if (received >= max) {
        end();
        stream.destroy();
        stop();
      }
    });
    stream.on('end', end);
    stream.on('error', end);
    stream.on('close', end);
  });
}
