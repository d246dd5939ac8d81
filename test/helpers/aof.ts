/**
 * What a real redis-server appended to its AOF: the size of the current incremental file (Redis 7's
 * multi-part AOF, appendonlydir/<name>.incr.aof, named by the manifest) and the commands written
 * after a given offset, decoded from RESP. Tests and the idle-writes measurement use it to see
 * exactly which writes reached the disk.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** The AOF file Redis currently appends to, under its `dir`. */
export function aofIncrFile(dir: string): string {
  const adir = path.join(dir, 'appendonlydir');
  const manifest = readFileSync(path.join(adir, 'appendonly.aof.manifest'), 'utf8');
  const incr = manifest
    .split('\n')
    .map((l) => /^file (\S+) seq (\d+) type i/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(a[2]) - Number(b[2]))
    .at(-1);
  if (!incr) throw new Error(`no incremental AOF in ${adir}: ${manifest}`);
  return path.join(adir, incr[1]!);
}

export function aofSize(dir: string): number {
  return statSync(aofIncrFile(dir)).size;
}

/** Commands (each an array of its arguments) appended to the AOF from byte `from` on. */
export function aofCommandsSince(dir: string, from: number): string[][] {
  const buf = readFileSync(aofIncrFile(dir)).subarray(from);
  const out: string[][] = [];
  let i = 0;
  const line = () => {
    const end = buf.indexOf('\r\n', i);
    if (end < 0) throw new Error(`truncated AOF at ${from + i}`);
    const s = buf.toString('latin1', i, end);
    i = end + 2;
    return s;
  };
  while (i < buf.length) {
    const head = line();
    if (!head.startsWith('*')) throw new Error(`unexpected AOF line at ${from + i}: ${head}`);
    const n = Number(head.slice(1));
    const args: string[] = [];
    for (let k = 0; k < n; k++) {
      const len = Number(line().slice(1));
      args.push(buf.toString('utf8', i, i + len));
      i += len + 2;
    }
    out.push(args);
  }
  return out;
}

/** Commands counted by name (upper case), e.g. { HSET: 12, PEXPIREAT: 12 }. */
export function countByName(commands: readonly string[][]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of commands) {
    const name = (c[0] ?? '').toUpperCase();
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}
