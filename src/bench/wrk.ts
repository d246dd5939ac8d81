/**
 * Load generation with wrk (the Debian package): written in C, it costs the shared 2-core machine far
 * less CPU per request than a Node load generator, so more of the machine is left to what is measured.
 * The bench writes the Lua script wrk runs: it makes each request's data unique (a `seq` per data
 * object and the send time `ts` in µs, read by the counting endpoint), counts answers by status, and
 * writes every 202 body (the postback ids) to a file per thread, so the bench knows exactly which
 * postbacks were acknowledged.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HttpLoad } from './report.js';
import { Child } from './processes.js';
import { round } from './stats.js';

export interface WrkBody {
  /**
   * `load`: the sample request's two data objects, each with a unique `seq` and the send time `ts`,
   * templated into the URL; every `slowEvery`-th request goes to the endpoint's /slow path.
   * `fixed`: the same bytes every time (the brief's single request in an infinite loop).
   */
  readonly kind: 'load' | 'fixed';
  /** Base URL of the counting endpoint, as the delivery workers reach it. */
  readonly endpoint: string;
  readonly slowEvery?: number;
  /** Starts every `seq`, so the values of separate wrk runs against one stack never collide. */
  readonly seqPrefix?: string;
}

export interface WrkRun {
  readonly url: string;
  readonly threads: number;
  readonly connections: number;
  readonly durationS: number;
  readonly body: WrkBody;
  /** Write every 202 answer body to <dir>/acks-<thread>.txt. */
  readonly ackDir?: string;
  readonly scriptPath: string;
  readonly timeoutS?: number;
}

/** The sample request exactly as the brief gives it, pointed at the counting endpoint. */
export function sampleRequest(endpoint: string): string {
  return JSON.stringify({
    endpoint: { method: 'GET', url: `${endpoint}/data?key={key}&value={value}&foo={bar}` },
    data: [
      { key: 'Azureus', value: 'Dendrobates' },
      { key: 'Phyllobates', value: 'Terribilis' },
    ],
  });
}

/** A load request: the sample's two data objects, made unique by `seq` and stamped with `ts` (µs). */
export function loadRequest(endpoint: string, seq: string, tsUs: number, slow = false): string {
  return (
    `{"endpoint":{"method":"GET","url":"${endpoint}${slow ? '/slow' : ''}/data?key={key}&value={value}&foo={bar}&seq={seq}&ts={ts}"},` +
    `"data":[{"key":"Azureus","value":"Dendrobates","seq":"${seq}-0","ts":${tsUs}},` +
    `{"key":"Phyllobates","value":"Terribilis","seq":"${seq}-1","ts":${tsUs}}]}`
  );
}

const luaString = (s: string) => JSON.stringify(s); // a JSON string literal is a valid Lua string literal for ASCII

export function wrkScript(run: Pick<WrkRun, 'url' | 'body' | 'ackDir'>): string {
  const u = new URL(run.url);
  const b = run.body;
  const ep = b.endpoint;
  // The body generator mirrors loadRequest() above, byte for byte (test/bench/wrk.test.ts checks it).
  const bodyFn =
    b.kind === 'fixed'
      ? `local FIXED = ${luaString(sampleRequest(ep))}\nlocal function body() return FIXED end`
      : `local PRE_FAST = ${luaString(`{"endpoint":{"method":"GET","url":"${ep}/data?key={key}&value={value}&foo={bar}&seq={seq}&ts={ts}"},"data":[{"key":"Azureus","value":"Dendrobates","seq":"`)}
local PRE_SLOW = ${luaString(`{"endpoint":{"method":"GET","url":"${ep}/slow/data?key={key}&value={value}&foo={bar}&seq={seq}&ts={ts}"},"data":[{"key":"Azureus","value":"Dendrobates","seq":"`)}
local SLOW_EVERY = ${b.slowEvery ?? 0}
local SEQ_PREFIX = ${luaString(b.seqPrefix ?? 'w')}
local function body()
  local seq = SEQ_PREFIX .. (tid or 0) .. "-" .. sent
  local ts = string.format("%.0f", now_us())
  local pre = PRE_FAST
  if SLOW_EVERY > 0 and sent % SLOW_EVERY == 0 then pre = PRE_SLOW end
  return pre .. seq .. '-0","ts":' .. ts .. '},{"key":"Phyllobates","value":"Terribilis","seq":"' .. seq .. '-1","ts":' .. ts .. '}]}'
end`;
  return `-- Written by src/bench/wrk.ts for one run of the postback bench.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } pb_bench_timespec;
int clock_gettime(int clk, pb_bench_timespec *tp);
]]
local tsbuf = ffi.new("pb_bench_timespec")
local function now_us()
  ffi.C.clock_gettime(0, tsbuf)
  return tonumber(tsbuf.tv_sec) * 1000000 + math.floor(tonumber(tsbuf.tv_nsec) / 1000)
end

local PATH = ${luaString(u.pathname + u.search)}
local ACK_DIR = ${run.ackDir ? luaString(run.ackDir) : 'nil'}
local HEADERS = { ["Content-Type"] = "application/json" }
local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  statuses = {}
  if ACK_DIR then
    acks = io.open(ACK_DIR .. "/acks-" .. tid .. ".txt", "w")
    acks:setvbuf("full", 1048576)
  end
end

${bodyFn}

function request()
  sent = (sent or 0) + 1
  return wrk.format("POST", PATH, HEADERS, body())
end

function response(status, headers, resbody)
  statuses[status] = (statuses[status] or 0) + 1
  if acks and status == 202 then acks:write(resbody, "\\n") end
end

function done(summary, latency, requests)
  local total = {}
  local sentAll = 0
  for _, t in ipairs(threads) do
    sentAll = sentAll + (t:get("sent") or 0)
    local s = t:get("statuses") or {}
    for k, v in pairs(s) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, string.format('"%d":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"durationUs":%d,"requests":%d,"sent":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}}\\n',
    summary.duration, summary.requests, sentAll, latency:percentile(50), latency:percentile(99), latency.max,
    table.concat(parts, ","), e.connect, e.read, e.write, e.timeout, e.status))
end
`;
}

export interface WrkResult {
  readonly load: HttpLoad;
  /** Requests wrk sent (some may have had no answer when time ran out). */
  readonly sent: number;
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  readonly pid: number;
}

interface WrkJson {
  durationUs: number;
  requests: number;
  sent: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  statuses: Record<string, number>;
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
}

export function parseWrkOutput(stdout: string): WrkJson {
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  return JSON.parse(line.slice('WRK_JSON '.length)) as WrkJson;
}

export function toHttpLoad(w: WrkJson): HttpLoad {
  const durationS = w.durationUs / 1e6;
  return {
    requests: w.requests,
    durationS: round(durationS, 3),
    requestsPerS: round(w.requests / durationS, 1),
    latencyMs: { count: w.requests, p50: w.p50Us / 1000, p99: w.p99Us / 1000, max: w.maxUs / 1000 },
    statuses: w.statuses,
    socketErrors: { connect: w.errors.connect, read: w.errors.read, write: w.errors.write, timeout: w.errors.timeout },
  };
}

/** Run wrk to completion; `onStart` gets its pid (to watch its memory). */
export async function runWrk(run: WrkRun, onStart?: (child: Child) => void): Promise<WrkResult> {
  writeFileSync(run.scriptPath, wrkScript(run));
  const args = [
    '-t', String(run.threads), '-c', String(run.connections), '-d', `${run.durationS}s`,
    '--timeout', `${run.timeoutS ?? 10}s`, '-s', run.scriptPath, run.url,
  ];
  const startedAtMs = Date.now();
  const proc = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const child = new Child('wrk', proc);
  onStart?.(child);
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  proc.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (c) => resolve(c));
  });
  const endedAtMs = Date.now();
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${err}${out}`);
  const w = parseWrkOutput(out);
  return { load: toHttpLoad(w), sent: w.sent, startedAtMs, endedAtMs, pid: proc.pid! };
}

/** The 202 bodies wrk recorded, one per line, from every thread's file. */
export function readAcks(dir: string): string[] {
  const lines: string[] = [];
  for (const f of readdirSync(dir)) {
    if (!/^acks-\d+\.txt$/.test(f)) continue;
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) if (line) lines.push(line);
  }
  return lines;
}
