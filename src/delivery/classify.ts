/**
 * What to do with the result of one delivery attempt. Pure: the caller passes the attempt number,
 * the limit, and the retry delay it computed.
 */

/** The result of one attempt, as the HTTP layer saw it. */
export type AttemptResult =
  | { readonly kind: 'response'; readonly status: number }
  /** No usable response: `code` is a Node/got error code (ETIMEDOUT, ECONNREFUSED, ...) or one of ours. */
  | { readonly kind: 'error'; readonly code: string };

export type Verdict = 'delivered' | 'retryable' | 'permanent';

/** Errors that no retry can fix: the postback itself is broken. */
const PERMANENT_ERROR_CODES = new Set([
  'ERR_INVALID_URL',
  'ERR_UNSUPPORTED_PROTOCOL',
  'ERR_TEMPLATE_MISSING',
  'ERR_BAD_POSTBACK',
]);

/** Statuses worth retrying: the partner is overloaded, down or asked us to come back. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

export function classifyAttempt(result: AttemptResult): Verdict {
  if (result.kind === 'error') return PERMANENT_ERROR_CODES.has(result.code) ? 'permanent' : 'retryable';
  const { status } = result;
  if (status >= 200 && status < 300) return 'delivered';
  return isRetryableStatus(status) ? 'retryable' : 'permanent';
}

export type Disposition =
  | { readonly action: 'ack' }
  | { readonly action: 'retry'; readonly delayMs: number }
  | { readonly action: 'dead'; readonly reason: DeadReason };

/** Why a postback was dead-lettered; stored with it and shown by the CLI. */
export type DeadReason = 'permanent_status' | 'permanent_error' | 'attempts_exhausted';

/**
 * Decide the fate of a postback after attempt number `attempt` (1 = first) out of `maxAttempts`.
 * `retryDelayMs` is only used when another attempt is due.
 */
export function decide(result: AttemptResult, attempt: number, maxAttempts: number, retryDelayMs: number): Disposition {
  const verdict = classifyAttempt(result);
  if (verdict === 'delivered') return { action: 'ack' };
  if (verdict === 'permanent') {
    return { action: 'dead', reason: result.kind === 'response' ? 'permanent_status' : 'permanent_error' };
  }
  if (attempt >= maxAttempts) return { action: 'dead', reason: 'attempts_exhausted' };
  return { action: 'retry', delayMs: retryDelayMs };
}
