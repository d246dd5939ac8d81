/**
 * What an idle appliance writes to Redis's AOF: a real redis-server (appendonly yes, everysec), one
 * ingest and two delivery workers as real processes (`node dist/.../main.js`) with the production
 * defaults, one request delivered to a local endpoint, then nothing for N seconds. Prints the bytes
 * appended to the AOF while idle, extrapolated to an hour, and the commands by name.
 *
 *   npm run build && node --import tsx test/bench/idle-writes.ts [idle seconds, default 300]
 *
 * Bounded: one request, to 127.0.0.1 only; everything it starts is stopped at the end.
 */
import { AppProcess } from '../helpers/app-process.js';
import { aofCommandsSince, aofSize, countByName } from '../helpers/aof.js';
import { Receiver } from '../helpers/receiver.js';
import { RedisServer, freePort } from '../helpers/redis-server.js';

const IDLE_S = Number(process.argv[2] ?? 300);
const SETTLE_MS = 10_000;

const redis = await RedisServer.start({ appendonly: true, appendfsync: 'everysec' });
const receiver = await Receiver.start();
const port = await freePort();
// Production defaults: only what says where things are (and, for the destination policy of later
// releases, that the local endpoint may be delivered to).
const common = { REDIS_URL: redis.url, DELIVERY_ALLOW_NETWORKS: '127.0.0.0/8' };
const procs = [
  AppProcess.start('ingest', { ...common, INGEST_PORT: String(port), NODE_APP_INSTANCE: '0' }),
  AppProcess.start('delivery', { ...common, NODE_APP_INSTANCE: '0', DELIVERY_CONSUMER_NAME: 'idle-0' }),
  AppProcess.start('delivery', { ...common, NODE_APP_INSTANCE: '1', DELIVERY_CONSUMER_NAME: 'idle-1' }),
];
try {
  await Promise.all(procs.map((p) => p.waitForEvent(p.service === 'ingest' ? 'ingest_ready' : 'worker_started')));
  const res = await fetch(`http://127.0.0.1:${port}/i`, {
    method: 'POST',
    body: JSON.stringify({ endpoint: { method: 'GET', url: `${receiver.base}/idle?n={n}` }, data: [{ n: 1 }, { n: 2 }] }),
  });
  if (res.status !== 202) throw new Error(`POST /i answered ${res.status}`);
  await receiver.waitFor(2);
  // Let the statistics of that request reach Redis, then measure from a quiet start.
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const from = aofSize(redis.dir);
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));
  await new Promise((r) => setTimeout(r, 1200)); // appendfsync everysec: the last second reaches the file
  const seconds = (Date.now() - t0) / 1000;
  const bytes = aofSize(redis.dir) - from;
  const commands = aofCommandsSince(redis.dir, from);
  const perHour = Math.round((bytes / seconds) * 3600);
  console.log(`idle ${seconds.toFixed(0)} s, 1 ingest + 2 workers: ${bytes} bytes appended to the AOF = ${perHour} bytes/hour`);
  console.log(`commands: ${JSON.stringify(countByName(commands))}`);
  for (const c of commands.slice(0, 12)) console.log(`  ${c.map((a) => (a.length > 60 ? `${a.slice(0, 57)}...` : a)).join(' ')}`);
} finally {
  await Promise.all(procs.map((p) => p.stop()));
  await receiver.close();
  await redis.destroy();
}
