/**
 * What monitoring costs on the hot paths: pushes N postbacks through the in-process stack (real Redis,
 * real HTTP into ingest, the real worker delivering to a local endpoint) with monitoring off, then on
 * (Prometheus metrics on both sides + statistics counted and flushed to Redis), alternating rounds so
 * both modes see the same machine. Each round measures the two hot paths apart: ingest (N postbacks
 * posted by 8 clients, 10 per request, worker stopped) and delivery (the worker started on the full
 * queue, until the endpoint has them all). Prints postbacks/s per mode and path (median of the rounds).
 *
 *   node --import tsx scripts/bench-stats.ts [postbacks per round, default 20000] [rounds, default 3]
 *
 * Bounded: a fixed number of postbacks per round, to 127.0.0.1 only.
 */
import { Stack } from '../test/helpers/stack.js';

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const PER_REQUEST = 10;
const CLIENTS = 8;

interface Rates {
  ingest: number;
  delivery: number;
}

async function round(monitoring: boolean): Promise<Rates> {
  const stack = await Stack.start({
    monitoring,
    worker: false,
    // A loaded machine must not turn into 503s: this measures throughput, not the timeout.
    env: { LOG_LEVEL: 'warn', DELIVERY_CONCURRENCY: '64', DELIVERY_BLOCK_MS: '100', INGEST_REDIS_TIMEOUT_MS: '10000' },
  });
  // The stack's logger keeps every line in memory: silence it so logging is not what is measured.
  stack.logger.level = 'error';
  try {
    const url = `${stack.endpoint}/pb?n={n}`;
    let next = 0;
    let start = process.hrtime.bigint();
    const client = async () => {
      for (;;) {
        const r = next++;
        if (r * PER_REQUEST >= N) return;
        const data = Array.from({ length: PER_REQUEST }, (_, i) => ({ n: r * PER_REQUEST + i }));
        const res = await stack.post({ endpoint: { method: 'GET', url }, data });
        if (res.status !== 202) throw new Error(`ingest answered ${res.status}`);
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    const ingest = N / (Number(process.hrtime.bigint() - start) / 1e9);
    start = process.hrtime.bigint();
    await stack.startWorker();
    await stack.receiver.waitFor(N, 600_000);
    const delivery = N / (Number(process.hrtime.bigint() - start) / 1e9);
    if (monitoring) {
      await stack.flushStats();
      const buckets = await stack.ingestRedis.keys(`${stack.config.queuePrefix}:st:10:*`);
      if (buckets.length === 0) throw new Error('monitoring on, but no statistics reached Redis');
    }
    return { ingest, delivery };
  } finally {
    await stack.stop();
  }
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const off: Rates[] = [];
const on: Rates[] = [];
const f = (r: Rates) => `ingest ${r.ingest.toFixed(0)}/s, delivery ${r.delivery.toFixed(0)}/s`;
for (let i = 0; i < ROUNDS; i++) {
  off.push(await round(false));
  on.push(await round(true));
  console.log(`round ${i + 1}: off: ${f(off.at(-1)!)} | on: ${f(on.at(-1)!)}`);
}
for (const path of ['ingest', 'delivery'] as const) {
  const mOff = median(off.map((r) => r[path]));
  const mOn = median(on.map((r) => r[path]));
  console.log(
    `${path}: postbacks/s, ${N} per round, median of ${ROUNDS}: monitoring off ${mOff.toFixed(0)}, on ${mOn.toFixed(0)} ` +
      `(${(((mOn - mOff) / mOff) * 100).toFixed(1)}%)`,
  );
}
