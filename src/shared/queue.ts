/**
 * The queue protocol. This module owns every Redis key and every command that touches them; ingest,
 * delivery and the tools all go through it. docs/architecture.md describes the same protocol for humans.
 *
 * Keys (prefix `pb` by default):
 *   pb:queue        stream      postbacks waiting or being delivered; consumer group `delivery`
 *   pb:retry        sorted set  postbacks waiting for their next attempt, scored by due time (ms)
 *   pb:dead         stream      dead letters: self-contained (template inlined) with the reason
 *   pb:tpl          hash        template id -> "METHOD url-template"
 *   pb:tplref       hash        template id -> number of live postbacks that use it
 *   pb:tplgc        sorted set  template ids whose count fell to 0, scored by when (ms); collected later
 *
 * Encoding, chosen so few bytes cross Redis per postback: a request's endpoint (method + URL template)
 * is stored once under a content-hash id, and each postback entry carries only that 12-character id
 * (`t`) and its own data object as compact JSON (`d`). A retried postback also carries its original id
 * (`i`) and the attempts already made (`a`). Ingest skips even the template text when it knows Redis
 * has it; the enqueue script tells it when that guess was wrong.
 *
 * Guarantees: an enqueue is one Lua script, so all of a request's postbacks are added or none. An entry
 * leaves the stream only inside a script that also records its fate (acked as delivered, moved to the
 * retry set, or dead-lettered), so a crash at any point leaves it pending, to be taken over by
 * XAUTOCLAIM (or re-read by a worker restarted under the same consumer name): at-least-once delivery.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

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
}

export function queueKeys(prefix: string): QueueKeys {
  return {
    stream: `${prefix}:queue`,
    retry: `${prefix}:retry`,
    dead: `${prefix}:dead`,
    templates: `${prefix}:tpl`,
    templateRefs: `${prefix}:tplref`,
    templateGc: `${prefix}:tplgc`,
  };
}

/** A postback read from the stream: what a worker needs to deliver it and to settle it afterwards. */
export interface QueuedPostback {
  /** The stream entry id: the handle used to settle this entry. */
  readonly entryId: string;
  /** The postback's stable id: its first entry id, kept across retries. */
  readonly id: string;
  readonly templateId: string;
  /** The data object as the compact JSON ingest stored. */
  readonly data: string;
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
  /** Reading pending entries: the last id seen (deleted entries included), to continue after it. */
  readonly lastEntryId?: string;
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
  | { readonly ok: false; readonly reason: 'full'; readonly length: number }
  /** Stored on the master, but fewer replicas than required confirmed it in time. */
  | { readonly ok: false; readonly reason: 'unreplicated'; readonly replicas: number };

export interface QueueOptions {
  readonly prefix: string;
  /** Refuse enqueues beyond this stream length; 0 = no limit. */
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

/** KEYS stream tpl tplref tplgc; ARGV tplId tplText|'' maxLen data... -> ids | 0 (template unknown) | length (full) */
const ENQUEUE_LUA = `
local tid = ARGV[1]
local n = #ARGV - 3
if redis.call('HEXISTS', KEYS[2], tid) == 0 then
  if ARGV[2] == '' then return 0 end
  redis.call('HSET', KEYS[2], tid, ARGV[2])
end
local maxLen = tonumber(ARGV[3])
if maxLen > 0 then
  local len = redis.call('XLEN', KEYS[1])
  if len + n > maxLen then return len + 1 end
end
redis.call('HINCRBY', KEYS[3], tid, n)
redis.call('ZREM', KEYS[4], tid)
local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 't', tid, 'd', ARGV[i])
end
return ids`;

/**
 * Settle delivered postbacks. KEYS stream tplref tplgc; ARGV group now (tplId count entryId...)...
 * An entry another worker already settled (XACK = 0) is skipped, so a template's count drops once.
 */
const ACK_LUA = `
local i = 3
local acked = 0
while i <= #ARGV do
  local tid = ARGV[i]
  local count = tonumber(ARGV[i + 1])
  local done = 0
  for j = i + 2, i + 1 + count do
    if redis.call('XACK', KEYS[1], ARGV[1], ARGV[j]) == 1 then
      redis.call('XDEL', KEYS[1], ARGV[j])
      done = done + 1
    end
  end
  if done > 0 and redis.call('HINCRBY', KEYS[2], tid, -done) <= 0 then
    redis.call('ZADD', KEYS[3], ARGV[2], tid)
  end
  acked = acked + done
  i = i + 2 + count
end
return acked`;

/** KEYS stream retry; ARGV group entryId dueAt member -> 1 moved | 0 already settled elsewhere */
const RETRY_LUA = `
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1`;

/** KEYS stream dead tplref tplgc; ARGV group entryId now tplId field value... -> 1 | 0 */
const DEAD_LUA = `
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
if ARGV[4] ~= '' and redis.call('HINCRBY', KEYS[3], ARGV[4], -1) <= 0 then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])
end
return 1`;

/** Move due retries back into the stream. KEYS retry stream; ARGV now limit -> count moved */
const PROMOTE_LUA = `
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local id, a, tid, d = string.match(m, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  if id then
    redis.call('XADD', KEYS[2], '*', 't', tid, 'd', d, 'i', id, 'a', a)
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due`;

/**
 * Hand postbacks back to the queue unfinished (worker shutting down): a fresh entry, same attempt count,
 * readable by any worker at once. KEYS stream; ARGV group (entryId tplId data id attempts)... -> count
 */
const RELEASE_LUA = `
local n = 0
for i = 2, #ARGV, 5 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    redis.call('XADD', KEYS[1], '*', 't', ARGV[i + 1], 'd', ARGV[i + 2], 'i', ARGV[i + 3], 'a', ARGV[i + 4])
    n = n + 1
  end
end
return n`;

/** Replay dead letters. KEYS dead stream tpl tplref tplgc; ARGV (deadId tplId tplText data id)... -> count */
const REPLAY_LUA = `
local n = 0
for i = 1, #ARGV, 5 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    local tid = ARGV[i + 1]
    redis.call('HSETNX', KEYS[3], tid, ARGV[i + 2])
    redis.call('HINCRBY', KEYS[4], tid, 1)
    redis.call('ZREM', KEYS[5], tid)
    redis.call('XADD', KEYS[2], '*', 't', tid, 'd', ARGV[i + 3], 'i', ARGV[i + 4], 'a', '0')
    n = n + 1
  end
end
return n`;

/** Delete templates unreferenced for the grace period. KEYS tpl tplref tplgc; ARGV cutoff limit -> count */
const COLLECT_LUA = `
local ids = redis.call('ZRANGE', KEYS[3], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, tid in ipairs(ids) do
  local refs = tonumber(redis.call('HGET', KEYS[2], tid) or '0')
  if refs <= 0 then
    redis.call('HDEL', KEYS[1], tid)
    redis.call('HDEL', KEYS[2], tid)
    n = n + 1
  end
  redis.call('ZREM', KEYS[3], tid)
end
return n`;

type ScriptName = 'pbEnqueue' | 'pbAck' | 'pbRetry' | 'pbDead' | 'pbPromote' | 'pbRelease' | 'pbReplay' | 'pbCollect';

const SCRIPTS: Record<ScriptName, { keys: number; lua: string }> = {
  pbEnqueue: { keys: 4, lua: ENQUEUE_LUA },
  pbAck: { keys: 3, lua: ACK_LUA },
  pbRetry: { keys: 2, lua: RETRY_LUA },
  pbDead: { keys: 4, lua: DEAD_LUA },
  pbPromote: { keys: 2, lua: PROMOTE_LUA },
  pbRelease: { keys: 1, lua: RELEASE_LUA },
  pbReplay: { keys: 5, lua: REPLAY_LUA },
  pbCollect: { keys: 3, lua: COLLECT_LUA },
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

/** Decode one stream entry [id, [field, value, ...]]; null fields mean the entry was deleted. */
export function decodeEntry(entryId: string, raw: unknown): QueuedPostback | MalformedEntry {
  const f = fieldsOf(raw);
  const attempts = f.a === undefined ? 0 : Number(f.a);
  if (!f.t || f.d === undefined || !Number.isInteger(attempts) || attempts < 0) return { entryId, fields: f };
  return { entryId, id: f.i ?? entryId, templateId: f.t, data: f.d, attempts };
}

function isPostback(x: QueuedPostback | MalformedEntry): x is QueuedPostback {
  return 'templateId' in x;
}

function splitEntries(entries: unknown[]): ReadResult {
  const postbacks: QueuedPostback[] = [];
  const malformed: MalformedEntry[] = [];
  for (const e of entries) {
    if (!Array.isArray(e)) continue;
    const decoded = decodeEntry(String(e[0]), e[1]);
    if (isPostback(decoded)) postbacks.push(decoded);
    else malformed.push(decoded);
  }
  return { postbacks, malformed };
}

export function isNoGroupError(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOGROUP');
}

export interface QueueStatus {
  /** Entries in the stream: waiting plus being delivered. */
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
    let reply = await this.callEnqueue(tid, sendText ? templateText(template) : '', dataJson);
    if (reply === 0) reply = await this.callEnqueue(tid, templateText(template), dataJson);
    if (typeof reply === 'number') return { ok: false, reason: 'full', length: reply - 1 };
    if (!Array.isArray(reply)) throw new Error(`unexpected enqueue reply: ${String(reply)}`);
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
    return { ok: true, ids: reply.map(String) };
  }

  private callEnqueue(tid: string, text: string, dataJson: readonly string[]): Promise<unknown> {
    const k = this.keys;
    return this.scripts.pbEnqueue(
      k.stream, k.templates, k.templateRefs, k.templateGc,
      tid, text, this.options.maxLength, ...dataJson,
    );
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
      return { postbacks: [], malformed: [] };
    }
    if (!Array.isArray(reply) || reply.length === 0) return { postbacks: [], malformed: [] };
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
      return { postbacks: [], malformed: [], cursor: '0-0' };
    }
    const [next, entries] = reply as [string, unknown[]];
    return { ...splitEntries(entries.filter((e) => Array.isArray(e) && e[1] != null)), cursor: String(next) };
  }

  /** Settle delivered postbacks in one round trip. Returns how many were still this group's to settle. */
  async ack(postbacks: readonly QueuedPostback[], now = Date.now()): Promise<number> {
    if (postbacks.length === 0) return 0;
    const byTemplate = new Map<string, string[]>();
    for (const p of postbacks) {
      const list = byTemplate.get(p.templateId);
      if (list) list.push(p.entryId);
      else byTemplate.set(p.templateId, [p.entryId]);
    }
    const args: (string | number)[] = [CONSUMER_GROUP, now];
    for (const [tid, ids] of byTemplate) args.push(tid, ids.length, ...ids);
    const k = this.keys;
    return Number(await this.scripts.pbAck(k.stream, k.templateRefs, k.templateGc, ...args));
  }

  /** Move a postback to the retry set, due at `dueAtMs`, with `attempts` made so far. */
  async scheduleRetry(p: QueuedPostback, attempts: number, dueAtMs: number): Promise<boolean> {
    const member = `${p.id}|${attempts}|${p.templateId}|${p.data}`;
    const k = this.keys;
    return Number(await this.scripts.pbRetry(k.stream, k.retry, CONSUMER_GROUP, p.entryId, dueAtMs, member)) === 1;
  }

  /** Move a postback to the dead-letter stream with the reason. */
  async deadLetter(p: QueuedPostback | MalformedEntry, info: DeadLetterInput, now = Date.now()): Promise<boolean> {
    const decoded = isPostback(p);
    const fields = [
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
    const k = this.keys;
    const reply = await this.scripts.pbDead(
      k.stream, k.dead, k.templateRefs, k.templateGc,
      CONSUMER_GROUP, p.entryId, now, decoded ? p.templateId : '', ...fields,
    );
    return Number(reply) === 1;
  }

  /** Hand unfinished postbacks back to the queue for any worker (used when shutting down). */
  async release(postbacks: readonly QueuedPostback[]): Promise<number> {
    if (postbacks.length === 0) return 0;
    const args: string[] = [];
    for (const p of postbacks) args.push(p.entryId, p.templateId, p.data, p.id, String(p.attempts));
    return Number(await this.scripts.pbRelease(this.keys.stream, CONSUMER_GROUP, ...args));
  }

  /** Move retries that are due back into the stream. Returns how many moved. */
  async promoteDueRetries(now = Date.now(), limit = 1000): Promise<number> {
    return Number(await this.scripts.pbPromote(this.keys.retry, this.keys.stream, now, limit));
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
    return Number(await this.scripts.pbCollect(k.templates, k.templateRefs, k.templateGc, cutoff, limit));
  }

  // ---------------------------------------------------------------- operator side

  async status(now = Date.now()): Promise<QueueStatus> {
    const k = this.keys;
    const [len, retry, dead, templates, first] = await Promise.all([
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
    return { streamLength: len, pending, retryScheduled: retry, deadLetters: dead, oldestAgeMs: oldest, templates, consumers };
  }

  async listDeadLetters(count = 100, after = '-'): Promise<DeadLetter[]> {
    const rows = await this.redis.xrange(this.keys.dead, after, '+', 'COUNT', count);
    return rows.map(([deadId, raw]) => {
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
    });
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
      await this.scripts.pbReplay(k.dead, k.stream, k.templates, k.templateRefs, k.templateGc, ...args),
    );
  }

  async purgeDeadLetters(deadIds: readonly string[]): Promise<number> {
    if (deadIds.length === 0) return 0;
    return this.redis.xdel(this.keys.dead, ...deadIds);
  }
}
