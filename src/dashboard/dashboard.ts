/**
 * The dashboard page: polls GET /stats (same origin, through nginx) and draws it with uPlot. Bundled
 * by src/dashboard/build.mjs (esbuild) into dist/dashboard/dashboard.js, uPlot included: the page
 * loads nothing from elsewhere, so it works on an offline server.
 *
 * URL parameters: ?window=<s> (also the selector), ?refresh=<ms> (default 5000).
 */
import uPlot from 'uplot';
import { latestIndexes } from './legend.js';

interface Stats {
  generatedAt: number;
  resolutionS: number;
  series: {
    t: number[];
    accepted: number[];
    delivered: number[];
    failed: number[];
    deadLettered: number[];
    p50: (number | null)[];
    p95: (number | null)[];
    p99: (number | null)[];
    queueLive: (number | null)[];
    queueRetry: (number | null)[];
    queueDead: (number | null)[];
  };
  totals: {
    accepted: number;
    delivered: number;
    failed: number;
    deadLettered: number;
    latencyP50Ms: number | null;
    latencyP95Ms: number | null;
    latencyP99Ms: number | null;
  };
  failingHosts: {
    host: string;
    delivered: number;
    failed: number;
    deadLettered: number;
    lastError: { at: number; status: number | null; error: string } | null;
  }[];
  queue: { live: number; pending: number; retryScheduled: number; deadLetters: number; oldestAgeMs: number };
}

const params = new URLSearchParams(location.search);
const refreshMs = Math.max(1000, Number(params.get('refresh')) || 5000);
const select = document.getElementById('window') as HTMLSelectElement;
if (params.get('window')) {
  const w = params.get('window')!;
  if (![...select.options].some((o) => o.value === w)) select.add(new Option(`${w} s`, w));
  select.value = w;
}

const fmt = new Intl.NumberFormat('en');
const text = (id: string, value: string) => {
  const el = document.querySelector(`[data-testid="${id}"]`);
  if (el) el.textContent = value;
};
const ms = (v: number | null) => (v === null ? '–' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);
const age = (v: number) => (v < 1000 ? `${Math.round(v)} ms` : v < 120_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v / 60_000)} min`);

function width(): number {
  return Math.max(300, (document.querySelector('main') as HTMLElement).clientWidth - 40);
}

/** Legends show each series' latest value while the pointer is elsewhere (uPlot would show `--`). */
function showLatest(u: uPlot): void {
  if (u.cursor.idx === null || u.cursor.idx === undefined) u.setLegend({ idxs: latestIndexes(u.data as uPlot.AlignedData) }, false);
}

function makeChart(el: string, series: uPlot.Series[], yLabel: string): uPlot {
  return new uPlot(
    {
      width: width(),
      height: 220,
      series: [{}, ...series],
      axes: [{}, { label: yLabel, size: 60 }],
      scales: { x: { time: true } },
      hooks: { setCursor: [showLatest] },
    },
    [[], ...series.map(() => [])],
    document.getElementById(el)!,
  );
}

function setData(chart: uPlot, data: uPlot.AlignedData): void {
  chart.setData(data);
  showLatest(chart);
}

const volume = makeChart(
  'volume',
  [
    { label: 'accepted', stroke: '#6b7a90', width: 1 },
    { label: 'delivered', stroke: '#2e9d57', fill: 'rgba(46,157,87,0.12)', width: 2 },
    { label: 'failed attempts', stroke: '#d99a1e', width: 2 },
    { label: 'dead-lettered', stroke: '#d0413c', width: 2 },
  ],
  'postbacks',
);
// Latency exists only in buckets that delivered something: at low traffic, a few buckets out of many.
// Each value is drawn as a point and joined across the empty buckets, so it reads as a line.
const latencyPoints = { show: true, size: 5 };
const latency = makeChart(
  'latency',
  [
    { label: 'p50', stroke: '#2e6fd0', width: 2, spanGaps: true, points: latencyPoints },
    { label: 'p95', stroke: '#d99a1e', width: 2, spanGaps: true, points: latencyPoints },
    { label: 'p99', stroke: '#d0413c', width: 1, spanGaps: true, points: latencyPoints },
  ],
  'ms',
);
const queue = makeChart(
  'queue',
  [
    { label: 'queued (live)', stroke: '#2e6fd0', width: 2 },
    { label: 'waiting for retry', stroke: '#d99a1e', width: 2 },
    { label: 'dead letters', stroke: '#d0413c', width: 2 },
  ],
  'postbacks',
);

function renderHosts(hosts: Stats['failingHosts']): void {
  const body = document.getElementById('hosts') as HTMLTableSectionElement;
  body.replaceChildren();
  if (hosts.length === 0) {
    const tr = body.insertRow();
    const td = tr.insertCell();
    td.colSpan = 6;
    td.textContent = 'No failures in this window.';
    return;
  }
  for (const h of hosts) {
    const tr = body.insertRow();
    tr.dataset.host = h.host;
    const cells = [
      h.host,
      fmt.format(h.failed),
      fmt.format(h.deadLettered),
      fmt.format(h.delivered),
      h.lastError ? h.lastError.error || (h.lastError.status === null ? 'no response' : `HTTP ${h.lastError.status}`) : '',
      h.lastError ? new Date(h.lastError.at).toLocaleTimeString() : '',
    ];
    cells.forEach((c, i) => {
      const td = tr.insertCell();
      td.textContent = c;
      if (i >= 1 && i <= 3) td.className = 'num';
    });
  }
}

function render(s: Stats): void {
  const t = s.totals;
  text('accepted', fmt.format(t.accepted));
  text('delivered', fmt.format(t.delivered));
  text('failed', fmt.format(t.failed));
  text('deadLettered', fmt.format(t.deadLettered));
  text('latency', `${ms(t.latencyP50Ms)} / ${ms(t.latencyP95Ms)} / ${ms(t.latencyP99Ms)}`);
  text('queueLive', fmt.format(s.queue.live));
  text('queuePending', fmt.format(s.queue.pending));
  text('queueRetry', fmt.format(s.queue.retryScheduled));
  text('queueDead', fmt.format(s.queue.deadLetters));
  text('queueOldest', s.queue.oldestAgeMs ? age(s.queue.oldestAgeMs) : '–');
  const x = s.series.t;
  setData(volume, [x, s.series.accepted, s.series.delivered, s.series.failed, s.series.deadLettered]);
  setData(latency, [x, s.series.p50, s.series.p95, s.series.p99] as uPlot.AlignedData);
  setData(queue, [x, s.series.queueLive, s.series.queueRetry, s.series.queueDead] as uPlot.AlignedData);
  renderHosts(s.failingHosts);
}

let timer: number | undefined;
async function refresh(): Promise<void> {
  clearTimeout(timer);
  const status = document.getElementById('status')!;
  try {
    const res = await fetch(`/stats?window=${encodeURIComponent(select.value)}`, { cache: 'no-store' });
    if (!res.ok) throw new Error(`GET /stats answered ${res.status}`);
    const s = (await res.json()) as Stats;
    render(s);
    status.className = '';
    status.textContent = `updated ${new Date(s.generatedAt).toLocaleTimeString()} · ${s.resolutionS} s buckets · every ${refreshMs / 1000} s`;
    document.body.dataset.generatedAt = String(s.generatedAt);
  } catch (err) {
    status.className = 'error';
    status.textContent = `cannot load statistics: ${(err as Error).message}`;
  } finally {
    timer = window.setTimeout(() => void refresh(), refreshMs);
  }
}

select.addEventListener('change', () => {
  const u = new URL(location.href);
  u.searchParams.set('window', select.value);
  history.replaceState(null, '', u);
  void refresh();
});
window.addEventListener('resize', () => {
  for (const c of [volume, latency, queue]) c.setSize({ width: width(), height: 220 });
});
void refresh();
