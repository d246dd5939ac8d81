import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPath, quickValidate, validateIngestRequest, validateWithSchema } from '../../src/ingest/schemas.js';
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

describe('quickValidate (the hand-checked fast path) is never looser than the schema', () => {
  /** A small deterministic PRNG, so a failure can be replayed. */
  function rng(seed: number) {
    return () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
  }
  const values: unknown[] = [
    'x', '', 'ünï', 0, -0, 1.5, -7, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1e300, true, false, null,
    undefined, [], ['a'], {}, { n: 1 }, Number.NaN, Number.POSITIVE_INFINITY, 10n,
  ];
  const methods: unknown[] = ['GET', 'get', 'Post', 'POST', 'PUT', 'GETS', ' get', 'poſt', 'gEt', '', 1, null, undefined];
  const urls: unknown[] = [
    'http://h.test/?a={a}', 'https://h.test/{a}/{b}', 'http://{host}/x', 'ftp://h.test/', '/relative', 'http://', '', 'http://h.test/' + 'x'.repeat(60),
    'http://h .test/', 'HTTPS://H.TEST/', 'http://[::1]:8080/{a}', 5, null,
  ];
  const keys = ['a', 'b', '', '__proto__x', 'constructor', 'k.e y'];

  function body(r: () => number): unknown {
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
    if (r() < 0.03) return pick([null, [], 'x', 1, undefined]);
    const endpoint: Record<string, unknown> = {};
    if (r() < 0.97) endpoint.method = r() < 0.7 ? pick(methods.slice(0, 4)) : pick(methods);
    if (r() < 0.97) endpoint.url = r() < 0.7 ? pick(urls.slice(0, 3)) : pick(urls);
    if (r() < 0.05) endpoint.extra = 'x';
    const n = r() < 0.1 ? pick([0, 4, 5]) : 1 + Math.floor(r() * 3);
    const data: unknown[] = [];
    for (let i = 0; i < n; i++) {
      if (r() < 0.05) {
        data.push(pick([null, [], 'x', 1]));
        continue;
      }
      const item: Record<string, unknown> = {};
      const m = Math.floor(r() * 4);
      for (let j = 0; j < m; j++) item[r() < 0.9 ? pick(keys.slice(0, 2)) : pick(keys)] = r() < 0.9 ? pick(values.slice(0, 14)) : pick(values);
      data.push(item);
    }
    const b: Record<string, unknown> = {};
    if (r() < 0.97) b.endpoint = r() < 0.03 ? pick([null, [], 'x']) : endpoint;
    if (r() < 0.97) b.data = r() < 0.03 ? pick([null, {}, 'x']) : data;
    if (r() < 0.04) b.extra = 1;
    return b;
  }

  it('on 20,000 generated bodies: whatever it accepts, the schema accepts with the same result', () => {
    const r = rng(12345);
    let quickAccepted = 0;
    let schemaAccepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const b = body(r);
      const quick = quickValidate(b, limits);
      let schema: unknown;
      try {
        schema = validateWithSchema(b, limits);
        schemaAccepted++;
      } catch (err) {
        assert.ok(err instanceof ValidationError);
        schema = undefined;
      }
      if (quick) {
        quickAccepted++;
        // Compared as what gets enqueued (JSON): joi turns -0 into 0, which JSON writes alike.
        assert.ok(schema, `body #${i} passed the fast path only: ${JSON.stringify(b)}`);
        assert.equal(JSON.stringify(quick), JSON.stringify(schema), `body #${i}: ${JSON.stringify(b)}`);
      }
    }
    // Both outcomes are well represented, and the fast path takes most of what is valid.
    assert.ok(schemaAccepted > 2000 && schemaAccepted < 18_000, `schema accepted ${schemaAccepted}`);
    assert.ok(quickAccepted > schemaAccepted * 0.9, `fast path took ${quickAccepted} of ${schemaAccepted} valid bodies`);
  });

  it("takes the brief's sample and the usual shapes", () => {
    for (const b of [
      ok,
      { endpoint: { method: 'post', url: 'https://h.test/' }, data: [{ s: 's', e: '', n: 1.5, t: true, u: null }, {}] },
      { endpoint: { method: 'GET', url: 'http://sample_domain_endpoint.com/data?key={key}&value={value}&foo={bar}' }, data: [{ key: 'Azureus', value: 'Dendrobates' }] },
    ]) {
      assert.deepEqual(quickValidate(b, { maxDataItems: 3, maxUrlLength: 200 }), validateWithSchema(b, { maxDataItems: 3, maxUrlLength: 200 }));
      assert.ok(quickValidate(b, { maxDataItems: 3, maxUrlLength: 200 }));
    }
  });
});
