/**
 * Reading the delivery workers' log file (pm2 writes their stdout to /var/log/postback/delivery.log):
 * its last matching lines, read backwards in chunks so a large file costs little, and following it as
 * it grows, by polling, across logrotate (the file replaced or truncated).
 */
import { open, stat } from 'node:fs/promises';

const CHUNK = 64 * 1024;

/**
 * The last `n` lines of `file` that `keep` accepts, in file order, and the offset just past the last
 * complete line (where following should start). A final line without its newline is not complete yet
 * (the writer may be in the middle of it) and is left for the follower.
 */
export async function lastLines(
  file: string,
  n: number,
  keep: (line: string) => boolean,
  chunkSize = CHUNK,
): Promise<{ lines: string[]; end: number }> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    let pos = size;
    /** Bytes from `pos` on not yet cut into lines. */
    let rest = Buffer.alloc(0);
    let end: number | undefined;
    const found: string[] = [];
    while (pos > 0) {
      const len = Math.min(chunkSize, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, pos);
      rest = Buffer.concat([buf, rest]);
      if (end === undefined) {
        const nl = rest.lastIndexOf(0x0a);
        if (nl < 0) continue;
        end = pos + nl + 1;
        rest = rest.subarray(0, nl); // whole lines, newline-separated; the first may start further back
      }
      if (n === 0) break;
      for (let i = rest.lastIndexOf(0x0a); i >= 0 && found.length < n; i = rest.lastIndexOf(0x0a)) {
        const line = rest.subarray(i + 1).toString('utf8');
        if (keep(line)) found.push(line);
        rest = rest.subarray(0, i);
      }
      if (found.length >= n) break;
      if (pos === 0) {
        const first = rest.toString('utf8');
        if (keep(first)) found.push(first);
      }
    }
    return { lines: found.reverse(), end: end ?? 0 };
  } finally {
    await fh.close();
  }
}

export interface FollowOptions {
  readonly intervalMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Call `onLine` for every line added to `file` after `from`, until the signal aborts. Notices the file
 * being replaced (another inode: read the new one from its start) or truncated (read from 0 again).
 */
export async function follow(file: string, from: number, onLine: (line: string) => void, options: FollowOptions = {}): Promise<void> {
  const interval = options.intervalMs ?? 250;
  let pos = from;
  let ino: number | undefined;
  let carry = '';
  try {
    ino = (await stat(file)).ino;
  } catch {
    /* not there yet: wait for it */
  }
  while (!options.signal?.aborted) {
    let st;
    try {
      st = await stat(file);
    } catch {
      st = undefined; // rotated away and not recreated yet
    }
    if (st) {
      if (ino !== undefined && st.ino !== ino) {
        pos = 0;
        carry = '';
      } else if (st.size < pos) {
        pos = 0;
        carry = '';
      }
      ino = st.ino;
      if (st.size > pos) {
        const fh = await open(file, 'r');
        try {
          const len = st.size - pos;
          const buf = Buffer.alloc(len);
          const { bytesRead } = await fh.read(buf, 0, len, pos);
          pos += bytesRead;
          const text = carry + buf.subarray(0, bytesRead).toString('utf8');
          const parts = text.split('\n');
          carry = parts.pop()!;
          for (const line of parts) onLine(line);
        } finally {
          await fh.close();
        }
      }
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, interval);
      options.signal?.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
  }
}
