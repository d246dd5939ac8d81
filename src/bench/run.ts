/**
 * One bench run: starts the real stack (redis-server, nginx, ingest and delivery processes, the
 * counting endpoint, and with --baseline a bare Node server behind the same nginx), drives it in one
 * mode with wrk, waits until every acknowledged postback has arrived, measures Redis's counters, and
 * stops everything it started, whatever happens.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Queue } from '../shared/queue.js';
import { createRedis } from '../shared/redis.js';
import { CountingEndpoint, nowUs } from './endpoint.js';
import {
  childPids, cpuPer, killAllChildren, repoRoot, RssWatch, startBaseline, startIngest, startNginx, startRedis, startService, type Child,
} from './processes.js';
import { NetMeter, naiveBytesPerPostback, usedMemory } from './redis-figures.js';
import { checkTargets, computeRatios, type BenchReport, type DeliveryFigures, type HttpLoad, type Mode, type RedisFigures, type SlowFigures } from './report.js';
import { summariseProfile, type ProfileSummary } from './profile.js';
import { NumberSeries, ratePerSecond, round, summarise } from './stats.js';
import { loadRequest, readAcks, runWrk, sampleRequest, type WrkBody } from './wrk.js';

export interface BenchOptions {
  readonly mode: Mode;
  /** Seconds of load (load, loop, slow). */
  readonly durationS: number;
  /** Seconds of unmeasured load first, so the JIT has warmed up (its postbacks are still counted). */
  readonly warmupS: number;
  /** Connections of the load generator (load, slow); loop uses one. */
  readonly connections: number;
  readonly threads: number;
  /** Postbacks queued before delivery starts (drain). */
  readonly postbacks: number;
  readonly baseline: boolean;
  readonly ingestInstances: number;
  readonly deliveryInstances: number;
  readonly nginxWorkers: string;
  readonly upstreamKeepalive: number;
  readonly slowDelayMs: number;
  /** slow: every n-th request goes to the slow endpoint. */
  readonly slowEvery: number;
  /** Settings passed to every ingest and delivery process (on top of the bench's). */
  readonly env: Record<string, string>;
  /** Write CPU profiles of the ingest and delivery processes (node --cpu-prof) and summarise them. */
  readonly profile: boolean;
  /** How long to wait for every acknowledged postback to arrive after the load stops. */
  readonly settleTimeoutS: number;
  /** Requests run through the naive encoding to measure its bytes per postback. */
  readonly naiveRequests: number;
  /** Keep the run's directory (logs, profiles, wrk script) instead of deleting it. */
  readonly keep: boolean;
  /** Drive a stack that is already running instead of starting one. */
  readonly external?: {
    readonly ingestUrl: string;
    readonly baselineUrl?: string;
    /** Redis of that stack, for the bandwidth and memory figures and for drain. */
    readonly redisUrl?: string;
    /** Where that stack's workers reach this machine's counting endpoint (default http://127.0.0.1:<port>). */
    readonly endpointUrl?: string;
    readonly endpointPort?: number;
    readonly endpointHost?: string;
  };
  readonly command: string;
}

export const DEFAULTS: Omit<BenchOptions, 'mode' | 'command'> = {
  durationS: 10,
  warmupS: 2,
  connections: 64,
  threads: 2,
  postbacks: 100_000,
  baseline: false,
  ingestInstances: 2,
  deliveryInstances: 2,
  nginxWorkers: 'auto',
  upstreamKeepalive: 64,
  slowDelayMs: 200,
  slowEvery: 50,
  env: {},
  profile: false,
  settleTimeoutS: 120,
  naiveRequests: 5000,
  keep: false,
};

export interface BenchHooks {
  /** After the measured load and before the final count: tests inject a repeated delivery here. */
  afterLoad?(ctx: { endpoint: CountingEndpoint }): Promise<void>;
  /** Progress lines (stderr in the CLI). */
  log?(line: string): void;
}

export interface BenchResult {
  readonly report: BenchReport;
  readonly profiles: { readonly process: string; readonly summary: ProfileSummary }[];
  readonly dir: string;
}

function commitOf(): string {
  try {
    const hash = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${hash}-dirty` : hash;
  } catch {
    return 'unknown';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Arrivals (µs timestamps) within [fromUs, toUs]. */
function countBetween(series: NumberSeries, fromUs: number, toUs: number): number {
  const v = series.values();
  let n = 0;
  for (let i = 0; i < v.length; i++) if (v[i]! >= fromUs && v[i]! <= toUs) n++;
  return n;
}

function lastOf(series: NumberSeries): number {
  const v = series.values();
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) if (v[i]! > max) max = v[i]!;
  return max;
}

function firstOf(series: NumberSeries): number {
  const v = series.values();
  let min = Infinity;
  for (let i = 0; i < v.length; i++) if (v[i]! < min) min = v[i]!;
  return min;
}

function concat(a: NumberSeries, b: NumberSeries): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a.values());
  out.set(b.values(), a.length);
  return out;
}

export async function runBench(options: BenchOptions, hooks: BenchHooks = {}): Promise<BenchResult> {
  const log = hooks.log ?? (() => {});
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pb-bench-'));
  const children: Child[] = [];
  const rss = new RssWatch();
  const endpoint = new CountingEndpoint(options.slowDelayMs);
  const redisClients: Redis[] = [];
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    log('interrupted: stopping everything the bench started');
    void killAllChildren().then(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const profDir = path.join(dir, 'profiles');
  const nodeArgs = options.profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  if (options.profile) mkdirSync(profDir);
  const pidNames = new Map<number, string>();
  const track = (c: Child, group: string) => {
    children.push(c);
    pidNames.set(c.pid, c.name);
    rss.watch(group, () => [c.pid]);
  };

  try {
    const ext = options.external;
    await endpoint.listen(ext?.endpointPort ?? 0, ext?.endpointHost ?? '127.0.0.1');
    const endpointUrl = ext?.endpointUrl ?? endpoint.base;
    const mode = options.mode;

    // ---------------------------------------------------------------- the stack
    let redisUrl = ext?.redisUrl;
    let ingestUrl = ext?.ingestUrl;
    let baselineUrl = ext?.baselineUrl;
    // The bench's endpoint listens on loopback, which the destination policy refuses by default.
    const appEnv: Record<string, string> = { LOG_LEVEL: 'info', DELIVERY_ALLOW_NETWORKS: '127.0.0.0/8,::1/128', ...options.env };
    const startDelivery = async () => {
      for (let i = 0; i < options.deliveryInstances; i++) {
        const c = startService('delivery', `delivery#${i}`, { ...appEnv, REDIS_URL: redisUrl!, DELIVERY_CONSUMER_NAME: `bench-${i}` }, path.join(dir, `delivery-${i}.log`), nodeArgs);
        track(c, c.name);
      }
    };
    if (!ext) {
      const redis = await startRedis(path.join(dir, 'redis'), path.join(dir, 'redis.log'));
      track(redis.child, 'redis');
      redisUrl = redis.url;
      if (mode !== 'drain') {
        const ingestPorts: number[] = [];
        for (let i = 0; i < options.ingestInstances; i++) {
          const ing = await startIngest(`ingest#${i}`, { ...appEnv, REDIS_URL: redisUrl }, path.join(dir, `ingest-${i}.log`), nodeArgs);
          track(ing.child, ing.child.name);
          ingestPorts.push(ing.port);
        }
        const baselinePorts: number[] = [];
        if (options.baseline) {
          for (let i = 0; i < options.ingestInstances; i++) {
            const b = await startBaseline(`baseline#${i}`, path.join(dir, `baseline-${i}.log`));
            track(b.child, b.child.name);
            baselinePorts.push(b.port);
          }
        }
        const nginx = await startNginx(path.join(dir, 'nginx'), {
          ingestPorts, baselinePorts, workers: options.nginxWorkers, upstreamKeepalive: options.upstreamKeepalive,
        });
        children.push(nginx.child);
        rss.watch('nginx', () => [nginx.child.pid, ...childPids(nginx.child.pid)]);
        ingestUrl = `http://127.0.0.1:${nginx.port}/i`;
        baselineUrl = `http://127.0.0.1:${nginx.port}/baseline`;
        await startDelivery();
      }
    }
    rss.start();
    const probe = redisUrl ? new Redis(redisUrl, { maxRetriesPerRequest: 3 }) : undefined;
    if (probe) {
      probe.on('error', () => {});
      redisClients.push(probe);
    }
    log(`stack up in ${dir}${redisUrl ? `, redis ${redisUrl}` : ''}${ingestUrl ? `, ingest ${ingestUrl}` : ''}, endpoint ${endpointUrl}`);

    let ingest: HttpLoad | undefined;
    let baseline: HttpLoad | undefined;
    let delivery: DeliveryFigures;
    let slow: SlowFigures | undefined;
    let redisFig: RedisFigures | undefined;
    let cpuMsPerPostback: Record<string, number> | undefined;
    let baselineCpuMsPerRequest: Record<string, number> | undefined;
    const body: WrkBody =
      mode === 'loop' ? { kind: 'fixed', endpoint: endpointUrl } : { kind: 'load', endpoint: endpointUrl, ...(mode === 'slow' ? { slowEvery: options.slowEvery } : {}) };
    const connections = mode === 'loop' ? 1 : options.connections;
    const threads = mode === 'loop' ? 1 : Math.min(options.threads, connections);
    let wrkRuns = 0;
    const wrk = async (url: string, durationS: number, record: boolean) => {
      const ackDir = path.join(dir, `acks-${wrkRuns++}`);
      mkdirSync(ackDir);
      const r = await runWrk(
        { url, threads, connections, durationS, body: { ...body, seqPrefix: `r${wrkRuns}w` }, scriptPath: path.join(dir, `wrk-${wrkRuns}.lua`), ...(record ? { ackDir } : {}) },
        (c) => rss.watch('wrk', () => (c.running ? [c.pid] : [])),
      );
      if (record) {
        const acks = readAcks(ackDir);
        let bad = 0;
        for (const a of acks) if (!endpoint.ledger.acknowledgeBody(a)) bad++;
        const got202 = r.load.statuses['202'] ?? 0;
        // The books must balance before any figure is believed.
        if (acks.length !== got202 || bad > 0) throw new Error(`wrk saw ${got202} answers 202 but recorded ${acks.length} (${bad} unreadable)`);
      }
      return r;
    };
    /** Waits until every acknowledged postback has arrived; false on timeout. */
    const allArrived = async (timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const missing = endpoint.ledger.acknowledgedCount - endpoint.ledger.acknowledgedArrived();
        if (missing === 0) return true;
        if (Date.now() > deadline || interrupted) return false;
        await sleep(missing > 1000 ? 200 : 20);
      }
    };
    /** Waits until Redis has no live postbacks left (every entry settled), so its byte counters are final. */
    const queueSettled = async (timeoutMs: number) => {
      if (!probe) return;
      const deadline = Date.now() + timeoutMs;
      while (Number((await probe.get('pb:live')) ?? 0) > 0 && Date.now() < deadline) await sleep(20);
    };

    if (mode === 'drain') {
      // ---------------------------------------------------------------- drain: a backlog, then delivery
      if (!redisUrl) throw new Error('drain needs Redis: run on the local stack or give --redis-url');
      const conn = createRedis(redisUrl, 'worker');
      conn.on('error', () => {});
      redisClients.push(conn);
      const queue = new Queue(conn, { prefix: 'pb', maxLength: 0, templateGcGraceS: 3600 });
      const meter = new NetMeter(probe!);
      const memBefore = await usedMemory(probe!);
      await meter.start();
      const requests = Math.ceil(options.postbacks / 2);
      const template = { method: 'GET' as const, url: `${endpointUrl}/data?key={key}&value={value}&foo={bar}&seq={seq}&ts={ts}` };
      log(`queueing ${requests * 2} postbacks (${requests} requests of 2) with delivery stopped`);
      const window = 256;
      for (let i = 0; i < requests; i += window) {
        const batch: Promise<void>[] = [];
        for (let j = i; j < Math.min(requests, i + window); j++) {
          const ts = nowUs();
          const data = [
            JSON.stringify({ key: 'Azureus', value: 'Dendrobates', seq: `d${j}-0`, ts }),
            JSON.stringify({ key: 'Phyllobates', value: 'Terribilis', seq: `d${j}-1`, ts }),
          ];
          batch.push(
            queue.enqueue(template, data).then((r) => {
              if (!r.ok) throw new Error(`enqueue refused: ${r.reason}`);
              endpoint.ledger.acknowledge(r.ids);
            }),
          );
        }
        await Promise.all(batch);
      }
      const queued = endpoint.ledger.acknowledgedCount;
      const memoryPerQueuedPostback = round((await usedMemory(probe!) - memBefore) / queued, 1);
      log(`${queued} queued, ${memoryPerQueuedPostback} B of Redis memory each; starting ${options.deliveryInstances} delivery workers`);
      const spawnedUs = nowUs();
      if (!ext) await startDelivery();
      const cpuBefore = rss.cpu();
      const arrived = await allArrived(options.settleTimeoutS * 1000);
      if (!arrived) log(`not every postback arrived within ${options.settleTimeoutS} s`);
      await queueSettled(10_000);
      cpuMsPerPostback = stackCpu(cpuPer(cpuBefore, rss.cpu(), queued));
      const bytes = await meter.bytesSinceStart();
      const first = firstOf(endpoint.fast.at);
      const last = lastOf(endpoint.fast.at);
      const windowMs = (last - first) / 1000;
      delivery = {
        delivered: endpoint.ledger.acknowledgedArrived(),
        windowS: round(windowMs / 1000, 3),
        deliveredPerS: round(ratePerSecond(endpoint.fast.at.length - 1, windowMs), 0),
        e2eLatencyMs: summarise(endpoint.fast.latencyMs.values()),
        tailMs: round((last - spawnedUs) / 1000, 0),
      };
      const naive = await naiveFigure(redisUrl, probe!, (i) => loadRequest(endpointUrl, `n${i}`, nowUs()), Math.min(options.naiveRequests, requests), redisClients);
      redisFig = { bytesPerPostback: round(bytes / queued, 1), naiveBytesPerPostback: round(naive, 1), memoryPerQueuedPostback };
    } else {
      // ---------------------------------------------------------------- load, loop, slow
      if (!ingestUrl) throw new Error('no ingest URL');
      // One request through the whole path first, retried until ingest answers 202 and its postbacks
      // arrive: every process is up and connected before wrk's clock starts (on a busy machine a
      // short run could otherwise end before the first answer).
      await prime(ingestUrl, body, endpoint, log);
      await allArrived(options.settleTimeoutS * 1000);
      if (options.baseline) {
        if (!baselineUrl) throw new Error('--baseline needs a baseline server (local stack, or --baseline-url)');
        if (options.warmupS > 0) await wrk(baselineUrl, options.warmupS, false);
        log(`baseline: ${connections} connection(s) for ${options.durationS} s`);
        const cpuBefore = rss.cpu();
        baseline = (await wrk(baselineUrl, options.durationS, false)).load;
        const cpuAfter = rss.cpu();
        const keep = (m: Record<string, number>) => Object.fromEntries(Object.entries(m).filter(([k]) => k === 'nginx' || k.startsWith('baseline')));
        baselineCpuMsPerRequest = cpuPer(keep(cpuBefore), keep(cpuAfter), baseline.requests);
      }
      if (options.warmupS > 0) {
        log(`warm-up: ${options.warmupS} s`);
        await wrk(ingestUrl, options.warmupS, true);
        await allArrived(options.settleTimeoutS * 1000);
        await queueSettled(10_000);
      }
      // Measure from here: the warm-up's postbacks stay in the books, not in the figures.
      const before = endpoint.ledger.counts();
      for (const a of [endpoint.fast, endpoint.slow]) {
        a.at.length = 0;
        a.latencyMs.length = 0;
      }
      endpoint.slowMaxConcurrent = 0;
      const meter = probe ? new NetMeter(probe) : undefined;
      await meter?.start();
      const cpuBefore = rss.cpu();
      log(`${mode}: ${connections} connection(s) for ${options.durationS} s`);
      const startUs = nowUs();
      const r = await wrk(ingestUrl, options.durationS, true);
      const endUs = nowUs();
      ingest = r.load;
      const ackedInPhase = endpoint.ledger.acknowledgedCount - before.acknowledged;
      const deliveredInWindow = countBetween(endpoint.fast.at, startUs, endUs) + countBetween(endpoint.slow.at, startUs, endUs);
      const arrivedByEnd = endpoint.ledger.acknowledgedArrived() - before.acknowledged;
      const arrived = await allArrived(options.settleTimeoutS * 1000);
      if (!arrived) log(`not every acknowledged postback arrived within ${options.settleTimeoutS} s`);
      await queueSettled(10_000);
      const cpuAfter = rss.cpu();
      const lastUs = Math.max(lastOf(endpoint.fast.at), lastOf(endpoint.slow.at));
      const windowMs = (endUs - startUs) / 1000;
      delivery = {
        delivered: deliveredInWindow,
        windowS: round(windowMs / 1000, 3),
        deliveredPerS: round(ratePerSecond(deliveredInWindow, windowMs), 0),
        e2eLatencyMs: summarise(concat(endpoint.fast.latencyMs, endpoint.slow.latencyMs)),
        backlogAtLoadEnd: Math.max(0, ackedInPhase - arrivedByEnd),
        tailMs: round(Math.max(0, lastUs - endUs) / 1000, 0),
      };
      if (mode === 'slow') {
        slow = {
          slowDelayMs: options.slowDelayMs,
          slowDelivered: endpoint.slow.latencyMs.length,
          fastDelivered: endpoint.fast.latencyMs.length,
          slowMaxConcurrent: endpoint.slowMaxConcurrent,
          fastE2eLatencyMs: summarise(endpoint.fast.latencyMs.values()),
        };
      }
      if (meter && probe && redisUrl) {
        const bytes = await meter.bytesSinceStart();
        const postbacks = endpoint.ledger.counts().arrivedUnique - before.arrivedUnique;
        const naiveBody = mode === 'loop' ? () => sampleRequest(endpointUrl) : (i: number) => loadRequest(endpointUrl, `n${i}`, nowUs());
        const naive = await naiveFigure(redisUrl, probe, naiveBody, Math.min(options.naiveRequests, Math.max(1, Math.ceil(postbacks / 2))), redisClients);
        redisFig = { bytesPerPostback: round(bytes / postbacks, 1), naiveBytesPerPostback: round(naive, 1) };
      }
      const phasePostbacks = endpoint.ledger.counts().arrivedUnique - before.arrivedUnique;
      cpuMsPerPostback = stackCpu(cpuPer(cpuBefore, cpuAfter, phasePostbacks));
    }

    await hooks.afterLoad?.({ endpoint });
    await sleep(100); // let a last injected or in-flight arrival land

    // ---------------------------------------------------------------- stop, then profiles and memory
    rss.stop();
    const peakRss: Record<string, number> = { ...rss.peaks, bench: process.resourceUsage().maxRSS * 1024 };
    for (const c of redisClients.splice(0)) c.disconnect();
    await stopAll(children);
    const profiles: BenchResult['profiles'] = [];
    if (options.profile) {
      for (const f of readdirSync(profDir)) {
        const m = /\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(f);
        const name = (m && pidNames.get(Number(m[1]))) || f;
        profiles.push({ process: name, summary: summariseProfile(JSON.parse(readFileSync(path.join(profDir, f), 'utf8'))) });
      }
      profiles.sort((a, b) => a.process.localeCompare(b.process));
    }
    const partial = {
      mode,
      commit: commitOf(),
      startedAt: new Date().toISOString(),
      command: options.command,
      machine: { cpus: os.cpus().length, loadAvg1: round(os.loadavg()[0]!, 2) },
      setup: {
        connections: mode === 'drain' ? 0 : connections,
        threads: mode === 'drain' ? 0 : threads,
        durationS: mode === 'drain' ? 0 : options.durationS,
        postbacksPerRequest: 2,
        ingestInstances: ext ? 0 : options.ingestInstances,
        deliveryInstances: ext ? 0 : options.deliveryInstances,
        nginxWorkers: options.nginxWorkers,
        loadGenerator: 'wrk',
        ...(mode === 'drain' ? { postbacks: options.postbacks } : { primerPostbacks: PRIMER_POSTBACKS }),
        ...(mode === 'slow' ? { slowEvery: options.slowEvery, slowDelayMs: options.slowDelayMs } : {}),
        ...Object.fromEntries(Object.entries(options.env).map(([k, v]) => [`env.${k}`, v])),
      },
      ...(ingest ? { ingest } : {}),
      ...(baseline ? { baseline } : {}),
      delivery,
      ...(slow ? { slow } : {}),
      ...(redisFig ? { redis: redisFig } : {}),
      counts: endpoint.ledger.counts(),
      ...(cpuMsPerPostback ? { cpuMsPerPostback } : {}),
      ...(baselineCpuMsPerRequest ? { baselineCpuMsPerRequest } : {}),
      peakRss,
    };
    const withRatios = { ...partial, ratios: computeRatios(partial) };
    const report: BenchReport = { ...withRatios, targets: checkTargets(withRatios) };
    if (endpoint.strays) log(`${endpoint.strays} requests reached the endpoint without an X-Postback-Id`);
    return { report, profiles, dir };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    rss.stop();
    for (const c of redisClients) c.disconnect();
    await stopAll(children);
    await killAllChildren(); // anything that never got as far as being tracked (failed to start)
    await endpoint.close();
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The stack's CPU per postback with its total, and the bench process (the counting endpoint, which
 * stands in for the partners) listed apart and out of the total; wrk is gone by the end (unreadable).
 */
export function stackCpu(perProcess: Record<string, number>): Record<string, number> {
  const { wrk: _wrk, bench, total: _total, ...stack } = perProcess;
  const sum = Object.values(stack).reduce((a, b) => a + b, 0);
  return { ...stack, total: round(sum, 3), ...(bench !== undefined ? { 'bench (endpoint)': bench } : {}) };
}

/** Stops in dependency order: delivery and ingest first (gracefully, so profiles are written), then the rest. */
async function stopAll(children: Child[]): Promise<void> {
  const first = children.filter((c) => /^(delivery|ingest)/.test(c.name));
  await Promise.all(first.map((c) => c.stop('SIGTERM', 20_000)));
  const rest = children.filter((c) => !first.includes(c));
  await Promise.all(rest.map((c) => c.stop(c.name === 'nginx' ? 'SIGQUIT' : 'SIGTERM', 10_000)));
}

/** Postbacks of the request sent before the load to check the whole path (counted like any other). */
export const PRIMER_POSTBACKS = 2;

async function prime(ingestUrl: string, body: WrkBody, endpoint: CountingEndpoint, log: (l: string) => void): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last = '';
  for (;;) {
    try {
      const payload = body.kind === 'fixed' ? sampleRequest(body.endpoint) : loadRequest(body.endpoint, 'primer', nowUs());
      const res = await fetch(ingestUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
      const text = await res.text();
      if (res.status === 202 && endpoint.ledger.acknowledgeBody(text)) return;
      last = `${res.status} ${text.slice(0, 200)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`ingest did not accept a request within 60 s: ${last}`);
    log(`waiting for ingest: ${last}`);
    await sleep(250);
  }
}

async function naiveFigure(redisUrl: string, probe: Redis, body: (i: number) => string, requests: number, clients: Redis[]): Promise<number> {
  const producer = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  const consumer = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  for (const c of [producer, consumer]) c.on('error', () => {});
  clients.push(producer, consumer);
  return naiveBytesPerPostback(producer, consumer, probe, body, 2, requests);
}
