/**
 * The queue protocol. This module owns every Redis key and every command that touches them; ingest,
 * delivery and the tools all go through it. docs/architecture.md describes the same protocol for humans.
 *
 * Keys (prefix `pb` by default):
 *   pb:queue        stream      requests waiting or being delivered; consumer group `delivery`
 *   pb:retry        sorted set  postbacks waiting for their next attempt, scored by due time (ms)
 *   pb:dead         stream      dead letters: self-contained (template inlined) with the reason
 *   pb:tpl          hash        template id -> "METHOD url-template"
 *   pb:tplref       hash        template id -> number of live postbacks that use it
 *   pb:tplgc        sorted set  template ids whose count fell to 0, scored by when (ms); collected later
 *   pb:live         string      live postbacks in all: in the stream, in flight, or waiting for a retry
 *
 * Monitoring keys (named here by `statsKeys`, written by src/shared/stats.ts and src/shared/metrics.ts;
 * never read by the queue scripts, all expiring or bounded):
 *   pb:st:10:<s>    hash        10-second statistics bucket starting at <s> (s since the epoch)
 *   pb:st:60:<s>    hash        1-minute statistics bucket
 *   pb:sth:<s>      hash        per endpoint host statistics, 1-minute bucket
 *   pb:stq          hash        the last queue sample written (live, retry, dead, at ms)
 *   pb:hb:<name>    string      a delivery worker's heartbeat (ms), expiring: the worker is alive while it exists
 * and pub/sub channels (nothing stored, nothing in the AOF): pb:metrics:req, pb:metrics:rep:<process>.
 *
 * Encoding, chosen so few bytes cross Redis per postback: a request becomes ONE stream entry holding
 * its endpoint as a 12-character template id and all its data objects as one compact JSON array, as
 * the entry's first field and value (`<templateId> <[{...},{...}]>`: no field names on the wire); the
 * endpoint text itself is stored once under that content-hash id. Postback ids are
 * `<entry id>:<index>`, so the enqueue answers one entry id for the whole request. A postback that
 * needs another attempt goes to the retry set on its own and comes back as a one-postback entry that
 * also carries its original id and the attempts already made (fields `i` and `a`). Ingest skips even the
 * template text when it knows Redis has it; the enqueue script tells it when that guess was wrong.
 *
 * Guarantees: an enqueue is one Lua script, so all of a request's postbacks are added or none. An entry
 * leaves the stream only inside the settle script, which also records the fate of every postback in it
 * (delivered, moved to the retry set, or dead-lettered), so a crash at any point leaves it pending, to
 * be taken over by XAUTOCLAIM (or re-read by a worker restarted under the same consumer name):
 * at-least-once delivery. A worker keeps the entries it is still working on from looking abandoned by
 * touching them (XCLAIM JUSTID) while it works.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { DataObject } from './template.js';

export const CONSUMER_GROUP = 'delivery';

export type HttpMethod = 'GET' | 'POST';

export interface Template {
  readonly method: HttpMethod;
  readonly url: string;
}

export interface QueueKeys {
  readonly stream: string;
  readonly retry: string;
  readonly dead: string;
  readonly templates: string;
  readonly templateRefs: string;
  readonly templateGc: string;
  readonly live: string;
}

const KEY_SUFFIXES: Record<keyof QueueKeys, string> = {
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

/**
 * Every script is called with the stream key alone and names its siblings from it, which keeps key
 * names off the wire (they would be most of a small request's bytes). Fine on a single Redis or
 * Sentinel; Redis Cluster is not supported (docs/high-availability.md).
 */
const KEYS_LUA =
  `local P = string.sub(KEYS[1], 1, #KEYS[1] - ${KEY_SUFFIXES.stream.length})\n` +
  (Object.entries(KEY_SUFFIXES) as [keyof QueueKeys, string][])
    .map(([k, suffix]) => `local K_${k} = P .. '${suffix}'`)
    .join('\n') +
  '\n';

/** A postback read from the stream: what a worker needs to deliver it and to settle it afterwards. */
export interface QueuedPostback {
  /** The stream entry that holds it (with its siblings from the same request). */
  readonly entryId: string;
  /** Its place in the entry, and how many postbacks the entry holds. */
  readonly index: number;
  readonly entrySize: number;
  /** The postback's stable id, `<first entry id>:<index>`, kept across retries. */
  readonly id: string;
  readonly templateId: string;
  /** The data object as compact JSON. */
  readonly data: string;
  /** The data object, parsed. */
  readonly value: DataObject;
  /** Attempts already made before this one. */
  readonly attempts: number;
}

/** An entry that cannot be decoded (hand-written into the stream, or damaged). */
export interface MalformedEntry {
  readonly entryId: string;
  readonly fields: Record<string, string>;
}

export interface ReadResult {
  readonly postbacks: QueuedPostback[];
  readonly malformed: MalformedEntry[];
  /** Entries read (postbacks come from `entries` entries). */
  readonly entries: number;
  /** Reading pending entries: the last id seen (deleted entries included), to continue after it. */
  readonly lastEntryId?: string;
}

/**
 * What became of every postback of one entry, written in one go by `settle`. Postbacks not named in
 * `retries` or `deadLetters` were delivered.
 */
export interface EntrySettlement {
  readonly entryId: string;
  /** Postbacks in the entry. */
  readonly size: number;
  readonly retries: readonly { readonly postback: QueuedPostback; readonly attempts: number; readonly dueAtMs: number }[];
  readonly deadLetters: readonly { readonly fields: readonly string[] }[];
}

/** A dead letter as stored in the dead-letter stream. Self-contained: it can be replayed on its own. */
export interface DeadLetter {
  readonly deadId: string;
  readonly id: string;
  readonly method: string;
  readonly url: string;
  readonly data: string;
  readonly attempts: number;
  readonly reason: string;
  readonly status: string;
  readonly error: string;
  readonly failedAt: number;
}

export interface DeadLetterInput {
  readonly reason: string;
  /** Last HTTP status, or '' when there was no response. */
  readonly status: string;
  /** Last error code or a short description. */
  readonly error: string;
  /** Total attempts made. */
  readonly attempts: number;
  /** The template, when known (inlined so the dead letter outlives it). */
  readonly template?: Template;
}

export type EnqueueResult =
  | { readonly ok: true; readonly ids: string[] }
  /** `length`: live postbacks already queued. */
  | { readonly ok: false; readonly reason: 'full'; readonly length: number }
  /** Stored on the master, but fewer replicas than required confirmed it in time. */
  | { readonly ok: false; readonly reason: 'unreplicated'; readonly replicas: number };

export interface QueueOptions {
  readonly prefix: string;
  /** Refuse enqueues that would take the live postbacks beyond this; 0 = no limit. */
  readonly maxLength: number;
  /** Seconds an unreferenced template survives before collection. */
  readonly templateGcGraceS: number;
  /** Replicas that must confirm an enqueue (WAIT) before it counts as accepted; 0 = none. */
  readonly minReplicas?: number;
  /** How long to wait for those replicas, ms. */
  readonly replicaTimeoutMs?: number;
}

/** Templates ingest believes Redis holds are sent without their text; re-confirmed at this interval. */
const TEMPLATE_CONFIRM_MS = 30_000;
const TEMPLATE_CACHE_MAX = 10_000;

// --- Lua scripts: each one is atomic, so every state change below is all-or-nothing. ---

/**
 * KEYS stream; ARGV tplId count maxLive dataArrayJson [tplText]
 * -> entry id | 0 (template unknown: resend with its text) | live+1 (full)
 */
const ENQUEUE_BODY = `
local tid = ARGV[1]
local n = tonumber(ARGV[2])
if redis.call('HEXISTS', K_templates, tid) == 0 then
  if not ARGV[5] then return 0 end
  redis.call('HSET', K_templates, tid, ARGV[5])
end
local maxLive = tonumber(ARGV[3])
if maxLive > 0 then
  local live = tonumber(redis.call('GET', K_live) or '0')
  if live + n > maxLive then return live + 1 end
end
redis.call('HINCRBY', K_templateRefs, tid, n)
redis.call('ZREM', K_templateGc, tid)
redis.call('INCRBY', K_live, n)
return redis.call('XADD', K_stream, '*', tid, ARGV[4])`;

/**
 * Settle whole entries: acknowledge and delete each, schedule its retries, write its dead letters, and
 * drop the template references of the postbacks that are done. An entry another worker already
 * settled (XACK = 0) is skipped whole, so nothing is counted twice.
 * KEYS stream
 * ARGV group now, then per entry either `entryId/done` (every postback delivered: the usual case, one
 * argument) or: entryId done nRetry (score member)*nRetry nDead (nFields field...)*nDead
 * (the template id, whose reference count drops by `done`, is read from the entry itself)
 * -> entries settled
 */
const SETTLE_BODY = `
local i = 3
local settled = 0
while i <= #ARGV do
  local entryId, done, nRetry, nDead
  local slash = string.find(ARGV[i], '/', 1, true)
  if slash then
    entryId, done, nRetry, nDead = string.sub(ARGV[i], 1, slash - 1), tonumber(string.sub(ARGV[i], slash + 1)), 0, 0
    i = i + 1
  else
    entryId, done, nRetry = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    i = i + 3
  end
  local tid = ''
  local mine = redis.call('XACK', K_stream, ARGV[1], entryId) == 1
  if mine then
    local e = redis.call('XRANGE', K_stream, entryId, entryId)
    if e[1] then tid = e[1][2][1] end
    redis.call('XDEL', K_stream, entryId)
    settled = settled + 1
  end
  for r = 1, nRetry do
    if mine then redis.call('ZADD', K_retry, ARGV[i], ARGV[i + 1]) end
    i = i + 2
  end
  if not slash then
    nDead = tonumber(ARGV[i])
    i = i + 1
  end
  for d = 1, nDead do
    local nf = tonumber(ARGV[i])
    if mine then redis.call('XADD', K_dead, '*', unpack(ARGV, i + 1, i + nf)) end
    i = i + 1 + nf
  end
  if mine and done > 0 and tid ~= '' then
    redis.call('DECRBY', K_live, done)
    if redis.call('HINCRBY', K_templateRefs, tid, -done) <= 0 then
      redis.call('ZADD', K_templateGc, ARGV[2], tid)
    end
  end
end
return settled`;

/**
 * The two calls made for every request (enqueue, settle) as a Redis 7 function library: FCALL names
 * the function in 10 bytes where EVALSHA sends a 40-byte SHA-1. The names carry a hash of the code,
 * so processes of two releases each call their own during a deploy. Redis persists and replicates
 * loaded functions; a Redis that has none (new, or FUNCTION FLUSH) gets the library on first use, and
 * a Redis without functions (< 7) gets the same code as EVALSHA scripts.
 */
const HOT_BODIES = { enqueue: ENQUEUE_BODY, settle: SETTLE_BODY } as const;
type HotName = keyof typeof HOT_BODIES;
const LIBRARY_VERSION = createHash('sha1').update(KEYS_LUA + ENQUEUE_BODY + SETTLE_BODY).digest('hex').slice(0, 6);
export const FUNCTION_NAMES: Record<HotName, string> = { enqueue: `pbe_${LIBRARY_VERSION}`, settle: `pbs_${LIBRARY_VERSION}` };
export const FUNCTION_LIBRARY =
  `#!lua name=postback_${LIBRARY_VERSION}\n` +
  (Object.entries(HOT_BODIES) as [HotName, string][])
    .map(([name, body]) => `redis.register_function('${FUNCTION_NAMES[name]}', function(KEYS, ARGV)\n${KEYS_LUA}${body}\nend)`)
    .join('\n');

/** Move due retries back into the stream, one entry each. KEYS stream; ARGV now limit -> count moved */
const PROMOTE_LUA = KEYS_LUA + `
local due = redis.call('ZRANGE', K_retry, '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local id, a, tid, d = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  if id then
    redis.call('XADD', K_stream, '*', tid, '[' .. d .. ']', 'i', id, 'a', a)
  end
  redis.call('ZREM', K_retry, m)
end
return #due`;

/** Replay dead letters. KEYS stream; ARGV (deadId tplId tplText data id)... -> count */
const REPLAY_LUA = KEYS_LUA + `
local n = 0
for i = 1, #ARGV, 5 do
  if redis.call('XDEL', K_dead, ARGV[i]) == 1 then
    local tid = ARGV[i + 1]
    redis.call('HSETNX', K_templates, tid, ARGV[i + 2])
    redis.call('HINCRBY', K_templateRefs, tid, 1)
    redis.call('ZREM', K_templateGc, tid)
    redis.call('INCR', K_live)
    redis.call('XADD', K_stream, '*', tid, '[' .. ARGV[i + 3] .. ']', 'i', ARGV[i + 4], 'a', '0')
    n = n + 1
  end
end
return n`;

/** Delete templates unreferenced for the grace period. KEYS stream; ARGV cutoff limit -> count */
const COLLECT_LUA = KEYS_LUA + `
local ids = redis.call('ZRANGE', K_templateGc, '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, tid in ipairs(ids) do
  local refs = tonumber(redis.call('HGET', K_templateRefs, tid) or '0')
  if refs <= 0 then
    redis.call('HDEL', K_templates, tid)
    redis.call('HDEL', K_templateRefs, tid)
    n = n + 1
  end
  redis.call('ZREM', K_templateGc, tid)
end
return n`;

type ScriptName = 'pbEnqueue' | 'pbSettle' | 'pbPromote' | 'pbReplay' | 'pbCollect';

const SCRIPTS: Record<ScriptName, { keys: number; lua: string }> = {
  pbEnqueue: { keys: 1, lua: KEYS_LUA + ENQUEUE_BODY },
  pbSettle: { keys: 1, lua: KEYS_LUA + SETTLE_BODY },
  pbPromote: { keys: 1, lua: PROMOTE_LUA },
  pbReplay: { keys: 1, lua: REPLAY_LUA },
  pbCollect: { keys: 1, lua: COLLECT_LUA },
};

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

/** ioredis sends scripts with EVALSHA and falls back to EVAL after a Redis restart emptied its script cache. */
function defineScripts(redis: Redis): Record<ScriptName, ScriptFn> {
  const out = {} as Record<ScriptName, ScriptFn>;
  for (const [name, { keys, lua }] of Object.entries(SCRIPTS) as [ScriptName, { keys: number; lua: string }][]) {
    if (typeof (redis as any)[name] !== 'function') redis.defineCommand(name, { numberOfKeys: keys, lua });
    out[name] = (...args) => (redis as any)[name](...args);
  }
  return out;
}

/** The id a template is stored under: a content hash, so equal endpoints share one entry. */
export function templateId(template: Template): string {
  return createHash('sha1').update(templateText(template)).digest('base64url').slice(0, 12);
}

export function templateText(template: Template): string {
  return `${template.method} ${template.url}`;
}

export function parseTemplateText(text: string): Template | undefined {
  const space = text.indexOf(' ');
  const method = text.slice(0, space);
  if (space < 0 || (method !== 'GET' && method !== 'POST')) return undefined;
  return { method, url: text.slice(space + 1) };
}

/** Milliseconds since the epoch at which a stream id was made. */
export function entryTimeMs(entryId: string): number {
  return Number(entryId.slice(0, entryId.indexOf('-')));
}

function fieldsOf(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(raw)) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) out[String(raw[i])] = String(raw[i + 1]);
  return out;
}

/**
 * Decode one stream entry [id, [field, value, ...]] into its postbacks, or a MalformedEntry when it
 * cannot be delivered as it stands (not written by this module, or damaged).
 */
export function decodeEntry(entryId: string, raw: unknown): QueuedPostback[] | MalformedEntry {
  const list = Array.isArray(raw) ? raw.map(String) : [];
  // [templateId, dataArrayJson, ('i', originalId, 'a', attempts)?]
  const [tid, d] = list;
  const f = fieldsOf(list.slice(2));
  const malformed = (): MalformedEntry => ({ entryId, fields: fieldsOf(list) });
  const attempts = f.a === undefined ? 0 : Number(f.a);
  if (!tid || d === undefined || !Number.isInteger(attempts) || attempts < 0) return malformed();
  let items: unknown;
  try {
    items = JSON.parse(d);
  } catch {
    return malformed();
  }
  if (!Array.isArray(items) || items.length === 0 || (f.i !== undefined && items.length !== 1)) return malformed();
  if (!items.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))) return malformed();
  return items.map((value: DataObject, index) => ({
    entryId,
    index,
    entrySize: items.length,
    id: f.i ?? `${entryId}:${index}`,
    templateId: tid,
    data: items.length === 1 ? d.slice(1, -1) : JSON.stringify(value),
    value,
    attempts,
  }));
}

function splitEntries(entries: unknown[]): ReadResult {
  const postbacks: QueuedPostback[] = [];
  const malformed: MalformedEntry[] = [];
  let count = 0;
  for (const e of entries) {
    if (!Array.isArray(e)) continue;
    count++;
    const decoded = decodeEntry(String(e[0]), e[1]);
    if (Array.isArray(decoded)) postbacks.push(...decoded);
    else malformed.push(decoded);
  }
  return { postbacks, malformed, entries: count };
}

export function isNoGroupError(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOGROUP');
}

export interface QueueStatus {
  /** Postbacks not yet delivered or dead-lettered: waiting, in flight, or scheduled for a retry. */
  readonly live: number;
  /** Entries in the stream (a request's postbacks share one): waiting plus being delivered. */
  readonly streamLength: number;
  /** Entries handed to a worker and not yet settled. */
  readonly pending: number;
  readonly retryScheduled: number;
  readonly deadLetters: number;
  /** Age of the oldest entry in the stream, ms; 0 when empty. */
  readonly oldestAgeMs: number;
  readonly templates: number;
  readonly consumers: { name: string; pending: number; idleMs: number }[];
}

export class Queue {
  readonly keys: QueueKeys;
  private readonly scripts: Record<ScriptName, ScriptFn>;
  /** Template id -> when ingest last saw Redis confirm it holds that template. */
  private readonly knownTemplates = new Map<string, number>();
  private readonly templateIds = new Map<string, string>();
  /** Whether Redis runs functions (FCALL); false once it answered "unknown command" (Redis < 7). */
  private functions = true;
  private loadingFunctions: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly options: QueueOptions,
  ) {
    this.keys = queueKeys(options.prefix);
    this.scripts = defineScripts(redis);
  }

  // ---------------------------------------------------------------- ingest side

  /** Content-hash id of a template, memoised because clients repeat the same endpoint. */
  templateIdOf(template: Template): string {
    const text = templateText(template);
    let id = this.templateIds.get(text);
    if (id === undefined) {
      id = templateId(template);
      if (this.templateIds.size >= TEMPLATE_CACHE_MAX) this.templateIds.clear();
      this.templateIds.set(text, id);
    }
    return id;
  }

  /**
   * Add one postback per data item (compact JSON strings), all or none. Resolves with their ids once
   * Redis has accepted them; rejects (nothing added) if Redis fails.
   */
  async enqueue(template: Template, dataJson: readonly string[], now = Date.now()): Promise<EnqueueResult> {
    const tid = this.templateIdOf(template);
    const confirmed = this.knownTemplates.get(tid);
    const sendText = confirmed === undefined || now - confirmed > TEMPLATE_CONFIRM_MS;
    const items = `[${dataJson.join(',')}]`;
    let reply = await this.callEnqueue(tid, sendText ? templateText(template) : '', dataJson.length, items);
    if (reply === 0) reply = await this.callEnqueue(tid, templateText(template), dataJson.length, items);
    if (typeof reply === 'number') return { ok: false, reason: 'full', length: reply - 1 };
    if (typeof reply !== 'string') throw new Error(`unexpected enqueue reply: ${String(reply)}`);
    if (sendText || confirmed === undefined) {
      if (this.knownTemplates.size >= TEMPLATE_CACHE_MAX) this.knownTemplates.clear();
      this.knownTemplates.set(tid, now);
    }
    const minReplicas = this.options.minReplicas ?? 0;
    if (minReplicas > 0) {
      // Asynchronous replication would lose this write if the master died before passing it on and a
      // replica were promoted: wait until enough replicas have it before telling the client "accepted".
      const replicas = Number(await this.redis.wait(minReplicas, this.options.replicaTimeoutMs ?? 1000));
      if (replicas < minReplicas) return { ok: false, reason: 'unreplicated', replicas };
    }
    return { ok: true, ids: dataJson.map((_, i) => `${reply}:${i}`) };
  }

  private callEnqueue(tid: string, text: string, count: number, items: string): Promise<unknown> {
    const args = [tid, count, this.options.maxLength, items];
    if (text !== '') args.push(text);
    return this.callHot('enqueue', args);
  }

  /** Call one of the per-request functions (FUNCTION_LIBRARY), loading the library if Redis lacks it. */
  private async callHot(name: HotName, args: (string | number)[]): Promise<unknown> {
    if (this.functions) {
      try {
        return await this.redis.fcall(FUNCTION_NAMES[name], 1, this.keys.stream, ...args);
      } catch (err) {
        const message = err instanceof Error ? err.message : '';
        if (/Function not found/i.test(message)) {
          await this.loadFunctions();
          return await this.redis.fcall(FUNCTION_NAMES[name], 1, this.keys.stream, ...args);
        }
        if (!/unknown command/i.test(message)) throw err;
        this.functions = false; // Redis < 7: the same code as scripts from now on
      }
    }
    return (name === 'enqueue' ? this.scripts.pbEnqueue : this.scripts.pbSettle)(this.keys.stream, ...args);
  }

  /** FUNCTION LOAD REPLACE of the library, once for however many calls found it missing at once. */
  private loadFunctions(): Promise<void> {
    this.loadingFunctions ??= this.redis
      .function('LOAD', 'REPLACE', FUNCTION_LIBRARY)
      .then(() => undefined)
      .finally(() => {
        this.loadingFunctions = undefined;
      });
    return this.loadingFunctions;
  }

  // ---------------------------------------------------------------- delivery side

  /** Create the consumer group (and the stream) if missing. Safe to call any time. */
  async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.keys.stream, CONSUMER_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
    }
  }

  /**
   * Read new postbacks for `consumer`, waiting up to `blockMs` when none are there. Use a connection of
   * its own: a blocked connection serves nothing else. Recreates the group if Redis lost it.
   * With `pendingAfter`, re-reads this consumer's own unsettled entries after that id instead (what a
   * worker restarted under the same name left behind), without waiting.
   */
  async read(conn: Redis, consumer: string, count: number, blockMs: number, pendingAfter?: string): Promise<ReadResult> {
    const pending = pendingAfter !== undefined;
    const args: (string | number)[] = ['GROUP', CONSUMER_GROUP, consumer, 'COUNT', count];
    if (!pending) args.push('BLOCK', blockMs);
    args.push('STREAMS', this.keys.stream, pending ? pendingAfter : '>');
    let reply: unknown;
    try {
      reply = await (conn as any).xreadgroup(...args);
    } catch (err) {
      if (!isNoGroupError(err)) throw err;
      await this.ensureGroup();
      return { postbacks: [], malformed: [], entries: 0 };
    }
    if (!Array.isArray(reply) || reply.length === 0) return { postbacks: [], malformed: [], entries: 0 };
    const entries = (reply[0] as unknown[])[1] as unknown[];
    if (pending) {
      // Entries deleted while pending come back with no fields: settle them so they stop reappearing.
      const gone = entries.filter((e) => Array.isArray(e) && e[1] == null).map((e) => String((e as unknown[])[0]));
      if (gone.length) await this.redis.xack(this.keys.stream, CONSUMER_GROUP, ...gone);
      const last = entries.at(-1);
      return {
        ...splitEntries(entries.filter((e) => Array.isArray(e) && e[1] != null)),
        ...(Array.isArray(last) ? { lastEntryId: String(last[0]) } : {}),
      };
    }
    return splitEntries(entries);
  }

  /**
   * Take over entries that other consumers left unsettled for `minIdleMs` (their worker died or hung).
   * Returns the next cursor: pass it back to continue the scan, '0-0' when it wrapped around.
   */
  async claimAbandoned(
    consumer: string,
    minIdleMs: number,
    count: number,
    cursor = '0-0',
  ): Promise<ReadResult & { cursor: string }> {
    let reply: unknown;
    try {
      reply = await this.redis.xautoclaim(this.keys.stream, CONSUMER_GROUP, consumer, minIdleMs, cursor, 'COUNT', count);
    } catch (err) {
      if (!isNoGroupError(err)) throw err;
      await this.ensureGroup();
      return { postbacks: [], malformed: [], entries: 0, cursor: '0-0' };
    }
    const [next, entries] = reply as [string, unknown[]];
    return { ...splitEntries(entries.filter((e) => Array.isArray(e) && e[1] != null)), cursor: String(next) };
  }

  /**
   * Settle whole entries in one round trip: each is acknowledged and deleted, its retries scheduled and
   * its dead letters written, atomically. Returns how many entries were still this group's to settle
   * (one another worker already settled is skipped whole).
   */
  async settle(entries: readonly EntrySettlement[], now = Date.now()): Promise<number> {
    if (entries.length === 0) return 0;
    const args: (string | number)[] = [CONSUMER_GROUP, now];
    for (const e of entries) {
      if (e.retries.length === 0 && e.deadLetters.length === 0) {
        args.push(`${e.entryId}/${e.size}`); // all delivered: one argument
        continue;
      }
      args.push(e.entryId, e.size - e.retries.length, e.retries.length);
      for (const r of e.retries) args.push(r.dueAtMs, `${r.postback.id}|${r.attempts}|${r.postback.templateId}|${r.postback.data}`);
      args.push(e.deadLetters.length);
      for (const d of e.deadLetters) args.push(d.fields.length, ...d.fields);
    }
    return Number(await this.callHot('settle', args));
  }

  /** The fields of a dead letter: self-contained, the template inlined, so it can be replayed alone. */
  static deadLetterFields(p: QueuedPostback | MalformedEntry, info: DeadLetterInput, now = Date.now()): string[] {
    const decoded = 'templateId' in p;
    return [
      'id', decoded ? p.id : p.entryId,
      'method', info.template?.method ?? '',
      'url', info.template?.url ?? '',
      'data', decoded ? p.data : JSON.stringify(p.fields),
      'attempts', String(info.attempts),
      'reason', info.reason,
      'status', info.status,
      'error', info.error,
      'at', String(now),
    ];
  }

  /**
   * Tell the group this consumer is still working on these entries (resets their idle time), so
   * XAUTOCLAIM in other workers does not take over an entry whose postbacks are merely many or slow.
   */
  async keepAlive(consumer: string, entryIds: readonly string[]): Promise<void> {
    if (entryIds.length === 0) return;
    await this.redis.xclaim(this.keys.stream, CONSUMER_GROUP, consumer, 0, ...entryIds, 'JUSTID');
  }

  /** Move retries that are due back into the stream. Returns how many moved. */
  async promoteDueRetries(now = Date.now(), limit = 1000): Promise<number> {
    return Number(await this.scripts.pbPromote(this.keys.stream, now, limit));
  }

  /** Due time (ms) of the earliest scheduled retry, or undefined when none. */
  async nextRetryDueMs(): Promise<number | undefined> {
    const r = await this.redis.zrange(this.keys.retry, 0, 0, 'WITHSCORES');
    return r.length >= 2 ? Number(r[1]) : undefined;
  }

  async getTemplate(tid: string): Promise<Template | undefined> {
    const text = await this.redis.hget(this.keys.templates, tid);
    return text == null ? undefined : parseTemplateText(text);
  }

  /** Delete templates nobody has used for the grace period. */
  async collectTemplates(now = Date.now(), limit = 1000): Promise<number> {
    const k = this.keys;
    const cutoff = now - this.options.templateGcGraceS * 1000;
    return Number(await this.scripts.pbCollect(k.stream, cutoff, limit));
  }

  // ---------------------------------------------------------------- operator side

  async status(now = Date.now()): Promise<QueueStatus> {
    const k = this.keys;
    const [live, len, retry, dead, templates, first] = await Promise.all([
      this.redis.get(k.live),
      this.redis.xlen(k.stream),
      this.redis.zcard(k.retry),
      this.redis.xlen(k.dead),
      this.redis.hlen(k.templates),
      this.redis.xrange(k.stream, '-', '+', 'COUNT', 1),
    ]);
    let pending = 0;
    let consumers: QueueStatus['consumers'] = [];
    try {
      const summary = (await this.redis.xpending(k.stream, CONSUMER_GROUP)) as unknown[];
      pending = Number(summary[0] ?? 0);
      const info = (await this.redis.xinfo('CONSUMERS', k.stream, CONSUMER_GROUP)) as unknown[][];
      consumers = info.map((row) => {
        const f = fieldsOf(row);
        return { name: f.name ?? '', pending: Number(f.pending ?? 0), idleMs: Number(f.idle ?? 0) };
      });
    } catch (err) {
      if (!(isNoGroupError(err) || (err instanceof Error && /no such key/i.test(err.message)))) throw err;
    }
    const oldest = first[0] ? Math.max(0, now - entryTimeMs(first[0][0])) : 0;
    return { live: Number(live ?? 0), streamLength: len, pending, retryScheduled: retry, deadLetters: dead, oldestAgeMs: oldest, templates, consumers };
  }

  async listDeadLetters(count = 100, after = '-'): Promise<DeadLetter[]> {
    const rows = await this.redis.xrange(this.keys.dead, after, '+', 'COUNT', count);
    return rows.map(([deadId, raw]) => deadLetterOf(deadId, raw));
  }

  /** Put dead letters back in the queue with a fresh attempt budget. Returns how many were replayed. */
  async replayDeadLetters(letters: readonly DeadLetter[]): Promise<number> {
    const args: string[] = [];
    for (const d of letters) {
      const template = parseTemplateText(`${d.method} ${d.url}`);
      if (!template) continue; // a dead letter without a usable endpoint cannot be replayed
      args.push(d.deadId, templateId(template), templateText(template), d.data, d.id);
    }
    if (args.length === 0) return 0;
    const k = this.keys;
    return Number(
      await this.scripts.pbReplay(k.stream, ...args),
    );
  }

  async purgeDeadLetters(deadIds: readonly string[]): Promise<number> {
    if (deadIds.length === 0) return 0;
    return this.redis.xdel(this.keys.dead, ...deadIds);
  }
}

// ==========================================================================================
// Operator CLI (src/ctl) — everything `postback-ctl` asks of Redis. Kept in a block of its own,
// apart from the delivery and ingest protocol above, so that changes there merge without trouble.
// Nothing here changes the wire format: it reads the keys, and writes only through XDEL and the
// pbReplay script.
// ==========================================================================================

/** One consumer (delivery worker) of the group, as XINFO CONSUMERS reports it. */
export interface ConsumerInfo {
  readonly name: string;
  /** Entries it holds, read and not yet settled. */
  readonly pending: number;
  /** Since its last attempted interaction (read, claim, keep-alive), ms. */
  readonly idleMs: number;
  /** Since its last successful interaction, ms (Redis 7.2+; undefined before). */
  readonly inactiveMs?: number;
  /**
   * Age of its worker's heartbeat, ms; undefined when there is none, i.e. no worker of that name has
   * run for three DELIVERY_HEARTBEAT_INTERVAL_MS. The one sign of life that means the same on every Redis.
   */
  readonly heartbeatAgeMs?: number;
}

/** The queue at a glance: what `postback-ctl status` shows. */
export interface QueueInspection {
  readonly prefix: string;
  /** Postbacks not yet delivered or dead-lettered (waiting, in flight, or scheduled for a retry). */
  readonly live: number;
  /** Stream entries (a request's postbacks share one): waiting + in flight. */
  readonly streamLength: number;
  /** Entries no worker has read yet. */
  readonly waiting: number;
  /** Entries read by a worker and not yet settled (XPENDING). */
  readonly inFlight: number;
  /** Age of the oldest entry in the stream, ms (0 when empty); a retried postback counts from its return. */
  readonly oldestAgeMs: number;
  /** The oldest entry a worker holds unsettled: its id, age, holder, and idle time since last touched. */
  readonly oldestInFlight?: { readonly entryId: string; readonly ageMs: number; readonly consumer: string; readonly idleMs: number; readonly deliveries: number };
  readonly retryScheduled: number;
  /** When the earliest retry is due, ms since the epoch. */
  readonly nextRetryDueMs?: number;
  readonly deadLetters: number;
  readonly templates: number;
  /** Whether the consumer group exists (it is created by the first worker to start). */
  readonly groupExists: boolean;
  readonly consumers: readonly ConsumerInfo[];
}

/** Which dead letters an operation applies to (the CLI builds it from --host / --reason). */
export type DeadLetterMatch = (letter: DeadLetter) => boolean;

export interface DeadLetterSelection {
  /** Dead letters looked at. */
  readonly scanned: number;
  /** Those that matched. */
  readonly matched: number;
}

const DEAD_PAGE = 500;

/** A dead-letter stream entry, decoded. */
function deadLetterOf(deadId: string, raw: unknown): DeadLetter {
  const f = fieldsOf(raw);
  return {
    deadId,
    id: f.id ?? '',
    method: f.method ?? '',
    url: f.url ?? '',
    data: f.data ?? '',
    attempts: Number(f.attempts ?? 0),
    reason: f.reason ?? '',
    status: f.status ?? '',
    error: f.error ?? '',
    failedAt: Number(f.at ?? 0),
  };
}

/** A stream id (`1795584176858-0`), as opposed to a postback id (`1795584176858-0:3`). */
export function isStreamId(id: string): boolean {
  return /^\d+-\d+$/.test(id);
}

/** Whether a dead letter carries an endpoint it can be replayed to (a malformed entry's does not). */
export function isReplayable(letter: DeadLetter): boolean {
  return parseTemplateText(`${letter.method} ${letter.url}`) !== undefined;
}

/** The operator's view of the queue: inspection, and dead letters listed, replayed and purged. */
export class QueueInspector {
  readonly keys: QueueKeys;
  private readonly queue: Queue;

  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
  ) {
    this.keys = queueKeys(prefix);
    // Only its operator methods are used (status, replay, purge): the enqueue limits do not apply.
    this.queue = new Queue(redis, { prefix, maxLength: 0, templateGcGraceS: 3600 });
  }

  async inspect(now = Date.now()): Promise<QueueInspection> {
    const k = this.keys;
    const [base, nextDue] = await Promise.all([this.queue.status(now), this.queue.nextRetryDueMs()]);
    let groupExists = true;
    let consumers: ConsumerInfo[] = [];
    let oldestInFlight: QueueInspection['oldestInFlight'];
    try {
      const info = (await this.redis.xinfo('CONSUMERS', k.stream, CONSUMER_GROUP)) as unknown[][];
      consumers = info.map((row) => {
        const f = fieldsOf(row);
        return {
          name: f.name ?? '',
          pending: Number(f.pending ?? 0),
          idleMs: Number(f.idle ?? 0),
          ...(f.inactive !== undefined && Number(f.inactive) >= 0 ? { inactiveMs: Number(f.inactive) } : {}),
        };
      });
      if (consumers.length) {
        const beats = await this.redis.mget(...consumers.map((c) => heartbeatKey(this.prefix, c.name)));
        consumers = consumers.map((c, i) => {
          const at = beats[i] == null ? NaN : Number(beats[i]);
          return Number.isFinite(at) ? { ...c, heartbeatAgeMs: Math.max(0, now - at) } : c;
        });
      }
      // XPENDING's extended form, first row: the oldest entry held, by whom, and since when untouched.
      const first = (await this.redis.xpending(k.stream, CONSUMER_GROUP, '-', '+', 1)) as unknown[][];
      const row = first[0];
      if (row) {
        const entryId = String(row[0]);
        oldestInFlight = {
          entryId,
          ageMs: Math.max(0, now - entryTimeMs(entryId)),
          consumer: String(row[1]),
          idleMs: Number(row[2]),
          deliveries: Number(row[3]),
        };
      }
    } catch (err) {
      if (!(isNoGroupError(err) || (err instanceof Error && /no such key/i.test(err.message)))) throw err;
      groupExists = false;
    }
    return {
      prefix: this.prefix,
      live: base.live,
      streamLength: base.streamLength,
      waiting: Math.max(0, base.streamLength - base.pending),
      inFlight: base.pending,
      oldestAgeMs: base.oldestAgeMs,
      ...(oldestInFlight ? { oldestInFlight } : {}),
      retryScheduled: base.retryScheduled,
      ...(nextDue !== undefined ? { nextRetryDueMs: nextDue } : {}),
      deadLetters: base.deadLetters,
      templates: base.templates,
      groupExists,
      consumers,
    };
  }

  /**
   * Dead letters page by page, newest first or oldest first. The scan is bounded by the newest (or
   * oldest) letter at its start, so letters written meanwhile (a replayed postback failing again) are
   * not visited: a replay or purge never chases its own tail.
   */
  async *deadLetterPages(newestFirst = false, pageSize = DEAD_PAGE): AsyncGenerator<DeadLetter[]> {
    const key = this.keys.dead;
    const newest = await this.redis.xrevrange(key, '+', '-', 'COUNT', 1);
    const bound = newest[0]?.[0];
    if (bound === undefined) return;
    let cursor = newestFirst ? bound : '-';
    for (;;) {
      const rows = newestFirst
        ? await this.redis.xrevrange(key, cursor, '-', 'COUNT', pageSize)
        : await this.redis.xrange(key, cursor, bound, 'COUNT', pageSize);
      if (rows.length === 0) return;
      yield rows.map(([id, raw]) => deadLetterOf(id, raw));
      if (rows.length < pageSize) return;
      cursor = `(${rows.at(-1)![0]}`;
    }
  }

  /**
   * Up to `limit` matching dead letters, newest first, and how many match in all. Without `match`,
   * only the `limit` newest are read (and XLEN counts them); with one, every dead letter is looked at.
   */
  async listDeadLetters(match: DeadLetterMatch | undefined, limit: number): Promise<{ letters: DeadLetter[]; matched: number; total: number }> {
    if (!match) {
      const [rows, total] = await Promise.all([
        limit > 0 ? this.redis.xrevrange(this.keys.dead, '+', '-', 'COUNT', limit) : Promise.resolve([]),
        this.redis.xlen(this.keys.dead),
      ]);
      return { letters: rows.map(([id, raw]) => deadLetterOf(id, raw)), matched: total, total };
    }
    const letters: DeadLetter[] = [];
    let matched = 0;
    let total = 0;
    for await (const page of this.deadLetterPages(true)) {
      total += page.length;
      for (const d of page) {
        if (!match(d)) continue;
        matched++;
        if (letters.length < limit) letters.push(d);
      }
    }
    return { letters, matched, total };
  }

  /**
   * The dead letters an operator names: by their dead-letter stream id (`XRANGE` of one), or by the
   * postback's own id (`<entry id>:<index>`, as in the delivery log), which takes a scan.
   */
  async findDeadLetters(id: string): Promise<DeadLetter[]> {
    if (isStreamId(id)) {
      const rows = await this.redis.xrange(this.keys.dead, id, id);
      return rows.map(([deadId, raw]) => deadLetterOf(deadId, raw));
    }
    const out: DeadLetter[] = [];
    for await (const page of this.deadLetterPages()) for (const d of page) if (d.id === id) out.push(d);
    return out;
  }

  /**
   * Replay (back into the queue, with a fresh attempt budget) every dead letter that matches, oldest
   * first, a page at a time through the pbReplay script. Letters without a usable endpoint (malformed
   * entries) are counted as skipped and left in place.
   */
  async replayMatching(match: DeadLetterMatch): Promise<DeadLetterSelection & { replayed: number; skipped: number }> {
    let scanned = 0;
    let matched = 0;
    let replayed = 0;
    let skipped = 0;
    for await (const page of this.deadLetterPages()) {
      scanned += page.length;
      const chosen = page.filter(match);
      matched += chosen.length;
      const ok = chosen.filter(isReplayable);
      skipped += chosen.length - ok.length;
      replayed += await this.queue.replayDeadLetters(ok);
    }
    return { scanned, matched, replayed, skipped };
  }

  /** Replay these dead letters (found with findDeadLetters). */
  async replay(letters: readonly DeadLetter[]): Promise<{ replayed: number; skipped: number }> {
    const ok = letters.filter(isReplayable);
    return { replayed: await this.queue.replayDeadLetters(ok), skipped: letters.length - ok.length };
  }

  /** Delete every dead letter that matches. Returns how many were deleted. */
  async purgeMatching(match: DeadLetterMatch): Promise<DeadLetterSelection & { purged: number }> {
    let scanned = 0;
    let matched = 0;
    let purged = 0;
    for await (const page of this.deadLetterPages()) {
      scanned += page.length;
      const chosen = page.filter(match);
      matched += chosen.length;
      purged += await this.queue.purgeDeadLetters(chosen.map((d) => d.deadId));
    }
    return { scanned, matched, purged };
  }

  async purge(letters: readonly DeadLetter[]): Promise<number> {
    return this.queue.purgeDeadLetters(letters.map((d) => d.deadId));
  }

  /**
   * Consumers of the group that hold nothing, have no live worker (no heartbeat) and have been idle for
   * at least `minIdleMs`: what `pruneConsumers` may delete.
   */
  async staleConsumers(minIdleMs: number): Promise<ConsumerInfo[]> {
    const { consumers } = await this.inspect();
    return consumers.filter((c) => c.pending === 0 && c.heartbeatAgeMs === undefined && c.idleMs >= minIdleMs);
  }

  /**
   * Delete these consumer names from the group, each only if it still holds no entry, has no heartbeat
   * and is still idle for `minIdleMs` (checked and deleted in one script, so a worker that came back
   * meanwhile keeps its name and nothing it holds is ever dropped). Returns the names deleted.
   */
  async pruneConsumers(names: readonly string[], minIdleMs: number): Promise<string[]> {
    const deleted: string[] = [];
    for (const name of names) {
      const r = await this.redis.eval(PRUNE_CONSUMER_LUA, 2, this.keys.stream, heartbeatKey(this.prefix, name), CONSUMER_GROUP, name, minIdleMs);
      if (Number(r) === 1) deleted.push(name);
    }
    return deleted;
  }
}

/** KEYS stream heartbeat; ARGV group consumer minIdleMs -> 1 deleted, 0 kept (alive, holds entries, active, or gone). */
const PRUNE_CONSUMER_LUA = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] == ARGV[2] then
    if tonumber(f['pending']) == 0 and tonumber(f['idle']) >= tonumber(ARGV[3]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0`;

// ==========================================================================================
// Worker liveness: a heartbeat key per delivery worker, written by the worker, read by the CLI.
// XINFO CONSUMERS cannot say whether a worker is alive on every Redis: on 7.0 (Debian 12's) a
// blocking XREADGROUP that returns nothing does not reset a consumer's idle time, so a live worker
// with no traffic looks idle for ever; on 7.2+ every read resets it. The heartbeat means the same
// everywhere. One small expiring key per worker, written every DELIVERY_HEARTBEAT_INTERVAL_MS (about
// 80 bytes of AOF each time), deleted when the worker stops cleanly.
// ==========================================================================================

/** pb:hb:<consumer>: the time (ms) of the worker's last heartbeat; expires after three intervals. */
export function heartbeatKey(prefix: string, consumer: string): string {
  return `${prefix}:hb:${consumer}`;
}

/** How many heartbeat intervals a heartbeat lives: a worker missing two in a row is still alive. */
export const HEARTBEAT_LIFETIME_INTERVALS = 3;

export class WorkerHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    readonly consumer: string,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.key = heartbeatKey(prefix, consumer);
  }

  /** Beat now, then every interval. */
  async start(): Promise<void> {
    if (this.timer) return;
    this.timer = setInterval(() => void this.beat().catch(() => undefined), this.intervalMs);
    this.timer.unref();
    await this.beat().catch(() => undefined);
  }

  beat(): Promise<unknown> {
    return this.redis.set(this.key, String(this.now()), 'PX', this.intervalMs * HEARTBEAT_LIFETIME_INTERVALS);
  }

  /** A worker that stops cleanly is not alive any more: say so at once. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.del(this.key).catch(() => undefined);
  }
}
