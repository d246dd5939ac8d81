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
  'ERR_DESTINATION_FORBIDDEN',
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

/**
 * Why a postback was dead-lettered; stored with it and shown by the CLI. `destination_forbidden`: the
 * destination policy refused the address it would connect to (docs/security.md); `too_large`: its
 * expanded URL or body is over DELIVERY_MAX_URL_LENGTH / DELIVERY_MAX_BODY_BYTES; `preparation_failed`:
 * building the request failed (nothing was sent).
 */
export type DeadReason =
  | 'permanent_status'
  | 'permanent_error'
  | 'attempts_exhausted'
  | 'destination_forbidden'
  | 'too_large'
  | 'preparation_failed';

/**
 * Decide the fate of a postback after attempt number `attempt` (1 = first) out of `maxAttempts`.
 * `retryDelayMs` is only used when another attempt is due.
 */
export function decide(result: AttemptResult, attempt: number, maxAttempts: number, retryDelayMs: number): Disposition {
  const verdict = classifyAttempt(result);
  if (verdict === 'delivered') return { action: 'ack' };
  if (verdict === 'permanent') {
    if (result.kind === 'response') return { action: 'dead', reason: 'permanent_status' };
    return { action: 'dead', reason: result.code === 'ERR_DESTINATION_FORBIDDEN' ? 'destination_forbidden' : 'permanent_error' };
  }
  if (attempt >= maxAttempts) return { action: 'dead', reason: 'attempts_exhausted' };
  return { action: 'retry', delayMs: retryDelayMs };
}
