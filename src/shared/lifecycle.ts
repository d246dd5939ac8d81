/**
 * Signal handling shared by the entry points: the first SIGINT/SIGTERM starts a graceful stop, a second
 * one (or the stop outliving `hardLimitMs`) exits at once. pm2 sends SIGINT, then SIGKILL after
 * kill_timeout, so `hardLimitMs` must be below that.
 */
import { ConfigError, loadConfig, type Config } from './config.js';
import type { Logger } from './logger.js';

/** The configuration from the environment, or exit 1 listing every bad setting (entry points only). */
export function loadConfigOrExit(service: string): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`${service}: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
}

export function onShutdownSignal(logger: Logger, stop: (signal: string) => Promise<void>, hardLimitMs: number): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn('second signal, exiting now', { event: 'shutdown_forced', signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('shutting down', { event: 'shutdown_started', signal });
    const timer = setTimeout(() => {
      logger.error('shutdown took too long, exiting', { event: 'shutdown_timeout', limitMs: hardLimitMs });
      process.exit(1);
    }, hardLimitMs);
    timer.unref();
    stop(signal).then(
      () => {
        logger.info('stopped', { event: 'shutdown_complete' });
        process.exitCode = 0;
        // Let winston flush, then leave even if a stray handle is still open.
        setTimeout(() => process.exit(0), 50).unref();
      },
      (err) => {
        logger.error('shutdown failed', { event: 'shutdown_failed', err });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** Tell pm2 (wait_ready) that this process is ready; a no-op outside pm2. */
export function signalReady(): void {
  if (typeof process.send === 'function') process.send('ready');
}
