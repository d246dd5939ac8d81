/**
 * A real nginx for tests, on a free port, in a temporary prefix, routing with the repository's own
 * nginx/*.conf (installed as <prefix>/postback/, exactly as production has /etc/nginx/postback/).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nginxConf } from '../../src/bench/nginx-conf.js';
import { canConnect } from '../../src/bench/processes.js';
import { freePort } from './redis-server.js';

const repoNginx = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../nginx');

export interface NginxOptions {
  /** Ports of the ingest processes behind nginx (127.0.0.1). */
  readonly upstreamPorts: readonly number[];
  /** Extra server-level directives (tests of access rules, say). */
  readonly serverExtra?: string;
  readonly workerProcesses?: number;
  /** Written as <prefix>/postback-access.d/test.conf: the operator's monitoring access rules. */
  readonly monitoringAccess?: string;
}

export class Nginx {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly prefix: string,
  ) {}

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get accessLog(): string {
    return path.join(this.prefix, 'logs', 'access.log');
  }

  static async start(options: NginxOptions): Promise<Nginx> {
    const port = await freePort();
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'pb-nginx-'));
    mkdirSync(path.join(prefix, 'logs'));
    symlinkSync(repoNginx, path.join(prefix, 'postback'));
    if (options.monitoringAccess !== undefined) {
      mkdirSync(path.join(prefix, 'postback-access.d'));
      writeFileSync(path.join(prefix, 'postback-access.d', 'test.conf'), options.monitoringAccess);
    }
    writeFileSync(
      path.join(prefix, 'nginx.conf'),
      nginxConf({
        prefix,
        listenPort: port,
        workers: options.workerProcesses ?? 1,
        workerConnections: 4096,
        upstreams: { postback_ingest: options.upstreamPorts },
        keepalive: 64,
        serverAfter: options.serverExtra,
      }),
    );
    const check = spawnSync('nginx', ['-t', '-q', '-p', prefix, '-c', path.join(prefix, 'nginx.conf')], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`nginx -t failed: ${check.stderr}`);
    const nginx = new Nginx(port, prefix);
    nginx.proc = spawn('nginx', ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (nginx.proc.exitCode !== null) throw new Error(`nginx exited with ${nginx.proc.exitCode}`);
      if (Date.now() > deadline) throw new Error('nginx did not start in 10 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    return nginx;
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGQUIT');
      await exited;
    }
    rmSync(this.prefix, { recursive: true, force: true });
  }
}
