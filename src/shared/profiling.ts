/**
 * On-demand CPU profiles in production: `kill -USR2 <pid>` makes the process record a V8 CPU profile
 * for PROFILE_CPU_SECONDS and write it to PROFILE_DIR as <service>-<pid>-<time>.cpuprofile (open it in
 * Chrome DevTools' Performance panel or speedscope). The profiler runs in the process itself through
 * node:inspector, so no debugger port is opened. docs/monitoring.md says how to read the result.
 */
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from './logger.js';

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result as T)));
  });
}

/** Record a CPU profile for `seconds` and write it to `dir`. Resolves with the file written. */
export async function cpuProfile(dir: string, service: string, seconds: number): Promise<string> {
  const session = new Session();
  session.connect();
  try {
    await post(session, 'Profiler.enable');
    await post(session, 'Profiler.setSamplingInterval', { interval: 1000 });
    await post(session, 'Profiler.start');
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const { profile } = await post<{ profile: unknown }>(session, 'Profiler.stop');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${service}-${process.pid}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    return file;
  } finally {
    session.disconnect();
  }
}

/** SIGUSR2 starts a CPU profile (one at a time). */
export function profileOnSignal(logger: Logger, service: string, dir: string, seconds: number): void {
  let running = false;
  process.on('SIGUSR2', () => {
    if (running) {
      logger.warn('a CPU profile is already being recorded', { event: 'cpu_profile_busy' });
      return;
    }
    running = true;
    logger.info('recording a CPU profile', { event: 'cpu_profile_started', seconds, dir });
    cpuProfile(dir, service, seconds).then(
      (file) => logger.info('CPU profile written', { event: 'cpu_profile_written', file }),
      (err: unknown) => logger.error('CPU profile failed', { event: 'cpu_profile_failed', err: err instanceof Error ? err.message : String(err) }),
    ).finally(() => {
      running = false;
    });
  });
}
