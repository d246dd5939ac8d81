/**
 * Application errors with a stable `code` (listed in docs/api.md), an HTTP `status`, and `expose`
 * telling whether the message may be shown to a client.
 */
export interface ErrorDetail {
  /** Where in the request the problem is, e.g. `data[3].key` or `endpoint.url`. */
  readonly path: string;
  readonly message: string;
}

export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: string,
    message: string,
    readonly status = 500,
    readonly details: readonly ErrorDetail[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  /** 4xx messages are written for the client; 5xx messages may leak internals. */
  get expose(): boolean {
    return this.status < 500 || this.status === 503;
  }
}

export class ValidationError extends AppError {
  override name = 'ValidationError';
  constructor(message: string, details: readonly ErrorDetail[] = [], code = 'ERR_VALIDATION') {
    super(code, message, 400, details);
  }
}

export class QueueUnavailableError extends AppError {
  override name = 'QueueUnavailableError';
  constructor(message = 'the delivery queue is unavailable; the request was not accepted, retry later', cause?: unknown) {
    super('ERR_QUEUE_UNAVAILABLE', message, 503, [], { cause });
  }
}

export class QueueFullError extends AppError {
  override name = 'QueueFullError';
  constructor(length: number, message = `the delivery queue is full (${length} postbacks waiting); nothing was enqueued, retry later`) {
    super('ERR_QUEUE_FULL', message, 503);
  }

  /** Redis's memory is above the share of maxmemory ingest leaves for draining (QUEUE_MAX_MEMORY_PERCENT). */
  static memory(detail: string): QueueFullError {
    return new QueueFullError(-1, `the delivery queue is full (${detail}); nothing was enqueued, retry later`);
  }
}
