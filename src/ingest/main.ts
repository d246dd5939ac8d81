/**
 * Ingest service entry point: `node dist/ingest/main.js`. Reads the configuration (exits 1 naming every
 * bad setting), connects to Redis, listens, and tells pm2 it is ready.
 */
import http from 'node:http';
import { createLogger } from '../shared/logger.js';
import { dropPm2LogReloadLine, loadConfigOrExit, onShutdownSignal, signalReady } from '../shared/lifecycle.js';
import { Queue } from '../shared/queue.js';
import { createRedis } from '../shared/redis.js';
import { MetricsExchange, createIngestMetrics, ingestInstanceName } from '../shared/metrics.js';
import { statsKeys } from '../shared/queue.js';
import { profileOnSignal } from '../shared/profiling.js';
import { StatsRecorder, statsOptionsFrom } from '../shared/stats.js';
import { createIngestApp } from './app.js';
import { deliveryLimitsFrom } from './schemas.js';
import { RedisMemoryWatch } from './memory-watch.js';
import { defaultDashboardDir } from './monitoring.js';

function main(): void {
  dropPm2LogReloadLine();
  const config = loadConfigOrExit('ingest');
  const logger = createLogger('ingest', config.logLevel);
  const redis = createRedis(config.redisUrl, 'ingest', config.ingestRedisTimeoutMs);
  let redisUp = false;
  redis.on('ready', () => {
    redisUp = true;
    logger.info('connected to redis', { event: 'redis_connected' });
  });
  redis.on('error', (err) => {
    if (redisUp) logger.error('redis connection error', { event: 'redis_error', errCode: (err as any).code, err: err.message });
    redisUp = false;
  });

  const queue = new Queue(redis, {
    prefix: config.queuePrefix,
    maxLength: config.queueMaxLength,
    templateGcGraceS: config.templateGcGraceS,
    entryMaxPostbacks: config.queueEntryMaxPostbacks,
    minReplicas: config.redisMinReplicas,
    // Leave room inside the command timeout for the enqueue itself.
    replicaTimeoutMs: Math.max(10, Math.floor(config.ingestRedisTimeoutMs / 2)),
  });
  // Monitoring: this process's metrics (given to whichever instance answers /metrics when it asks,
  // over pub/sub) and statistics (counted here, flushed to Redis in one pipeline per interval).
  const instanceName = ingestInstanceName(config.instance);
  const metrics = createIngestMetrics(instanceName);
  const subscriber = createRedis(config.redisUrl, 'subscriber');
  subscriber.on('error', () => {
    /* the main connection logs Redis trouble */
  });
  const exchange = new MetricsExchange(redis, subscriber, config.queuePrefix, instanceName, metrics.registry);
  // Ingest samples the queue's depth too, so the dashboard still shows the backlog when every delivery
  // worker is down, which is when it matters most.
  const stats = config.statsEnabled
    ? new StatsRecorder(redis, statsOptionsFrom(config, { sampleQueue: true }))
    : undefined;
  profileOnSignal(logger, 'ingest', config.profileDir, config.profileCpuSeconds);
  // Redis's memory, sampled on a timer: above QUEUE_MAX_MEMORY_PERCENT of maxmemory new work is refused.
  const memory = new RedisMemoryWatch(redis, {
    percent: config.queueMaxMemoryPercent,
    intervalMs: config.queueMemorySampleIntervalMs,
    logger,
  });
  memory.start();

  const app = createIngestApp({
    memory,
    queue,
    redis,
    logger,
    limits: {
      maxBodyBytes: config.ingestMaxBodyBytes,
      maxDataItems: config.ingestMaxDataItems,
      maxUrlLength: config.ingestMaxUrlLength,
      delivery: deliveryLimitsFrom(config),
    },
    monitoring: {
      metrics,
      exchange,
      ...(stats ? { stats } : {}),
      redis,
      queue,
      prefix: config.queuePrefix,
      metricsCollectTimeoutMs: config.metricsCollectTimeoutMs,
      statsMaxWindowS: config.statsCoarseRetentionS,
      dashboardDir: defaultDashboardDir(),
    },
  });
  app.on('error', () => {
    /* already logged by the error middleware; Koa would print a stack otherwise */
  });

  const server = http.createServer(app.callback());
  // Longer than nginx's upstream keepalive_timeout (60 s), so nginx closes idle connections first and
  // never sends a request on a socket we are closing.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;

  server.listen(config.ingestPort, config.ingestHost, () => {
    const addr = server.address();
    stats?.start();
    void exchange.start();
    logger.info('ingest listening', { event: 'ingest_listening', address: addr });
    // Ready (for pm2's wait_ready) once the Redis connection is up, or after 5 s anyway: ingest up with
    // Redis down answers 503 and /health says why, which beats a process pm2 keeps waiting for.
    // Until then requests get 503 (no offline queue), so `ingest_ready` is what tests and people wait for.
    let signalled = false;
    const ready = () => {
      if (!signalled) signalReady();
      signalled = true;
    };
    const readyTimer = setTimeout(ready, 5000);
    const onRedisReady = () => {
      clearTimeout(readyTimer);
      // Earlier releases pushed metrics snapshots into this hash; nothing reads it any more.
      redis.del(statsKeys(config.queuePrefix).legacyMetrics).catch(() => undefined);
      logger.info('ingest ready: Redis answers', { event: 'ingest_ready' });
      ready();
    };
    if (redis.status === 'ready') onRedisReady();
    else redis.once('ready', onRedisReady);
  });
  server.on('error', (err) => {
    logger.error('cannot listen', { event: 'ingest_listen_failed', err });
    process.exit(1);
  });

  onShutdownSignal(
    logger,
    async () => {
      // Stop accepting, let requests in progress finish (their enqueue included), then close Redis.
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      memory.stop();
      await stats?.stop();
      await exchange.stop();
      await redis.quit().catch(() => redis.disconnect());
    },
    8000,
  );
}

main();
