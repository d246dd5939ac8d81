/**
 * Prometheus metrics (prom-client), and how processes under pm2 give ONE coherent view.
 *
 * Under pm2 the ingest service runs in cluster mode: every instance shares port 3000 and a scrape of
 * /metrics reaches whichever instance the kernel picks, and delivery workers have no HTTP server at
 * all. prom-client's AggregatorRegistry.clusterMetrics() relies on the cluster master answering IPC,
 * which under pm2 is pm2's own daemon, so it cannot be used. Instead:
 *
 * - every process keeps its own registry, every series labelled `service` and `instance`
 *   (`<hostname>-<pm2 instance>` for ingest, the consumer name for workers), and publishes a JSON
 *   snapshot of it to Redis (HSET pb:metrics <instance> ...) every METRICS_PUSH_INTERVAL_MS;
 * - the ingest instance that answers GET /metrics reads every fresh snapshot (its own taken live),
 *   merges them with prom-client's AggregatorRegistry.aggregate (distinct instance labels keep every
 *   process's series apart) and adds the queue-wide gauges (queue depth, retry set, dead letters)
 *   read from Redis once, without an instance label.
 *
 * Any instance answers the same thing, within one push interval. A process that stopped publishing
 * drops out after three intervals (and its snapshot is deleted after an hour); its counters restart
 * at 0 when pm2 restarts it, which Prometheus's rate() treats as a counter reset.
 */
import http from 'node:http';
import os from 'node:os';
import client, { AggregatorRegistry, Registry } from 'prom-client';
import type { Redis } from 'ioredis';
import { statsKeys, type QueueStatus } from './queue.js';

export type ServiceName = 'ingest' | 'delivery';

/** Routes with a label of their own; anything else is "other" (bounded label values). */
export const ROUTES = ['/i', '/ingest.php', '/health', '/metrics', '/stats', '/dashboard'] as const;

export function routeLabel(path: string): string {
  if ((ROUTES as readonly string[]).includes(path)) return path;
  if (path.startsWith('/dashboard/')) return '/dashboard';
  return 'other';
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/** The method label: a client can send any token as a method, so unknown ones are "other". */
export function methodLabel(method: string): string {
  return METHODS.has(method) ? method : 'other';
}

function baseRegistry(service: ServiceName, instance: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service, instance });
  // Process memory, CPU, event-loop lag (nodejs_eventloop_lag_*), GC, handles: prom-client's defaults.
  client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  return registry;
}

export interface IngestMetrics {
  readonly registry: Registry;
  readonly requests: client.Counter<'route' | 'method' | 'status'>;
  readonly requestDuration: client.Histogram<'route'>;
  readonly enqueued: client.Counter<string>;
}

export function createIngestMetrics(instance: string): IngestMetrics {
  const registry = baseRegistry('ingest', instance);
  return {
    registry,
    requests: new client.Counter({
      name: 'postback_http_requests_total',
      help: 'HTTP requests answered by ingest, by route, method and status.',
      labelNames: ['route', 'method', 'status'],
      registers: [registry],
    }),
    requestDuration: new client.Histogram({
      name: 'postback_http_request_duration_seconds',
      help: 'Time ingest took to answer a request, by route.',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    enqueued: new client.Counter({
      name: 'postback_postbacks_enqueued_total',
      help: 'Postbacks accepted and enqueued by ingest (one per data object).',
      registers: [registry],
    }),
  };
}

export interface DeliveryMetrics {
  readonly registry: Registry;
  readonly deliveries: client.Counter<'outcome' | 'host'>;
  /** Dead letters by reason (destination_forbidden, attempts_exhausted, too_large, ...). */
  readonly deadLettered: client.Counter<'reason'>;
  readonly duration: client.Histogram<'outcome'>;
  readonly latency: client.Histogram<string>;
  readonly claimed: client.Counter<string>;
  readonly inFlight: client.Gauge<string>;
  /** The host label for a host: itself for the first `limit` hosts seen, then "other". */
  hostLabel(host: string): string;
}

export function createDeliveryMetrics(instance: string, hostLimit: number, inFlight?: () => number): DeliveryMetrics {
  const registry = baseRegistry('delivery', instance);
  const hosts = new Set<string>();
  return {
    registry,
    deliveries: new client.Counter({
      name: 'postback_deliveries_total',
      help: 'Delivery attempts by outcome (delivered, retried, dead_lettered) and endpoint host.',
      labelNames: ['outcome', 'host'],
      registers: [registry],
    }),
    deadLettered: new client.Counter({
      name: 'postback_dead_lettered_total',
      help: 'Postbacks dead-lettered, by reason (destination_forbidden, too_large, attempts_exhausted, ...).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    duration: new client.Histogram({
      name: 'postback_delivery_duration_seconds',
      help: 'Time one delivery attempt took (request to end of response), by outcome.',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    latency: new client.Histogram({
      name: 'postback_delivery_latency_seconds',
      help: 'Time from ingest accepting a postback to its successful delivery (retries included).',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers: [registry],
    }),
    claimed: new client.Counter({
      name: 'postback_postbacks_claimed_total',
      help: 'Postbacks this worker took over from a worker that died or hung.',
      registers: [registry],
    }),
    inFlight: new client.Gauge({
      name: 'postback_deliveries_in_flight',
      help: 'Delivery attempts in progress in this worker.',
      registers: [registry],
      collect() {
        if (inFlight) this.set(inFlight());
      },
    }),
    hostLabel(host: string): string {
      if (hosts.has(host)) return host;
      if (hosts.size >= hostLimit) return 'other';
      hosts.add(host);
      return host;
    },
  };
}

/** Name of a process in pb:metrics and in its `instance` label. */
export function ingestInstanceName(instance: string): string {
  return `${os.hostname()}-ingest-${instance}`;
}

type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];

interface Snapshot {
  readonly at: number;
  readonly metrics: MetricJson[];
}

/** Publishes a process's registry to Redis on a timer, for whichever ingest answers /metrics. */
export class MetricsPublisher {
  private timer: NodeJS.Timeout | undefined;
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    readonly name: string,
    readonly registry: Registry,
    private readonly intervalMs: number,
  ) {
    this.key = statsKeys(prefix).metrics;
  }

  start(): void {
    if (this.timer) return;
    void this.publish();
    this.timer = setInterval(() => void this.publish(), this.intervalMs);
    this.timer.unref();
  }

  async publish(now = Date.now()): Promise<void> {
    try {
      const snapshot: Snapshot = { at: now, metrics: await this.registry.getMetricsAsJSON() };
      await this.redis.hset(this.key, this.name, JSON.stringify(snapshot));
    } catch {
      /* Redis away: the next tick tries again; /metrics shows this process as missing meanwhile */
    }
  }

  /** Stop publishing and remove this process's snapshot (a clean stop is not a missing process). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.hdel(this.key, this.name).catch(() => undefined);
  }
}

export interface CollectOptions {
  readonly redis: Redis;
  readonly prefix: string;
  /** The answering process: its registry is read live instead of from its snapshot. */
  readonly self?: { readonly name: string; readonly registry: Registry };
  /** Snapshots older than this are left out, ms. */
  readonly freshMs: number;
  readonly queueStatus: () => Promise<QueueStatus>;
  readonly now?: number;
}

/** Snapshots are deleted once this old: the process is gone for good (scaled down, renamed). */
const SNAPSHOT_FORGET_MS = 3_600_000;

/** The Prometheus text of every live process plus the queue-wide gauges. */
export async function collectMetrics(o: CollectOptions): Promise<string> {
  const now = o.now ?? Date.now();
  const key = statsKeys(o.prefix).metrics;
  // Redis away: still answer, with this process's own metrics and postback_redis_up 0, so the scrape
  // itself says what is wrong instead of failing.
  let redisUp = 1;
  let raw: Record<string, string> = {};
  try {
    raw = await o.redis.hgetall(key);
  } catch {
    redisUp = 0;
  }
  const snapshots: MetricJson[][] = [];
  const forget: string[] = [];
  for (const [name, text] of Object.entries(raw)) {
    if (name === o.self?.name) continue;
    try {
      const s = JSON.parse(text) as Snapshot;
      if (now - s.at <= o.freshMs) snapshots.push(s.metrics);
      else if (now - s.at > SNAPSHOT_FORGET_MS) forget.push(name);
    } catch {
      forget.push(name);
    }
  }
  if (forget.length) await o.redis.hdel(key, ...forget).catch(() => undefined);
  if (o.self) snapshots.push(await o.self.registry.getMetricsAsJSON());
  // Every series carries its process's instance label, so nothing is really summed; "sum" keeps
  // metrics whose own aggregator would omit them (process_start_time_seconds...).
  for (const metrics of snapshots) for (const m of metrics) (m as { aggregator?: string }).aggregator = 'sum';
  const merged = AggregatorRegistry.aggregate(snapshots);

  const global = new Registry();
  const gauge = (name: string, help: string, value: number) => {
    const g = new client.Gauge({ name, help, registers: [global] });
    g.set(value);
  };
  gauge('postback_metrics_processes', 'Processes whose metrics are in this answer (fresh snapshots).', snapshots.length);
  let st: QueueStatus | undefined;
  if (redisUp) {
    try {
      st = await o.queueStatus();
    } catch {
      redisUp = 0;
    }
  }
  gauge('postback_redis_up', 'Whether the process answering this scrape could read Redis (1) or not (0).', redisUp);
  if (st) {
    gauge('postback_queue_live', 'Postbacks not yet delivered or dead-lettered (waiting, in flight, or scheduled for a retry).', st.live);
    gauge('postback_queue_stream_entries', 'Entries in the queue stream (a request is one entry): waiting plus in flight.', st.streamLength);
    gauge('postback_queue_pending_entries', 'Entries handed to a worker and not yet settled.', st.pending);
    gauge('postback_queue_oldest_age_seconds', 'Age of the oldest entry in the queue stream.', st.oldestAgeMs / 1000);
    gauge('postback_retry_scheduled', 'Postbacks in the retry set, waiting for their next attempt.', st.retryScheduled);
    gauge('postback_dead_letters', 'Postbacks in the dead-letter stream.', st.deadLetters);
    gauge('postback_delivery_consumers', 'Consumers (workers) in the delivery consumer group.', st.consumers.length);
  }
  return (await merged.metrics()) + (await global.metrics());
}

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** A process's own metrics on 127.0.0.1:port (delivery workers, METRICS_WORKER_PORT_BASE). */
export function serveRegistry(registry: Registry, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
