/**
 * Redis clients, configured by role:
 * - ingest fails fast: no offline queue and a command timeout, so a Redis outage becomes a quick 503
 *   and never a request that hangs or half-enqueues;
 * - workers wait: commands queue while Redis is away and go out when it is back (a worker exits on its
 *   own if the outage outlasts DELIVERY_REDIS_DOWN_EXIT_MS, so pm2 and monit see it).
 *
 * REDIS_URL is either a plain Redis URL (redis://, rediss://, unix://) or, for a highly available
 * Redis watched by Sentinel, redis-sentinel://[user:password@]host:port[,host:port...]/master-name[/db]
 * (the password is the data nodes'; add ?sentinelPassword=... when the sentinels have their own).
 * Every role then asks the sentinels for the current master and follows failovers.
 */
import { Redis, type RedisOptions } from 'ioredis';

export type RedisRole = 'ingest' | 'worker' | 'blocking' | 'subscriber' | 'tool';

export function redisOptions(role: RedisRole, commandTimeoutMs = 2000): RedisOptions {
  const common: RedisOptions = {
    connectionName: `postback-${role}-${process.pid}`,
    // Reconnect forever, backing off to at most 2 s between tries.
    retryStrategy: (times) => Math.min(50 * times, 2000),
    connectTimeout: 5000,
  };
  switch (role) {
    case 'ingest':
      return {
        ...common,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: commandTimeoutMs,
        enableAutoPipelining: true,
      };
    case 'worker':
      return { ...common, maxRetriesPerRequest: null, enableAutoPipelining: true };
    case 'blocking':
    case 'subscriber':
      // A blocking read, or pub/sub (metrics requests): a connection of its own that waits for Redis.
      return { ...common, maxRetriesPerRequest: null };
    case 'tool':
      // A command-line tool (postback-ctl) answers quickly: a Redis that is not there is an error after
      // a couple of tries, not a wait.
      return {
        ...common,
        maxRetriesPerRequest: 1,
        enableOfflineQueue: true,
        connectTimeout: 3000,
        commandTimeout: 30_000,
        retryStrategy: (times) => (times > 2 ? null : 100 * times),
      };
  }
}

/** Connection options for a redis-sentinel:// URL; undefined for any other URL. Throws on a bad one. */
export function sentinelOptions(url: string): RedisOptions | undefined {
  const m = /^redis-sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)\/([^/?]+)(?:\/(\d+))?\/?(?:\?(.*))?$/.exec(url);
  if (!url.startsWith('redis-sentinel:')) return undefined;
  if (!m) throw new Error('expected redis-sentinel://[user:password@]host:port[,host:port...]/master-name[/db]');
  const [, user, password, hosts, name, db, query] = m;
  const sentinels = hosts!.split(',').map((hp) => {
    const hm = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hp.trim());
    if (!hm) throw new Error(`bad sentinel address "${hp}"`);
    const port = hm[2] === undefined ? 26379 : Number(hm[2]);
    if (port < 1 || port > 65535) throw new Error(`bad sentinel port in "${hp}"`);
    return { host: hm[1]!.replace(/^\[|\]$/g, ''), port };
  });
  const params = new URLSearchParams(query ?? '');
  const sentinelPassword = params.get('sentinelPassword');
  return {
    sentinels,
    name: decodeURIComponent(name!),
    ...(user ? { username: decodeURIComponent(user) } : {}),
    ...(password ? { password: decodeURIComponent(password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(sentinelPassword ? { sentinelPassword } : {}),
  };
}

export function createRedis(url: string, role: RedisRole, commandTimeoutMs?: number): Redis {
  const options = redisOptions(role, commandTimeoutMs);
  const sentinel = sentinelOptions(url);
  if (sentinel) {
    // Ask the sentinels again on every reconnect (a failover drops the connection to the old master).
    return new Redis({ ...options, ...sentinel, sentinelRetryStrategy: (times) => Math.min(100 * times, 1000) });
  }
  return new Redis(url, options);
}
