/**
 * Every Redis key the queue owns, named from one prefix (so tests can swap it), and the Lua prelude that
 * names them inside scripts.
 */
export const CONSUMER_GROUP = 'delivery';

export interface QueueKeys {
  readonly stream: string;
  readonly retry: string;
  readonly dead: string;
  readonly templates: string;
  readonly templateRefs: string;
  readonly templateGc: string;
  readonly live: string;
}

export const KEY_SUFFIXES: Record<keyof QueueKeys, string> = {
  stream: 'queue',
  retry: 'retry',
  dead: 'dead',
  templates: 'tpl',
  templateRefs: 'tplref',
  templateGc: 'tplgc',
  live: 'live',
};

export function queueKeys(prefix: string): QueueKeys {
  const out = {} as Record<keyof QueueKeys, string>;
  for (const [k, suffix] of Object.entries(KEY_SUFFIXES) as [keyof QueueKeys, string][]) out[k] = `${prefix}:${suffix}`;
  return out;
}

/** Keys of the statistics and metrics snapshots: monitoring data, never touched by the queue scripts. */
export interface StatsKeys {
  /** Hash of one statistics bucket `widthS` seconds wide starting at `startS` (s since the epoch). */
  bucket(widthS: number, startS: number): string;
  /** Hash of per endpoint host statistics, 1-minute bucket starting at `startS`. */
  hosts(startS: number): string;
  /** Hash: process name -> its latest metrics snapshot. */
  readonly metrics: string;
}

const STATS_KEY_SUFFIXES = { bucket: 'st', hosts: 'sth', metrics: 'metrics' } as const;

export function statsKeys(prefix: string): StatsKeys {
  return {
    bucket: (widthS, startS) => `${prefix}:${STATS_KEY_SUFFIXES.bucket}:${widthS}:${startS}`,
    hosts: (startS) => `${prefix}:${STATS_KEY_SUFFIXES.hosts}:${startS}`,
    metrics: `${prefix}:${STATS_KEY_SUFFIXES.metrics}`,
  };
}

/**
 * Every script is called with the stream key alone and names its siblings from it, which keeps key
 * names off the wire (they would be most of a small request's bytes). Fine on a single Redis or
 * Sentinel; Redis Cluster is not supported (docs/high-availability.md).
 */
export const KEYS_LUA =
  `local P = string.sub(KEYS[1], 1, #KEYS[1] - ${KEY_SUFFIXES.stream.length})\n` +
  (Object.entries(KEY_SUFFIXES) as [keyof QueueKeys, string][])
    .map(([k, suffix]) => `local K_${k} = P .. '${suffix}'`)
    .join('\n') +
  '\n';
