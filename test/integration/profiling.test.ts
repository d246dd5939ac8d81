/**
 * Production profiling as docs/monitoring.md describes it: SIGUSR2 to a running process writes a CPU
 * profile that DevTools can open, and the process keeps serving.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppProcess } from '../helpers/app-process.js';
import { RedisServer, freePort } from '../helpers/redis-server.js';

describe('CPU profile on SIGUSR2', () => {
  let redis: RedisServer;
  let ingest: AppProcess;
  let dir: string;
  let port: number;

  before(async () => {
    redis = await RedisServer.start();
    dir = mkdtempSync(path.join(os.tmpdir(), 'pb-profiles-'));
    port = await freePort();
    ingest = AppProcess.start('ingest', { REDIS_URL: redis.url, INGEST_PORT: String(port), PROFILE_DIR: dir, PROFILE_CPU_SECONDS: '1' });
    await ingest.waitForEvent('ingest_ready');
  });

  after(async () => {
    await ingest?.stop();
    await redis?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a .cpuprofile with samples while the process keeps answering', async () => {
    ingest.kill('SIGUSR2');
    await ingest.waitForEvent('cpu_profile_started', 5000);
    // Work for the profiler to see, and proof the process still serves meanwhile.
    for (let i = 0; i < 20; i++) assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
    const written = await ingest.waitForEvent('cpu_profile_written', 10_000);
    const file = String(written.file);
    assert.equal(path.dirname(file), dir);
    assert.match(path.basename(file), /^ingest-\d+-.*\.cpuprofile$/);
    const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: unknown[]; samples: number[]; startTime: number; endTime: number };
    assert.ok(profile.nodes.length > 0 && profile.samples.length > 0, 'the profile has samples');
    assert.ok(profile.endTime - profile.startTime >= 900_000, 'it covers about PROFILE_CPU_SECONDS (µs)');
    assert.ok(ingest.running, 'the process is still running');
  });
});
