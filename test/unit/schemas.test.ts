import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPath, quickValidate, validateIngestRequest, validateWithSchema, type DeliveryLimits, type IngestLimits } from '../../src/ingest/schemas.js';
import { DEFAULT_POLICY, createDestinationPolicy } from '../../src/shared/destination-policy.js';
import { ValidationError } from '../../src/shared/errors.js';

const delivery: DeliveryLimits = { policy: DEFAULT_POLICY, maxUrlLength: 300, maxBodyBytes: 200, postFormat: 'json', unmatchedDefault: '' };
const limits: IngestLimits = { maxDataItems: 3, maxUrlLength: 64, delivery };
const ok = { endpoint: { method: 'GET', url: 'http://h.test/?a={a}' }, data: [{ a: 'x' }] };

/** The detail paths a body is rejected with ([] when accepted). */
function rejectedPaths(body: unknown, l: IngestLimits = limits): string[] {
  try {
    validateIngestRequest(body, l);
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
    // odd templates: refused, not sent as they are
    ['an unclosed placeholder', { ...ok, endpoint: { method: 'GET', url: 'http://h.test/?a={a' } }, ['endpoint.url']],
    ['an empty placeholder', { ...ok, endpoint: { method: 'GET', url: 'http://h.test/?a={}' } }, ['endpoint.url']],
    ['a stray closing brace', { ...ok, endpoint: { method: 'GET', url: 'http://h.test/?a=}' } }, ['endpoint.url']],
    ['port 0', { ...ok, endpoint: { method: 'GET', url: 'http://h.test:0/?a={a}' } }, ['endpoint.url']],
    // destinations the policy refuses, where the host is a literal address (or localhost)
    ['a loopback literal', { ...ok, endpoint: { method: 'GET', url: 'http://127.0.0.1/?a={a}' } }, ['endpoint.url']],
    ['loopback spelled as a number', { ...ok, endpoint: { method: 'GET', url: 'http://2130706433/' } }, ['endpoint.url']],
    ['loopback in octal', { ...ok, endpoint: { method: 'GET', url: 'http://0177.0.0.1/' } }, ['endpoint.url']],
    ['IPv6 loopback', { ...ok, endpoint: { method: 'GET', url: 'http://[::1]:8080/' } }, ['endpoint.url']],
    ['IPv4-mapped loopback', { ...ok, endpoint: { method: 'GET', url: 'http://[::ffff:127.0.0.1]/' } }, ['endpoint.url']],
    ['cloud metadata', { ...ok, endpoint: { method: 'GET', url: 'http://169.254.169.254/latest/' } }, ['endpoint.url']],
    ['a private address', { ...ok, endpoint: { method: 'POST', url: 'http://10.0.0.1/' } }, ['endpoint.url']],
    ['localhost', { ...ok, endpoint: { method: 'GET', url: 'http://localhost:9090/' } }, ['endpoint.url']],
    // what a postback would be once expanded: measured against the delivery limits
    ['a data object that expands the URL past the limit', { ...ok, data: [{ a: 'x' }, { a: '€'.repeat(100) }] }, ['data[1]']],
    ['the poison pill: 674 placeholders and one long value', { endpoint: { method: 'GET', url: 'http://h/?' + '{a}'.repeat(18) }, data: [{ a: 'y'.repeat(150_000) }] }, ['data[0]']],
    ['a POST body past the limit', { endpoint: { method: 'POST', url: 'http://h.test/' }, data: [{ a: 'x' }, { a: 'z'.repeat(300) }] }, ['data[1]']],
    [
      'several problems at once, all named',
      { endpoint: { method: 'DELETE', url: 'nope' }, data: [{ a: {} }] },
      ['endpoint.method', 'endpoint.url', 'data[0].a'],
    ],
  ];
  for (const [name, body, paths] of table) it(name, () => assert.deepEqual(rejectedPaths(body), paths));

  it('the messages say what is wrong and by how much', () => {
    const message = (body: unknown, l: IngestLimits = limits) => {
      try {
        validateIngestRequest(body, l);
        return '';
      } catch (err) {
        return (err as ValidationError).message;
      }
    };
    assert.equal(message({ ...ok, endpoint: { method: 'GET', url: 'http://2130706433/' } }), 'endpoint.url points at 127.0.0.1, a loopback address deliveries may not connect to');
    assert.equal(message({ ...ok, endpoint: { method: 'GET', url: 'http://[::ffff:a9fe:a9fe]/' } }), 'endpoint.url points at ::ffff:a9fe:a9fe, a ipv4Mapped:linkLocal address deliveries may not connect to');
    assert.equal(message({ ...ok, endpoint: { method: 'GET', url: 'http://h.test/?a={' } }), "endpoint.url has a '{' at position 17 that opens no {name} placeholder");
    assert.equal(message({ ...ok, endpoint: { method: 'GET', url: 'http://h.test:0/' } }), 'endpoint.url must have a port from 1 to 65535');
    assert.equal(message({ ...ok, data: [{ a: 'x'.repeat(290) }] }), 'data[0] expands endpoint.url to 307 characters, more than the limit of 300');
    assert.equal(message({ endpoint: { method: 'POST', url: 'http://h.test/' }, data: [{ a: 'z'.repeat(300) }] }), 'data[0] makes a POST body of 308 bytes, more than the limit of 200');
    const ports = { ...limits, delivery: { ...delivery, policy: createDestinationPolicy({ allowPorts: '443' }) } };
    assert.equal(message({ ...ok, endpoint: { method: 'GET', url: 'http://h.test/' } }, ports), 'endpoint.url has port 80, which deliveries may not connect to');
    assert.equal(message({ ...ok, endpoint: { method: 'GET', url: 'https://h.test/' } }, ports), '');
  });

  it('the operator\'s allowances are the policy\'s: an allowed network is accepted', () => {
    const allowLoopback = { ...limits, delivery: { ...delivery, policy: createDestinationPolicy({ allowNetworks: '127.0.0.0/8' }) } };
    assert.deepEqual(rejectedPaths({ ...ok, endpoint: { method: 'GET', url: 'http://127.0.0.1:8080/?a={a}' } }, allowLoopback), []);
    assert.deepEqual(rejectedPaths({ ...ok, endpoint: { method: 'GET', url: 'http://localhost/' } }, allowLoopback), []);
  });

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
      const l: IngestLimits = { maxDataItems: 3, maxUrlLength: 200, delivery };
      assert.deepEqual(quickValidate(b, l), validateWithSchema(b, l));
      assert.ok(quickValidate(b, l));
    }
  });
});
