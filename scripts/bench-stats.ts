/**
 * What monitoring costs on the hot path: pushes N postbacks through the in-process stack (real Redis,
 * real HTTP into ingest, the real worker delivering to a local endpoint) with monitoring off, then on
 * (Prometheus metrics on both sides + statistics counted and flushed to Redis), alternating rounds so
 * both modes see the same machine, and prints postbacks/s per mode (median of the rounds).
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

async function round(monitoring: boolean): Promise<number> {
  const stack = await Stack.start({
    monitoring,
    env: { LOG_LEVEL: 'warn', DELIVERY_CONCURRENCY: '64', DELIVERY_BLOCK_MS: '100' },
  });
  // The stack's logger keeps every line in memory: silence it so logging is not what is measured.
  stack.logger.level = 'error';
  try {
    const url = `${stack.endpoint}/pb?n={n}`;
    let next = 0;
    const start = process.hrtime.bigint();
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
    await stack.receiver.waitFor(N, 300_000);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (monitoring) {
      await stack.flushStats();
      const delivered = await stack.ingestRedis.keys(`${stack.config.queuePrefix}:st:10:*`);
      if (delivered.length === 0) throw new Error('monitoring on, but no statistics reached Redis');
    }
    return N / seconds;
  } finally {
    await stack.stop();
  }
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const off: number[] = [];
const on: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  off.push(await round(false));
  on.push(await round(true));
  console.log(`round ${i + 1}: off ${off.at(-1)!.toFixed(0)}/s, on ${on.at(-1)!.toFixed(0)}/s`);
}
const mOff = median(off);
const mOn = median(on);
console.log(
  `postbacks/s end to end (ingest -> Redis -> delivery -> endpoint), ${N} per round, median of ${ROUNDS}: ` +
    `monitoring off ${mOff.toFixed(0)}, on ${mOn.toFixed(0)} (${(((mOn - mOff) / mOff) * 100).toFixed(1)}%)`,
);
