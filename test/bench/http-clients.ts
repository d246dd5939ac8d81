/**
 * What one delivery attempt costs in each HTTP client (DELIVERY_HTTP_CLIENT=got|node): the deliverer
 * the workers use (src/delivery/deliver.ts) sends N GET requests, 64 at a time over keep-alive, to a
 * bare HTTP server in a child process; the CPU time of this process per request is the client's cost
 * (the server's CPU is not in it). Rounds alternate got and node so both see the same machine.
 *
 *   node --import tsx test/bench/http-clients.ts [requests per round, default 20000] [rounds, default 3]
 *
 * Bounded: a fixed number of requests to 127.0.0.1 only.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createDeliverer } from '../../src/delivery/deliver.js';
import { createDestinationPolicy } from '../../src/shared/destination-policy.js';

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const CONCURRENCY = 64;

const SERVER = `
const http = require('node:http');
const s = http.createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('ok'); }); });
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.send(s.address().port));
`;

async function run(): Promise<void> {
  const child = fork(process.execPath, [], { execArgv: ['-e', SERVER], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [port] = (await once(child, 'message')) as [number];
  const results: Record<'got' | 'node', { perRequestUs: number[]; rate: number[] }> = {
    got: { perRequestUs: [], rate: [] },
    node: { perRequestUs: [], rate: [] },
  };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const client of ['got', 'node'] as const) {
        const deliver = createDeliverer({ timeoutMs: 10_000, maxResponseBytes: 4096, postFormat: 'json', userAgent: 'bench', maxSockets: CONCURRENCY, client, policy: createDestinationPolicy({ allowNetworks: '127.0.0.0/8' }) });
        const send = async (n: number) => {
          let next = 0;
          await Promise.all(
            Array.from({ length: CONCURRENCY }, async () => {
              while (next < n) {
                const i = next++;
                const o = await deliver({
                  method: 'GET',
                  url: `http://127.0.0.1:${port}/data?key=Phyllobates&value=${i}&foo=`,
                  dataJson: '{}',
                  data: {},
                  postbackId: `1-0.${i}`,
                  attempt: 1,
                });
                if (o.result.kind !== 'response' || o.result.status !== 200) throw new Error(`request ${i}: ${JSON.stringify(o.result)}`);
              }
            }),
          );
        };
        await send(2000); // warm-up: connections open, code optimised
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        await send(N);
        const cpu = process.cpuUsage(cpu0);
        const ms = performance.now() - t0;
        deliver.close();
        results[client].perRequestUs.push((cpu.user + cpu.system) / N);
        results[client].rate.push((N / ms) * 1000);
        console.log(`round ${round + 1} ${client.padEnd(4)} ${Math.round((N / ms) * 1000).toLocaleString('en-US')} req/s, ${((cpu.user + cpu.system) / N).toFixed(1)} µs client CPU / request`);
      }
    }
  } finally {
    child.kill();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const g = median(results.got.perRequestUs);
  const n = median(results.node.perRequestUs);
  console.log(`median client CPU per request: got ${g.toFixed(1)} µs, node ${n.toFixed(1)} µs (node/got ${(n / g).toFixed(2)})`);
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
