/**
 * The real entry points (`node dist/ingest/main.js`, `node dist/delivery/main.js`) as child processes, with
 * their JSON log lines collected, so tests can kill -9 them, send SIGTERM, and read what they logged.
 * Needs `npm run build` first (the test command runs it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export type Service = 'ingest' | 'delivery';

export interface LogLine {
  readonly level?: string;
  readonly message?: string;
  readonly event?: string;
  readonly [key: string]: unknown;
}

export class AppProcess {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  private exitWaiters: ((code: number | null) => void)[] = [];
  exitCode: number | null | undefined;
  signal: NodeJS.Signals | null = null;

  private constructor(
    readonly service: Service,
    readonly proc: ChildProcess,
  ) {
    let buf = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line) continue;
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ message: line });
        }
      }
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => this.stderr.push(chunk));
    proc.on('exit', (code, signal) => {
      this.exitCode = code;
      this.signal = signal;
      for (const w of this.exitWaiters) w(code);
      this.exitWaiters = [];
    });
  }

  /**
   * Starts a service with the given environment (on top of PATH/HOME only, so nothing leaks in). The
   * tests' partners listen on loopback, so loopback is allowed as a destination unless `env` says otherwise.
   */
  static start(service: Service, env: Record<string, string>): AppProcess {
    const entry = path.join(root, 'dist', service, 'main.js');
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build`);
    const proc = spawn(process.execPath, [entry], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/root',
        LOG_LEVEL: 'info',
        DELIVERY_ALLOW_NETWORKS: '127.0.0.0/8,::1/128',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new AppProcess(service, proc);
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  events(name: string): LogLine[] {
    return this.logs.filter((l) => l.event === name);
  }

  /** Resolves when a log line with this event appears. */
  async waitForEvent(name: string, timeoutMs = 15_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs.find((l) => l.event === name);
      if (hit) return hit;
      if (!this.running) throw new Error(`${this.service} exited (${this.exitCode}) before logging ${name}: ${this.stderr.join('')}`);
      if (Date.now() > deadline) throw new Error(`${this.service} did not log ${name} in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.proc.kill(signal);
  }

  /** Resolves with the exit code (null when killed by a signal); rejects after `timeoutMs`. */
  waitExit(timeoutMs = 30_000): Promise<number | null> {
    if (!this.running) return Promise.resolve(this.exitCode ?? null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.service} did not exit in ${timeoutMs} ms`)), timeoutMs);
      this.exitWaiters.push((code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited in `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.kill('SIGTERM');
    try {
      await this.waitExit(graceMs);
    } catch {
      this.kill('SIGKILL');
      await this.waitExit(5000);
    }
  }
}
