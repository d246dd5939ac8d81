import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SETTING_NAMES } from '../../src/shared/config.js';

describe('docs/configuration.md', () => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  for (const name of SETTING_NAMES) {
    it(`documents ${name} in a table row with its default and unit`, () => {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${name}\` |`));
      assert.ok(row, `no table row for ${name}`);
      const cells = row.split('|').slice(1, -1).map((c) => c.trim());
      assert.equal(cells.length, 4, `row for ${name} has ${cells.length} cells`);
      assert.ok(cells.every((c) => c !== ''), `row for ${name} has an empty cell`);
    });
  }
});
