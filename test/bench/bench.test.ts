/**
 * The bench run for real, briefly, in every mode, on the real stack (redis-server, nginx, the built
 * ingest and delivery processes): its counts must be exact. Cross-checked against what the delivery
 * workers themselves say they delivered (their worker_stopped log line), against wrk's own count of
 * 202 answers, and with a repeat and a loss injected on purpose. Never asserts speed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULTS, runBench, type BenchOptions } from '../../src/bench/run.js';
import type { BenchReport } from '../../src/bench/report.js';

const root = path.resolve(import.meta.dirname, '../..');

function options(over: Partial<BenchOptions> & Pick<BenchOptions, 'mode'>): BenchOptions {
  return { ...DEFAULTS, durationS: 2, warmupS: 0, connections: 4, threads: 1, naiveRequests: 200, settleTimeoutS: 60, keep: true, command: 'test', ...over };
}

/** What the delivery workers say they delivered, from their own last log line. */
function deliveredByWorkers(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir).filter((f) => /^delivery-\d+\.log$/.test(f))) {
    const stopped = readFileSync(path.join(dir, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event?: string; delivered?: number })
      .find((l) => l.event === 'worker_stopped');
    assert.ok(stopped, `${f} has no worker_stopped line`);
    n += stopped.delivered ?? 0;
  }
  return n;
}

function assertBooksBalance(r: BenchReport): void {
  const c = r.counts;
  assert.equal(c.missing, 0, 'acknowledged postbacks missing');
  assert.equal(c.duplicates, 0);
  assert.equal(c.duplicateValues, 0);
  assert.ok(c.ok);
  assert.ok(c.acknowledged > 0, 'nothing was acknowledged');
  // Every distinct arrival is an acknowledged postback or one whose answer was cut off by the end of the load.
  assert.equal(c.arrivedUnique, c.acknowledged + c.unacknowledgedArrived);
  assert.equal(c.arrivals, c.arrivedUnique);
}

describe('npm run bench counts exactly', () => {
  it('load with --baseline: every acknowledged postback arrives once; the workers agree', async () => {
    const { report: r, dir } = await runBench(options({ mode: 'load', baseline: true }));
    try {
      assertBooksBalance(r);
      assert.equal(deliveredByWorkers(dir), r.counts.arrivals);
      // wrk's own status count: each 202 acknowledged the sample's two postbacks (no warm-up here),
      // plus the one request the bench sends to check the path before starting wrk.
      assert.equal(r.setup.primerPostbacks, 2);
      assert.equal(r.counts.acknowledged, (r.ingest!.statuses['202'] ?? 0) * 2 + 2);
      assert.ok(r.baseline && r.baseline.requests > 0);
      assert.equal(typeof r.ratios.ingestVsBaseline, 'number');
      assert.ok(r.redis && r.redis.bytesPerPostback > 0 && r.redis.naiveBytesPerPostback > 0);
      assert.ok(r.delivery.e2eLatencyMs.count > 0);
      for (const name of ['redis', 'nginx', 'ingest#0', 'ingest#1', 'delivery#0', 'delivery#1', 'baseline#0', 'bench']) {
        assert.ok((r.peakRss[name] ?? 0) > 0, `no peak RSS for ${name}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loop: one connection, the same request, each postback counted once', async () => {
    const { report: r, dir } = await runBench(options({ mode: 'loop', warmupS: 1 }));
    try {
      assertBooksBalance(r);
      assert.equal(r.setup.connections, 1);
      assert.equal(deliveredByWorkers(dir), r.counts.arrivals);
      assert.ok(r.counts.unacknowledgedArrived <= 2 * 2, 'more than one request per run can be cut off');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drain: exactly the queued backlog arrives, with the Redis memory figure', async () => {
    const { report: r, dir } = await runBench(options({ mode: 'drain', postbacks: 3000 }));
    try {
      assertBooksBalance(r);
      assert.equal(r.counts.acknowledged, 3000);
      assert.equal(r.counts.arrivedUnique, 3000);
      assert.equal(r.counts.unacknowledgedArrived, 0);
      assert.equal(r.delivery.delivered, 3000);
      assert.equal(deliveredByWorkers(dir), 3000);
      assert.ok((r.redis?.memoryPerQueuedPostback ?? 0) > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('slow: deliveries to the slow endpoint and the fast one are both counted, and they overlap', async () => {
    const { report: r, dir } = await runBench(options({ mode: 'slow', slowEvery: 3, slowDelayMs: 100, connections: 8 }));
    try {
      assertBooksBalance(r);
      const s = r.slow!;
      assert.ok(s.slowDelivered > 0 && s.fastDelivered > 0);
      // The figures cover the measured load; the books also hold the request sent to check the path first.
      assert.equal(s.slowDelivered + s.fastDelivered + Number(r.setup.primerPostbacks), r.counts.arrivedUnique);
      assert.ok(s.slowMaxConcurrent > 1, `slow deliveries never overlapped (max ${s.slowMaxConcurrent} at once)`);
      assert.equal(deliveredByWorkers(dir), r.counts.arrivals);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an injected repeat is one duplicate, an injected loss is one missing and fails the run', async () => {
    const { report: r, dir } = await runBench(options({ mode: 'load', connections: 2 }), {
      async afterLoad({ endpoint }) {
        const last = endpoint.lastArrival!;
        const res = await fetch(endpoint.base + last.url, { headers: { 'x-postback-id': last.id } });
        await res.text();
        endpoint.ledger.acknowledge(['1-0:0']); // acknowledged, never delivered
      },
    });
    try {
      assert.equal(r.counts.duplicates, 1);
      assert.equal(r.counts.missing, 1);
      assert.equal(r.counts.ok, false);
      assert.equal(r.counts.arrivals, r.counts.arrivedUnique + 1);
      assert.equal(deliveredByWorkers(dir), r.counts.arrivals - 1);
      const miss = r.targets.find((t) => t.name.startsWith('every acknowledged'));
      assert.equal(miss?.met, false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the CLI prints the documented JSON fields and exits 0', () => {
    const res = spawnSync(process.execPath, ['dist/bench/main.js', '--mode', 'load', '--json', '--duration', '2', '--warmup', '0', '--connections', '2', '--threads', '1'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(res.status, 0, res.stderr);
    const r = JSON.parse(res.stdout) as BenchReport;
    for (const k of ['mode', 'commit', 'startedAt', 'command', 'machine', 'setup', 'ingest', 'delivery', 'redis', 'counts', 'peakRss', 'ratios', 'targets'] as const) {
      assert.ok(k in r, `--json has no ${k}`);
    }
    for (const k of ['requests', 'requestsPerS', 'latencyMs', 'statuses', 'socketErrors'] as const) assert.ok(k in r.ingest!, `ingest.${k}`);
    for (const k of ['p50', 'p99', 'max'] as const) assert.equal(typeof r.ingest!.latencyMs[k], 'number');
    for (const k of ['delivered', 'deliveredPerS', 'e2eLatencyMs', 'backlogAtLoadEnd', 'tailMs'] as const) assert.ok(k in r.delivery, `delivery.${k}`);
    for (const k of ['bytesPerPostback', 'naiveBytesPerPostback'] as const) assert.equal(typeof r.redis![k], 'number');
    for (const k of ['acknowledged', 'arrivals', 'arrivedUnique', 'missing', 'duplicates', 'unacknowledgedArrived', 'duplicateValues', 'ok'] as const) {
      assert.ok(k in r.counts, `counts.${k}`);
    }
    assert.equal(r.mode, 'load');
    assert.ok(r.counts.ok);
  });

  it('the CLI refuses an unknown mode with its usage', () => {
    const res = spawnSync(process.execPath, ['dist/bench/main.js', '--mode', 'fast'], { cwd: root, encoding: 'utf8' });
    assert.equal(res.status, 2);
    assert.match(res.stderr, /--mode must be one of load, loop, drain, slow/);
    assert.match(res.stderr, /usage: npm run bench/);
  });
});
