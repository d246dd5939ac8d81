/**
 * Delivery worker entry point: `node dist/delivery/main.js`. Reads the configuration (exits 1 naming every
 * bad setting), connects to Redis, and delivers until SIGINT/SIGTERM.
 */
import { createLogger } from '../shared/logger.js';
import { dropPm2LogReloadLine, loadConfigOrExit, onShutdownSignal, signalReady } from '../shared/lifecycle.js';
import { Queue, WorkerHeartbeat } from '../shared/queue.js';
import { createRedis } from '../shared/redis.js';
import { MetricsExchange, createDeliveryMetrics, serveRegistry } from '../shared/metrics.js';
import { profileOnSignal } from '../shared/profiling.js';
import { StatsRecorder, statsOptionsFrom } from '../shared/stats.js';
import { createDeliverer } from './deliver.js';
import { monitoringObserver } from './observe.js';
import { DeliveryWorker } from './worker.js';

async function main(): Promise<void> {
  dropPm2LogReloadLine();
  const config = loadConfigOrExit('delivery');
  const logger = createLogger('delivery', config.logLevel);
  const redis = createRedis(config.redisUrl, 'worker');
  const blocking = createRedis(config.redisUrl, 'blocking');

  // A worker cut off from Redis for too long exits, so pm2 restarts it and monit sees the restarts.
  let downSince: number | undefined;
  const watch = (conn: typeof redis, name: string) => {
    conn.on('ready', () => {
      if (downSince !== undefined) logger.info('redis is back', { event: 'redis_reconnected', connection: name, downMs: Date.now() - downSince });
      downSince = undefined;
    });
    conn.on('error', (err) => {
      if (downSince === undefined) {
        downSince = Date.now();
        logger.error('redis connection error', { event: 'redis_error', connection: name, errCode: (err as any).code, err: err.message });
      }
    });
  };
  watch(redis, 'commands');
  watch(blocking, 'blocking');
  const watchdog = setInterval(() => {
    if (downSince !== undefined && Date.now() - downSince > config.deliveryRedisDownExitMs) {
      logger.error('redis unreachable for too long, exiting', { event: 'redis_down_exit', downMs: Date.now() - downSince });
      process.exit(1);
    }
  }, 1000);
  watchdog.unref();

  const queue = new Queue(redis, {
    prefix: config.queuePrefix,
    maxLength: config.queueMaxLength,
    templateGcGraceS: config.templateGcGraceS,
  });
  const deliver = createDeliverer({
    timeoutMs: config.deliveryTimeoutMs,
    maxResponseBytes: config.deliveryMaxResponseBytes,
    postFormat: config.deliveryPostFormat,
    client: config.deliveryHttpClient,
    userAgent: config.deliveryUserAgent,
    maxSockets: config.deliveryConcurrency,
    policy: config.destinationPolicy,
  });
  // Monitoring: metrics in this process's registry, given to ingest when it asks (its /metrics shows
  // every process) and optionally served on 127.0.0.1; statistics counted here and flushed to Redis;
  // a heartbeat that says this worker is alive, whatever the Redis version (postback-ctl status).
  let worker: DeliveryWorker | undefined;
  const metrics = createDeliveryMetrics(config.deliveryConsumerName, config.statsTopHosts, () => worker?.inFlightCount ?? 0);
  const subscriber = createRedis(config.redisUrl, 'subscriber');
  subscriber.on('error', () => {
    /* watched through the other connections */
  });
  const exchange = new MetricsExchange(redis, subscriber, config.queuePrefix, config.deliveryConsumerName, metrics.registry);
  const heartbeat = new WorkerHeartbeat(redis, config.queuePrefix, config.deliveryConsumerName, config.deliveryHeartbeatIntervalMs);
  const stats = config.statsEnabled
    ? new StatsRecorder(redis, statsOptionsFrom(config, { sampleQueue: true }))
    : undefined;
  profileOnSignal(logger, 'delivery', config.profileDir, config.profileCpuSeconds);
  let metricsServer: Awaited<ReturnType<typeof serveRegistry>> | undefined;
  if (config.metricsWorkerPortBase > 0) {
    const n = Number(config.instance);
    const port = config.metricsWorkerPortBase + (Number.isInteger(n) && n < 1000 ? n : 0);
    try {
      metricsServer = await serveRegistry(metrics.registry, port);
      logger.info('serving this worker\'s metrics', { event: 'metrics_listening', address: `127.0.0.1:${port}` });
    } catch (err) {
      // Metrics are no reason to stop delivering: the Redis-published view still has this worker.
      logger.error('cannot serve metrics', { event: 'metrics_listen_failed', port, err: (err as Error).message });
    }
  }

  worker = new DeliveryWorker({ config, queue, blocking, logger, deliver, observer: monitoringObserver(metrics, stats) });
  const started = worker;

  onShutdownSignal(
    logger,
    async () => {
      await started.stop();
      deliver.close();
      metricsServer?.close();
      await stats?.stop();
      await heartbeat.stop();
      await exchange.stop();
      await Promise.all([redis.quit().catch(() => redis.disconnect()), blocking.quit().catch(() => blocking.disconnect())]);
    },
    config.deliveryBlockMs + config.deliveryShutdownTimeoutMs + 3000,
  );

  await started.start();
  await heartbeat.start();
  stats?.start();
  void exchange.start();
  signalReady();
}

main().catch((err) => {
  console.error('delivery: failed to start', err);
  process.exit(1);
});
