import winston from 'winston';

export type Logger = winston.Logger;

/**
 * One JSON line per event on stdout (pm2 writes it to the app's log file). Every line carries
 * `timestamp`, `level`, a fixed `message`, an `event` name, and `service`/`pid`.
 */
export function createLogger(service: string, level = 'info'): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { service, pid: process.pid },
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      winston.format.json(),
    ),
    transports: [new winston.transports.Console()],
  });
}

/** A logger that drops everything: for tests that do not look at logs. */
export function createSilentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
