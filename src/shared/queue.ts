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
 *
 * The code is split by subject under src/shared/queue/: keys.ts (key names), codec.ts (types and
 * encoding), lua.ts (the scripts and the function library), queue.ts (ingest's and delivery's calls),
 * inspector.ts (the operator's), heartbeat.ts (workers' liveness). Everything is imported from here.
 */
export * from './queue/keys.js';
export * from './queue/codec.js';
export { FUNCTION_LIBRARY, FUNCTION_NAMES } from './queue/lua.js';
export * from './queue/queue.js';
export * from './queue/inspector.js';
export * from './queue/heartbeat.js';
