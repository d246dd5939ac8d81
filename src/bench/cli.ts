/** The bench's command line: options, defaults, usage. Pure, so it is tested without running anything. */
import { parseArgs } from 'node:util';
import type { Mode } from './report.js';
import { DEFAULTS, type BenchOptions } from './run.js';

export const USAGE = `usage: npm run bench -- --mode load|loop|drain|slow [options]

  --mode M               load: many connections for a set time; loop: one connection sending the
                         same request again and again; drain: a backlog of --postbacks queued, then
                         delivered as fast as possible; slow: load where every --slow-every-th request
                         goes to an endpoint that answers after --slow-ms
  --baseline             also measure a bare Node HTTP server through the same nginx (load, loop)
  --json                 print the report as JSON
  --duration S           seconds of measured load (default ${DEFAULTS.durationS})
  --warmup S             seconds of unmeasured load first (default ${DEFAULTS.warmupS})
  --connections N        load generator connections (default ${DEFAULTS.connections}; loop: 1)
  --threads N            load generator threads (default ${DEFAULTS.threads})
  --postbacks N          drain: postbacks queued before delivery starts (default ${DEFAULTS.postbacks})
  --ingest-instances N   ingest processes behind nginx (default ${DEFAULTS.ingestInstances}, as pm2)
  --delivery-instances N delivery worker processes (default ${DEFAULTS.deliveryInstances}, as pm2)
  --nginx-workers N      nginx worker_processes (default ${DEFAULTS.nginxWorkers})
  --slow-ms MS           slow: the slow endpoint's delay (default ${DEFAULTS.slowDelayMs})
  --slow-every N         slow: every N-th request goes to the slow endpoint (default ${DEFAULTS.slowEvery})
  --env KEY=VALUE        a setting for every ingest and delivery process (repeatable)
  --profile              CPU-profile ingest and delivery (node --cpu-prof) and list the hot functions
  --keep                 keep the run's directory (logs, profiles, wrk script)
  --settle-timeout S     how long to wait for every acknowledged postback to arrive (default ${DEFAULTS.settleTimeoutS})
  --ingest-url URL       drive a running stack instead of starting one
  --baseline-url URL     with --ingest-url: the bare server to compare against
  --redis-url URL        with --ingest-url: its Redis, for the bytes and memory figures (and drain)
  --endpoint-url URL     with --ingest-url: where its workers reach this machine's counting endpoint
  --endpoint-port N      with --ingest-url: port of the counting endpoint (default: any free port)
  --endpoint-host H      with --ingest-url: address it listens on (default 127.0.0.1)
`;

const MODES: readonly Mode[] = ['load', 'loop', 'drain', 'slow'];

export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      mode: { type: 'string' },
      baseline: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      threads: { type: 'string' },
      postbacks: { type: 'string' },
      'ingest-instances': { type: 'string' },
      'delivery-instances': { type: 'string' },
      'nginx-workers': { type: 'string' },
      'slow-ms': { type: 'string' },
      'slow-every': { type: 'string' },
      env: { type: 'string', multiple: true },
      profile: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'ingest-url': { type: 'string' },
      'baseline-url': { type: 'string' },
      'redis-url': { type: 'string' },
      'endpoint-url': { type: 'string' },
      'endpoint-port': { type: 'string' },
      'endpoint-host': { type: 'string' },
      'settle-timeout': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) throw new UsageError('');
  const mode = values.mode as Mode | undefined;
  if (!mode || !MODES.includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}`);
  const num = (name: string, v: string | undefined, dflt: number, min = 0): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got "${v}"`);
    return n;
  };
  const env: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env takes KEY=VALUE, got "${kv}"`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const ingestUrl = values['ingest-url'];
  return {
    ...DEFAULTS,
    mode,
    baseline: values.baseline ?? false,
    durationS: num('duration', values.duration, DEFAULTS.durationS, 1),
    warmupS: num('warmup', values.warmup, DEFAULTS.warmupS, 0),
    connections: num('connections', values.connections, DEFAULTS.connections, 1),
    threads: num('threads', values.threads, DEFAULTS.threads, 1),
    postbacks: num('postbacks', values.postbacks, DEFAULTS.postbacks, 2),
    ingestInstances: num('ingest-instances', values['ingest-instances'], DEFAULTS.ingestInstances, 1),
    deliveryInstances: num('delivery-instances', values['delivery-instances'], DEFAULTS.deliveryInstances, 1),
    nginxWorkers: values['nginx-workers'] ?? DEFAULTS.nginxWorkers,
    slowDelayMs: num('slow-ms', values['slow-ms'], DEFAULTS.slowDelayMs, 0),
    slowEvery: num('slow-every', values['slow-every'], DEFAULTS.slowEvery, 1),
    settleTimeoutS: num('settle-timeout', values['settle-timeout'], DEFAULTS.settleTimeoutS, 1),
    env,
    profile: values.profile ?? false,
    keep: values.keep ?? false,
    ...(ingestUrl
      ? {
          external: {
            ingestUrl,
            ...(values['baseline-url'] ? { baselineUrl: values['baseline-url'] } : {}),
            ...(values['redis-url'] ? { redisUrl: values['redis-url'] } : {}),
            ...(values['endpoint-url'] ? { endpointUrl: values['endpoint-url'] } : {}),
            ...(values['endpoint-port'] ? { endpointPort: num('endpoint-port', values['endpoint-port'], 0, 1) } : {}),
            ...(values['endpoint-host'] ? { endpointHost: values['endpoint-host'] } : {}),
          },
        }
      : {}),
    command: `npm run bench -- ${argv.join(' ')}`.trim(),
  };
}

export class UsageError extends Error {}

