import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { overLimit, parseMemoryInfo } from '../../src/ingest/memory-watch.js';

const info = (fields: Record<string, number>) =>
  `# Memory\r\n${Object.entries(fields).map(([k, v]) => `${k}:${v}\r\n`).join('')}used_memory_human:1.2M\r\nmaxmemory_policy:noeviction\r\n`;

describe('parseMemoryInfo', () => {
  it('reads used memory as Redis counts it against maxmemory (less replication and AOF buffers)', () => {
    assert.deepEqual(parseMemoryInfo(info({ used_memory: 1000, used_memory_rss: 5000, maxmemory: 4000, mem_not_counted_for_evict: 200 })), { usedBytes: 800, maxBytes: 4000 });
    assert.deepEqual(parseMemoryInfo(info({ used_memory: 1000, maxmemory: 0 })), { usedBytes: 1000, maxBytes: 0 });
  });
  it('is undefined for an answer without the fields', () => {
    assert.equal(parseMemoryInfo(''), undefined);
    assert.equal(parseMemoryInfo(info({ used_memory_peak: 1 })), undefined);
  });
});

describe('overLimit', () => {
  const table: [number, number, number, boolean][] = [
    // used, max, percent -> refuse?
    [79, 100, 80, false],
    [80, 100, 80, false],
    [81, 100, 80, true],
    [101, 100, 80, true],
    [1e9, 0, 80, false], // no maxmemory: nothing to compare with
    [99, 100, 0, false], // the check is off
    [100, 100, 100, false],
    [101, 100, 100, true],
  ];
  for (const [used, max, percent, want] of table) {
    it(`${used} of ${max} at ${percent}% -> ${want ? 'refuse' : 'accept'}`, () => assert.equal(overLimit({ usedBytes: used, maxBytes: max }, percent), want));
  }
});
