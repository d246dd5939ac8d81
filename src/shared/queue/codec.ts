/**
 * What crosses Redis: the queue's types, the template id and text, and the decoding of stream entries
 * and dead letters. Pure: no Redis calls.
 */
import { createHash } from 'node:crypto';
import type { DataObject } from '../template.js';

export type HttpMethod = 'GET' | 'POST';

export interface Template {
  readonly method: HttpMethod;
  readonly url: string;
}

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
  /**
   * Postbacks per stream entry: a bigger request is split over several entries (consecutive ids), so
   * workers share it and a kill -9 re-delivers little. @defaultValue 100
   */
  readonly entryMaxPostbacks?: number;
  /** Refuse enqueues that would take the live postbacks beyond this; 0 = no limit. */
  readonly maxLength: number;
  /** Seconds an unreferenced template survives before collection. */
  readonly templateGcGraceS: number;
  /** Replicas that must confirm an enqueue (WAIT) before it counts as accepted; 0 = none. */
  readonly minReplicas?: number;
  /** How long to wait for those replicas, ms. */
  readonly replicaTimeoutMs?: number;
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

export function fieldsOf(raw: unknown): Record<string, string> {
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
  // [templateId, dataArrayJson, ('i', originalId, 'a', attempts)? | ('c', chunk, 'o', offset)?]
  const [tid, d] = list;
  const f = fieldsOf(list.slice(2));
  const malformed = (): MalformedEntry => ({ entryId, fields: fieldsOf(list) });
  const attempts = f.a === undefined ? 0 : Number(f.a);
  if (!tid || d === undefined || !Number.isInteger(attempts) || attempts < 0) return malformed();
  // Chunk c of a big request: its postbacks are numbered from the request's first entry (c ids back).
  let base = entryId;
  let offset = 0;
  if (f.c !== undefined || f.o !== undefined) {
    const firstId = chunkBaseId(entryId, f.c);
    offset = Number(f.o);
    if (firstId === undefined || !Number.isInteger(offset) || offset < 0 || f.i !== undefined) return malformed();
    base = firstId;
  }
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
    id: f.i ?? `${base}:${offset + index}`,
    templateId: tid,
    data: items.length === 1 ? d.slice(1, -1) : JSON.stringify(value),
    value,
    attempts,
  }));
}

/** The id `chunk` ids before `entryId` (ms-seq): where a chunked request's postback ids start. */
export function chunkBaseId(entryId: string, chunk: string | undefined): string | undefined {
  const m = /^(\d+)-(\d+)$/.exec(entryId);
  if (!m || chunk === undefined || !/^\d+$/.test(chunk)) return undefined;
  const seq = BigInt(m[2]!) - BigInt(chunk);
  return seq < 0n ? undefined : `${m[1]}-${seq}`;
}

export function splitEntries(entries: unknown[]): ReadResult {
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

/** A dead-letter stream entry, decoded. */
export function deadLetterOf(deadId: string, raw: unknown): DeadLetter {
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
