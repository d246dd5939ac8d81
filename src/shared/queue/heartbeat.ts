/**
 * Worker liveness: a heartbeat key per delivery worker, written by the worker, read by the CLI.
 * XINFO CONSUMERS cannot say whether a worker is alive on every Redis: on 7.0 (Debian 12's) a
 * blocking XREADGROUP that returns nothing does not reset a consumer's idle time, so a live worker
 * with no traffic looks idle for ever; on 7.2+ every read resets it. The heartbeat means the same
 * everywhere. One small expiring key per worker (heartbeatKey), written every
 * DELIVERY_HEARTBEAT_INTERVAL_MS (about 80 bytes of AOF each time), deleted when the worker stops cleanly.
 */
import type { Redis } from 'ioredis';
import { heartbeatKey } from './keys.js';

/** How many heartbeat intervals a heartbeat lives: a worker missing two in a row is still alive. */
export const HEARTBEAT_LIFETIME_INTERVALS = 3;

export class WorkerHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    readonly consumer: string,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.key = heartbeatKey(prefix, consumer);
  }

  /** Beat now, then every interval. */
  async start(): Promise<void> {
    if (this.timer) return;
    this.timer = setInterval(() => void this.beat().catch(() => undefined), this.intervalMs);
    this.timer.unref();
    await this.beat().catch(() => undefined);
  }

  beat(): Promise<unknown> {
    return this.redis.set(this.key, String(this.now()), 'PX', this.intervalMs * HEARTBEAT_LIFETIME_INTERVALS);
  }

  /** A worker that stops cleanly is not alive any more: say so at once. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.del(this.key).catch(() => undefined);
  }
}
