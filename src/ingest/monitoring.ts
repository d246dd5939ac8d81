/**
 * Monitoring routes of the ingest service (nginx lets only loopback or the configured network reach
 * them, see nginx/access.conf):
 *
 *   GET /metrics        Prometheus text: every live process of the appliance, plus queue gauges
 *   GET /stats          delivery statistics as JSON (?window=<s>&res=10|60), plus the queue's status
 *   GET /dashboard/     the dashboard page (static files bundled at build time into dist/dashboard)
 *
 * and the request metrics middleware, which times every request and counts it by route and status.
 */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Koa from 'koa';
import type Router from '@koa/router';
import type { RouterMiddleware } from '@koa/router';
import type { Redis } from 'ioredis';
import { AppError } from '../shared/errors.js';
import { METRICS_CONTENT_TYPE, collectMetrics, methodLabel, routeLabel, type IngestMetrics, type MetricsExchange } from '../shared/metrics.js';
import type { Queue } from '../shared/queue.js';
import { COARSE_S, FINE_S, readStats, type StatsRecorder } from '../shared/stats.js';

export interface IngestMonitoring {
  readonly metrics: IngestMetrics;
  /** This process's side of the metrics exchange (its name is its `instance` label). */
  readonly exchange: MetricsExchange;
  readonly stats?: StatsRecorder;
  readonly redis: Redis;
  readonly queue: Queue;
  readonly prefix: string;
  /** How long /metrics waits for the other processes' metrics, ms. */
  readonly metricsCollectTimeoutMs: number;
  /** Longest /stats window, s (the 1-minute buckets' retention). */
  readonly statsMaxWindowS: number;
  /** Folder with the built dashboard (index.html, dashboard.js, dashboard.css). */
  readonly dashboardDir?: string;
}

/** Where `npm run build` puts the dashboard: <repo>/dist/dashboard, from src/ingest or dist/ingest alike. */
export function defaultDashboardDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/dashboard');
}

/** Outermost middleware: sees the final status, errors included. */
export function requestMetrics(metrics: IngestMetrics): Koa.Middleware {
  return async (ctx, next) => {
    const start = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const route = routeLabel(ctx.path);
      metrics.requests.inc({ route, method: methodLabel(ctx.method), status: String(ctx.status) });
      metrics.requestDuration.observe({ route }, Number(process.hrtime.bigint() - start) / 1e9);
    }
  };
}

const DASHBOARD_FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

function loadDashboard(dir: string | undefined): Map<string, Buffer> | undefined {
  if (!dir || !existsSync(path.join(dir, 'index.html'))) return undefined;
  const files = new Map<string, Buffer>();
  for (const name of Object.keys(DASHBOARD_FILES)) {
    const file = path.join(dir, name);
    if (existsSync(file)) files.set(name, readFileSync(file));
  }
  return files;
}

function intParam(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new AppError('ERR_BAD_REQUEST', `${name} must be an integer from ${min} to ${max}`, 400, [
      { path: name, message: `must be an integer from ${min} to ${max}` },
    ]);
  }
  return n;
}

/** Most buckets one /stats answer reads. */
const MAX_BUCKETS = 1500;

export function monitoringRoutes(router: Router, m: IngestMonitoring): void {
  router.get('/metrics', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.type = METRICS_CONTENT_TYPE;
    ctx.body = await collectMetrics({
      exchange: m.exchange,
      timeoutMs: m.metricsCollectTimeoutMs,
      queueStatus: () => m.queue.status(),
    });
  });

  router.get('/stats', async (ctx) => {
    const windowS = intParam(ctx.query.window, 'window', 60, m.statsMaxWindowS) ?? 900;
    let res = intParam(ctx.query.res, 'res', FINE_S, COARSE_S);
    if (res !== undefined && res !== FINE_S && res !== COARSE_S) {
      throw new AppError('ERR_BAD_REQUEST', 'res must be 10 or 60', 400, [{ path: 'res', message: 'must be 10 or 60' }]);
    }
    res ??= windowS <= 3600 ? FINE_S : COARSE_S;
    if (windowS / res > MAX_BUCKETS) res = COARSE_S;
    const now = Date.now();
    const [view, queue] = await Promise.all([
      readStats(m.redis, m.prefix, { resolutionS: res as typeof FINE_S | typeof COARSE_S, windowS, now }),
      m.queue.status(now),
    ]);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { generatedAt: now, windowS, ...view, queue };
  });

  const files = loadDashboard(m.dashboardDir);
  router.get('/dashboard', (ctx) => {
    ctx.redirect('/dashboard/');
  });
  const serve: RouterMiddleware = (ctx) => {
    const name = (ctx.params as { file?: string }).file ?? 'index.html';
    if (!files) throw new AppError('ERR_NOT_BUILT', 'the dashboard is not built: run npm run build', 503);
    const body = files.get(name);
    if (!body) throw Object.assign(new Error('not found'), { status: 404 });
    ctx.set('Cache-Control', 'no-cache');
    ctx.type = DASHBOARD_FILES[name]!;
    ctx.body = body;
  };
  router.get('/dashboard/', serve);
  router.get('/dashboard/:file', serve);
}
