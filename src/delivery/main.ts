/**
 * Delivery worker entry point: `node dist/delivery/main.js`. Reads the configuration (exits 1 naming every
 * bad setting), connects to Redis, and delivers until SIGINT/SIGTERM.
 */
import { createLogger } from '../shared/logger.js';
import { loadConfigOrExit, onShutdownSignal, signalReady } from '../shared/lifecycle.js';
import { Queue } from '../shared/queue.js';
import { createRedis } from '../shared/redis.js';
import { createDeliverer } from './deliver.js';
import { DeliveryWorker } from './worker.js';

async function main(): Promise<void> {
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
    userAgent: config.deliveryUserAgent,
    maxSockets: config.deliveryConcurrency,
  });
  const worker = new DeliveryWorker({ config, queue, blocking, logger, deliver });

  onShutdownSignal(
    logger,
    async () => {
      await worker.stop();
      deliver.close();
      await Promise.all([redis.quit().catch(() => redis.disconnect()), blocking.quit().catch(() => blocking.disconnect())]);
    },
    config.deliveryBlockMs + config.deliveryShutdownTimeoutMs + 3000,
  );

  await worker.start();
  signalReady();
}

main().catch((err) => {
  console.error('delivery: failed to start', err);
  process.exit(1);
});
