/**
 * The dashboard in a real browser (Debian's headless chromium through playwright-core), with real
 * traffic through nginx, real ingest and delivery processes and real partner endpoints (one healthy,
 * one always failing): the page shows exactly the numbers /stats holds, charts included, loads
 * nothing from anywhere else, and refreshes by itself; at low traffic (a postback now and then) the
 * latency chart joins its few points and every legend shows the latest values without hovering.
 * Screenshots are kept in test-artifacts/ (dashboard.png, dashboard-low-traffic.png).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { AppProcess } from '../helpers/app-process.js';
import { Nginx } from '../helpers/nginx.js';
import { Receiver } from '../helpers/receiver.js';
import { RedisServer, freePort } from '../helpers/redis-server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ENV = {
  STATS_FLUSH_INTERVAL_MS: '200',
  DELIVERY_ALLOW_NETWORKS: '127.0.0.0/8',
  DELIVERY_MAX_ATTEMPTS: '2',
  DELIVERY_BACKOFF_BASE_MS: '20',
  DELIVERY_BACKOFF_MAX_MS: '100',
  DELIVERY_BLOCK_MS: '100',
  DELIVERY_MAINTENANCE_INTERVAL_MS: '50',
};

describe('dashboard in headless chromium', () => {
  let redis: RedisServer;
  let good: Receiver;
  let bad: Receiver;
  let ingest: AppProcess;
  let worker: AppProcess;
  let nginx: Nginx;
  let browser: BrowserContext;
  let page: Page;
  let profileDir: string;
  const offOrigin: string[] = [];
  const GOOD_REQUESTS = 30;
  const PER_REQUEST = 4;
  const BAD_REQUESTS = 5;

  async function post(url: string, data: object[]): Promise<void> {
    const res = await fetch(`${nginx.base}/i`, { method: 'POST', body: JSON.stringify({ endpoint: { method: 'GET', url }, data }) });
    assert.equal(res.status, 202);
  }

  async function stats(): Promise<any> {
    return (await fetch(`${nginx.base}/stats?window=900`)).json();
  }

  async function tile(id: string): Promise<string> {
    return (await page.locator(`[data-testid="${id}"]`).textContent())?.trim() ?? '';
  }

  before(async () => {
    redis = await RedisServer.start();
    good = await Receiver.start();
    bad = await Receiver.start(() => ({ status: 503, body: 'down for maintenance' }));
    const port = await freePort();
    ingest = AppProcess.start('ingest', { ...ENV, REDIS_URL: redis.url, INGEST_PORT: String(port) });
    worker = AppProcess.start('delivery', { ...ENV, REDIS_URL: redis.url, DELIVERY_CONSUMER_NAME: 'e2e' });
    await Promise.all([ingest.waitForEvent('ingest_ready'), worker.waitForEvent('worker_started')]);
    nginx = await Nginx.start({ upstreamPorts: [port] });

    for (let r = 0; r < GOOD_REQUESTS; r++) {
      await post(`${good.base}/ok?r={r}&i={i}`, Array.from({ length: PER_REQUEST }, (_, i) => ({ r, i })));
    }
    for (let r = 0; r < BAD_REQUESTS; r++) await post(`${bad.base}/hook?r={r}`, [{ r }]);
    await good.waitFor(GOOD_REQUESTS * PER_REQUEST);
    await bad.waitFor(BAD_REQUESTS * 2);
    await worker.waitForEvent('delivery_dead_lettered');
    // Statistics reach Redis within a flush interval.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const s = await stats();
      if (s.totals.delivered === GOOD_REQUESTS * PER_REQUEST && s.totals.deadLettered === BAD_REQUESTS) break;
      assert.ok(Date.now() < deadline, `stats never caught up: ${JSON.stringify(s.totals)}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    profileDir = mkdtempSync(path.join(os.tmpdir(), 'pb-chromium-'));
    // A fresh profile (the --user-data-dir): playwright takes it as launchPersistentContext's argument.
    browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1280, height: 1100 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('request', (req) => {
      if (!req.url().startsWith(nginx.base)) offOrigin.push(req.url());
    });
  });

  after(async () => {
    await browser?.close();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    await nginx?.stop();
    await Promise.all([ingest?.stop(), worker?.stop()]);
    await good?.close();
    await bad?.close();
    await redis?.destroy();
  });

  it('shows the totals, queue and failing hosts that /stats holds', async () => {
    await page.goto(`${nginx.base}/dashboard/?refresh=1000`);
    await page.waitForFunction(() => (globalThis as any).document.body.dataset.generatedAt !== undefined, undefined, { timeout: 10_000 });
    const s = await stats();
    const fmt = (n: number) => new Intl.NumberFormat('en').format(n);
    assert.equal(await tile('accepted'), fmt(s.totals.accepted));
    assert.equal(s.totals.accepted, GOOD_REQUESTS * PER_REQUEST + BAD_REQUESTS);
    assert.equal(await tile('delivered'), fmt(GOOD_REQUESTS * PER_REQUEST));
    assert.equal(await tile('failed'), fmt(BAD_REQUESTS * 2));
    assert.equal(await tile('deadLettered'), fmt(BAD_REQUESTS));
    assert.equal(await tile('queueDead'), fmt(s.queue.deadLetters));
    assert.equal(s.queue.deadLetters, BAD_REQUESTS);
    assert.equal(await tile('queueLive'), '0');
    assert.match(await tile('latency'), /^\d+ ms \/ \d+ ms \/ \d+ ms$/);

    const rows = await page.locator('[data-testid="hosts"] tbody tr').evaluateAll((trs) =>
      trs.map((tr) => [...(tr as any).cells].slice(0, 5).map((c: any) => c.textContent as string)),
    );
    assert.deepEqual(rows, [[new URL(bad.base).host, String(BAD_REQUESTS * 2), String(BAD_REQUESTS), '0', 'HTTP 503']]);
    assert.equal(s.failingHosts[0].lastError.error, 'HTTP 503');
    // The worker's queue samples, which the queue chart draws, end at the dead letters /stats counts.
    assert.equal(s.series.queueDead.filter((v: number | null) => v !== null).at(-1), BAD_REQUESTS);

    // Three uPlot charts, drawn; the volume chart's delivered series adds up to the total.
    assert.equal(await page.locator('.uplot canvas').count(), 3);
    const legend = await page.locator('#volume .u-legend').textContent();
    assert.match(legend ?? '', /delivered/);
  });

  it('refreshes by itself: new traffic appears without a reload', async () => {
    const before = Number((await tile('delivered')).replace(/,/g, ''));
    await post(`${good.base}/ok?r={r}&i={i}`, [{ r: 'late', i: 0 }, { r: 'late', i: 1 }]);
    await good.waitFor(GOOD_REQUESTS * PER_REQUEST + 2);
    await page.waitForFunction(
      (want) => (globalThis as any).document.querySelector('[data-testid="delivered"]')?.textContent?.replace(/,/g, '') === String(want),
      before + 2,
      { timeout: 10_000 },
    );
    const s = await stats();
    assert.equal(s.totals.delivered, before + 2);
    mkdirSync(path.join(root, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(root, 'test-artifacts', 'dashboard.png'), fullPage: true });
  });

  it('at low traffic: latency joined across empty buckets, legends show the latest values unhovered', async () => {
    // A postback now and then: each lands in its own 10 s bucket, with empty buckets around them.
    const bucket = () => Math.floor(Date.now() / 10_000);
    let sent = GOOD_REQUESTS * PER_REQUEST + 2;
    for (let k = 0; k < 2; k++) {
      const b = bucket();
      while (bucket() === b) await new Promise((r) => setTimeout(r, 200));
      await post(`${good.base}/ok?r={r}&i={i}`, [{ r: `slow${k}`, i: 0 }]);
      sent++;
      await good.waitFor(sent);
    }
    const deadline = Date.now() + 10_000;
    let s: any;
    for (;;) {
      s = await stats();
      if (s.totals.delivered === sent) break;
      assert.ok(Date.now() < deadline, `stats never caught up: ${JSON.stringify(s.totals)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const withLatency = s.series.p50.filter((v: number | null) => v !== null).length;
    assert.ok(withLatency >= 2 && withLatency < s.series.t.length / 2, `latency in ${withLatency} of ${s.series.t.length} buckets`);
    await page.goto(`${nginx.base}/dashboard/?refresh=60000`);
    await page.waitForFunction(
      (want) => (globalThis as any).document.querySelector('[data-testid="delivered"]')?.textContent?.replace(/,/g, '') === String(want),
      sent,
      { timeout: 10_000 },
    );
    await page.mouse.move(5, 5); // the pointer is on no chart
    const legend = async (chart: string) =>
      page.locator(`#${chart} .u-legend .u-series`).evaluateAll((rows) =>
        rows.map((r: any) => [r.querySelector('.u-label')?.textContent ?? '', r.querySelector('.u-value')?.textContent ?? '']),
      );
    const lat = await legend('latency');
    const latest = (series: (number | null)[]) => series.filter((v) => v !== null).at(-1);
    for (const [label, key] of [['p50', 'p50'], ['p95', 'p95'], ['p99', 'p99']] as const) {
      const row = lat.find(([l]) => l === label);
      assert.ok(row, `legend row ${label}: ${JSON.stringify(lat)}`);
      assert.equal(Number(row[1].replace(/,/g, '')), latest(s.series[key]), `${label} legend shows the latest value`);
    }
    const vol = await legend('volume');
    assert.ok(vol.every(([, v]) => v !== '--'), `volume legend: ${JSON.stringify(vol)}`);
    const q = await legend('queue');
    assert.equal(q.find(([l]) => l === 'dead letters')?.[1], String(BAD_REQUESTS));
    mkdirSync(path.join(root, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(root, 'test-artifacts', 'dashboard-low-traffic.png'), fullPage: true });
  });

  it('loads nothing from outside the appliance', () => {
    assert.deepEqual(offOrigin, []);
  });
});
