/**
 * Redis's own counters, for the bandwidth and memory figures: bytes in + out (INFO stats
 * total_net_input_bytes + total_net_output_bytes) and used_memory (INFO memory), and the naive
 * encoding measured on the same Redis for comparison.
 */
import type { Redis } from 'ioredis';

export function infoField(info: string, name: string): number {
  const m = new RegExp(`^${name}:(\\d+)`, 'm').exec(info);
  if (!m) throw new Error(`INFO has no ${name}`);
  return Number(m[1]);
}

export async function netBytes(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  return infoField(info, 'total_net_input_bytes') + infoField(info, 'total_net_output_bytes');
}

export async function usedMemory(redis: Redis): Promise<number> {
  return infoField(await redis.info('memory'), 'used_memory');
}

/** Bytes Redis counted between two calls, without the cost of the measuring INFO calls themselves. */
export class NetMeter {
  private infoCost = 0;
  private startBytes = 0;
  constructor(private readonly redis: Redis) {}

  async start(): Promise<void> {
    const a = await netBytes(this.redis);
    const b = await netBytes(this.redis);
    this.infoCost = b - a;
    this.startBytes = b;
  }

  async bytesSinceStart(): Promise<number> {
    return (await netBytes(this.redis)) - this.startBytes - this.infoCost;
  }
}

/**
 * The naive design: the whole request JSON queued once per postback (one stream entry each, with the
 * index of its data object), read back through a consumer group in batches, acknowledged and deleted
 * in batches. Returns bytes crossing Redis per postback for `requests` requests of `body`.
 */
export async function naiveBytesPerPostback(
  producer: Redis,
  consumer: Redis,
  meter: Redis,
  body: (i: number) => string,
  postbacksPerRequest: number,
  requests: number,
): Promise<number> {
  const key = `bench:naive:${process.pid}`;
  await producer.del(key);
  await producer.xgroup('CREATE', key, 'g', '0', 'MKSTREAM');
  const m = new NetMeter(meter);
  await m.start();
  const window = 64; // requests in flight at once, as a loaded ingest would have
  for (let i = 0; i < requests; i += window) {
    const batch: Promise<unknown>[] = [];
    for (let j = i; j < Math.min(requests, i + window); j++) {
      const p = producer.multi();
      const text = body(j);
      for (let k = 0; k < postbacksPerRequest; k++) p.xadd(key, '*', 'request', text, 'index', String(k));
      batch.push(p.exec());
    }
    await Promise.all(batch);
  }
  let done = 0;
  while (done < requests * postbacksPerRequest) {
    const reply = (await consumer.xreadgroup('GROUP', 'g', 'c', 'COUNT', 128, 'STREAMS', key, '>')) as [string, [string, string[]][]][] | null;
    const ids = reply?.[0]?.[1].map(([id]) => id) ?? [];
    if (!ids.length) break;
    await consumer.multi().xack(key, 'g', ...ids).xdel(key, ...ids).exec();
    done += ids.length;
  }
  const bytes = await m.bytesSinceStart();
  await producer.del(key);
  return bytes / (requests * postbacksPerRequest);
}
