import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { excerpt, hostOf, redactUrl } from '../../src/delivery/redact.js';
import { DEFAULT_REDACT_PATH, loadConfig, parsePathPatterns } from '../../src/shared/config.js';

// The defaults, as an operator gets them.
const defaults = loadConfig({});
const words = defaults.logRedactQueryParams;
const paths = defaults.logRedactPathPatterns;

describe('redactUrl with the default settings', () => {
  const table: [string, string][] = [
    // nothing secret: unchanged, byte for byte
    ['http://h/p', 'http://h/p'],
    ['http://h/p?a=1&b=2', 'http://h/p?a=1&b=2'],
    ['https://h.example:8443/a/b?x=%20y#frag', 'https://h.example:8443/a/b?x=%20y#frag'],
    // userinfo, always
    ['http://svc:PASSWORD@h.example/x', 'http://[REDACTED]@h.example/x'],
    ['http://user@h.example/', 'http://[REDACTED]@h.example/'],
    ['https://a:b@c@h.example:99?x=1', 'https://[REDACTED]@h.example:99?x=1'],
    // the listed words, as substrings of the name, any case
    ['http://h/p?token=abc&a=1', 'http://h/p?token=[REDACTED]&a=1'],
    ['http://h/p?access_token=abc', 'http://h/p?access_token=[REDACTED]'],
    ['http://h/p?access-token=abc', 'http://h/p?access-token=[REDACTED]'],
    ['http://h/p?client_secret=abc', 'http://h/p?client_secret=[REDACTED]'],
    ['http://h/p?key=abc', 'http://h/p?key=[REDACTED]'],
    ['http://h/p?X-Api-Key=abc', 'http://h/p?X-Api-Key=[REDACTED]'],
    ['http://h/p?apikey=abc', 'http://h/p?apikey=[REDACTED]'],
    ['http://h/p?PASSWORD=abc&passwd=d', 'http://h/p?PASSWORD=[REDACTED]&passwd=[REDACTED]'],
    ['http://h/p?Authorization=Bearer%20x', 'http://h/p?Authorization=[REDACTED]'],
    ['http://h/p?signature=s&sig=t&hmac_sig=u', 'http://h/p?signature=[REDACTED]&sig=[REDACTED]&hmac_sig=[REDACTED]'],
    ['http://h/p?sessionid=1&JSESSION=2', 'http://h/p?sessionid=[REDACTED]&JSESSION=[REDACTED]'],
    ['http://h/p?aws_credential=x', 'http://h/p?aws_credential=[REDACTED]'],
    // brackets, semicolons, percent-encoded names (once or twice), '+' for space
    ['http://h/p?token[]=a&token[]=b', 'http://h/p?token[]=[REDACTED]&token[]=[REDACTED]'],
    ['http://h/p?auth[user]=a', 'http://h/p?auth[user]=[REDACTED]'],
    ['http://h/p?a=1;token=x;b=2', 'http://h/p?a=1;token=[REDACTED];b=2'],
    ['http://h/p?to%6Ben=abc', 'http://h/p?to%6Ben=[REDACTED]'],
    ['http://h/p?%74%6F%6B%65%6E=abc', 'http://h/p?%74%6F%6B%65%6E=[REDACTED]'],
    ['http://h/p?to%256Ben=abc', 'http://h/p?to%256Ben=[REDACTED]'],
    ['http://h/p?token%5B%5D=abc', 'http://h/p?token%5B%5D=[REDACTED]'],
    ['http://h/p?my+token=abc', 'http://h/p?my+token=[REDACTED]'],
    ['http://h/p?%zz=1&token=2', 'http://h/p?%zz=1&token=[REDACTED]'],
    // values with '=' in them are redacted whole; names without a value are left
    ['http://h/p?token=a=b&c=d', 'http://h/p?token=[REDACTED]&c=d'],
    ['http://h/p?token&x=1', 'http://h/p?token&x=1'],
    ['http://h/p?token=', 'http://h/p?token='],
    // the fragment too (OAuth's implicit flow puts tokens there)
    ['http://h/p?token=a#frag', 'http://h/p?token=[REDACTED]#frag'],
    ['http://h/cb#access_token=xyz&state=1', 'http://h/cb#access_token=[REDACTED]&state=1'],
    // tokens in the path: the segment after one named like a secret
    ['http://h/api/token/abc123/status', 'http://h/api/token/[REDACTED]/status'],
    ['http://h/v1/api-keys/k-9?x=1', 'http://h/v1/api-keys/[REDACTED]?x=1'],
    ['http://h/hooks/secret/s3cr3t', 'http://h/hooks/secret/[REDACTED]'],
    ['http://h/Session/ABC#x', 'http://h/Session/[REDACTED]#x'],
    ['http://h/tokens/', 'http://h/tokens/'],
    ['http://h/data/token', 'http://h/data/token'],
    // all at once
    ['https://u:p@h/token/t1?sig=s;ok=1#key=k', 'https://[REDACTED]@h/token/[REDACTED]?sig=[REDACTED];ok=1#key=[REDACTED]'],
  ];
  for (const [url, want] of table) it(url, () => assert.equal(redactUrl(url, words, paths), want));
});

describe('redactUrl with other settings', () => {
  it('with no words and no patterns, only userinfo is redacted', () => {
    assert.equal(redactUrl('http://u:p@h/token/x?token=1', []), 'http://[REDACTED]@h/token/x?token=1');
  });
  it('operator patterns: a pattern with groups redacts its groups only, one without redacts the match', () => {
    const p = parsePathPatterns('^/hooks/([^/]+)/([^/]+) t-[0-9a-f]{8,}');
    assert.equal(redactUrl('http://h/hooks/T0001/B0002/xyz', [], p), 'http://h/hooks/[REDACTED]/[REDACTED]/xyz');
    assert.equal(redactUrl('http://h/a/t-deadbeef99/b?q=1', [], p), 'http://h/a/[REDACTED]/b?q=1');
    assert.equal(redactUrl('http://h/a/t-dead/b', [], p), 'http://h/a/t-dead/b');
  });
  it('the default path pattern is documented in config.ts and compiles', () => {
    assert.equal(parsePathPatterns(DEFAULT_REDACT_PATH).length, 1);
  });
  it('a pattern that does not compile is a configuration error naming the setting', () => {
    assert.throws(() => loadConfig({ LOG_REDACT_PATH_PATTERNS: '([' }), /LOG_REDACT_PATH_PATTERNS: not a regular expression/);
  });
  it('empty settings turn redaction off (userinfo excepted)', () => {
    const c = loadConfig({ LOG_REDACT_QUERY_PARAMS: '', LOG_REDACT_PATH_PATTERNS: '' });
    assert.equal(redactUrl('http://u@h/token/x?token=1', c.logRedactQueryParams, c.logRedactPathPatterns), 'http://[REDACTED]@h/token/x?token=1');
  });
});

describe('excerpt', () => {
  it('keeps short text, cuts long text saying by how much', () => {
    assert.equal(excerpt('abc', 3), 'abc');
    assert.equal(excerpt('abcdef', 3), 'abc…[+3 chars]');
    assert.equal(excerpt('x'.repeat(8_000_000), 2048).length, 2048 + '…[+7997952 chars]'.length);
  });
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
