/**
 * The queue as ingest and delivery use it: enqueue (ingest), and read, claim, settle, keep-alive, retry
 * promotion and template collection (delivery); plus the status and dead-letter calls the tools build on.
 */
import type { Redis } from 'ioredis';
import { CONSUMER_GROUP, queueKeys, type QueueKeys } from './keys.js';
import {
  deadLetterOf,
  entryTimeMs,
  fieldsOf,
  isNoGroupError,
  parseTemplateText,
  splitEntries,
  templateId,
  templateText,
  type DeadLetter,
  type DeadLetterInput,
  type EnqueueResult,
  type EntrySettlement,
  type MalformedEntry,
  type QueuedPostback,
  type QueueOptions,
  type QueueStatus,
  type ReadResult,
  type Template,
} from './codec.js';
import { ScriptRunner, isOomError } from './lua.js';

/** Templates ingest believes Redis holds are sent without their text; re-confirmed at this interval. */
const TEMPLATE_CONFIRM_MS = 30_000;
const TEMPLATE_CACHE_MAX = 10_000;
/** QUEUE_ENTRY_MAX_POSTBACKS' default: postbacks per stream entry. */
export const DEFAULT_ENTRY_MAX_POSTBACKS = 100;

/** A request's data items as JSON arrays of at most `max` items, each with the index of its first. */
export function chunkItems(dataJson: readonly string[], max: number): { offset: number; json: string }[] {
  const out: { offset: number; json: string }[] = [];
  for (let offset = 0; offset < dataJson.length || offset === 0; offset += max) {
    out.push({ offset, json: `[${dataJson.slice(offset, offset + max).join(',')}]` });
  }
  return out;
}

export class Queue {
  readonly keys: QueueKeys;
  private readonly lua: ScriptRunner;
  /** Template id -> when ingest last saw Redis confirm it holds that template. */
  private readonly knownTemplates = new Map<string, number>();
  private readonly templateIds = new Map<string, string>();

  constructor(
    private readonly redis: Redis,
    private readonly options: QueueOptions,
  ) {
    this.keys = queueKeys(options.prefix);
    this.lua = new ScriptRunner(redis, this.keys.stream);
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
    const chunks = chunkItems(dataJson, this.options.entryMaxPostbacks ?? DEFAULT_ENTRY_MAX_POSTBACKS);
    let reply = await this.callEnqueue(tid, sendText ? templateText(template) : '', dataJson.length, chunks);
    if (reply === 0) reply = await this.callEnqueue(tid, templateText(template), dataJson.length, chunks);
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

  /** ARGV of the enqueue function: the first chunk, the template text ('' = not sent), then (offset, chunk) pairs. */
  private callEnqueue(tid: string, text: string, count: number, chunks: readonly { offset: number; json: string }[]): Promise<unknown> {
    const args: (string | number)[] = [tid, count, this.options.maxLength, chunks[0]!.json];
    if (text !== '' || chunks.length > 1) args.push(text);
    for (let c = 1; c < chunks.length; c++) args.push(chunks[c]!.offset, chunks[c]!.json);
    return this.lua.hot('enqueue', args);
  }

  // ---------------------------------------------------------------- delivery side

  /**
   * Create the consumer group (and the stream) if missing. Safe to call any time, also while Redis is at
   * maxmemory (which refuses a plain XGROUP CREATE): then through a script flagged allow-oom.
   */
  async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.keys.stream, CONSUMER_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('BUSYGROUP')) return;
      if (!isOomError(err)) throw err;
      await this.lua.createGroupAtOom(CONSUMER_GROUP);
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
    return Number(await this.lua.hot('settle', args));
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
    return Number(await this.lua.script('pbPromote', [now, limit]));
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
    const cutoff = now - this.options.templateGcGraceS * 1000;
    return Number(await this.lua.script('pbCollect', [cutoff, limit]));
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
    return Number(await this.lua.script('pbReplay', args));
  }

  async purgeDeadLetters(deadIds: readonly string[]): Promise<number> {
    if (deadIds.length === 0) return 0;
    return this.redis.xdel(this.keys.dead, ...deadIds);
  }
}

