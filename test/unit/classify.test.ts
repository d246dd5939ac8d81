import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyAttempt, decide, isRetryableStatus, type AttemptResult } from '../../src/delivery/classify.js';

const res = (status: number): AttemptResult => ({ kind: 'response', status });
const err = (code: string): AttemptResult => ({ kind: 'error', code });

describe('classifyAttempt', () => {
  const table: [AttemptResult, string][] = [
    [res(200), 'delivered'],
    [res(201), 'delivered'],
    [res(202), 'delivered'],
    [res(204), 'delivered'],
    [res(299), 'delivered'],
    [res(301), 'permanent'], // redirects are followed by the client; one left over is the endpoint's answer
    [res(304), 'permanent'],
    [res(400), 'permanent'],
    [res(401), 'permanent'],
    [res(403), 'permanent'],
    [res(404), 'permanent'],
    [res(410), 'permanent'],
    [res(422), 'permanent'],
    [res(408), 'retryable'],
    [res(425), 'retryable'],
    [res(429), 'retryable'],
    [res(500), 'retryable'],
    [res(502), 'retryable'],
    [res(503), 'retryable'],
    [res(504), 'retryable'],
    [res(599), 'retryable'],
    [err('ETIMEDOUT'), 'retryable'],
    [err('ECONNREFUSED'), 'retryable'],
    [err('ECONNRESET'), 'retryable'],
    [err('ENOTFOUND'), 'retryable'],
    [err('EAI_AGAIN'), 'retryable'],
    [err('EPIPE'), 'retryable'],
    [err('ERR_ABORTED'), 'retryable'],
    [err('ERR_INVALID_URL'), 'permanent'],
    [err('ERR_UNSUPPORTED_PROTOCOL'), 'permanent'],
    [err('ERR_TEMPLATE_MISSING'), 'permanent'],
    [err('ERR_BAD_POSTBACK'), 'permanent'],
    [err('ERR_DESTINATION_FORBIDDEN'), 'permanent'],
  ];
  for (const [result, want] of table) {
    it(`${result.kind === 'response' ? result.status : result.code} -> ${want}`, () => assert.equal(classifyAttempt(result), want));
  }
});

describe('isRetryableStatus', () => {
  it('is true exactly for 408, 425, 429 and 5xx', () => {
    const retryable = [];
    for (let s = 100; s < 600; s++) if (isRetryableStatus(s)) retryable.push(s);
    assert.deepEqual(retryable.filter((s) => s < 500), [408, 425, 429]);
    assert.equal(retryable.filter((s) => s >= 500).length, 100);
  });
});

describe('decide', () => {
  const table: [string, AttemptResult, number, number, ReturnType<typeof decide>][] = [
    ['2xx on the first attempt acks', res(200), 1, 5, { action: 'ack' }],
    ['2xx on the last attempt acks', res(204), 5, 5, { action: 'ack' }],
    ['5xx before the last attempt retries', res(503), 1, 5, { action: 'retry', delayMs: 1234 }],
    ['timeout before the last attempt retries', err('ETIMEDOUT'), 4, 5, { action: 'retry', delayMs: 1234 }],
    ['5xx on the last attempt is dead: exhausted', res(500), 5, 5, { action: 'dead', reason: 'attempts_exhausted' }],
    ['error on the last attempt is dead: exhausted', err('ECONNREFUSED'), 5, 5, { action: 'dead', reason: 'attempts_exhausted' }],
    ['404 on the first attempt is dead at once', res(404), 1, 5, { action: 'dead', reason: 'permanent_status' }],
    ['bad URL is dead at once', err('ERR_INVALID_URL'), 1, 5, { action: 'dead', reason: 'permanent_error' }],
    ['a forbidden destination is dead at once, with its own reason', err('ERR_DESTINATION_FORBIDDEN'), 1, 5, { action: 'dead', reason: 'destination_forbidden' }],
    ['max 1 attempt: a 5xx is dead', res(502), 1, 1, { action: 'dead', reason: 'attempts_exhausted' }],
  ];
  for (const [name, result, attempt, max, want] of table) {
    it(name, () => assert.deepEqual(decide(result, attempt, max, 1234), want));
  }
});
