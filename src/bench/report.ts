/**
 * The bench's report: its shape (what --json prints), the targets of the benchmarking issue checked
 * against it, and the plain-text table. Pure: table-tested in test/bench/report.test.ts.
 */
import type { Counts } from './ledger.js';
import { ratio, round, type LatencySummary } from './stats.js';

export type Mode = 'load' | 'loop' | 'drain' | 'slow';

export interface HttpLoad {
  /** Requests answered during the run (any status). */
  readonly requests: number;
  readonly durationS: number;
  readonly requestsPerS: number;
  /** Client-side latency through nginx, ms. */
  readonly latencyMs: LatencySummary;
  /** Answers by HTTP status. */
  readonly statuses: Record<string, number>;
  /** Socket-level failures reported by the load generator. */
  readonly socketErrors: { connect: number; read: number; write: number; timeout: number };
}

export interface DeliveryFigures {
  /** Distinct postbacks delivered in the measured window. */
  readonly delivered: number;
  readonly windowS: number;
  readonly deliveredPerS: number;
  /** From the client's send time (the `ts` in the data; for `loop`, Redis's enqueue time) to arrival, ms. */
  readonly e2eLatencyMs: LatencySummary;
  /** Postbacks acknowledged but not yet delivered when the load stopped. */
  readonly backlogAtLoadEnd?: number;
  /** Time after the load stopped until every acknowledged postback had arrived, ms. */
  readonly tailMs?: number;
}

export interface SlowFigures {
  readonly slowDelayMs: number;
  readonly slowDelivered: number;
  readonly fastDelivered: number;
  /** Most deliveries to the slow endpoint in progress at once: > 1 means they overlap. */
  readonly slowMaxConcurrent: number;
  readonly fastE2eLatencyMs: LatencySummary;
}

export interface RedisFigures {
  /** Bytes in + out counted by Redis (INFO stats) per postback during the measured phase. */
  readonly bytesPerPostback: number;
  /** The same for the naive encoding (the whole request as JSON per postback) on the same Redis. */
  readonly naiveBytesPerPostback: number;
  /** Redis used_memory per queued postback (drain mode, measured on the backlog). */
  readonly memoryPerQueuedPostback?: number;
}

export interface BenchReport {
  readonly mode: Mode;
  readonly commit: string;
  readonly startedAt: string;
  readonly command: string;
  readonly machine: { readonly cpus: number; readonly loadAvg1: number };
  readonly setup: Record<string, string | number | boolean>;
  readonly ingest?: HttpLoad;
  readonly baseline?: HttpLoad;
  readonly delivery: DeliveryFigures;
  readonly slow?: SlowFigures;
  readonly redis?: RedisFigures;
  readonly counts: Counts;
  /**
   * CPU time each process used per postback over the measured phase (load through the last settle),
   * ms, and their total: the figure that stays put when a shared machine makes rates jump around.
   */
  readonly cpuMsPerPostback?: Record<string, number>;
  /** The same per request for the baseline phase (nginx and the bare Node server). */
  readonly baselineCpuMsPerRequest?: Record<string, number>;
  /** Peak resident memory (VmHWM) of each process, bytes. */
  readonly peakRss: Record<string, number>;
  readonly ratios: Ratios;
  readonly targets: TargetCheck[];
}

export interface Ratios {
  /** Ingest requests/s through nginx over the bare Node server's, same nginx, same run. */
  readonly ingestVsBaseline?: number;
  /** Bytes crossing Redis per postback, ours over naive. */
  readonly bytesVsNaive?: number;
}

export interface TargetCheck {
  readonly name: string;
  readonly target: string;
  readonly value: number;
  readonly met: boolean;
}

export function computeRatios(r: Pick<BenchReport, 'ingest' | 'baseline' | 'redis'>): Ratios {
  const out: { ingestVsBaseline?: number; bytesVsNaive?: number } = {};
  if (r.ingest && r.baseline) out.ingestVsBaseline = round(ratio(r.ingest.requestsPerS, r.baseline.requestsPerS), 3);
  if (r.redis) out.bytesVsNaive = round(ratio(r.redis.bytesPerPostback, r.redis.naiveBytesPerPostback), 3);
  return out;
}

/** The targets that this run's mode measures, each with its value and whether it was met. */
export function checkTargets(r: Omit<BenchReport, 'targets'>): TargetCheck[] {
  const out: TargetCheck[] = [];
  const add = (name: string, target: string, value: number | undefined, met: (v: number) => boolean) => {
    if (value === undefined || !Number.isFinite(value)) return;
    out.push({ name, target, value: round(value, 3), met: met(value) });
  };
  const vsBaseline = r.ratios.ingestVsBaseline;
  if (r.mode === 'load') {
    add('ingest vs bare Node (through nginx)', '>= 0.5', vsBaseline, (v) => v >= 0.5);
    add('postbacks delivered/s end to end', '>= 10000', r.delivery.deliveredPerS, (v) => v >= 10_000);
  }
  if (r.mode === 'loop') {
    add('single-request loop vs baseline loop', '>= 0.7', vsBaseline, (v) => v >= 0.7);
    add('single-request loop p99 (ms)', '< 1', r.ingest?.latencyMs.p99, (v) => v < 1);
  }
  if (r.mode === 'drain') add('drain postbacks/s', '>= 15000', r.delivery.deliveredPerS, (v) => v >= 15_000);
  if (r.redis) {
    add('bytes crossing Redis vs naive', '<= 0.333', r.ratios.bytesVsNaive, (v) => v <= 1 / 3);
    add('Redis memory per queued postback (B)', '< 200', r.redis.memoryPerQueuedPostback, (v) => v < 200);
  }
  if (r.slow) {
    add('slow endpoint deliveries overlap (max concurrent)', '> 1', r.slow.slowMaxConcurrent, (v) => v > 1);
    add('fast deliveries p99 with a slow partner (ms)', `< ${r.slow.slowDelayMs}`, r.slow.fastE2eLatencyMs.p99, (v) => v < r.slow!.slowDelayMs);
  }
  add('every acknowledged postback arrived (missing)', '= 0', r.counts.missing, (v) => v === 0);
  return out;
}

// ------------------------------------------------------------------------------------ the table

export function fmtNumber(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtBytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

function fmtLatency(l: LatencySummary | undefined): string {
  if (!l || l.count === 0) return '-';
  return `p50 ${fmtNumber(l.p50, 2)} / p99 ${fmtNumber(l.p99, 2)} / max ${fmtNumber(l.max, 2)} ms`;
}

function fmtStatuses(s: Record<string, number>, sock: HttpLoad['socketErrors']): string {
  const parts = Object.entries(s)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}: ${fmtNumber(v)}`);
  for (const [k, v] of Object.entries(sock)) if (v > 0) parts.push(`${k} errors: ${fmtNumber(v)}`);
  return parts.join(', ') || '-';
}

/** Two-column rows, aligned. */
export function table(rows: readonly (readonly [string, string])[]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => (v === '' ? k : `${k.padEnd(w)}  ${v}`)).join('\n');
}

export function formatReport(r: BenchReport): string {
  const rows: [string, string][] = [];
  rows.push([`postback bench: mode ${r.mode}, commit ${r.commit}, ${r.machine.cpus} CPUs, load ${r.machine.loadAvg1.toFixed(2)}`, '']);
  rows.push([`  ${r.command}`, '']);
  const load = (label: string, l: HttpLoad | undefined) => {
    if (!l) return;
    rows.push([`${label} requests/s`, `${fmtNumber(l.requestsPerS)} (${fmtNumber(l.requests)} in ${fmtNumber(l.durationS, 1)} s)`]);
    rows.push([`${label} latency`, fmtLatency(l.latencyMs)]);
    rows.push([`${label} answers`, fmtStatuses(l.statuses, l.socketErrors)]);
  };
  load('ingest', r.ingest);
  load('baseline', r.baseline);
  if (r.ratios.ingestVsBaseline !== undefined) rows.push(['ingest / baseline', fmtNumber(r.ratios.ingestVsBaseline, 3)]);
  const d = r.delivery;
  rows.push(['delivered postbacks/s', `${fmtNumber(d.deliveredPerS)} (${fmtNumber(d.delivered)} in ${fmtNumber(d.windowS, 2)} s)`]);
  rows.push(['ingest-to-delivery latency', fmtLatency(d.e2eLatencyMs)]);
  if (d.backlogAtLoadEnd !== undefined) rows.push(['backlog when load stopped', `${fmtNumber(d.backlogAtLoadEnd)} postbacks, all delivered ${fmtNumber(d.tailMs)} ms later`]);
  if (r.slow) {
    rows.push([`slow endpoint (${r.slow.slowDelayMs} ms)`, `${fmtNumber(r.slow.slowDelivered)} delivered, up to ${fmtNumber(r.slow.slowMaxConcurrent)} at once`]);
    rows.push(['fast endpoint meanwhile', `${fmtNumber(r.slow.fastDelivered)} delivered, ${fmtLatency(r.slow.fastE2eLatencyMs)}`]);
  }
  if (r.redis) {
    rows.push(['bytes crossing Redis / postback', `${fmtNumber(r.redis.bytesPerPostback)} B (naive ${fmtNumber(r.redis.naiveBytesPerPostback)} B, ratio ${fmtNumber(r.ratios.bytesVsNaive, 3)})`]);
    if (r.redis.memoryPerQueuedPostback !== undefined) rows.push(['Redis memory / queued postback', `${fmtNumber(r.redis.memoryPerQueuedPostback)} B`]);
  }
  const c = r.counts;
  rows.push([
    'counts',
    `${fmtNumber(c.acknowledged)} acknowledged, ${fmtNumber(c.arrivedUnique)} arrived (${fmtNumber(c.unacknowledgedArrived)} unacknowledged at cut-off), ` +
      `${fmtNumber(c.missing)} missing, ${fmtNumber(c.duplicates)} duplicates, ${fmtNumber(c.duplicateValues)} values enqueued twice: ${c.ok ? 'OK' : 'LOST POSTBACKS'}`,
  ]);
  const cpu = (label: string, m: Record<string, number> | undefined) => {
    if (m) rows.push([label, Object.entries(m).map(([k, v]) => `${k} ${fmtNumber(v, 3)}`).join(', ')]);
  };
  cpu('CPU ms / postback', r.cpuMsPerPostback);
  cpu('baseline CPU ms / request', r.baselineCpuMsPerRequest);
  rows.push(['peak RSS', Object.entries(r.peakRss).map(([k, v]) => `${k} ${fmtBytes(v)}`).join(', ') || '-']);
  if (r.targets.length) {
    rows.push(['targets', '']);
    for (const t of r.targets) rows.push([`  ${t.met ? 'met ' : 'MISS'} ${t.name}`, `${fmtNumber(t.value, 3)} (target ${t.target})`]);
  }
  return table(rows);
}
