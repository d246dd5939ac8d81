/**
 * What monitoring costs on the hot paths: pushes N postbacks through the in-process stack (real Redis,
 * real HTTP into ingest, the real worker delivering to a local endpoint) with monitoring off, then on
 * (Prometheus metrics on both sides + statistics counted and flushed to Redis), alternating rounds so
 * both modes see the same machine. Each round measures the two hot paths apart: ingest (N postbacks
 * posted by 8 clients, 10 per request, worker stopped) and delivery (the worker started on the full
 * queue, until the endpoint has them all). Prints postbacks/s per mode and path (median of the rounds),
 * and the CPU time spent per postback by this process (ingest, worker, endpoint and clients all run
 * in it) and by redis-server: on a shared machine, wall-clock rates swing with the neighbours' load,
 * CPU time per postback less so. Last, the hot-path code alone: the CPU time of what monitoring adds
 * per postback (ingest's counter + statistics, the worker's observer), in a tight loop, against a
 * real Redis for the flushes: the most stable figure, to set against the CPU per postback above.
 *
 *   node --import tsx test/bench/stats-overhead.ts [postbacks per round, default 20000] [rounds, default 3]
 *
 * Bounded: a fixed number of postbacks per round, to 127.0.0.1 only.
 */
import { monitoringObserver } from '../../src/delivery/observe.js';
import { createDeliveryMetrics, createIngestMetrics } from '../../src/shared/metrics.js';
import { StatsRecorder } from '../../src/shared/stats.js';
import { Stack } from '../helpers/stack.js';

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const PER_REQUEST = 10;
const CLIENTS = 8;

interface Rates {
  ingest: number;
  delivery: number;
  /** CPU time of this process per postback, µs (both phases). */
  cpuUs: number;
  /** CPU time of redis-server per postback, µs. */
  redisCpuUs: number;
}

async function redisCpuS(stack: Stack): Promise<number> {
  const info = await stack.ingestRedis.info('cpu');
  const get = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return get('used_cpu_sys') + get('used_cpu_user');
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
    const cpu0 = process.cpuUsage();
    const redis0 = await redisCpuS(stack);
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
    if (monitoring) await stack.flushStats();
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = (cpu.user + cpu.system) / N;
    const redisCpuUs = ((await redisCpuS(stack)) - redis0) * 1e6 / N;
    if (monitoring) {
      const buckets = await stack.ingestRedis.keys(`${stack.config.queuePrefix}:st:10:*`);
      if (buckets.length === 0) throw new Error('monitoring on, but no statistics reached Redis');
    }
    return { ingest, delivery, cpuUs, redisCpuUs };
  } finally {
    await stack.stop();
  }
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const off: Rates[] = [];
const on: Rates[] = [];
const f = (r: Rates) =>
  `ingest ${r.ingest.toFixed(0)}/s, delivery ${r.delivery.toFixed(0)}/s, cpu ${r.cpuUs.toFixed(0)} µs + redis ${r.redisCpuUs.toFixed(0)} µs per postback`;
for (let i = 0; i < ROUNDS; i++) {
  off.push(await round(false));
  on.push(await round(true));
  console.log(`round ${i + 1}: off: ${f(off.at(-1)!)} | on: ${f(on.at(-1)!)}`);
}
for (const path of ['ingest', 'delivery', 'cpuUs', 'redisCpuUs'] as const) {
  const mOff = median(off.map((r) => r[path]));
  const mOn = median(on.map((r) => r[path]));
  console.log(
    `${path}${path.endsWith('Us') ? ' (µs per postback)' : ' (postbacks/s)'}, ${N} per round, median of ${ROUNDS}: monitoring off ${mOff.toFixed(0)}, on ${mOn.toFixed(0)} ` +
      `(${(((mOn - mOff) / mOff) * 100).toFixed(1)}%)`,
  );
}

// The hot-path code alone: what monitoring adds per postback, measured in CPU time over many calls.
{
  const stack = await Stack.start({ worker: false, monitoring: false });
  try {
    const ingestMetrics = createIngestMetrics('bench-ingest');
    const deliveryMetrics = createDeliveryMetrics('bench-worker', 50);
    const stats = new StatsRecorder(stack.ingestRedis, {
      prefix: 'bench',
      flushIntervalMs: 1000,
      fineRetentionS: 600,
      coarseRetentionS: 3600,
      topHosts: 50,
    });
    stats.start();
    const observer = monitoringObserver(deliveryMetrics, stats);
    const CALLS = 200_000;
    const hosts = Array.from({ length: 20 }, (_, i) => `partner${i}.example:8080`);
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < CALLS; i++) {
      ingestMetrics.enqueued.inc(1);
      stats.accepted(1);
      observer.onAttempt!({
        postbackId: `1-0:${i}`,
        attempt: 1,
        action: i % 10 === 0 ? 'retried' : 'delivered',
        endpointHost: hosts[i % hosts.length]!,
        status: i % 10 === 0 ? 503 : 200,
        durationMs: 12,
        queuedMs: i % 500,
        at: Date.now(),
      });
      if (i % 5000 === 0) await new Promise((r) => setImmediate(r)); // let flushes run, as in real life
    }
    await stats.stop();
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `hot path alone: ${(((cpu.user + cpu.system) / CALLS) * 1000).toFixed(0)} ns CPU per postback ` +
        `(ingest counter + statistics, worker observer: metrics + statistics, flushes to Redis included), ${CALLS} calls`,
    );
  } finally {
    await stack.stop();
  }
}

