import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/shared/config.js';
import { sentinelOptions } from '../../src/shared/redis.js';

describe('sentinelOptions', () => {
  const table: [string, object | undefined][] = [
    ['redis://127.0.0.1:6379', undefined],
    ['rediss://:pw@h:6380/1', undefined],
    ['redis-sentinel://10.0.0.1:26379/postback', { sentinels: [{ host: '10.0.0.1', port: 26379 }], name: 'postback' }],
    [
      'redis-sentinel://:s%40cret@a:26379,b:26380,c/postback/2',
      { sentinels: [{ host: 'a', port: 26379 }, { host: 'b', port: 26380 }, { host: 'c', port: 26379 }], name: 'postback', password: 's@cret', db: 2 },
    ],
    [
      'redis-sentinel://app:pw@[::1]:26379/pb?sentinelPassword=sp',
      { sentinels: [{ host: '::1', port: 26379 }], name: 'pb', username: 'app', password: 'pw', sentinelPassword: 'sp' },
    ],
  ];
  for (const [url, want] of table) it(url, () => assert.deepEqual(sentinelOptions(url), want));

  for (const bad of ['redis-sentinel://h:26379', 'redis-sentinel:///pb', 'redis-sentinel://h:99999/pb', 'redis-sentinel://h:x/pb']) {
    it(`refuses ${bad}`, () => assert.throws(() => sentinelOptions(bad)));
  }
});

describe('REDIS_URL in the config', () => {
  it('accepts plain and sentinel URLs', () => {
    assert.equal(loadConfig({ REDIS_URL: 'redis://:pw@10.0.0.5:6379/0' }).redisUrl, 'redis://:pw@10.0.0.5:6379/0');
    assert.equal(loadConfig({ REDIS_URL: 'redis-sentinel://a:26379,b:26379/postback' }).redisUrl, 'redis-sentinel://a:26379,b:26379/postback');
  });
  for (const bad of ['http://x', 'redis-sentinel://nohosts', 'localhost:6379']) {
    it(`refuses ${bad}, naming REDIS_URL`, () => {
      assert.throws(
        () => loadConfig({ REDIS_URL: bad }),
        (err) => err instanceof ConfigError && err.problems.length === 1 && err.problems[0]!.startsWith('REDIS_URL: '),
      );
    });
  }
  it('REDIS_MIN_REPLICAS defaults to 0 and is bounded', () => {
    assert.equal(loadConfig({}).redisMinReplicas, 0);
    assert.equal(loadConfig({ REDIS_MIN_REPLICAS: '2' }).redisMinReplicas, 2);
    assert.throws(() => loadConfig({ REDIS_MIN_REPLICAS: '-1' }), ConfigError);
  });
});
