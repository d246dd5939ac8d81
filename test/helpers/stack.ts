/**
 * The whole pipeline in the test process, on real parts: a real redis-server, the ingest Koa app
 * listening on a free port, a DeliveryWorker with real got deliveries, and a Receiver standing in for
 * the partner. Log lines are kept in memory so tests can read the per-attempt records.
 *
 * `pinned: true` routes every delivery connection, whatever the URL's host and port, to the receiver
 * (like curl --resolve), so requests with the brief's own URLs really go out over HTTP.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Writable } from 'node:stream';
import winston from 'winston';
import type { Redis } from 'ioredis';
import { createIngestApp } from '../../src/ingest/app.js';
import { deliveryLimitsFrom } from '../../src/ingest/schemas.js';
import { RedisMemoryWatch } from '../../src/ingest/memory-watch.js';
import { defaultDashboardDir } from '../../src/ingest/monitoring.js';
import { createDeliverer, type AttemptOutcome, type Deliverer, type DeliveryRequest } from '../../src/delivery/deliver.js';
import { DeliveryWorker, type WorkerObserver } from '../../src/delivery/worker.js';
import { monitoringObserver } from '../../src/delivery/observe.js';
import { MetricsExchange, createDeliveryMetrics, createIngestMetrics, type DeliveryMetrics, type IngestMetrics } from '../../src/shared/metrics.js';
import { StatsRecorder } from '../../src/shared/stats.js';
import { loadConfig, type Config } from '../../src/shared/config.js';
import { Queue, WorkerHeartbeat } from '../../src/shared/queue.js';
import { createRedis } from '../../src/shared/redis.js';
import { Receiver, type Handler } from './receiver.js';
import { RedisServer } from './redis-server.js';

export interface LogRecord {
  readonly event?: string;
  readonly [key: string]: unknown;
}

export interface StackOptions {
  /** Settings on top of the test defaults (short backoff, short block). */
  readonly env?: Record<string, string>;
  readonly handler?: Handler;
  readonly pinned?: boolean;
  /** Start the delivery worker right away (default true). */
  readonly worker?: boolean;
  readonly observer?: WorkerObserver;
  /** Reuse a running Redis (not destroyed by stop()). */
  readonly redis?: RedisServer;
  /**
   * Metrics, statistics and the dashboard as in production: ingest serves /metrics, /stats and
   * /dashboard/ (from dist/dashboard), and both sides count statistics.
   */
  readonly monitoring?: boolean;
}

/**
 * The tests' partners listen on loopback, which the destination policy refuses by default
 * (docs/security.md): the tests allow it, as an operator allows a partner's network.
 */
export const LOOPBACK_NETWORKS = '127.0.0.0/8,::1/128';

export const TEST_ENV: Record<string, string> = {
  DELIVERY_ALLOW_NETWORKS: LOOPBACK_NETWORKS,
  DELIVERY_BACKOFF_BASE_MS: '20',
  DELIVERY_BACKOFF_MAX_MS: '200',
  DELIVERY_BLOCK_MS: '100',
  DELIVERY_MAINTENANCE_INTERVAL_MS: '20',
  DELIVERY_TIMEOUT_MS: '2000',
  DELIVERY_CLAIM_MIN_IDLE_MS: '5000',
  DELIVERY_SHUTDOWN_TIMEOUT_MS: '2000',
  INGEST_REDIS_TIMEOUT_MS: '500',
};

class PinnedHttpAgent extends http.Agent {
  constructor(private readonly port: number) {
    super({ keepAlive: true });
  }
  override createConnection(): net.Socket {
    return net.createConnection({ host: '127.0.0.1', port: this.port });
  }
}

export class Stack {
  worker: DeliveryWorker | undefined;
  private deliverer: Deliverer | undefined;
  private blocking: Redis | undefined;
  private readonly workerRedis: Redis;
  private readonly server: http.Server;
  /** Ingest's sampling of Redis's memory, as in main.ts (refuses above QUEUE_MAX_MEMORY_PERCENT of maxmemory). */
  readonly memory: RedisMemoryWatch;
  ingestMetrics: IngestMetrics | undefined;
  ingestStats: StatsRecorder | undefined;
  deliveryMetrics: DeliveryMetrics | undefined;
  workerStats: StatsRecorder | undefined;
  ingestExchange: MetricsExchange | undefined;
  workerExchange: MetricsExchange | undefined;
  private heartbeat: WorkerHeartbeat | undefined;

  private constructor(
    readonly redisServer: RedisServer,
    private readonly ownsRedis: boolean,
    readonly receiver: Receiver,
    readonly config: Config,
    readonly queue: Queue,
    readonly ingestRedis: Redis,
    readonly logger: winston.Logger,
    readonly logs: LogRecord[],
    private readonly options: StackOptions,
  ) {
    this.workerRedis = createRedis(config.redisUrl, 'worker');
    if (options.monitoring) {
      this.ingestMetrics = createIngestMetrics('test-ingest');
      this.ingestStats = this.statsRecorder(ingestRedis);
      const sub = createRedis(config.redisUrl, 'subscriber');
      sub.on('error', () => {});
      this.ingestExchange = new MetricsExchange(ingestRedis, sub, config.queuePrefix, 'test-ingest', this.ingestMetrics.registry);
    }
    this.memory = new RedisMemoryWatch(ingestRedis, {
      percent: config.queueMaxMemoryPercent,
      intervalMs: config.queueMemorySampleIntervalMs,
      logger,
    });
    this.memory.start();
    const app = createIngestApp({
      memory: this.memory,
      queue,
      redis: ingestRedis,
      logger,
      limits: {
        maxBodyBytes: config.ingestMaxBodyBytes,
        maxDataItems: config.ingestMaxDataItems,
        maxUrlLength: config.ingestMaxUrlLength,
        delivery: deliveryLimitsFrom(config),
      },
      ...(this.ingestMetrics
        ? {
            monitoring: {
              metrics: this.ingestMetrics,
              exchange: this.ingestExchange!,
              ...(this.ingestStats ? { stats: this.ingestStats } : {}),
              redis: ingestRedis,
              queue,
              prefix: config.queuePrefix,
              metricsCollectTimeoutMs: config.metricsCollectTimeoutMs,
              statsMaxWindowS: config.statsCoarseRetentionS,
              dashboardDir: defaultDashboardDir(),
            },
          }
        : {}),
    });
    app.on('error', () => {});
    this.server = http.createServer(app.callback());
  }

  private statsRecorder(redis: Redis, sampleQueue = false): StatsRecorder | undefined {
    if (!this.config.statsEnabled) return undefined;
    const r = new StatsRecorder(redis, {
      prefix: this.config.queuePrefix,
      flushIntervalMs: this.config.statsFlushIntervalMs,
      fineRetentionS: this.config.statsFineRetentionS,
      coarseRetentionS: this.config.statsCoarseRetentionS,
      topHosts: this.config.statsTopHosts,
      sampleQueue,
    });
    r.start();
    return r;
  }

  /** Send every count kept in memory to Redis now. */
  async flushStats(): Promise<void> {
    await this.ingestStats?.flush();
    await this.workerStats?.flush();
  }

  static async start(options: StackOptions = {}): Promise<Stack> {
    const redisServer = options.redis ?? (await RedisServer.start());
    const receiver = await Receiver.start(options.handler);
    // PB_TEST_HTTP_CLIENT=node runs a suite with the other HTTP client (test/integration/delivery-node.test.ts).
    const client = process.env.PB_TEST_HTTP_CLIENT ? { DELIVERY_HTTP_CLIENT: process.env.PB_TEST_HTTP_CLIENT } : {};
    const config = loadConfig({ ...TEST_ENV, ...client, REDIS_URL: redisServer.url, DELIVERY_CONSUMER_NAME: 'test-worker', ...options.env });
    const ingestRedis = createRedis(config.redisUrl, 'ingest', config.ingestRedisTimeoutMs);
    ingestRedis.on('error', () => {});
    // Ingest has no offline queue (it answers 503 at once when Redis is not there): wait for the link.
    if (ingestRedis.status !== 'ready') await new Promise((resolve) => ingestRedis.once('ready', resolve));
    const queue = new Queue(ingestRedis, {
      prefix: config.queuePrefix,
      maxLength: config.queueMaxLength,
      templateGcGraceS: config.templateGcGraceS,
      entryMaxPostbacks: config.queueEntryMaxPostbacks,
      minReplicas: config.redisMinReplicas,
      replicaTimeoutMs: Math.floor(config.ingestRedisTimeoutMs / 2),
    });
    const logs: LogRecord[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(JSON.parse(chunk.toString('utf8')) as LogRecord);
        cb();
      },
    });
    const logger = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] });
    const stack = new Stack(redisServer, !options.redis, receiver, config, queue, ingestRedis, logger, logs, options);
    await new Promise<void>((resolve) => stack.server.listen(0, '127.0.0.1', resolve));
    await stack.ingestExchange?.start();
    if (options.worker !== false) await stack.startWorker();
    return stack;
  }

  get ingestBase(): string {
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  /** The URL of the receiver, for templates. */
  get endpoint(): string {
    return this.receiver.base;
  }

  /** Starts the worker; `wrapDeliver` may wrap its deliverer (to make it fail in ways real partners cannot). */
  async startWorker(options: { wrapDeliver?: (deliver: Deliverer) => (req: DeliveryRequest) => Promise<AttemptOutcome> } = {}): Promise<DeliveryWorker> {
    this.workerRedis.on('error', () => {});
    const blocking = createRedis(this.config.redisUrl, 'blocking');
    blocking.on('error', () => {});
    this.blocking = blocking;
    const pinned = this.options.pinned ? new PinnedHttpAgent(this.receiver.port) : undefined;
    this.deliverer = createDeliverer({
      timeoutMs: this.config.deliveryTimeoutMs,
      maxResponseBytes: this.config.deliveryMaxResponseBytes,
      postFormat: this.config.deliveryPostFormat,
      client: this.config.deliveryHttpClient,
      userAgent: this.config.deliveryUserAgent,
      maxSockets: this.config.deliveryConcurrency,
      policy: this.config.destinationPolicy,
      ...(pinned ? { agents: { http: pinned, https: new https.Agent() } } : {}),
    });
    const queue = new Queue(this.workerRedis, {
      prefix: this.config.queuePrefix,
      maxLength: this.config.queueMaxLength,
      templateGcGraceS: this.config.templateGcGraceS,
    });
    let observer = this.options.observer;
    if (this.options.monitoring) {
      const worker = () => this.worker;
      this.deliveryMetrics ??= createDeliveryMetrics('test-worker', this.config.statsTopHosts, () => worker()?.inFlightCount ?? 0);
      this.workerStats ??= this.statsRecorder(this.workerRedis, true);
      if (!this.workerExchange) {
        const sub = createRedis(this.config.redisUrl, 'subscriber');
        sub.on('error', () => {});
        this.workerExchange = new MetricsExchange(this.workerRedis, sub, this.config.queuePrefix, 'test-worker', this.deliveryMetrics.registry);
        await this.workerExchange.start();
      }
      const mine = monitoringObserver(this.deliveryMetrics, this.workerStats);
      const theirs = this.options.observer;
      observer = theirs
        ? {
            onAttempt: (e) => {
              mine.onAttempt?.(e);
              theirs.onAttempt?.(e);
            },
            onClaimed: (n) => {
              mine.onClaimed?.(n);
              theirs.onClaimed?.(n);
            },
          }
        : mine;
    }
    const deliverer = this.deliverer;
    const deliver = options.wrapDeliver ? Object.assign(options.wrapDeliver(deliverer), { close: () => deliverer.close() }) : deliverer;
    this.worker = new DeliveryWorker({
      config: this.config,
      queue,
      blocking,
      logger: this.logger,
      deliver,
      ...(observer ? { observer } : {}),
    });
    await this.worker.start();
    // As the worker's main does: its heartbeat says it is alive (postback-ctl status and prune).
    this.heartbeat = new WorkerHeartbeat(this.workerRedis, this.config.queuePrefix, this.config.deliveryConsumerName, this.config.deliveryHeartbeatIntervalMs);
    await this.heartbeat.start();
    return this.worker;
  }

  async stopWorker(): Promise<void> {
    await this.worker?.stop();
    await this.heartbeat?.stop();
    this.heartbeat = undefined;
    this.deliverer?.close();
    this.blocking?.disconnect();
    this.worker = undefined;
  }

  /** POST a body (object -> JSON, string as-is) to an ingest path. */
  async post(body: unknown, path = '/i', headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
    const res = await fetch(this.ingestBase + path, {
      method: 'POST',
      headers,
      body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json, headers: res.headers };
  }

  events(name: string): LogRecord[] {
    return this.logs.filter((l) => l.event === name);
  }

  /** Resolves when `n` log lines with this event exist. */
  async waitForEvents(name: string, n: number, timeoutMs = 15_000): Promise<LogRecord[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hits = this.events(name);
      if (hits.length >= n) return hits;
      if (Date.now() > deadline) throw new Error(`saw ${hits.length} of ${n} ${name} events in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<void> {
    await this.stopWorker();
    this.memory.stop();
    await this.ingestStats?.stop();
    await this.workerStats?.stop();
    await this.ingestExchange?.stop();
    await this.workerExchange?.stop();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.ingestRedis.disconnect();
    this.workerRedis.disconnect();
    await this.receiver.close();
    if (this.ownsRedis) await this.redisServer.destroy();
  }
}
