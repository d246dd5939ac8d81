import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseOptions, UsageError } from '../../src/bench/cli.js';
import { cpuPer } from '../../src/bench/processes.js';
import { stackCpu } from '../../src/bench/run.js';
import { categoryOf, summariseProfile, type CpuProfile } from '../../src/bench/profile.js';
import { checkTargets, computeRatios, fmtBytes, fmtNumber, formatReport, table, type BenchReport } from '../../src/bench/report.js';
import { loadRequest, parseWrkOutput, readAcks, runWrk, toHttpLoad } from '../../src/bench/wrk.js';

const lat = (p50: number, p99: number, max: number) => ({ count: 10, p50, p99, max });
const load = (rps: number, p99 = 5) => ({
  requests: rps * 10, durationS: 10, requestsPerS: rps, latencyMs: lat(1, p99, 10), statuses: { '202': rps * 10 },
  socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 },
});
const counts = { acknowledged: 10, arrivals: 10, arrivedUnique: 10, missing: 0, duplicates: 0, unacknowledgedArrived: 0, duplicateValues: 0, ok: true };

function report(over: Partial<BenchReport>): Omit<BenchReport, 'targets'> {
  const base = {
    mode: 'load' as const, commit: 'abc1234', startedAt: '2026-01-01T00:00:00Z', command: 'npm run bench -- --mode load',
    machine: { cpus: 2, loadAvg1: 1.5 }, setup: {}, delivery: { delivered: 100, windowS: 1, deliveredPerS: 100, e2eLatencyMs: lat(2, 9, 12) },
    counts, peakRss: { redis: 10 * 1024 * 1024 }, ...over,
  };
  return { ...base, ratios: over.ratios ?? computeRatios(base) };
}

describe('ratios', () => {
  const cases: [string, Partial<BenchReport>, object][] = [
    ['ingest over baseline', { ingest: load(500), baseline: load(1000) }, { ingestVsBaseline: 0.5 }],
    ['no baseline, no ratio', { ingest: load(500) }, {}],
    ['bytes over naive', { redis: { bytesPerPostback: 100, naiveBytesPerPostback: 400 } }, { bytesVsNaive: 0.25 }],
    ['both', { ingest: load(300), baseline: load(900), redis: { bytesPerPostback: 1, naiveBytesPerPostback: 3 } }, { ingestVsBaseline: 0.333, bytesVsNaive: 0.333 }],
  ];
  for (const [name, r, want] of cases) it(name, () => assert.deepEqual(computeRatios(r as BenchReport), want));
});

describe('targets', () => {
  const met = (r: Omit<BenchReport, 'targets'>) => Object.fromEntries(checkTargets(r).map((t) => [t.name, t.met]));
  it('load: half of baseline and 10k/s delivered', () => {
    assert.deepEqual(met(report({ ingest: load(600), baseline: load(1000), delivery: { delivered: 1, windowS: 1, deliveredPerS: 12_000, e2eLatencyMs: lat(1, 2, 3) } })), {
      'ingest vs bare Node (through nginx)': true,
      'postbacks delivered/s end to end': true,
      'every acknowledged postback arrived (missing)': true,
    });
    assert.deepEqual(met(report({ ingest: load(400), baseline: load(1000) })), {
      'ingest vs bare Node (through nginx)': false,
      'postbacks delivered/s end to end': false,
      'every acknowledged postback arrived (missing)': true,
    });
  });
  it('loop: 70% of the baseline loop and p99 under 1 ms', () => {
    const t = met(report({ mode: 'loop', ingest: load(700, 0.9), baseline: load(1000) }));
    assert.equal(t['single-request loop vs baseline loop'], true);
    assert.equal(t['single-request loop p99 (ms)'], true);
    const u = met(report({ mode: 'loop', ingest: load(690, 1), baseline: load(1000) }));
    assert.equal(u['single-request loop vs baseline loop'], false);
    assert.equal(u['single-request loop p99 (ms)'], false);
  });
  it('drain, bytes and memory', () => {
    const t = met(report({ mode: 'drain', delivery: { delivered: 1, windowS: 1, deliveredPerS: 15_000, e2eLatencyMs: lat(1, 1, 1) }, redis: { bytesPerPostback: 100, naiveBytesPerPostback: 300, memoryPerQueuedPostback: 199 } }));
    assert.deepEqual(t, {
      'drain postbacks/s': true,
      'bytes crossing Redis vs naive': true,
      'Redis memory per queued postback (B)': true,
      'every acknowledged postback arrived (missing)': true,
    });
    const u = met(report({ mode: 'drain', redis: { bytesPerPostback: 101, naiveBytesPerPostback: 300, memoryPerQueuedPostback: 200 } }));
    assert.equal(u['bytes crossing Redis vs naive'], false);
    assert.equal(u['Redis memory per queued postback (B)'], false);
  });
  it('slow: overlap, and fast deliveries quicker than the slow delay', () => {
    const slow = { slowDelayMs: 200, slowDelivered: 5, fastDelivered: 50, slowMaxConcurrent: 4, fastE2eLatencyMs: lat(2, 150, 190) };
    const t = met(report({ mode: 'slow', slow }));
    assert.equal(t['slow endpoint deliveries overlap (max concurrent)'], true);
    assert.equal(t['fast deliveries p99 with a slow partner (ms)'], true);
    const u = met(report({ mode: 'slow', slow: { ...slow, slowMaxConcurrent: 1, fastE2eLatencyMs: lat(2, 250, 300) } }));
    assert.equal(u['slow endpoint deliveries overlap (max concurrent)'], false);
    assert.equal(u['fast deliveries p99 with a slow partner (ms)'], false);
  });
  it('a run that lost postbacks misses the count target', () => {
    const t = checkTargets(report({ counts: { ...counts, missing: 3, ok: false } }));
    assert.deepEqual(t.at(-1), { name: 'every acknowledged postback arrived (missing)', target: '= 0', value: 3, met: false });
  });
});

describe('formatting', () => {
  const nums: [number | undefined, number, string][] = [
    [1234567, 0, '1,234,567'],
    [0.5, 3, '0.500'],
    [NaN, 0, '-'],
    [undefined, 0, '-'],
  ];
  for (const [n, d, want] of nums) it(`fmtNumber(${n}, ${d}) = ${want}`, () => assert.equal(fmtNumber(n, d), want));
  const bytes: [number, string][] = [
    [512, '512 B'],
    [2048, '2.0 KiB'],
    [5 * 1024 * 1024, '5.0 MiB'],
  ];
  for (const [n, want] of bytes) it(`fmtBytes(${n}) = ${want}`, () => assert.equal(fmtBytes(n), want));
  it('table aligns the second column', () => assert.equal(table([['a', '1'], ['long key', '2']]), 'a         1\nlong key  2'));
  it('the report table names every figure', () => {
    const r = report({ ingest: load(500), baseline: load(1000), redis: { bytesPerPostback: 100, naiveBytesPerPostback: 400, memoryPerQueuedPostback: 90 } });
    const text = formatReport({ ...r, targets: checkTargets(r) });
    for (const want of ['mode load, commit abc1234', 'ingest requests/s', 'baseline requests/s', 'ingest / baseline', '0.500', 'delivered postbacks/s',
      'ingest-to-delivery latency', 'bytes crossing Redis / postback', 'ratio 0.250', 'Redis memory / queued postback', '90 B', 'counts', 'OK', 'peak RSS', 'redis 10.0 MiB', 'MISS', 'met ']) {
      assert.ok(text.includes(want), `table lacks "${want}":\n${text}`);
    }
  });
});

describe('command line', () => {
  it('defaults', () => {
    const o = parseOptions(['--mode', 'load']);
    assert.equal(o.mode, 'load');
    assert.equal(o.baseline, false);
    assert.equal(o.connections, 64);
    assert.equal(o.ingestInstances, 2);
    assert.equal(o.external, undefined);
    assert.equal(o.command, 'npm run bench -- --mode load');
  });
  it('options and repeated --env', () => {
    const o = parseOptions(['--mode', 'slow', '--baseline', '--duration', '3', '--slow-ms', '50', '--env', 'A=1', '--env', 'B=x=y', '--delivery-instances', '3']);
    assert.equal(o.durationS, 3);
    assert.equal(o.slowDelayMs, 50);
    assert.deepEqual(o.env, { A: '1', B: 'x=y' });
    assert.equal(o.deliveryInstances, 3);
    assert.ok(o.baseline);
  });
  it('an external stack', () => {
    const o = parseOptions(['--mode', 'load', '--ingest-url', 'http://h/i', '--redis-url', 'redis://h:6379', '--endpoint-url', 'http://me:9000', '--endpoint-port', '9000']);
    assert.deepEqual(o.external, { ingestUrl: 'http://h/i', redisUrl: 'redis://h:6379', endpointUrl: 'http://me:9000', endpointPort: 9000 });
  });
  const bad: [string[], RegExp][] = [
    [[], /--mode must be one of/],
    [['--mode', 'fast'], /--mode must be one of/],
    [['--mode', 'load', '--duration', '0'], /--duration must be a number >= 1/],
    [['--mode', 'load', '--connections', 'many'], /--connections must be a number/],
    [['--mode', 'load', '--env', 'NOVALUE'], /--env takes KEY=VALUE/],
  ];
  for (const [argv, want] of bad) it(`refuses ${argv.join(' ') || '(nothing)'}`, () => assert.throws(() => parseOptions(argv), (e: Error) => e instanceof UsageError && want.test(e.message)));
});

describe('CPU per postback', () => {
  it('per process, over the units of work, with a total', () => {
    assert.deepEqual(cpuPer({ a: 100, b: 50 }, { a: 300, b: 150, c: 10 }, 100), { a: 2, b: 1, c: 0.1, total: 3.1 });
    assert.deepEqual(cpuPer({ a: 1 }, { a: 2 }, 0), {});
  });
  it('the stack total leaves out the bench process (the endpoint) and wrk', () => {
    assert.deepEqual(stackCpu({ redis: 0.02, 'delivery#0': 0.3, bench: 0.1, wrk: 0.05, total: 0.47 }), {
      redis: 0.02, 'delivery#0': 0.3, total: 0.32, 'bench (endpoint)': 0.1,
    });
  });
});

describe('CPU profile summary', () => {
  it('adds self time per function and per category', () => {
    const p: CpuProfile = {
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 3, 4] },
        { id: 2, callFrame: { functionName: 'validate', url: 'file:///app/node_modules/joi/lib/validator.js', lineNumber: 280 } },
        { id: 3, callFrame: { functionName: 'enqueue', url: 'file:///app/dist/shared/queue.js', lineNumber: 10 } },
        { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
      ],
      samples: [2, 2, 3, 4, 2, 4],
      timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000],
      startTime: 0,
      endTime: 6000,
    };
    const s = summariseProfile(p, 2);
    const all = summariseProfile(p, 10);
    assert.equal(all.topInclusive.length, 2);
    assert.equal(s.totalMs, 6);
    assert.deepEqual(s.top, [
      { name: 'validate', where: 'joi/lib/validator.js:281', selfMs: 3, share: 0.5 },
      { name: '(idle)', where: '', selfMs: 2, share: 0.333 },
    ]);
    assert.deepEqual(s.categories, { 'dep:joi': 0.5, idle: 0.333, app: 0.167 });
    // (root), idle and GC are left out of the inclusive list.
    assert.deepEqual(s.topInclusive.map((e) => [e.name, e.selfMs]), [['validate', 3], ['enqueue', 1]]);
  });
  const cats: [string, string, string][] = [
    ['', '(garbage collector)', 'gc'],
    ['file:///x/node_modules/@koa/router/lib/a.js', 'f', 'dep:@koa/router'],
    ['node:_http_client', 'f', 'node'],
    ['file:///x/src/bench/run.ts', 'f', 'app'],
  ];
  for (const [url, name, want] of cats) it(`${url || name} is ${want}`, () => assert.equal(categoryOf(url, name), want));
});

describe('wrk', () => {
  it('parses the line its script prints', () => {
    const w = parseWrkOutput('Running 1s test\nWRK_JSON {"durationUs":2000000,"requests":100,"sent":102,"p50Us":1500,"p99Us":9000,"maxUs":12000,"statuses":{"202":99,"503":1},"errors":{"connect":0,"read":1,"write":0,"timeout":2,"status":1}}\n');
    assert.deepEqual(toHttpLoad(w), {
      requests: 100, durationS: 2, requestsPerS: 50, latencyMs: { count: 100, p50: 1.5, p99: 9, max: 12 },
      statuses: { '202': 99, '503': 1 }, socketErrors: { connect: 0, read: 1, write: 0, timeout: 2 },
    });
    assert.throws(() => parseWrkOutput('no result'), /wrk printed no result/);
  });

  it('its Lua script sends unique, valid load requests (the same bytes as loadRequest) and records every 202', async () => {
    const bodies: string[] = [];
    const server = http.createServer((req, res) => {
      let b = '';
      req.on('data', (c) => (b += c));
      req.on('end', () => {
        bodies.push(b);
        res.writeHead(bodies.length % 5 === 0 ? 503 : 202);
        res.end(`{"accepted":2,"ids":["${bodies.length}-0:0","${bodies.length}-0:1"]}`);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pb-wrk-test-'));
    try {
      const r = await runWrk({
        url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/i`, threads: 2, connections: 2, durationS: 1,
        body: { kind: 'load', endpoint: 'http://127.0.0.1:9', slowEvery: 4, seqPrefix: 'T' }, ackDir: dir, scriptPath: path.join(dir, 's.lua'),
      });
      assert.ok(bodies.length > 10);
      const seqs = new Set<string>();
      let slow = 0;
      for (const b of bodies) {
        const j = JSON.parse(b);
        const seq = String(j.data[0].seq).replace(/-0$/, '');
        const slowOne = j.endpoint.url.includes('/slow/');
        if (slowOne) slow++;
        assert.equal(b, loadRequest('http://127.0.0.1:9', seq, j.data[0].ts, slowOne));
        assert.ok(!seqs.has(seq), `seq ${seq} sent twice`);
        seqs.add(seq);
        assert.ok(Math.abs(j.data[0].ts / 1000 - Date.now()) < 60_000, 'ts is not µs since the epoch');
      }
      assert.ok(slow > 0 && slow < bodies.length);
      const answered = r.load.statuses;
      assert.equal((answered['202'] ?? 0) + (answered['503'] ?? 0), r.load.requests);
      assert.equal(readAcks(dir).length, answered['202']);
    } finally {
      server.closeAllConnections();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
