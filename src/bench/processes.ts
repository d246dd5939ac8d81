/**
 * The real processes the bench drives, on free ports on 127.0.0.1, in one temporary directory that is
 * removed at the end: redis-server, nginx (with the repository's own nginx/*.conf), the built ingest
 * and delivery entry points, and a bare Node HTTP server as the baseline. Compiled with the app (no
 * imports from test/), so `node dist/bench/main.js` needs nothing else.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, closeSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nginxConf } from './nginx-conf.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, proc: ChildProcess, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}) before listening on ${port}`);
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Every process the bench has spawned and not yet seen exit, from the moment it is spawned (before it
 * listens), so an interrupt can stop even those still starting.
 */
export const liveChildren = new Set<Child>();

/** SIGKILL every process the bench started that is still running, and wait for them to go. */
export async function killAllChildren(): Promise<void> {
  const all = [...liveChildren];
  for (const c of all) c.proc.kill('SIGKILL');
  await Promise.all(all.map((c) => c.exited));
}

/** A child process of the bench, its output going to a log file (never through the bench's event loop). */
export class Child {
  readonly exited: Promise<void>;
  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    liveChildren.add(this);
    this.exited = new Promise((resolve) => {
      const done = () => {
        liveChildren.delete(this);
        resolve();
      };
      if (proc.exitCode !== null || proc.signalCode !== null) done();
      else proc.once('exit', done);
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** `signal`, then SIGKILL if it has not exited within `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.proc.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    if (this.running) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

export function spawnLogged(name: string, command: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): Child {
  const fd = openSync(logFile, 'a');
  try {
    const proc = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', fd, fd], ...(env ? { env } : {}) });
    return new Child(name, proc);
  } finally {
    closeSync(fd);
  }
}

export async function startRedis(dir: string, logFile: string, extraArgs: string[] = []): Promise<{ child: Child; port: number; url: string }> {
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  // As provisioned: AOF with everysec, noeviction, no RDB snapshots.
  const child = spawnLogged('redis', 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction',
    '--daemonize', 'no', '--loglevel', 'warning', ...extraArgs,
  ], logFile);
  await waitForPort(port, child.proc, 'redis-server');
  return { child, port, url: `redis://127.0.0.1:${port}` };
}

export interface NginxSetup {
  readonly ingestPorts: readonly number[];
  readonly baselinePorts: readonly number[];
  /** nginx worker_processes: a number or 'auto' (one per CPU, as Debian's default nginx.conf). */
  readonly workers: string;
  /** Keep-alive connections to each upstream (production: 64). */
  readonly upstreamKeepalive: number;
}

/**
 * nginx as production has it (the repository's nginx/http.conf and locations.conf, a JSON access
 * log), plus one bench-only route, /baseline, proxied to the bare Node server with the same proxy
 * settings, so the two differ only in what sits behind nginx.
 */
export async function startNginx(prefix: string, setup: NginxSetup): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  mkdirSync(path.join(prefix, 'logs'), { recursive: true });
  symlinkSync(path.join(repoRoot, 'nginx'), path.join(prefix, 'postback'));
  const conf = path.join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    nginxConf({
      prefix,
      listenPort: port,
      listenParams: 'backlog=4096',
      workers: setup.workers,
      workerConnections: 8192,
      upstreams: {
        postback_ingest: setup.ingestPorts,
        bench_baseline: setup.baselinePorts.length ? setup.baselinePorts : setup.ingestPorts,
      },
      keepalive: setup.upstreamKeepalive,
      serverBefore: `        location = /baseline {
            proxy_pass http://bench_baseline;
            include postback/proxy.conf;
        }`,
    }),
  );
  const check = spawnSync('nginx', ['-t', '-q', '-p', prefix, '-c', conf], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t failed: ${check.stderr}`);
  const child = spawnLogged('nginx', 'nginx', ['-p', prefix, '-c', conf, '-g', 'daemon off;'], path.join(prefix, 'logs', 'stderr.log'));
  await waitForPort(port, child.proc, 'nginx');
  return { child, port };
}

/** The built entry point of a service (`dist/<service>/main.js`), with the given settings only. */
export function startService(
  service: 'ingest' | 'delivery',
  name: string,
  env: Record<string, string>,
  logFile: string,
  nodeArgs: string[] = [],
): Child {
  const entry = path.join(repoRoot, 'dist', service, 'main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build`);
  return spawnLogged(name, process.execPath, [...nodeArgs, entry], logFile, {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    NODE_ENV: 'production',
    ...env,
  });
}

export async function startIngest(name: string, env: Record<string, string>, logFile: string, nodeArgs: string[] = []): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = startService('ingest', name, { ...env, INGEST_HOST: '127.0.0.1', INGEST_PORT: String(port) }, logFile, nodeArgs);
  await waitForPort(port, child.proc, name);
  return { child, port };
}

/** The baseline: a Node HTTP server that reads the body and answers 202 with a small JSON body. */
export const BASELINE_SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(202, { 'content-type': 'application/json; charset=utf-8' });
    res.end('{"accepted":0}');
  });
});
server.keepAliveTimeout = 65000;
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
setTimeout(() => {}, 2 ** 31 - 1);
`;

export async function startBaseline(name: string, logFile: string): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = spawnLogged(name, process.execPath, ['-e', BASELINE_SERVER], logFile, { PATH: process.env.PATH ?? '/usr/bin:/bin', PORT: String(port) });
  await waitForPort(port, child.proc, name);
  return { child, port };
}

// ------------------------------------------------------------------------------------ memory

/** Peak resident set size (VmHWM) of a live process, bytes; undefined when it is gone. */
export function peakRssOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a live process has used, ms; undefined when it is gone. */
export function cpuMsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100;

/** Direct children of a process (nginx's workers). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Keeps the highest VmHWM seen of each named process group (nginx: master plus workers, each counted
 * on its own and the largest kept), sampled periodically and once more on demand before processes stop.
 */
export class RssWatch {
  readonly peaks: Record<string, number> = {};
  private readonly watched = new Map<string, () => number[]>();
  private timer: NodeJS.Timeout | undefined;

  watch(name: string, pids: () => number[]): void {
    this.watched.set(name, pids);
  }

  sample(): void {
    for (const [name, pids] of this.watched) {
      for (const pid of pids()) {
        const rss = peakRssOf(pid);
        if (rss !== undefined && rss > (this.peaks[name] ?? 0)) this.peaks[name] = rss;
      }
    }
  }

  start(everyMs = 500): void {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /** CPU time used so far by each named group (all its processes), ms. */
  cpu(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, pids] of this.watched) {
      let ms = 0;
      for (const pid of pids()) ms += cpuMsOf(pid) ?? 0;
      out[name] = ms;
    }
    const self = process.cpuUsage();
    out.bench = (self.user + self.system) / 1000;
    return out;
  }
}

/** CPU ms each group used between two snapshots, per unit of work (requests or postbacks). */
export function cpuPer(before: Record<string, number>, after: Record<string, number>, units: number): Record<string, number> {
  const out: Record<string, number> = {};
  let total = 0;
  for (const [name, ms] of Object.entries(after)) {
    const used = ms - (before[name] ?? 0);
    if (used <= 0 || units <= 0) continue;
    out[name] = Math.round((used / units) * 1000) / 1000;
    total += used;
  }
  if (units > 0) out.total = Math.round((total / units) * 1000) / 1000;
  return out;
}
