/**
 * The one typed configuration module. Every setting is read from the environment once, validated with
 * joi (all errors reported at once), and returned as a frozen object. Only `main.ts` files call
 * `loadConfig(process.env)`; everything else receives the object.
 *
 * Every key here is documented, with its unit and default, in docs/configuration.md. Keep them in step.
 */
import os from 'node:os';
import Joi from 'joi';
import { sentinelOptions } from './redis.js';
import { PolicySettingError, createDestinationPolicy, type DestinationPolicy } from './destination-policy.js';

export type PostFormat = 'json' | 'form';
export type HttpClient = 'got' | 'node';

export interface Config {
  /** Redis connection URL (redis://[user:password@]host:port[/db]). @defaultValue redis://127.0.0.1:6379 */
  readonly redisUrl: string;
  /** Replicas that must confirm an enqueue (Redis WAIT) before ingest answers 202; 0 = do not wait. @defaultValue 0 */
  readonly redisMinReplicas: number;
  /** Prefix of every Redis key the queue owns. @defaultValue pb */
  readonly queuePrefix: string;
  /** Ingest refuses (503 ERR_QUEUE_FULL) once this many postbacks wait in the stream; 0 = no limit. @defaultValue 10000000 */
  readonly queueMaxLength: number;
  /** Seconds an unreferenced URL template is kept before garbage collection. @defaultValue 3600 */
  readonly templateGcGraceS: number;
  /** Postbacks per stream entry: bigger requests are split so every worker takes a share. @defaultValue 100 */
  readonly queueEntryMaxPostbacks: number;
  /** Ingest refuses (503 ERR_QUEUE_FULL) while Redis uses more than this percent of its maxmemory; 0 = off. @defaultValue 80 */
  readonly queueMaxMemoryPercent: number;
  /** How often each ingest process samples Redis's memory (INFO memory), ms. @defaultValue 1000 */
  readonly queueMemorySampleIntervalMs: number;

  /** Address the ingest HTTP server binds. @defaultValue 127.0.0.1 */
  readonly ingestHost: string;
  /** TCP port of the ingest HTTP server. @defaultValue 3000 */
  readonly ingestPort: number;
  /** Largest accepted request body, bytes. @defaultValue 1048576 */
  readonly ingestMaxBodyBytes: number;
  /** Largest accepted `data` array, items. @defaultValue 1000 */
  readonly ingestMaxDataItems: number;
  /** Longest accepted endpoint.url template, characters. @defaultValue 2048 */
  readonly ingestMaxUrlLength: number;
  /** Ingest gives up on a Redis command after this long and answers 503, ms. @defaultValue 2000 */
  readonly ingestRedisTimeoutMs: number;

  /** Value put in place of a {key} that has no matching data key. @defaultValue "" (empty string) */
  readonly unmatchedPlaceholderDefault: string;

  /** Attempts per postback, the first included, before it is dead-lettered. @defaultValue 5 */
  readonly deliveryMaxAttempts: number;
  /** Whole-request timeout of one delivery attempt, ms. @defaultValue 10000 */
  readonly deliveryTimeoutMs: number;
  /** Deliveries in flight at once, per worker process. @defaultValue 64 */
  readonly deliveryConcurrency: number;
  /** Postbacks fetched from Redis per read, at most. @defaultValue 128 */
  readonly deliveryBatchSize: number;
  /** How long a worker's blocking read waits for new postbacks before looping, ms. @defaultValue 2000 */
  readonly deliveryBlockMs: number;
  /** First retry delay before jitter, ms; doubles each attempt. @defaultValue 1000 */
  readonly deliveryBackoffBaseMs: number;
  /** Longest retry delay, ms (also caps an honoured Retry-After). @defaultValue 600000 */
  readonly deliveryBackoffMaxMs: number;
  /** Body encoding of POST deliveries. @defaultValue json */
  readonly deliveryPostFormat: PostFormat;
  /** HTTP client of deliveries: got, or node:http directly (a quarter of got's CPU per request). @defaultValue got */
  readonly deliveryHttpClient: HttpClient;
  /** Response bytes read per attempt; the rest is discarded unread. @defaultValue 65536 */
  readonly deliveryMaxResponseBytes: number;
  /** A postback left unacknowledged this long by a worker is taken over by another, ms. @defaultValue 60000 */
  readonly deliveryClaimMinIdleMs: number;
  /** How often a worker looks for abandoned postbacks and due retries, ms. @defaultValue 1000 */
  readonly deliveryMaintenanceIntervalMs: number;
  /** Time a stopping worker gives in-flight deliveries before handing them back, ms. @defaultValue 8000 */
  readonly deliveryShutdownTimeoutMs: number;
  /** How often a worker refreshes its heartbeat key (alive while it exists: three intervals), ms. @defaultValue 30000 */
  readonly deliveryHeartbeatIntervalMs: number;
  /** Exit (so pm2 restarts the worker) when Redis has been unreachable this long, ms. @defaultValue 60000 */
  readonly deliveryRedisDownExitMs: number;
  /** Name of this worker in the consumer group; stable names let a restarted worker resume its own work at once. */
  readonly deliveryConsumerName: string;
  /** This process's pm2 instance number (NODE_APP_INSTANCE), or its pid outside pm2. Not a setting. */
  readonly instance: string;
  /** User-Agent header of deliveries. @defaultValue postback-delivery/<version> */
  readonly deliveryUserAgent: string;
  /**
   * Where deliveries may connect (DELIVERY_ALLOW_NETWORKS, DELIVERY_DENY_NETWORKS, DELIVERY_ALLOW_HOSTS,
   * DELIVERY_ALLOW_PORTS): by default public unicast addresses only, any port. docs/security.md.
   */
  readonly destinationPolicy: DestinationPolicy;
  /** Longest expanded URL a postback may have, characters; longer ones are refused by ingest or dead-lettered. @defaultValue 8192 */
  readonly deliveryMaxUrlLength: number;
  /** Largest POST body a postback may have, bytes; larger ones are refused by ingest or dead-lettered. @defaultValue 1048576 */
  readonly deliveryMaxBodyBytes: number;

  /** Keep delivery statistics in Redis (dashboard, GET /stats). @defaultValue true */
  readonly statsEnabled: boolean;
  /** How often each process sends its counted statistics to Redis, ms. @defaultValue 1000 */
  readonly statsFlushIntervalMs: number;
  /** How long 10-second statistics buckets are kept, s. @defaultValue 86400 */
  readonly statsFineRetentionS: number;
  /** How long 1-minute statistics buckets (and per-host ones) are kept, s. @defaultValue 604800 */
  readonly statsCoarseRetentionS: number;
  /** Endpoint hosts counted one by one per flush and per process (the rest as "(other)"); also the metrics' host label limit. @defaultValue 50 */
  readonly statsTopHosts: number;
  /** How long GET /metrics waits for the other processes' metrics (asked over Redis pub/sub), ms. @defaultValue 2000 */
  readonly metricsCollectTimeoutMs: number;
  /** A delivery worker also serves its own metrics on 127.0.0.1:(this + its pm2 instance number); 0 = off. @defaultValue 0 */
  readonly metricsWorkerPortBase: number;
  /** Where SIGUSR2 CPU profiles are written. @defaultValue the OS temporary directory */
  readonly profileDir: string;
  /** Length of a CPU profile started by SIGUSR2, s. @defaultValue 30 */
  readonly profileCpuSeconds: number;

  /** winston level: error, warn, info, debug. @defaultValue info */
  readonly logLevel: string;
  /** Characters of a response body kept in a delivery log line; 0 = the body is not logged. @defaultValue 1024 */
  readonly logResponseBodyMaxChars: number;
  /** Characters of a URL kept in a log line (after redaction). @defaultValue 2048 */
  readonly logUrlMaxChars: number;
  /** Query parameter names whose values are replaced by [REDACTED] in logs: a name containing any of these, any case. */
  readonly logRedactQueryParams: readonly string[];
  /** Regular expressions matched against a URL's path; what they match (or their groups) is replaced by [REDACTED] in logs. */
  readonly logRedactPathPatterns: readonly RegExp[];
  /** Directory pm2 writes the apps' logs to (pm2.config.cjs); `postback-ctl logs tail` reads delivery.log there. @defaultValue /var/log/postback */
  readonly logDir: string;
}

const DEFAULT_REDACT = 'token,secret,key,password,passwd,auth,signature,sig,session,credential';
/** A path segment that follows one named like a secret: /token/<here>, /api-keys/<here>, /hooks/secret/<here>. */
export const DEFAULT_REDACT_PATH = '(?<=/[^/?#]*(?:token|secret|key|password|passwd|auth|signature|sig|session|credential)[^/?#]*/)[^/?#]+';

const int = () => Joi.number().integer();

const schema = Joi.object({
  REDIS_URL: Joi.string()
    .custom((value: string, helpers) => {
      try {
        if (sentinelOptions(value)) return value;
        const url = new URL(value);
        if (!['redis:', 'rediss:', 'unix:'].includes(url.protocol)) throw new Error('is not a redis URL');
        return value;
      } catch {
        return helpers.message({
          custom: `"REDIS_URL" must be redis://[user:password@]host:port[/db], rediss://..., unix://... or redis-sentinel://[user:password@]host:port[,host:port...]/master-name[/db]`,
        });
      }
    })
    .default('redis://127.0.0.1:6379'),
  REDIS_MIN_REPLICAS: int().min(0).max(16).default(0),
  QUEUE_PREFIX: Joi.string().pattern(/^[A-Za-z0-9_.:{}-]+$/).max(64).default('pb'),
  QUEUE_MAX_LENGTH: int().min(0).default(10_000_000),
  TEMPLATE_GC_GRACE_S: int().min(1).default(3600),
  QUEUE_ENTRY_MAX_POSTBACKS: int().min(1).max(100_000).default(100),
  QUEUE_MAX_MEMORY_PERCENT: int().min(0).max(100).default(80),
  QUEUE_MEMORY_SAMPLE_INTERVAL_MS: int().min(50).max(60_000).default(1000),

  INGEST_HOST: Joi.string().hostname().default('127.0.0.1'),
  INGEST_PORT: Joi.number().port().default(3000),
  INGEST_MAX_BODY_BYTES: int().min(256).max(64 * 1024 * 1024).default(1024 * 1024),
  INGEST_MAX_DATA_ITEMS: int().min(1).max(100_000).default(1000),
  INGEST_MAX_URL_LENGTH: int().min(16).max(65_536).default(2048),
  INGEST_REDIS_TIMEOUT_MS: int().min(50).max(60_000).default(2000),

  UNMATCHED_PLACEHOLDER_DEFAULT: Joi.string().allow('').max(1024).default(''),

  DELIVERY_MAX_ATTEMPTS: int().min(1).max(100).default(5),
  DELIVERY_TIMEOUT_MS: int().min(100).max(300_000).default(10_000),
  DELIVERY_CONCURRENCY: int().min(1).max(10_000).default(64),
  DELIVERY_BATCH_SIZE: int().min(1).max(10_000).default(128),
  DELIVERY_BLOCK_MS: int().min(10).max(60_000).default(2000),
  DELIVERY_BACKOFF_BASE_MS: int().min(1).default(1000),
  DELIVERY_BACKOFF_MAX_MS: int().min(1).default(600_000),
  DELIVERY_POST_FORMAT: Joi.string().valid('json', 'form').default('json'),
  DELIVERY_HTTP_CLIENT: Joi.string().valid('got', 'node').default('got'),
  DELIVERY_MAX_RESPONSE_BYTES: int().min(0).max(64 * 1024 * 1024).default(64 * 1024),
  DELIVERY_CLAIM_MIN_IDLE_MS: int().min(100).default(60_000),
  DELIVERY_MAINTENANCE_INTERVAL_MS: int().min(10).max(600_000).default(1000),
  DELIVERY_SHUTDOWN_TIMEOUT_MS: int().min(0).max(600_000).default(8000),
  DELIVERY_HEARTBEAT_INTERVAL_MS: int().min(100).max(3_600_000).default(30_000),
  DELIVERY_REDIS_DOWN_EXIT_MS: int().min(1000).default(60_000),
  DELIVERY_CONSUMER_NAME: Joi.string().pattern(/^[A-Za-z0-9_.:@-]+$/).max(128),
  DELIVERY_USER_AGENT: Joi.string().max(256).default('postback-delivery/0.1'),
  DELIVERY_ALLOW_NETWORKS: Joi.string().allow('').default(''),
  DELIVERY_DENY_NETWORKS: Joi.string().allow('').default(''),
  DELIVERY_ALLOW_HOSTS: Joi.string().allow('').default(''),
  DELIVERY_ALLOW_PORTS: Joi.string().allow('').default(''),
  DELIVERY_MAX_URL_LENGTH: int().min(256).max(1024 * 1024).default(8192),
  DELIVERY_MAX_BODY_BYTES: int().min(256).max(64 * 1024 * 1024).default(1024 * 1024),

  STATS_ENABLED: Joi.boolean().default(true),
  STATS_FLUSH_INTERVAL_MS: int().min(100).max(60_000).default(1000),
  STATS_FINE_RETENTION_S: int().min(600).max(30 * 86_400).default(86_400),
  STATS_COARSE_RETENTION_S: int().min(3600).max(366 * 86_400).default(7 * 86_400),
  STATS_TOP_HOSTS: int().min(1).max(1000).default(50),
  METRICS_COLLECT_TIMEOUT_MS: int().min(50).max(30_000).default(2000),
  METRICS_WORKER_PORT_BASE: int().min(0).max(65_000).default(0),
  PROFILE_DIR: Joi.string().default(os.tmpdir()),
  PROFILE_CPU_SECONDS: int().min(1).max(600).default(30),

  LOG_LEVEL: Joi.string().valid('error', 'warn', 'info', 'debug').default('info'),
  LOG_RESPONSE_BODY_MAX_CHARS: int().min(0).max(1024 * 1024).default(1024),
  LOG_URL_MAX_CHARS: int().min(64).max(1024 * 1024).default(2048),
  LOG_REDACT_QUERY_PARAMS: Joi.string().allow('').default(DEFAULT_REDACT),
  LOG_REDACT_PATH_PATTERNS: Joi.string().allow('').default(DEFAULT_REDACT_PATH),
  POSTBACK_LOG_DIR: Joi.string().default('/var/log/postback'),
})
  // Ignore the rest of the environment (PATH, pm2's variables...).
  .unknown(true);

/** Every environment variable the configuration reads (docs/configuration.md documents each one). */
export const SETTING_NAMES: readonly string[] = Object.freeze(Object.keys(schema.describe().keys ?? {}));

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

/** Settings where "" means something (no default filler, no redaction) rather than "unset". */
const EMPTY_IS_A_VALUE = new Set(['UNMATCHED_PLACEHOLDER_DEFAULT', 'LOG_REDACT_QUERY_PARAMS', 'LOG_REDACT_PATH_PATTERNS']);

/**
 * Validate `env` and build the frozen config. Throws ConfigError listing every bad setting by name.
 * Empty strings count as unset, except for the settings in EMPTY_IS_A_VALUE.
 */
export function loadConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined>): Config {
  const input: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (v === '' && !EMPTY_IS_A_VALUE.has(k)) continue;
    input[k] = v;
  }
  const { value, error } = schema.validate(input, { abortEarly: false, convert: true });
  const problems = error ? error.details.map((d) => `${d.context?.key ?? d.path.join('.')}: ${d.message}`) : [];
  const v = value as Record<string, any>;
  if (!error) {
    if (v.DELIVERY_BACKOFF_MAX_MS < v.DELIVERY_BACKOFF_BASE_MS) {
      problems.push('DELIVERY_BACKOFF_MAX_MS: must be at least DELIVERY_BACKOFF_BASE_MS');
    }
    // A worker that is merely slow must not have its postbacks taken over mid-request.
    if (v.DELIVERY_CLAIM_MIN_IDLE_MS <= v.DELIVERY_TIMEOUT_MS * 2) {
      problems.push(
        `DELIVERY_CLAIM_MIN_IDLE_MS: must be more than twice DELIVERY_TIMEOUT_MS (${v.DELIVERY_TIMEOUT_MS * 2})`,
      );
    }
  }
  let destinationPolicy: DestinationPolicy | undefined;
  let pathPatterns: RegExp[] = [];
  if (!error) {
    try {
      destinationPolicy = createDestinationPolicy({
        allowNetworks: v.DELIVERY_ALLOW_NETWORKS,
        denyNetworks: v.DELIVERY_DENY_NETWORKS,
        allowHosts: v.DELIVERY_ALLOW_HOSTS,
        allowPorts: v.DELIVERY_ALLOW_PORTS,
      });
    } catch (err) {
      const names = { allowNetworks: 'DELIVERY_ALLOW_NETWORKS', denyNetworks: 'DELIVERY_DENY_NETWORKS', allowHosts: 'DELIVERY_ALLOW_HOSTS', allowPorts: 'DELIVERY_ALLOW_PORTS' };
      problems.push(err instanceof PolicySettingError ? `${names[err.setting]}: ${err.message}` : String(err));
    }
    try {
      pathPatterns = parsePathPatterns(String(v.LOG_REDACT_PATH_PATTERNS));
    } catch (err) {
      problems.push(`LOG_REDACT_PATH_PATTERNS: ${(err as Error).message}`);
    }
  }
  if (problems.length) throw new ConfigError(problems);

  const instance = env.NODE_APP_INSTANCE ?? env.pm_id ?? String(process.pid);
  const config: Config = {
    redisUrl: v.REDIS_URL,
    redisMinReplicas: v.REDIS_MIN_REPLICAS,
    queuePrefix: v.QUEUE_PREFIX,
    queueMaxLength: v.QUEUE_MAX_LENGTH,
    templateGcGraceS: v.TEMPLATE_GC_GRACE_S,
    queueEntryMaxPostbacks: v.QUEUE_ENTRY_MAX_POSTBACKS,
    queueMaxMemoryPercent: v.QUEUE_MAX_MEMORY_PERCENT,
    queueMemorySampleIntervalMs: v.QUEUE_MEMORY_SAMPLE_INTERVAL_MS,
    ingestHost: v.INGEST_HOST,
    ingestPort: v.INGEST_PORT,
    ingestMaxBodyBytes: v.INGEST_MAX_BODY_BYTES,
    ingestMaxDataItems: v.INGEST_MAX_DATA_ITEMS,
    ingestMaxUrlLength: v.INGEST_MAX_URL_LENGTH,
    ingestRedisTimeoutMs: v.INGEST_REDIS_TIMEOUT_MS,
    unmatchedPlaceholderDefault: v.UNMATCHED_PLACEHOLDER_DEFAULT,
    deliveryMaxAttempts: v.DELIVERY_MAX_ATTEMPTS,
    deliveryTimeoutMs: v.DELIVERY_TIMEOUT_MS,
    deliveryConcurrency: v.DELIVERY_CONCURRENCY,
    deliveryBatchSize: v.DELIVERY_BATCH_SIZE,
    deliveryBlockMs: v.DELIVERY_BLOCK_MS,
    deliveryBackoffBaseMs: v.DELIVERY_BACKOFF_BASE_MS,
    deliveryBackoffMaxMs: v.DELIVERY_BACKOFF_MAX_MS,
    deliveryPostFormat: v.DELIVERY_POST_FORMAT,
    deliveryHttpClient: v.DELIVERY_HTTP_CLIENT,
    deliveryMaxResponseBytes: v.DELIVERY_MAX_RESPONSE_BYTES,
    deliveryClaimMinIdleMs: v.DELIVERY_CLAIM_MIN_IDLE_MS,
    deliveryMaintenanceIntervalMs: v.DELIVERY_MAINTENANCE_INTERVAL_MS,
    deliveryHeartbeatIntervalMs: v.DELIVERY_HEARTBEAT_INTERVAL_MS,
    deliveryShutdownTimeoutMs: v.DELIVERY_SHUTDOWN_TIMEOUT_MS,
    deliveryRedisDownExitMs: v.DELIVERY_REDIS_DOWN_EXIT_MS,
    deliveryConsumerName: v.DELIVERY_CONSUMER_NAME ?? `${os.hostname()}-${instance}`,
    instance,
    deliveryUserAgent: v.DELIVERY_USER_AGENT,
    destinationPolicy: destinationPolicy!,
    deliveryMaxUrlLength: v.DELIVERY_MAX_URL_LENGTH,
    deliveryMaxBodyBytes: v.DELIVERY_MAX_BODY_BYTES,
    statsEnabled: v.STATS_ENABLED,
    statsFlushIntervalMs: v.STATS_FLUSH_INTERVAL_MS,
    statsFineRetentionS: v.STATS_FINE_RETENTION_S,
    statsCoarseRetentionS: v.STATS_COARSE_RETENTION_S,
    statsTopHosts: v.STATS_TOP_HOSTS,
    metricsCollectTimeoutMs: v.METRICS_COLLECT_TIMEOUT_MS,
    metricsWorkerPortBase: v.METRICS_WORKER_PORT_BASE,
    profileDir: v.PROFILE_DIR,
    profileCpuSeconds: v.PROFILE_CPU_SECONDS,
    logLevel: v.LOG_LEVEL,
    logResponseBodyMaxChars: v.LOG_RESPONSE_BODY_MAX_CHARS,
    logUrlMaxChars: v.LOG_URL_MAX_CHARS,
    logRedactQueryParams: Object.freeze(
      String(v.LOG_REDACT_QUERY_PARAMS)
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter(Boolean),
    ),
    logRedactPathPatterns: Object.freeze(pathPatterns),
    logDir: v.POSTBACK_LOG_DIR,
  };
  return Object.freeze(config);
}

/**
 * LOG_REDACT_PATH_PATTERNS: regular expressions separated by whitespace (write a space inside one as
 * `\s` or `\x20`), compiled case-insensitive and global. Throws naming the one that does not compile.
 */
export function parsePathPatterns(text: string): RegExp[] {
  return text
    .split(/\s+/)
    .filter(Boolean)
    .map((source) => {
      try {
        return new RegExp(source, 'gi');
      } catch (err) {
        throw new Error(`not a regular expression: ${source} (${(err as Error).message})`);
      }
    });
}
