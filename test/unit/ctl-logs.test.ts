import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { lastLines } from '../../src/ctl/logs.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pb-ctl-logs-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
function file(text: string): string {
  const f = path.join(dir, `f${seq++}.log`);
  writeFileSync(f, text);
  return f;
}
const all = () => true;

describe('lastLines', () => {
  // [name, content, n, keep, want lines, want end]
  const table: [string, string, number, (l: string) => boolean, string[], number][] = [
    ['empty file', '', 5, all, [], 0],
    ['fewer lines than asked', 'a\nb\n', 5, all, ['a', 'b'], 4],
    ['the last n, in file order', 'a\nb\nc\nd\n', 2, all, ['c', 'd'], 8],
    ['a final line without newline is left for the follower', 'a\nb\npart', 5, all, ['a', 'b'], 4],
    ['only an unfinished line', 'part', 5, all, [], 0],
    ['n = 0: nothing, but the end is known', 'a\nb\n', 0, all, [], 4],
    ['filtered: the last n that match', 'x1\ny1\nx2\ny2\nx3\n', 2, (l) => l.startsWith('y'), ['y1', 'y2'], 15],
    ['empty lines are lines', 'a\n\nb\n', 5, all, ['a', '', 'b'], 5],
    ['multi-byte characters', 'żółw\n🐢\n', 5, all, ['żółw', '🐢'], Buffer.byteLength('żółw\n🐢\n')],
  ];
  for (const [name, content, n, keep, want, end] of table) {
    for (const chunk of [1, 3, 64 * 1024]) {
      it(`${name} (chunks of ${chunk} bytes)`, async () => {
        assert.deepEqual(await lastLines(file(content), n, keep, chunk), { lines: want, end });
      });
    }
  }

  it('a large file: lines across chunk boundaries come out whole', async () => {
    const lines = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(i % 97) }));
    const f = file(lines.join('\n') + '\n');
    const r = await lastLines(f, 1200, (l) => JSON.parse(l).i % 2 === 0, 4096);
    assert.deepEqual(r.lines, lines.filter((_, i) => i % 2 === 0).slice(-1200));
  });

  it('a missing file rejects with ENOENT', async () => {
    await assert.rejects(lastLines(path.join(dir, 'nope.log'), 5, all), { code: 'ENOENT' });
  });
});
