/**
 * The operator's side of the queue (src/ctl, `postback-ctl`): inspection, dead letters listed, replayed
 * and purged, stale consumer names pruned (never one with a live worker). Nothing here changes the wire format: it reads the keys, and
 * writes only through XDEL, the pbReplay script and XGROUP DELCONSUMER.
 */
import type { Redis } from 'ioredis';
import { CONSUMER_GROUP, heartbeatKey, queueKeys, type QueueKeys } from './keys.js';
import { deadLetterOf, entryTimeMs, fieldsOf, isNoGroupError, isReplayable, isStreamId, type DeadLetter } from './codec.js';
import { Queue } from './queue.js';

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

