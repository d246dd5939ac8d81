/**
 * The ingest HTTP application (Koa). Builds the app; does not listen (main.ts does), so tests can run it
 * in-process on port 0.
 *
 *   POST /ingest.php, POST /i   one postback per data object, all enqueued or none -> 202
 *   GET  /health                whether Redis answers -> 200 or 503
 *   GET  /metrics, /stats, /dashboard/   monitoring (monitoring.ts), when `deps.monitoring` is given
 *
 * Every error is a JSON body {"error":{"code","message","details":[{"path","message"}]}}.
 */
import Koa from 'koa';
import Router, { type RouterMiddleware } from '@koa/router';
import bodyParser from 'koa-bodyparser';
import type { Redis } from 'ioredis';
import { AppError, QueueFullError, QueueUnavailableError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Queue } from '../shared/queue.js';
import { validateIngestRequest, type IngestLimits } from './schemas.js';
import { monitoringRoutes, requestMetrics, type IngestMonitoring } from './monitoring.js';

export interface IngestDeps {
  readonly queue: Queue;
  readonly redis: Redis;
  readonly logger: Logger;
  readonly limits: IngestLimits & { readonly maxBodyBytes: number };
  /** Redis PING timeout of the health check, ms. */
  readonly healthTimeoutMs?: number;
  /** Metrics, statistics and the dashboard; without it ingest only ingests. */
  readonly monitoring?: IngestMonitoring;
  /** Redis's memory as last sampled: while `refusal` says why, new postbacks get 503 ERR_QUEUE_FULL. */
  readonly memory?: { readonly refusal: string | undefined };
}

export const INGEST_PATHS = ['/ingest.php', '/i'] as const;

/** Map errors from koa-bodyparser / raw-body / @koa/router to our codes. */
function toAppError(err: any): AppError {
  if (err instanceof AppError) return err;
  const status = typeof err?.status === 'number' ? err.status : typeof err?.statusCode === 'number' ? err.statusCode : 500;
  switch (err?.type) {
    case 'entity.too.large':
      return new AppError('ERR_BODY_TOO_LARGE', `request body is larger than the limit of ${err.limit} bytes`, 413, [
        { path: 'body', message: `must be at most ${err.limit} bytes` },
      ]);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError('ERR_UNSUPPORTED_ENCODING', String(err.message), 415);
    case 'request.aborted':
      return new AppError('ERR_REQUEST_ABORTED', 'the client closed the request before sending the whole body', 400);
    case 'request.size.invalid':
      return new AppError('ERR_BAD_CONTENT_LENGTH', 'request body size did not match Content-Length', 400);
  }
  if (status === 405 || status === 501) return new AppError('ERR_METHOD_NOT_ALLOWED', 'method not allowed on this path', 405);
  if (status === 404) return new AppError('ERR_NOT_FOUND', 'no such path; post to /ingest.php or /i', 404);
  if (status >= 400 && status < 500) return new AppError('ERR_BAD_REQUEST', String(err?.message ?? 'bad request'), status);
  return new AppError('ERR_INTERNAL', 'internal error', 500, [], { cause: err });
}

/** Redis refused a write because it is at maxmemory: the queue is full, not away. */
function isRedisOutOfMemory(err: unknown): boolean {
  return err instanceof Error && /^OOM /.test(err.message);
}

/** The charset a Content-Type names, or undefined. */
function charsetOf(contentType: string | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType ?? '');
  return m ? m[1]!.toLowerCase() : undefined;
}

/**
 * What a JSON parse error may say without quoting the body (V8's messages quote the text around the
 * error, which could be anything a client sent): where, when V8 says.
 */
function jsonErrorMessage(err: any): string {
  const at = /position (\d+)/.exec(String(err?.message ?? ''));
  if (at) return `request body is not valid JSON (error at position ${at[1]})`;
  if (/end of JSON input/i.test(String(err?.message ?? ''))) return 'request body is not valid JSON (it ends early)';
  return 'request body is not a JSON object';
}

function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // ioredis: offline queue disabled, command timeout, connection closed mid-command, Redis refusing writes.
  return (
    /enableOfflineQueue|Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|LOADING|MASTERDOWN|READONLY|OOM|MISCONF|NOSCRIPT|BUSY|max retries/i.test(
      err.message,
    ) || err.name === 'MaxRetriesPerRequestError'
  );
}

export function createIngestApp(deps: IngestDeps): Koa {
  const { queue, redis, logger, limits } = deps;
  const app = new Koa();
  app.proxy = true;
  const monitoring = deps.monitoring;
  if (monitoring) app.use(requestMetrics(monitoring.metrics));

  // Errors first: everything below throws, this turns it into a JSON answer.
  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw Object.assign(new Error('not found'), { status: 404 });
    } catch (raw) {
      const err = toAppError(raw);
      ctx.status = err.status;
      if (err.status === 405) ctx.set('Allow', INGEST_PATHS.includes(ctx.path as any) ? 'POST' : 'GET, HEAD');
      if (err.status === 503) ctx.set('Retry-After', '1');
      ctx.body = {
        error: {
          code: err.code,
          message: err.expose ? err.message : 'internal error',
          ...(err.details.length ? { details: err.details } : {}),
        },
      };
      const requestId = ctx.get('x-request-id'); // set by nginx, also in its access log
      const meta = {
        event: 'ingest_request_failed',
        status: err.status,
        errCode: err.code,
        path: ctx.path,
        method: ctx.method.slice(0, 16),
        ...(requestId ? { requestId: requestId.slice(0, 64) } : {}),
      };
      if (err.status >= 500) {
        // An Error's fields are not enumerable: JSON would log `{}`. Name the cause (Redis timeout, ...).
        const cause: any = err.cause ?? err;
        logger.error('ingest request failed', { ...meta, err: String(cause?.message ?? cause), ...(cause?.code ? { causeCode: cause.code } : {}) });
      }
      // Never the body's content in the log: validation messages quote the client's templates and keys,
      // so a rejected request is logged by its code and the fields at fault (paths, bounded), no more.
      else if (err.details.length) {
        logger.warn('ingest request rejected', { ...meta, fields: err.details.slice(0, 5).map((d) => d.path.slice(0, 64)), problems: err.details.length });
      } else logger.warn('ingest request rejected', { ...meta, reason: err.message.slice(0, 200) });
    }
  });

  // Clients send raw JSON with whatever Content-Type their tool sets (curl -d: form-urlencoded; PHP: often
  // none). These paths only ever take JSON, so parse the body as JSON regardless of what it was labelled.
  // The charset is the one thing of the label that is honoured: the body is read as UTF-8, so a client
  // saying it sends anything else is told (415) rather than having its text misread.
  app.use(async (ctx, next) => {
    if (ctx.method === 'POST' && INGEST_PATHS.includes(ctx.path as any)) {
      const charset = charsetOf(ctx.req.headers['content-type']);
      if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
        throw new AppError('ERR_UNSUPPORTED_ENCODING', `charset "${charset.slice(0, 40)}" is not supported; send the body as UTF-8`, 415, [
          { path: 'headers.content-type', message: 'charset must be utf-8' },
        ]);
      }
      ctx.req.headers['content-type'] = 'application/json';
      if (!ctx.req.headers['content-length'] && !ctx.req.headers['transfer-encoding']) {
        throw new AppError('ERR_EMPTY_BODY', 'request body is empty; send the postback request as JSON', 400, [
          { path: 'body', message: 'is required' },
        ]);
      }
    }
    await next();
  });

  // strict: /i/ is not /i (nginx matches the exact paths too).
  const router = new Router({ strict: true });
  const parse = bodyParser({
    enableTypes: ['json'],
    jsonLimit: String(limits.maxBodyBytes),
    strict: true,
    // co-body marks transport errors (too large, aborted, bad encoding) with a `type`; a JSON parse
    // failure has none and carries the text it could not parse.
    onerror: (err: any) => {
      if (err?.type) throw err;
      if (typeof err?.body === 'string' && err.body.trim() === '') {
        throw new AppError('ERR_EMPTY_BODY', 'request body is empty; send the postback request as JSON', 400, [
          { path: 'body', message: 'is required' },
        ]);
      }
      throw new AppError('ERR_INVALID_JSON', jsonErrorMessage(err), 400, [{ path: 'body', message: 'must be a JSON object' }]);
    },
  });

  const ingest: RouterMiddleware = async (ctx) => {
    const raw = (ctx.request as any).rawBody as string | undefined;
    if (raw === undefined || raw.trim() === '') {
      throw new AppError('ERR_EMPTY_BODY', 'request body is empty; send the postback request as JSON', 400, [
        { path: 'body', message: 'is required' },
      ]);
    }
    const request = validateIngestRequest(ctx.request.body, limits);
    const payloads = request.dataJson;
    const memoryFull = deps.memory?.refusal;
    if (memoryFull) throw QueueFullError.memory(memoryFull);
    let result;
    try {
      result = await queue.enqueue(request.template, payloads);
    } catch (err) {
      if (isRedisOutOfMemory(err)) throw QueueFullError.memory('Redis is at maxmemory');
      if (isRedisUnavailable(err)) throw new QueueUnavailableError(undefined, err);
      throw err;
    }
    if (!result.ok) {
      if (result.reason === 'full') throw new QueueFullError(result.length);
      throw new QueueUnavailableError(
        `the delivery queue could not confirm the request on enough Redis replicas (${result.replicas} did); retry later`,
      );
    }
    ctx.status = 202;
    ctx.body = { accepted: result.ids.length, ids: result.ids };
    if (monitoring) {
      monitoring.metrics.enqueued.inc(result.ids.length);
      monitoring.stats?.accepted(result.ids.length);
    }
  };

  for (const path of INGEST_PATHS) router.post(path, parse, ingest);

  const health: RouterMiddleware = async (ctx) => {
    const timeout = deps.healthTimeoutMs ?? 1000;
    let up = false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const pong = await Promise.race([
        redis.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('ping timed out')), timeout);
        }),
      ]);
      up = pong === 'PONG';
    } catch {
      up = false;
    } finally {
      clearTimeout(timer);
    }
    ctx.status = up ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: up ? 'ok' : 'unavailable', redis: up ? 'up' : 'down' };
  };
  router.get('/health', health);
  if (monitoring) monitoringRoutes(router, monitoring);

  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}
