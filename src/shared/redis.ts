/**
 * Redis clients, configured by role:
 * - ingest fails fast: no offline queue and a command timeout, so a Redis outage becomes a quick 503
 *   and never a request that hangs or half-enqueues;
 * - workers wait: commands queue while Redis is away and go out when it is back (a worker exits on its
 *   own if the outage outlasts DELIVERY_REDIS_DOWN_EXIT_MS, so pm2 and monit see it).
 */
import { Redis, type RedisOptions } from 'ioredis';

export type RedisRole = 'ingest' | 'worker' | 'blocking' | 'tool';

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
      return { ...common, maxRetriesPerRequest: null };
    case 'tool':
      return { ...common, maxRetriesPerRequest: 1, enableOfflineQueue: true };
  }
}

export function createRedis(url: string, role: RedisRole, commandTimeoutMs?: number): Redis {
  return new Redis(url, redisOptions(role, commandTimeoutMs));
}
