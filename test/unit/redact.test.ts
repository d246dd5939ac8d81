import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostOf, redactUrl } from '../../src/delivery/redact.js';

const params = ['token', 'api_key', 'sig'];

describe('redactUrl', () => {
  const table: [string, string][] = [
    ['http://h/p', 'http://h/p'],
    ['http://h/p?a=1&b=2', 'http://h/p?a=1&b=2'],
    ['http://h/p?token=abc&a=1', 'http://h/p?token=[REDACTED]&a=1'],
    ['http://h/p?a=1&API_KEY=x&sig=y', 'http://h/p?a=1&API_KEY=[REDACTED]&sig=[REDACTED]'],
    ['http://h/p?to%6Ben=abc', 'http://h/p?to%6Ben=[REDACTED]'],
    ['http://h/p?token=a#frag', 'http://h/p?token=[REDACTED]#frag'],
    ['http://h/p?token&x=1', 'http://h/p?token&x=1'],
    ['http://h/p?mytoken=1', 'http://h/p?mytoken=1'],
    ['http://h/p?%zz=1&token=2', 'http://h/p?%zz=1&token=[REDACTED]'],
  ];
  for (const [url, want] of table) it(url, () => assert.equal(redactUrl(url, params), want));
  it('with no parameters configured, returns the URL unchanged', () => assert.equal(redactUrl('http://h/?token=1', []), 'http://h/?token=1'));
});

describe('hostOf', () => {
  for (const [url, want] of [
    ['http://example.com/x', 'example.com'],
    ['https://Example.COM:8443/x', 'example.com:8443'],
    ['http://127.0.0.1:80/', '127.0.0.1'],
    ['not a url', ''],
  ]) {
    it(url!, () => assert.equal(hostOf(url!), want));
  }
});
