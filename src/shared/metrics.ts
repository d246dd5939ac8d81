/**
 * Prometheus metrics (prom-client), and how processes under pm2 give ONE coherent view.
 *
 * Under pm2 the ingest service runs in cluster mode: every instance shares port 3000 and a scrape of
 * /metrics reaches whichever instance the kernel picks, and delivery workers have no HTTP server at
 * all. prom-client's AggregatorRegistry.clusterMetrics() relies on the cluster master answering IPC,
 * which under pm2 is pm2's own daemon, so it cannot be used. Instead, at scrape time, over Redis
 * pub/sub (MetricsExchange):
 *
 * - every process keeps its own registry, every series labelled `service` and `instance`
 *   (`<hostname>-ingest-<pm2 instance>` for ingest, the consumer name for workers), and listens on
 *   the channel pb:metrics:req;
 * - the ingest instance that answers GET /metrics publishes one request there; PUBLISH answers how
 *   many processes heard it, and each replies with its registry as JSON on the asker's own channel;
 * - the asker waits for that many replies (at most METRICS_COLLECT_TIMEOUT_MS), takes its own registry
 *   live, merges them with prom-client's AggregatorRegistry.aggregate (distinct instance labels keep
 *   every process's series apart) and adds the queue-wide gauges (queue depth, retry set, dead
 *   letters) read from Redis once, without an instance label.
 *
 * Pub/sub messages are not stored and never reach the AOF: an idle appliance writes nothing for its
 * metrics (earlier releases pushed a 12-16 KB snapshot per process every 5 s), and every answer is
 * current. A process that does not answer in time (dead, hung, cut off from Redis) is simply not in the
 * answer: postback_metrics_processes says how many are. Counters restart at 0 when pm2 restarts a
 * process, which Prometheus's rate() treats as a counter reset.
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

/** A request on pb:metrics:req. */
interface MetricsRequest {
  readonly id: string;
  readonly replyTo: string;
}

/** A reply on the asker's channel. */
interface MetricsReply {
  readonly id: string;
  readonly name: string;
  readonly metrics: MetricJson[];
}

interface Gathering {
  readonly replies: Map<string, MetricJson[]>;
  expected: number;
  done: () => void;
}

/**
 * One process's side of the metrics exchange: answers every request with its own registry and, in
 * ingest, gathers every process's answer for GET /metrics. Uses its own subscriber connection (a
 * connection that subscribes can do nothing else) and the process's connection for PUBLISH.
 */
export class MetricsExchange {
  private readonly requests: string;
  private readonly replies: string;
  private readonly gatherings = new Map<string, Gathering>();
  private seq = 0;
  private started = false;

  constructor(
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    prefix: string,
    readonly name: string,
    readonly registry: Registry,
  ) {
    const keys = statsKeys(prefix);
    this.requests = keys.metricsRequests;
    this.replies = keys.metricsReplies(name);
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.requests) void this.answer(message);
      else if (channel === this.replies) this.gather(message);
    });
  }

  /** Listen for requests (and replies to this process's own). Resolves once subscribed. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    // ioredis subscribes again by itself after a reconnection.
    await this.subscriber.subscribe(this.requests, this.replies);
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    for (const g of this.gatherings.values()) g.done();
    await this.subscriber.quit().catch(() => this.subscriber.disconnect());
  }

  private async answer(message: string): Promise<void> {
    let req: MetricsRequest;
    try {
      req = JSON.parse(message) as MetricsRequest;
    } catch {
      return;
    }
    if (req.replyTo === this.replies || typeof req.replyTo !== 'string') return; // our own request: we answer it live
    try {
      const reply: MetricsReply = { id: req.id, name: this.name, metrics: await this.registry.getMetricsAsJSON() };
      await this.redis.publish(req.replyTo, JSON.stringify(reply));
    } catch {
      /* Redis away: the asker goes without this process */
    }
  }

  private gather(message: string): void {
    let reply: MetricsReply;
    try {
      reply = JSON.parse(message) as MetricsReply;
    } catch {
      return;
    }
    const g = this.gatherings.get(reply.id);
    if (!g || !Array.isArray(reply.metrics)) return;
    g.replies.set(String(reply.name), reply.metrics);
    if (g.replies.size >= g.expected) g.done();
  }

  /**
   * Every other process's metrics: ask them all, wait until as many answered as heard the request, or
   * `timeoutMs`. Throws when Redis cannot take the request (the caller reports postback_redis_up 0).
   */
  async collect(timeoutMs: number): Promise<Map<string, MetricJson[]>> {
    const id = `${this.name}:${process.pid}:${++this.seq}`;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const g: Gathering = { replies: new Map(), expected: Infinity, done: finish };
    this.gatherings.set(id, g);
    const timer = setTimeout(finish, timeoutMs);
    try {
      const heard = Number(await this.redis.publish(this.requests, JSON.stringify({ id, replyTo: this.replies } satisfies MetricsRequest)));
      // Every subscribed process heard it, this one included (it answers itself live).
      g.expected = Math.max(0, heard - (this.started ? 1 : 0));
      if (g.replies.size >= g.expected) finish();
      await finished;
      return g.replies;
    } finally {
      clearTimeout(timer);
      this.gatherings.delete(id);
    }
  }
}

export interface CollectOptions {
  /** This process's side of the exchange: its registry is read live, the others are asked. */
  readonly exchange: MetricsExchange;
  /** How long to wait for the other processes' answers, ms. */
  readonly timeoutMs: number;
  readonly queueStatus: () => Promise<QueueStatus>;
}

/** The Prometheus text of every live process plus the queue-wide gauges. */
export async function collectMetrics(o: CollectOptions): Promise<string> {
  // Redis away: still answer, with this process's own metrics and postback_redis_up 0, so the scrape
  // itself says what is wrong instead of failing.
  let redisUp = 1;
  let others = new Map<string, MetricJson[]>();
  try {
    others = await o.exchange.collect(o.timeoutMs);
  } catch {
    redisUp = 0;
  }
  others.delete(o.exchange.name);
  const snapshots: MetricJson[][] = [...others.values(), await o.exchange.registry.getMetricsAsJSON()];
  // Every series carries its process's instance label, so nothing is really summed; "sum" keeps
  // metrics whose own aggregator would omit them (process_start_time_seconds...).
  for (const metrics of snapshots) for (const m of metrics) (m as { aggregator?: string }).aggregator = 'sum';
  const merged = AggregatorRegistry.aggregate(snapshots);

  const global = new Registry();
  const gauge = (name: string, help: string, value: number) => {
    const g = new client.Gauge({ name, help, registers: [global] });
    g.set(value);
  };
  gauge('postback_metrics_processes', 'Processes whose metrics are in this answer (those that answered in time).', snapshots.length);
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
