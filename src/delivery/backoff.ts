/**
 * Retry delays: exponential backoff with "equal jitter" (half fixed, half random), so retries of many
 * postbacks that failed together spread out while each delay still grows. Pure: randomness and the
 * current time are passed in.
 */

export interface BackoffPolicy {
  /** Delay before the 2nd attempt, before jitter, ms. */
  readonly baseMs: number;
  /** Upper bound of any delay, ms. */
  readonly maxMs: number;
}

/**
 * Delay before the attempt that follows failed attempt number `attempt` (1-based).
 * `random` is a number in [0, 1). `retryAfterMs`, when the partner sent one, is a floor.
 */
export function retryDelayMs(policy: BackoffPolicy, attempt: number, random: number, retryAfterMs?: number): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 52);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  const jittered = Math.round(ceiling / 2 + random * (ceiling / 2));
  const floor = retryAfterMs === undefined ? 0 : retryAfterMs;
  return Math.min(policy.maxMs, Math.max(jittered, floor));
}

/**
 * Parse a Retry-After header (delay-seconds or an HTTP-date) into ms from `nowMs`.
 * Returns undefined when absent or unparseable; never negative.
 */
export function parseRetryAfter(header: string | undefined, nowMs: number): number | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP-date always names a day or month; without letters, V8's lenient Date.parse would read
  // "-5" or "1.5" as dates in the past (and so as "retry now").
  if (!/[a-z]/i.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
