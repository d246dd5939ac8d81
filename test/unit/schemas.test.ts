import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateIngestRequest, formatPath } from '../../src/ingest/schemas.js';
import { ValidationError } from '../../src/shared/errors.js';

const limits = { maxDataItems: 3, maxUrlLength: 64 };
const ok = { endpoint: { method: 'GET', url: 'http://h.test/?a={a}' }, data: [{ a: 'x' }] };

/** The detail paths a body is rejected with ([] when accepted). */
function rejectedPaths(body: unknown): string[] {
  try {
    validateIngestRequest(body, limits);
    return [];
  } catch (err) {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    assert.equal(err.status, 400);
    return err.details!.map((d) => d.path);
  }
}

describe('validateIngestRequest accepts', () => {
  const table: [string, unknown][] = [
    ['the minimal request', ok],
    ['method in any case', { ...ok, endpoint: { method: 'post', url: 'https://h.test/' } }],
    ['mixed-case method', { ...ok, endpoint: { method: 'Get', url: 'https://h.test/' } }],
    ['every value type', { ...ok, data: [{ s: 's', e: '', n: 1.5, z: 0, t: true, f: false, u: null }] }],
    ['an empty data object', { ...ok, data: [{}] }],
    ['data at the item limit', { ...ok, data: [{}, {}, {}] }],
  ];
  for (const [name, body] of table) {
    it(name, () => assert.deepEqual(rejectedPaths(body), []));
  }

  it('normalises the method to upper case and keeps data as sent', () => {
    const req = validateIngestRequest({ endpoint: { method: 'post', url: 'http://h.test/' }, data: [{ a: 1 }] }, limits);
    assert.deepEqual(req.template, { method: 'POST', url: 'http://h.test/' });
    assert.deepEqual(req.data, [{ a: 1 }]);
  });
});

describe('validateIngestRequest rejects, naming the field', () => {
  const table: [string, unknown, string[]][] = [
    ['a non-object body', [1, 2], ['body']],
    ['a string body', 'hello', ['body']],
    ['null', null, ['body']],
    ['missing endpoint', { data: [{}] }, ['endpoint']],
    ['missing data', { endpoint: ok.endpoint }, ['data']],
    ['missing method', { ...ok, endpoint: { url: 'http://h.test/' } }, ['endpoint.method']],
    ['PUT', { ...ok, endpoint: { method: 'PUT', url: 'http://h.test/' } }, ['endpoint.method']],
    ['method not a string', { ...ok, endpoint: { method: 1, url: 'http://h.test/' } }, ['endpoint.method']],
    ['missing url', { ...ok, endpoint: { method: 'GET' } }, ['endpoint.url']],
    ['relative url', { ...ok, endpoint: { method: 'GET', url: '/x?a={a}' } }, ['endpoint.url']],
    ['ftp url', { ...ok, endpoint: { method: 'GET', url: 'ftp://h.test/' } }, ['endpoint.url']],
    ['url too long', { ...ok, endpoint: { method: 'GET', url: 'http://h.test/' + 'x'.repeat(64) } }, ['endpoint.url']],
    ['empty data', { ...ok, data: [] }, ['data']],
    ['data not an array', { ...ok, data: { a: 1 } }, ['data']],
    ['too many items', { ...ok, data: [{}, {}, {}, {}] }, ['data']],
    ['an item not an object', { ...ok, data: [{}, 'x'] }, ['data[1]']],
    ['an item that is an array', { ...ok, data: [[]] }, ['data[0]']],
    ['a nested object value', { ...ok, data: [{ a: 1 }, { b: 2 }, { key: { x: 1 } }] }, ['data[2].key']],
    ['an array value', { ...ok, data: [{ a: [1] }] }, ['data[0].a']],
    ['an unknown top-level field', { ...ok, extra: 1 }, ['extra']],
    ['an unknown endpoint field', { ...ok, endpoint: { ...ok.endpoint, headers: {} } }, ['endpoint.headers']],
    [
      'several problems at once, all named',
      { endpoint: { method: 'DELETE', url: 'nope' }, data: [{ a: {} }] },
      ['endpoint.method', 'endpoint.url', 'data[0].a'],
    ],
  ];
  for (const [name, body, paths] of table) it(name, () => assert.deepEqual(rejectedPaths(body), paths));

  it('the message names the field and counts the rest', () => {
    try {
      validateIngestRequest({ endpoint: { method: 'DELETE', url: 'nope' }, data: [{}] }, limits);
      assert.fail('should have thrown');
    } catch (err) {
      assert.ok(err instanceof ValidationError);
      assert.match(err.message, /^endpoint\.method must be GET or POST \(and 1 more\)$/);
      assert.equal(err.details![1]!.message, 'endpoint.url must be an absolute http:// or https:// URL');
    }
  });
});

describe('formatPath', () => {
  for (const [path, want] of [
    [[], 'body'],
    [['endpoint', 'url'], 'endpoint.url'],
    [['data', 3, 'key'], 'data[3].key'],
    [['data', 0], 'data[0]'],
  ] as const) {
    it(want, () => assert.equal(formatPath(path), want));
  }
});
