import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  deadLetterJson,
  formatDuration,
  formatTable,
  hostMatches,
  logLineMatches,
  parseLogLine,
  parseStatusFilter,
  redactRedisUrl,
  renderDeadLetters,
  renderLogLine,
  renderStatus,
  isPm2Noise,
  templateHost,
} from '../../src/ctl/format.js';
import type { DeadLetter, QueueInspection } from '../../src/shared/queue.js';

describe('formatDuration', () => {
  const table: [number, string][] = [
    [0, '0ms'],
    [-5, '0ms'],
    [12.7, '12ms'],
    [999, '999ms'],
    [1000, '1.0s'],
    [4250, '4.2s'],
    [9999, '9.9s'],
    [10_000, '10s'],
    [59_999, '59s'],
    [60_000, '1m00s'],
    [192_000, '3m12s'],
    [3_599_000, '59m59s'],
    [3_600_000, '1h00m'],
    [7_500_000, '2h05m'],
    [86_400_000, '1d00h'],
    [273_600_000, '3d04h'],
    [Number.NaN, '-'],
    [Number.POSITIVE_INFINITY, '-'],
  ];
  for (const [ms, want] of table) it(`${ms} -> ${want}`, () => assert.equal(formatDuration(ms), want));
});

describe('formatTable', () => {
  it('pads columns to the widest cell, right-aligns numbers, no trailing spaces', () => {
    const out = formatTable(
      [{ header: 'NAME' }, { header: 'N', align: 'right' }, { header: 'NOTE' }],
      [
        ['a', '1', ''],
        ['longer', '1234', 'x'],
      ],
    );
    assert.equal(out, ['NAME       N  NOTE', 'a          1', 'longer  1234  x'].join('\n'));
  });
  it('headers only when there are no rows', () => {
    assert.equal(formatTable([{ header: 'A' }, { header: 'B' }], []), 'A  B');
  });
  it('a missing cell counts as empty', () => {
    assert.equal(formatTable([{ header: 'A' }, { header: 'B' }], [['x']]), 'A  B\nx');
  });
});

describe('templateHost', () => {
  const table: [string, string][] = [
    ['http://sample_domain_endpoint.com/data?key={key}', 'sample_domain_endpoint.com'],
    ['https://Partner.Example:8443/p/{id}', 'partner.example:8443'],
    ['http://127.0.0.1:80/x', '127.0.0.1'],
    ['http://user:pw@h.example/x', 'h.example'],
    ['http://{tenant}.example.com/x', '{tenant}.example.com'],
    ['', ''],
    ['not a url', ''],
  ];
  for (const [url, want] of table) it(JSON.stringify(url), () => assert.equal(templateHost(url), want));
});

describe('hostMatches', () => {
  const table: [string, string, boolean][] = [
    ['example.com', 'example.com', true],
    ['example.com', 'EXAMPLE.com', true],
    ['example.com:8080', 'example.com', true],
    ['example.com:8080', 'example.com:8080', true],
    ['example.com:8080', 'example.com:9090', false],
    ['example.com', 'example.com:8080', false],
    ['api.example.com', 'example.com', false],
    ['example.com', '', false],
    ['', '', false],
  ];
  for (const [host, filter, want] of table) it(`${host} ~ ${filter}: ${want}`, () => assert.equal(hostMatches(host, filter), want));
});

describe('parseStatusFilter', () => {
  const table: [string, (number | null)[], (number | null)[]][] = [
    ['5xx', [500, 503, 599], [499, 600, 200, null]],
    ['4xx,5xx', [404, 500], [200, 302, null]],
    ['404', [404], [400, 405, null]],
    ['error', [null], [200, 500]],
    ['5XX, error', [502, null], [404]],
  ];
  for (const [spec, yes, no] of table) {
    it(spec, () => {
      const f = parseStatusFilter(spec);
      for (const s of yes) assert.equal(f(s), true, `${spec} should match ${s}`);
      for (const s of no) assert.equal(f(s), false, `${spec} should not match ${s}`);
    });
  }
  for (const bad of ['', 'x', '6xx', '5x', '1000', '4xx,,nope']) {
    it(`refuses ${JSON.stringify(bad)}`, () => assert.throws(() => parseStatusFilter(bad), /bad --status/));
  }
});

const ok = {
  postbackId: '1795584176858-0:1',
  attempt: 1,
  maxAttempts: 5,
  method: 'GET',
  url: 'http://sample_domain_endpoint.com/data?key=Phyllobates&value=Terribilis&foo=',
  endpointHost: 'sample_domain_endpoint.com',
  deliveredAt: '2026-11-27T07:21:03.111Z',
  status: 200,
  durationMs: 12,
  responseBody: 'ok',
  queuedMs: 3,
  consumer: 'web1-0',
  event: 'delivery_succeeded',
  level: 'info',
  message: 'delivery attempt',
  pid: 4242,
  service: 'delivery',
  timestamp: '2026-11-27T07:21:03.123Z',
};
const retry = { ...ok, event: 'delivery_retry_scheduled', level: 'warn', status: null, durationMs: 10000, errCode: 'ETIMEDOUT', error: 'Timeout awaiting request', attempt: 2, nextAttemptInMs: 3900, url: 'http://slow.example/x' };
const dead = { ...ok, event: 'delivery_dead_lettered', level: 'error', status: 404, durationMs: 8, reason: 'permanent_status', url: 'http://127.0.0.1:5555/gone', endpointHost: '127.0.0.1:5555' };
const undeliverable = { event: 'delivery_dead_lettered', level: 'error', message: 'postback cannot be delivered', postbackId: '1-0:0', reason: 'permanent_error', errCode: 'ERR_TEMPLATE_MISSING', error: 'the endpoint template is gone from Redis', timestamp: '2026-11-27T07:21:04.000Z', service: 'delivery', pid: 1 };
const started = { event: 'worker_started', level: 'info', message: 'delivery worker started', concurrency: 64, maxAttempts: 5, consumer: 'web1-0', timestamp: '2026-11-27T07:20:00.000Z', service: 'delivery', pid: 1 };

describe('renderLogLine', () => {
  const table: [string, string, string][] = [
    [
      'a delivery',
      JSON.stringify(ok),
      '2026-11-27T07:21:03.123Z  OK     200           12ms  1/5    GET   http://sample_domain_endpoint.com/data?key=Phyllobates&value=Terribilis&foo=  1795584176858-0:1',
    ],
    [
      'a retry after a timeout: error code in the status column, when it is due',
      JSON.stringify(retry),
      '2026-11-27T07:21:03.123Z  RETRY  ETIMEDOUT      10s  2/5    GET   http://slow.example/x  1795584176858-0:1  next in 3.9s  Timeout awaiting request',
    ],
    [
      'a dead letter with its reason',
      JSON.stringify(dead),
      '2026-11-27T07:21:03.123Z  DEAD   404            8ms  1/5    GET   http://127.0.0.1:5555/gone  1795584176858-0:1  permanent_status',
    ],
    [
      'a postback dead-lettered without an attempt',
      JSON.stringify(undeliverable),
      '2026-11-27T07:21:04.000Z  DEAD   ERR_TEMPLATE_MISSING        -  -      -     -  1-0:0  permanent_error  the endpoint template is gone from Redis',
    ],
    [
      'another event: level, event, message, the rest as key=value',
      JSON.stringify(started),
      '2026-11-27T07:20:00.000Z  INFO   worker_started  delivery worker started  concurrency=64  maxAttempts=5  consumer=web1-0',
    ],
    ['not JSON: unchanged', 'Error: something went wrong', 'Error: something went wrong'],
    ['a JSON array: unchanged', '[1,2]', '[1,2]'],
    ['broken JSON: unchanged', '{"event":"delivery_succ', '{"event":"delivery_succ'],
    ['an empty line: unchanged', '', ''],
  ];
  for (const [name, line, want] of table) it(name, () => assert.equal(renderLogLine(line), want));
});

describe('logLineMatches', () => {
  const rec = (o: object) => parseLogLine(JSON.stringify(o));
  const table: [string, ReturnType<typeof rec>, Parameters<typeof logLineMatches>[1], boolean][] = [
    ['no filter: any line', undefined, {}, true],
    ['no filter: other events', rec(started), {}, true],
    ['status filter: other events out', rec(started), { status: parseStatusFilter('5xx') }, false],
    ['status filter: unparsable lines out', undefined, { status: parseStatusFilter('5xx') }, false],
    ['4xx matches a 404', rec(dead), { status: parseStatusFilter('4xx') }, true],
    ['5xx does not match a 404', rec(dead), { status: parseStatusFilter('5xx') }, false],
    ['error matches a timeout', rec(retry), { status: parseStatusFilter('error') }, true],
    ['host matches endpointHost', rec(ok), { host: 'sample_domain_endpoint.com' }, true],
    ['host without port matches any port', rec(dead), { host: '127.0.0.1' }, true],
    ['host with another port', rec(dead), { host: '127.0.0.1:1' }, false],
    ['host and status both needed', rec(dead), { host: '127.0.0.1', status: parseStatusFilter('5xx') }, false],
  ];
  for (const [name, r, f, want] of table) it(name, () => assert.equal(logLineMatches(r, f), want));
});

describe('redactRedisUrl', () => {
  const table: [string, string][] = [
    ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
    ['redis://:s3cret@127.0.0.1:6379/0', 'redis://:***@127.0.0.1:6379/0'],
    ['redis://app:s3cret@h:6379', 'redis://app:***@h:6379'],
    ['redis-sentinel://:pw@s1:26379,s2:26379/mymaster', 'redis-sentinel://:***@s1:26379,s2:26379/mymaster'],
    ['redis-sentinel://:pw@s1,s2/m/0?sentinelPassword=sp', 'redis-sentinel://:***@s1,s2/m/0?sentinelPassword=***'],
    ['unix:///run/redis.sock', 'unix:///run/redis.sock'],
  ];
  for (const [url, want] of table) it(url, () => assert.equal(redactRedisUrl(url), want));
});

const now = Date.parse('2026-11-27T08:00:00.000Z');

describe('renderStatus', () => {
  const busy: QueueInspection = {
    prefix: 'pb',
    live: 12,
    streamLength: 3,
    waiting: 1,
    inFlight: 2,
    oldestAgeMs: 192_000,
    oldestInFlight: { entryId: '1795584176858-0', ageMs: 12_000, consumer: 'web1-0', idleMs: 3_000, deliveries: 1 },
    retryScheduled: 4,
    nextRetryDueMs: now + 1200,
    deadLetters: 7,
    templates: 2,
    groupExists: true,
    consumers: [
      { name: 'web1-0', pending: 2, idleMs: 300, inactiveMs: 300, heartbeatAgeMs: 4_200 },
      { name: 'web1-1', pending: 0, idleMs: 62_000 },
    ],
  };
  it('a busy queue', () => {
    assert.equal(
      renderStatus(busy, now, 'redis://:pw@127.0.0.1:6379'),
      [
        'Queue  redis://:***@127.0.0.1:6379  prefix pb',
        '  live postbacks       12  waiting, in flight or scheduled for a retry',
        '  stream entries        3  1 waiting, 2 in flight',
        '  oldest entry      3m12s  age of the oldest entry in the stream',
        '  oldest in flight    12s  1795584176858-0 on web1-0, idle 3.0s, read 1x',
        '  retry scheduled       4  next due in 1.2s',
        '  dead letters          7  postback-ctl dead list',
        '  templates             2',
        '',
        'Consumers  (group delivery, 2)',
        '  NAME    ALIVE          PENDING   IDLE  INACTIVE',
        '  web1-0  yes, 4.2s ago        2  300ms     300ms',
        '  web1-1  no                   0  1m02s         -',
      ].join('\n'),
    );
  });
  it('an empty queue before any worker started', () => {
    const idle: QueueInspection = { ...busy, live: 0, streamLength: 0, waiting: 0, inFlight: 0, oldestAgeMs: 0, retryScheduled: 0, deadLetters: 0, templates: 0, groupExists: false, consumers: [] };
    delete (idle as { oldestInFlight?: unknown }).oldestInFlight;
    delete (idle as { nextRetryDueMs?: unknown }).nextRetryDueMs;
    const out = renderStatus(idle, now, 'redis://127.0.0.1:6379');
    assert.match(out, /^ {2}oldest entry +- *$/m);
    assert.match(out, /^ {2}retry scheduled +0$/m);
    assert.match(out, /Consumers {2}none: the consumer group does not exist yet/);
  });
  it('an overdue retry says so', () => {
    assert.match(renderStatus({ ...busy, nextRetryDueMs: now - 5000 }, now, 'redis://h'), /retry scheduled +4 {2}next overdue by 5\.0s/);
  });
});

describe('renderDeadLetters', () => {
  const letter: DeadLetter = {
    deadId: '1795584200000-0',
    id: '1795584176858-0:1',
    method: 'GET',
    url: 'http://partner.example:8080/data?key={key}',
    data: '{"key":"Phyllobates","note":"a\\nb"}',
    attempts: 5,
    reason: 'attempts_exhausted',
    status: '503',
    error: 'HTTP 503',
    failedAt: now - 192_000,
  };
  const timeout: DeadLetter = { ...letter, deadId: '1795584200001-0', id: '1795584176858-0:2', status: '', error: 'ETIMEDOUT: Timeout awaiting request', failedAt: 0 };
  it('one row per letter, the last status or error, the data on one line', () => {
    assert.equal(
      renderDeadLetters([letter, timeout], now),
      [
        'DEAD ID          POSTBACK ID          AGE  HOST                  ATTEMPTS  REASON              LAST                                 DATA',
        '1795584200000-0  1795584176858-0:1  3m12s  partner.example:8080         5  attempts_exhausted  HTTP 503                             {"key":"Phyllobates","note":"a\\nb"}',
        '1795584200001-0  1795584176858-0:2      -  partner.example:8080         5  attempts_exhausted  ETIMEDOUT: Timeout awaiting request  {"key":"Phyllobates","note":"a\\nb"}',
      ].join('\n'),
    );
  });
  it('deadLetterJson adds the host, an ISO time, and the data parsed', () => {
    const j = deadLetterJson(letter);
    assert.equal(j.host, 'partner.example:8080');
    assert.equal(j.failedAt, '2026-11-27T07:56:48.000Z');
    assert.deepEqual(j.data, { key: 'Phyllobates', note: 'a\nb' });
    assert.equal(deadLetterJson({ ...letter, data: 'not json' }).data, 'not json');
  });
});

describe('isPm2Noise', () => {
  const cases: [string, boolean][] = [
    ['Reloading log...', true],
    ['Reloading log...\r', true],
    ['{"event":"ingest_ready"}', false],
    ['Reloading logs for process id 0', false],
    ['Error: something pm2 caught on stderr', false],
  ];
  for (const [line, want] of cases) it(JSON.stringify(line), () => assert.equal(isPm2Noise(line), want));
});
