import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeEnv, parseEnvFile } from '../../src/ctl/envfile.js';

describe('parseEnvFile', () => {
  const table: [string, string, Record<string, string>][] = [
    ['plain', 'REDIS_URL=redis://:p%40ss@127.0.0.1:6379\nQUEUE_PREFIX=pb\n', { REDIS_URL: 'redis://:p%40ss@127.0.0.1:6379', QUEUE_PREFIX: 'pb' }],
    ['comments and blank lines', '# managed by Ansible\n\n  # indented comment\nA=1\n', { A: '1' }],
    ['spaces around = and at the ends', '  A = x y  \n', { A: 'x y' }],
    ['double quotes removed', 'A="x y"\n', { A: 'x y' }],
    ['single quotes removed', "A='x # y'\n", { A: 'x # y' }],
    ['unmatched quotes kept', 'A="x\nB=x\'\n', { A: '"x', B: "x'" }],
    ['= in the value', 'A=b=c==\n', { A: 'b=c==' }],
    ['empty value', 'UNMATCHED_PLACEHOLDER_DEFAULT=\n', { UNMATCHED_PLACEHOLDER_DEFAULT: '' }],
    ['CRLF line ends', 'A=1\r\nB=2\r\n', { A: '1', B: '2' }],
    ['export prefix', 'export A=1\n', { A: '1' }],
    ['no expansion or escapes', 'A=$HOME\\n\n', { A: '$HOME\\n' }],
    ['last definition wins', 'A=1\nA=2\n', { A: '2' }],
    ['lines that are not settings ignored', 'just words\n1A=2\n=3\nA-B=4\n', {}],
    ['no final newline', 'A=1', { A: '1' }],
    ['empty file', '', {}],
  ];
  for (const [name, text, want] of table) it(name, () => assert.deepEqual(parseEnvFile(text), want));
});

describe('mergeEnv', () => {
  it('the environment wins over the file', () => {
    assert.deepEqual(mergeEnv({ A: 'file', B: 'file' }, { A: 'env', C: 'env' }), { A: 'env', B: 'file', C: 'env' });
  });
  it('a variable set to the empty string still wins; an undefined one does not', () => {
    assert.deepEqual(mergeEnv({ A: 'file', B: 'file' }, { A: '', B: undefined }), { A: '', B: 'file' });
  });
});
