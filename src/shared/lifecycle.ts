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

/** What pm2 prints into an app's own stdout when it reopens the log files in cluster mode. */
export const PM2_LOG_RELOAD_LINE = 'Reloading log...';

/**
 * Keep the apps' logs JSON only. After `pm2 reloadLogs` (logrotate's postrotate), pm2's container
 * code in a cluster-mode process (ingest) calls console.log('Reloading log...') in that process, so
 * the line lands in ingest.log among the JSON. The apps never log through console.log (winston writes
 * to stdout directly), so that one exact line is dropped; anything else passes unchanged.
 */
export function dropPm2LogReloadLine(): void {
  const log = console.log.bind(console);
  console.log = (...args: unknown[]) => {
    if (args.length === 1 && args[0] === PM2_LOG_RELOAD_LINE) return;
    log(...args);
  };
}
