import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  compileTemplate,
  encodeComponent,
  encodedLength,
  expandedLength,
  expandTemplate,
  formBodyLength,
  isHttpUrlTemplate,
  placeholderKeys,
  placeholderProblem,
  type DataObject,
} from '../../src/shared/template.js';
import { formBody } from '../../src/delivery/deliver.js';

const expand = (url: string, data: DataObject, dflt = '') => expandTemplate(compileTemplate(url), data, dflt);

describe('expandTemplate', () => {
  it("gives exactly the brief's sample response URL", () => {
    const sample = JSON.parse(readFileSync(new URL('../fixtures/sample.json', import.meta.url), 'utf8'));
    const urls = sample.data.map((d: DataObject) => expand(sample.endpoint.url, d));
    assert.equal(urls[1], 'http://sample_domain_endpoint.com/data?key=Phyllobates&value=Terribilis&foo=');
    assert.equal(urls[0], 'http://sample_domain_endpoint.com/data?key=Azureus&value=Dendrobates&foo=');
  });

  const cases: [name: string, url: string, data: DataObject, dflt: string, want: string][] = [
    ['no placeholders', 'http://h/x?a=1', { a: 'b' }, '', 'http://h/x?a=1'],
    ['one key', 'http://h/?k={k}', { k: 'v' }, '', 'http://h/?k=v'],
    ['a key used twice is replaced twice', 'http://h/{k}?a={k}&b={k}', { k: 'v' }, '', 'http://h/v?a=v&b=v'],
    ['missing key gets the default', 'http://h/?a={a}&b={b}', { a: '1' }, '', 'http://h/?a=1&b='],
    ['configured default', 'http://h/?a={a}&b={b}', { a: '1' }, 'none', 'http://h/?a=1&b=none'],
    ['default is encoded too', 'http://h/?b={b}', {}, 'a&b=c', 'http://h/?b=a%26b%3Dc'],
    ['null counts as missing', 'http://h/?a={a}', { a: null }, 'd', 'http://h/?a=d'],
    ['empty string is a value, not missing', 'http://h/?a={a}', { a: '' }, 'd', 'http://h/?a='],
    ['numbers', 'http://h/?n={n}&f={f}', { n: 42, f: -1.5 }, '', 'http://h/?n=42&f=-1.5'],
    ['booleans', 'http://h/?t={t}&f={f}', { t: true, f: false }, '', 'http://h/?t=true&f=false'],
    ['reserved characters are percent-encoded', 'http://h/?q={q}', { q: 'a b&c=d/e?f#g+h%' }, '', 'http://h/?q=a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh%25'],
    ['unicode as UTF-8', 'http://h/?q={q}', { q: 'żółw 🐢' }, '', 'http://h/?q=%C5%BC%C3%B3%C5%82w%20%F0%9F%90%A2'],
    ['lone surrogate becomes U+FFFD, never a throw', 'http://h/?q={q}', { q: 'a\uD800b' }, '', 'http://h/?q=a%EF%BF%BDb'],
    ['placeholder in the host', 'http://{sub}.example.com/', { sub: 'eu' }, '', 'http://eu.example.com/'],
    ['key names are case-sensitive', 'http://h/?a={Key}', { key: 'x' }, '', 'http://h/?a='],
    ['keys with spaces and dots', 'http://h/?a={my key}&b={a.b}', { 'my key': '1', 'a.b': '2' }, '', 'http://h/?a=1&b=2'],
    ['unbalanced braces stay literal', 'http://h/?a={a&b=1', { a: '1' }, '', 'http://h/?a={a&b=1'],
    ['any text between braces is a key name', 'http://h/?a={a&b=}', { 'a&b=': 'x y' }, '', 'http://h/?a=x%20y'],
    ['empty braces stay literal', 'http://h/?a={}', {}, 'x', 'http://h/?a={}'],
    ['inherited names are not data', 'http://h/?a={constructor}&b={__proto__}', {}, '', 'http://h/?a=&b='],
    ['adjacent placeholders', 'http://h/{a}{b}', { a: '1', b: '2' }, '', 'http://h/12'],
  ];
  for (const [name, url, data, dflt, want] of cases) {
    it(name, () => assert.equal(expand(url, data, dflt), want));
  }
});

describe('compileTemplate / placeholderKeys', () => {
  it('lists keys in order with repeats', () => {
    assert.deepEqual(placeholderKeys(compileTemplate('http://h/{a}?b={b}&a={a}')), ['a', 'b', 'a']);
  });
  it('keeps literal text between keys', () => {
    assert.deepEqual(compileTemplate('x{a}y{b}z').parts, ['x', 'a', 'y', 'b', 'z']);
  });
});

describe('encodeComponent', () => {
  for (const [input, want] of [
    ['', ''],
    ['abc-_.!~*\'()', "abc-_.!~*'()"],
    ['\uDC00', '%EF%BF%BD'],
    ['\uD83D\uDC22', '%F0%9F%90%A2'],
  ] as const) {
    it(JSON.stringify(input), () => assert.equal(encodeComponent(input), want));
  }
});

describe('isHttpUrlTemplate', () => {
  const table: [string, boolean][] = [
    ['http://sample_domain_endpoint.com/data?key={key}', true],
    ['https://example.com/', true],
    ['HTTP://EXAMPLE.COM/x', true],
    ['http://{sub}.example.com/p', true],
    ['http://127.0.0.1:8080/p?x={x}', true],
    ['ftp://example.com/', false],
    ['javascript:alert(1)', false],
    ['/relative/path', false],
    ['example.com/path', false],
    ['http://', false],
    ['', false],
    ['http://:80/', false],
    ['http://a b/', false],
  ];
  for (const [url, ok] of table) it(`${JSON.stringify(url)} -> ${ok}`, () => assert.equal(isHttpUrlTemplate(url), ok));
});

describe('placeholderProblem: odd templates are refused, not sent as they are', () => {
  const table: [string, string | undefined][] = [
    ['http://h/?a={a}&b={b}', undefined],
    ['http://h/', undefined],
    ['http://{sub}.h/{a}{b}', undefined],
    ['http://h/?a={a&b=}', undefined],
    ['http://h/?a={a', "has a '{' at position 12 that opens no {name} placeholder"],
    ['http://h/?a={}', 'has an empty placeholder {} at position 12'],
    ['http://h/?a=a}', "has a '}' that closes no placeholder at position 13"],
    ['http://h/?a={{a}}', "has a '{' at position 12 that opens no {name} placeholder"],
    ['http://h/?a={a}}', "has a '}' that closes no placeholder at position 15"],
    ['http://h/{a}?b={', "has a '{' at position 15 that opens no {name} placeholder"],
  ];
  for (const [url, want] of table) it(`${url} -> ${want ?? 'fine'}`, () => assert.equal(placeholderProblem(url), want));
});

describe('sizes computed without building', () => {
  // Every code point class: unreserved, reserved ASCII, 2-, 3- and 4-byte UTF-8, lone surrogates.
  const texts = ['', 'abc', "-_.!~*'()", ' &=/?#+%', 'żółw', '€uro', '🐢', 'a\uD800b', '\uDC00x', '\uD83D\uDC22\uD83D', 'x\u0000y\u007f', 'a b*c'];
  it('encodedLength is encodeComponent(text).length', () => {
    for (const t of texts) assert.equal(encodedLength(t), encodeComponent(t).length, JSON.stringify(t));
  });
  it('expandedLength is the expanded URL\'s length, whatever the keys, repeats and default', () => {
    const templates = ['http://h/x', 'http://h/?a={a}&b={b}&c={c}', 'http://{a}.h/{a}{a}{a}?n={n}&t={t}', '{missing}'];
    const data: DataObject[] = texts.map((t, i) => ({ a: t, b: texts[(i + 3) % texts.length]!, n: i * 1.5, t: i % 2 === 0, c: null }));
    for (const tpl of templates) {
      for (const d of data) {
        for (const dflt of ['', 'none', 'ü ü']) {
          const c = compileTemplate(tpl);
          assert.equal(expandedLength(c, d, dflt), expandTemplate(c, d, dflt).length, `${tpl} ${JSON.stringify(d)} ${dflt}`);
        }
      }
    }
  });
  it('formBodyLength is the form-encoded body\'s length in bytes', () => {
    const objects: DataObject[] = [{}, { a: '1' }, ...texts.map((t, i) => ({ [t || 'k']: t, n: i, z: null, b: false }))];
    for (const o of objects) assert.equal(formBodyLength(o), Buffer.byteLength(formBody(o)), JSON.stringify(o));
  });
  it('the poison pill (674 placeholders, a 150,000-character value) is measured, not built', () => {
    const tpl = compileTemplate(`http://h/?${'{a}'.repeat(674)}`);
    assert.equal(expandedLength(tpl, { a: '€'.repeat(150_000) }, ''), 'http://h/?'.length + 674 * 150_000 * 9);
  });
});
