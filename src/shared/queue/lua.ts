/**
 * The queue's Lua: each script is atomic, so every state change is all-or-nothing. The two calls made
 * for every request (enqueue, settle) form a Redis function library; the rest are EVALSHA scripts.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { KEYS_LUA } from './keys.js';

/**
 * KEYS stream; ARGV tplId count maxLive dataArrayJson [tplText|'' [offset dataArrayJson]...]
 * -> entry id | 0 (template unknown: resend with its text) | live+1 (full)
 * The limit is checked before anything is written: a refused request leaves nothing behind.
 * A big request comes in chunks (QUEUE_ENTRY_MAX_POSTBACKS each) so its postbacks spread over every
 * worker: the first is XADDed with '*', the rest with the ids right after it (ms-(seq+c)), each naming
 * its chunk number `c` and the index `o` of its first postback, so every postback keeps the id
 * `<first entry id>:<index>` the client was given.
 * Not allow-oom: at maxmemory Redis refuses it before it runs (ingest answers 503 ERR_QUEUE_FULL).
 */
const ENQUEUE_BODY = `
local tid = ARGV[1]
local n = tonumber(ARGV[2])
local maxLive = tonumber(ARGV[3])
if maxLive > 0 then
  local live = tonumber(redis.call('GET', K_live) or '0')
  if live + n > maxLive then return live + 1 end
end
if redis.call('HEXISTS', K_templates, tid) == 0 then
  if not ARGV[5] or ARGV[5] == '' then return 0 end
  redis.call('HSET', K_templates, tid, ARGV[5])
end
redis.call('HINCRBY', K_templateRefs, tid, n)
redis.call('ZREM', K_templateGc, tid)
redis.call('INCRBY', K_live, n)
local first = redis.call('XADD', K_stream, '*', tid, ARGV[4])
if #ARGV > 5 then
  local ms, seq = string.match(first, '^(%d+)-(%d+)$')
  seq = tonumber(seq)
  local c = 1
  for i = 6, #ARGV, 2 do
    redis.call('XADD', K_stream, ms .. '-' .. string.format('%d', seq + c), tid, ARGV[i + 1], 'c', c, 'o', ARGV[i])
    c = c + 1
  end
end
return first`;

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
 *
 * Settle is flagged `allow-oom`: a full Redis (used_memory above maxmemory, noeviction) refuses every
 * function and script not so flagged before it runs, and settling is what frees memory (it deletes the
 * settled entries). Without it, a worker at the limit delivers postbacks it cannot settle and delivers
 * them again later. Its retries and dead letters move postbacks rather than add them.
 */
const HOT_BODIES = { enqueue: ENQUEUE_BODY, settle: SETTLE_BODY } as const;
type HotName = keyof typeof HOT_BODIES;
const HOT_FLAGS: Record<HotName, string> = { enqueue: '', settle: `, flags={'allow-oom'}` };
const LIBRARY_VERSION = createHash('sha1')
  .update(KEYS_LUA + ENQUEUE_BODY + SETTLE_BODY + HOT_FLAGS.enqueue + HOT_FLAGS.settle)
  .digest('hex')
  .slice(0, 6);
export const FUNCTION_NAMES: Record<HotName, string> = { enqueue: `pbe_${LIBRARY_VERSION}`, settle: `pbs_${LIBRARY_VERSION}` };
export const FUNCTION_LIBRARY =
  `#!lua name=postback_${LIBRARY_VERSION}\n` +
  (Object.entries(HOT_BODIES) as [HotName, string][])
    .map(
      ([name, body]) =>
        `redis.register_function{function_name='${FUNCTION_NAMES[name]}', callback=function(KEYS, ARGV)\n${KEYS_LUA}${body}\nend${HOT_FLAGS[name]}}`,
    )
    .join('\n');

/**
 * Redis 7 script flags (a shebang line): `allow-oom` lets a script run, and write, while Redis is at
 * maxmemory. Used for the scripts that keep the queue draining at the limit, and only after Redis
 * answered OOM to the plain version, so a Redis older than 7 (no shebang) never sees them.
 */
const ALLOW_OOM = '#!lua flags=allow-oom\n';

/** XGROUP CREATE ... MKSTREAM, which a full Redis refuses as a plain command. KEYS stream; ARGV group -> 1 | 0 (existed) */
const CREATE_GROUP_LUA = `
local ok, err = pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if ok then return 1 end
if string.find(tostring(err), 'BUSYGROUP', 1, true) then return 0 end
return redis.error_reply(tostring(err))`;

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

type ScriptName = 'pbEnqueue' | 'pbSettle' | 'pbPromote' | 'pbReplay' | 'pbCollect' | 'pbSettleOom' | 'pbPromoteOom' | 'pbCreateGroupOom';

const SCRIPTS: Record<ScriptName, { keys: number; lua: string }> = {
  pbEnqueue: { keys: 1, lua: KEYS_LUA + ENQUEUE_BODY },
  pbSettle: { keys: 1, lua: KEYS_LUA + SETTLE_BODY },
  pbPromote: { keys: 1, lua: PROMOTE_LUA },
  pbReplay: { keys: 1, lua: REPLAY_LUA },
  pbCollect: { keys: 1, lua: COLLECT_LUA },
  // The same code, flagged allow-oom: what keeps the queue draining while Redis is full (Redis 7).
  pbSettleOom: { keys: 1, lua: ALLOW_OOM + KEYS_LUA + SETTLE_BODY },
  pbPromoteOom: { keys: 1, lua: ALLOW_OOM + PROMOTE_LUA },
  pbCreateGroupOom: { keys: 1, lua: ALLOW_OOM + CREATE_GROUP_LUA },
};

/** Redis refused a command or script because used_memory is above maxmemory. */
export function isOomError(err: unknown): boolean {
  return err instanceof Error && /^OOM /.test(err.message);
}

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

/**
 * Runs the queue's Lua against one connection: the per-request functions by FCALL (loading the library
 * when Redis lacks it, falling back to scripts on a Redis without functions), the rest by EVALSHA
 * (ioredis falls back to EVAL after a Redis restart emptied its script cache).
 */
export class ScriptRunner {
  private readonly scripts: Record<ScriptName, ScriptFn>;
  /** Whether Redis runs functions (FCALL); false once it answered "unknown command" (Redis < 7). */
  private functions = true;
  private loadingFunctions: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly streamKey: string,
  ) {
    const out = {} as Record<ScriptName, ScriptFn>;
    for (const [name, { keys, lua }] of Object.entries(SCRIPTS) as [ScriptName, { keys: number; lua: string }][]) {
      if (typeof (redis as any)[name] !== 'function') redis.defineCommand(name, { numberOfKeys: keys, lua });
      out[name] = (...args) => (redis as any)[name](...args);
    }
    this.scripts = out;
  }

  /** Call one of the per-request functions (FUNCTION_LIBRARY), loading the library if Redis lacks it. */
  async hot(name: HotName, args: (string | number)[]): Promise<unknown> {
    if (this.functions) {
      try {
        return await this.redis.fcall(FUNCTION_NAMES[name], 1, this.streamKey, ...args);
      } catch (err) {
        const message = err instanceof Error ? err.message : '';
        if (/Function not found/i.test(message)) {
          try {
            await this.loadFunctions();
          } catch (loadErr) {
            // A full Redis refuses FUNCTION LOAD too (a new release, or functions flushed, at the limit):
            // settle as a script flagged allow-oom meanwhile; enqueue is refused anyway.
            if (name === 'settle' && isOomError(loadErr)) return await this.scripts.pbSettleOom(this.streamKey, ...args);
            throw loadErr;
          }
          return await this.redis.fcall(FUNCTION_NAMES[name], 1, this.streamKey, ...args);
        }
        if (!/unknown command/i.test(message)) throw err;
        this.functions = false; // Redis < 7: the same code as scripts from now on
      }
    }
    return (name === 'enqueue' ? this.scripts.pbEnqueue : this.scripts.pbSettle)(this.streamKey, ...args);
  }

  /** One of the EVALSHA scripts, called with the stream key. Promotion goes on at maxmemory (allow-oom). */
  async script(name: 'pbPromote' | 'pbReplay' | 'pbCollect', args: (string | number)[]): Promise<unknown> {
    try {
      return await this.scripts[name](this.streamKey, ...args);
    } catch (err) {
      if (name === 'pbPromote' && isOomError(err)) return await this.scripts.pbPromoteOom(this.streamKey, ...args);
      throw err;
    }
  }

  /** XGROUP CREATE as a script flagged allow-oom: a worker can start, and recreate a lost group, while Redis is full. */
  createGroupAtOom(group: string): Promise<unknown> {
    return this.scripts.pbCreateGroupOom(this.streamKey, group);
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
}
