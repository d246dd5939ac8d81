/**
 * A real redis-server for tests, on a free port, in a temporary directory, with AOF on by default.
 * Can be stopped (SHUTDOWN, AOF flushed), killed (-9) and restarted on the same port and data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../src/bench/processes.js';

export { freePort };

export interface RedisServerOptions {
  readonly appendonly?: boolean;
  readonly appendfsync?: 'always' | 'everysec' | 'no';
  /** Start as a replica of this port on 127.0.0.1. */
  readonly replicaOf?: number;
  /** More redis-server arguments, e.g. ['--rename-command', 'FCALL', ''] to act like a Redis without functions. */
  readonly extraArgs?: readonly string[];
}

export class RedisServer {
  private proc: ChildProcess | undefined;
  readonly dir: string;
  private constructor(
    readonly port: number,
    private readonly options: RedisServerOptions,
  ) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'pb-redis-'));
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options);
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async launch(): Promise<void> {
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--dir', this.dir,
      '--save', '',
      '--appendonly', this.options.appendonly === false ? 'no' : 'yes',
      '--appendfsync', this.options.appendfsync ?? 'everysec',
      '--maxmemory-policy', 'noeviction',
      '--daemonize', 'no',
      '--loglevel', 'warning',
      ...(this.options.replicaOf ? ['--replicaof', '127.0.0.1', String(this.options.replicaOf)] : []),
      ...(this.options.extraArgs ?? []),
    ];
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
    this.proc = proc;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`);
      try {
        const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        probe.on('error', () => {});
        await probe.connect();
        const pong = await probe.ping();
        probe.disconnect();
        if (pong === 'PONG') return;
      } catch {
        /* not up yet, or still loading the AOF */
      }
      if (Date.now() > deadline) throw new Error('redis-server did not start in 10 s');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Graceful stop: Redis flushes the AOF before exiting. */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
    this.proc = undefined;
  }

  /** Crash: whatever the AOF had not written is lost, as in a power cut of the process. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
    this.proc = undefined;
  }

  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  client(): Redis {
    return new Redis(this.url, { maxRetriesPerRequest: 3 });
  }
}

/** A real Redis Sentinel (redis-server --sentinel) watching one master on 127.0.0.1, quorum 1. */
export class RedisSentinel {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(masterName: string, masterPort: number, downAfterMs = 1000): Promise<RedisSentinel> {
    const port = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pb-sentinel-'));
    const conf = path.join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 1`,
        `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
        `sentinel failover-timeout ${masterName} 10000`,
        `sentinel parallel-syncs ${masterName} 1`,
        '',
      ].join('\n'),
    );
    const s = new RedisSentinel(port, dir);
    s.proc = spawn('redis-server', [conf, '--sentinel', '--loglevel', 'warning'], { stdio: ['ignore', 'ignore', 'inherit'] });
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const probe = s.client();
        const addr = await probe.call('SENTINEL', 'get-master-addr-by-name', masterName);
        probe.disconnect();
        if (Array.isArray(addr)) return s;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error('redis sentinel did not start in 10 s');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  client(): Redis {
    const c = new Redis(this.port, '127.0.0.1', { maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => {});
    return c;
  }

  /** The port of the master the sentinel currently names. */
  async masterPort(masterName: string): Promise<number> {
    const c = this.client();
    try {
      const addr = (await c.call('SENTINEL', 'get-master-addr-by-name', masterName)) as string[];
      return Number(addr[1]);
    } finally {
      c.disconnect();
    }
  }

  async destroy(): Promise<void> {
    const proc = this.proc;
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
