import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/shared/config.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return [...err.problems];
  }
}

describe('loadConfig', () => {
  it('has documented defaults with an empty environment', () => {
    const c = loadConfig({});
    assert.equal(c.redisUrl, 'redis://127.0.0.1:6379');
    assert.equal(c.ingestHost, '127.0.0.1');
    assert.equal(c.ingestPort, 3000);
    assert.equal(c.unmatchedPlaceholderDefault, '');
    assert.equal(c.deliveryMaxAttempts, 5);
    assert.equal(c.deliveryTimeoutMs, 10_000);
    assert.equal(c.deliveryConcurrency, 64);
    assert.equal(c.deliveryPostFormat, 'json');
    assert.ok(Object.isFrozen(c));
  });

  it('reads the operator interface names', () => {
    const c = loadConfig({
      REDIS_URL: 'redis://:secret@10.0.0.5:6380/2',
      INGEST_PORT: '8080',
      INGEST_HOST: '0.0.0.0',
      UNMATCHED_PLACEHOLDER_DEFAULT: 'n/a',
      DELIVERY_MAX_ATTEMPTS: '8',
      DELIVERY_TIMEOUT_MS: '2500',
      DELIVERY_CONCURRENCY: '200',
      DELIVERY_POST_FORMAT: 'form',
      LOG_REDACT_QUERY_PARAMS: ' Token , KEY ,,',
    });
    assert.equal(c.redisUrl, 'redis://:secret@10.0.0.5:6380/2');
    assert.equal(c.ingestPort, 8080);
    assert.equal(c.ingestHost, '0.0.0.0');
    assert.equal(c.unmatchedPlaceholderDefault, 'n/a');
    assert.equal(c.deliveryMaxAttempts, 8);
    assert.equal(c.deliveryTimeoutMs, 2500);
    assert.equal(c.deliveryConcurrency, 200);
    assert.equal(c.deliveryPostFormat, 'form');
    assert.deepEqual(c.logRedactQueryParams, ['token', 'key']);
  });

  it('empty strings count as unset, except the placeholder default', () => {
    const c = loadConfig({ INGEST_PORT: '', UNMATCHED_PLACEHOLDER_DEFAULT: '' });
    assert.equal(c.ingestPort, 3000);
    assert.equal(c.unmatchedPlaceholderDefault, '');
  });

  it('names the consumer after the host and pm2 instance unless told', () => {
    assert.match(loadConfig({ NODE_APP_INSTANCE: '3' }).deliveryConsumerName, /-3$/);
    assert.equal(loadConfig({ DELIVERY_CONSUMER_NAME: 'w1' }).deliveryConsumerName, 'w1');
  });

  const bad: [string, Record<string, string>, RegExp][] = [
    ['a port out of range', { INGEST_PORT: '70000' }, /^INGEST_PORT: /],
    ['a non-number', { DELIVERY_TIMEOUT_MS: '10s' }, /^DELIVERY_TIMEOUT_MS: /],
    ['a fraction where an integer is due', { DELIVERY_MAX_ATTEMPTS: '2.5' }, /^DELIVERY_MAX_ATTEMPTS: /],
    ['zero attempts', { DELIVERY_MAX_ATTEMPTS: '0' }, /^DELIVERY_MAX_ATTEMPTS: /],
    ['zero concurrency', { DELIVERY_CONCURRENCY: '0' }, /^DELIVERY_CONCURRENCY: /],
    ['a non-redis URL', { REDIS_URL: 'http://localhost' }, /^REDIS_URL: /],
    ['an unknown post format', { DELIVERY_POST_FORMAT: 'xml' }, /^DELIVERY_POST_FORMAT: /],
    ['an unknown log level', { LOG_LEVEL: 'verbose' }, /^LOG_LEVEL: /],
    ['backoff max below base', { DELIVERY_BACKOFF_BASE_MS: '5000', DELIVERY_BACKOFF_MAX_MS: '1000' }, /^DELIVERY_BACKOFF_MAX_MS: /],
    ['claim idle not above twice the timeout', { DELIVERY_TIMEOUT_MS: '30000', DELIVERY_CLAIM_MIN_IDLE_MS: '60000' }, /^DELIVERY_CLAIM_MIN_IDLE_MS: /],
  ];
  for (const [name, env, re] of bad) {
    it(`refuses ${name}, naming the setting`, () => {
      const p = problems(env);
      assert.equal(p.length, 1, p.join('; '));
      assert.match(p[0]!, re);
    });
  }

  it('lists every bad setting at once', () => {
    const p = problems({ INGEST_PORT: 'x', DELIVERY_CONCURRENCY: '-1', LOG_LEVEL: 'loud' });
    assert.deepEqual(p.map((s) => s.split(':')[0]).sort(), ['DELIVERY_CONCURRENCY', 'INGEST_PORT', 'LOG_LEVEL']);
  });
});
