/**
 * The apps' log files hold JSON lines only, also after a rotation: the real pm2 (its own daemon, in a
 * temporary PM2_HOME) runs the built ingest in cluster mode, as pm2.config.cjs does, writing to a log
 * file; the file is moved away and `pm2 reloadLogs` run, as logrotate's postrotate does. In cluster
 * mode pm2 prints "Reloading log..." into the app's own stdout at that moment; the app drops it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { RedisServer, freePort } from '../helpers/redis-server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pm2Bin = path.join(root, 'node_modules', '.bin', 'pm2');
const run = promisify(execFile);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms`);
    await sleep(100);
  }
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []);

describe('logs stay JSON-only across pm2 reloadLogs (cluster mode)', () => {
  let redis: RedisServer;
  let dir: string;
  let port: number;
  let env: NodeJS.ProcessEnv;
  let log: string;
  const pm2 = (...args: string[]) => run(pm2Bin, args, { env, cwd: dir, timeout: 60_000 });

  before(async () => {
    redis = await RedisServer.start();
    dir = mkdtempSync(path.join(os.tmpdir(), 'pb-pm2-'));
    port = await freePort();
    log = path.join(dir, 'ingest.log');
    env = { PATH: process.env.PATH, HOME: dir, PM2_HOME: path.join(dir, '.pm2'), REDIS_URL: redis.url, INGEST_PORT: String(port) };
    await pm2('start', path.join(root, 'dist', 'ingest', 'main.js'), '--name', 'pb-test-ingest', '-i', '2', '--merge-logs', '-o', log, '-e', path.join(dir, 'ingest-error.log'));
    await waitFor('both ingest instances ready', () => lines(log).filter((l) => l.includes('"event":"ingest_ready"')).length >= 2);
  });

  after(async () => {
    await pm2('kill').catch(() => undefined);
    await redis?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the new file has the JSON lines written after the reload, and nothing else', async () => {
    renameSync(log, `${log}.1`);
    await pm2('reloadLogs');
    // Reopened: the next line an instance writes goes to the new file. A bad request makes each
    // instance that gets one log a warning.
    await waitFor('a line in the reopened log', () => {
      void fetch(`http://127.0.0.1:${port}/i`, { method: 'POST', body: '{"endpoint":' }).catch(() => undefined);
      return lines(log).some((l) => l.includes('"event":"ingest_request_failed"'));
    });
    await sleep(500);
    const got = lines(log);
    const notJson = got.filter((l) => {
      try {
        return typeof JSON.parse(l) !== 'object';
      } catch {
        return true;
      }
    });
    assert.deepEqual(notJson, [], `ingest.log after reloadLogs:\n${got.join('\n')}`);
  });
});
