/**
 * Redis's memory, sampled: ingest refuses new work (503 ERR_QUEUE_FULL) while Redis uses more than
 * QUEUE_MAX_MEMORY_PERCENT of its maxmemory, so the rest stays free for what drains the queue (settling,
 * dead letters, retries) and Redis never reaches the point where it refuses writes. One INFO memory
 * per QUEUE_MEMORY_SAMPLE_INTERVAL_MS per ingest process, never per request; between two samples the
 * queue can grow by at most what clients send in one interval, which the headroom absorbs.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.js';

export interface MemoryReading {
  /** Memory Redis counts against maxmemory, bytes (used_memory less what it does not count: replication and AOF buffers). */
  readonly usedBytes: number;
  /** maxmemory, bytes; 0 = no limit. */
  readonly maxBytes: number;
}

/** The reading in an INFO memory answer, or undefined when it has none. Pure. */
export function parseMemoryInfo(info: string): MemoryReading | undefined {
  const field = (name: string): number | undefined => {
    const m = new RegExp(`^${name}:(\\d+)\\r?$`, 'm').exec(info);
    return m ? Number(m[1]) : undefined;
  };
  const used = field('used_memory');
  const max = field('maxmemory');
  if (used === undefined || max === undefined) return undefined;
  return { usedBytes: Math.max(0, used - (field('mem_not_counted_for_evict') ?? 0)), maxBytes: max };
}

/** Whether ingest should refuse at this reading: above `percent` of a set maxmemory. Pure. */
export function overLimit(r: MemoryReading, percent: number): boolean {
  return percent > 0 && r.maxBytes > 0 && r.usedBytes * 100 > r.maxBytes * percent;
}

export interface MemoryWatchOptions {
  readonly percent: number;
  readonly intervalMs: number;
  readonly logger: Logger;
}

export class RedisMemoryWatch {
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;
  /** The last reading over the limit, or undefined while under it (or never read). */
  private refusing: MemoryReading | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly options: MemoryWatchOptions,
  ) {}

  start(): void {
    if (this.timer || this.options.percent <= 0) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Why ingest must refuse now ("Redis memory at 83% of maxmemory, limit 80%"), or undefined. */
  get refusal(): string | undefined {
    const r = this.refusing;
    if (!r) return undefined;
    return `Redis memory at ${Math.round((r.usedBytes * 100) / r.maxBytes)}% of maxmemory, limit ${this.options.percent}%`;
  }

  /** Take one reading now (the timer calls this; tests too). A failed read keeps the last verdict. */
  async sample(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const r = parseMemoryInfo(await this.redis.info('memory'));
      if (!r) return;
      const over = overLimit(r, this.options.percent);
      if (over && !this.refusing) {
        this.refusing = r;
        this.options.logger.warn('Redis memory above the limit: refusing new postbacks until the queue drains', {
          event: 'queue_memory_full',
          usedBytes: r.usedBytes,
          maxBytes: r.maxBytes,
          limitPercent: this.options.percent,
        });
      } else if (!over && this.refusing) {
        this.refusing = undefined;
        this.options.logger.info('Redis memory below the limit again: accepting postbacks', {
          event: 'queue_memory_ok',
          usedBytes: r.usedBytes,
          maxBytes: r.maxBytes,
          limitPercent: this.options.percent,
        });
      } else if (over) {
        this.refusing = r;
      }
    } catch {
      // Redis away: enqueues fail on their own (503); keep the last verdict.
    } finally {
      this.sampling = false;
    }
  }
}
