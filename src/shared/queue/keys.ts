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
  /** Hash: the last queue sample written (live, retry, dead, at): samplers write only when it changes. */
  readonly queueSample: string;
  /** Pub/sub channel (nothing stored): requests for every process's metrics, from the ingest answering /metrics. */
  readonly metricsRequests: string;
  /** Pub/sub channel on which the process named `name` gathers replies to its metrics requests. */
  metricsReplies(name: string): string;
  /** Hash of metrics snapshots that processes of earlier releases pushed; deleted by ingest at start. */
  readonly legacyMetrics: string;
}

const STATS_KEY_SUFFIXES = { bucket: 'st', hosts: 'sth', queueSample: 'stq', metrics: 'metrics' } as const;

export function statsKeys(prefix: string): StatsKeys {
  return {
    bucket: (widthS, startS) => `${prefix}:${STATS_KEY_SUFFIXES.bucket}:${widthS}:${startS}`,
    hosts: (startS) => `${prefix}:${STATS_KEY_SUFFIXES.hosts}:${startS}`,
    queueSample: `${prefix}:${STATS_KEY_SUFFIXES.queueSample}`,
    metricsRequests: `${prefix}:${STATS_KEY_SUFFIXES.metrics}:req`,
    metricsReplies: (name) => `${prefix}:${STATS_KEY_SUFFIXES.metrics}:rep:${name}`,
    legacyMetrics: `${prefix}:${STATS_KEY_SUFFIXES.metrics}`,
  };
}

/** pb:hb:<consumer>: the time (ms) of a delivery worker's last heartbeat; expires after three intervals. */
export function heartbeatKey(prefix: string, consumer: string): string {
  return `${prefix}:hb:${consumer}`;
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
