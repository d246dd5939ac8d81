/**
 * The delivery worker: pulls entries (a request's postbacks each) from the queue in batches, runs at
 * most `deliveryConcurrency` deliveries at once, logs one line per attempt, and once every postback of
 * an entry has an outcome (delivered, retry later, dead letter) settles the entry through the queue
 * module in one script. A blocking read waits for work, so an idle worker costs nothing.
 *
 * Background duties, on a timer: move due retries back into the stream, keep the entries it is working
 * on from looking abandoned, take over entries abandoned by dead workers (XAUTOCLAIM), and collect
 * unused templates.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';
import { Queue, entryTimeMs, type EntrySettlement, type MalformedEntry, type QueuedPostback, type Template } from '../shared/queue.js';
import { compileTemplate, expandTemplate, expandedLength, formBodyLength, type CompiledTemplate } from '../shared/template.js';
import { parseRetryAfter, retryDelayMs } from './backoff.js';
import { decide, type AttemptResult, type DeadReason } from './classify.js';
import type { AttemptOutcome, Deliverer } from './deliver.js';
import { excerpt, hostOf, redactUrl } from './redact.js';

export interface WorkerDeps {
  readonly config: Config;
  readonly queue: Queue;
  /** A connection used only for the blocking read. */
  readonly blocking: Redis;
  readonly logger: Logger;
  readonly deliver: Deliverer;
  readonly now?: () => number;
  readonly random?: () => number;
  /** Told of every settled attempt, after its log line (metrics and statistics hang off this). */
  readonly observer?: WorkerObserver;
}

/** What the worker tells observers about each attempt. Must not throw or block. */
export interface AttemptEvent {
  readonly postbackId: string;
  readonly attempt: number;
  readonly action: 'delivered' | 'retried' | 'dead_lettered';
  readonly endpointHost: string;
  /** HTTP status, or null when there was no response. */
  readonly status: number | null;
  readonly errCode?: string;
  /** Why it was dead-lettered (dead_lettered only). */
  readonly reason?: DeadReason;
  /** Time the attempt took, ms. */
  readonly durationMs: number;
  /** Time from the postback's ingestion to the start of this attempt, ms. */
  readonly queuedMs: number;
  /** Time of the attempt's start, ms since the epoch. */
  readonly at: number;
}

export interface WorkerObserver {
  onAttempt?(event: AttemptEvent): void;
  onClaimed?(count: number): void;
}

/** Counters since start, for tests, metrics and the shutdown log line. */
export interface WorkerCounters {
  attempts: number;
  delivered: number;
  retried: number;
  deadLettered: number;
  claimed: number;
  released: number;
}

interface CachedTemplate {
  readonly template: Template;
  readonly compiled: CompiledTemplate;
}

const TEMPLATE_CACHE_MAX = 10_000;
const TEMPLATE_GC_EVERY_MS = 60_000;

/** An entry being worked on: its postbacks' outcomes gather here until the last one is known. */
interface EntryState {
  readonly entryId: string;
  readonly size: number;
  remaining: number;
  /** Indexes of its postbacks that have an outcome. */
  readonly finished: Set<number>;
  /** When the group last heard this worker holds the entry (read, claimed, or kept alive). */
  touchedAt: number;
  readonly retries: { postback: QueuedPostback; attempts: number; dueAtMs: number }[];
  readonly deadLetters: { fields: string[] }[];
}

export class DeliveryWorker {
  readonly counters: WorkerCounters = { attempts: 0, delivered: 0, retried: 0, deadLettered: 0, claimed: 0, released: 0 };
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  /** Deliveries in progress, by postback key (entry id + index). */
  private readonly inFlight = new Map<string, AbortController>();
  private readonly backlog: QueuedPostback[] = [];
  private readonly entries = new Map<string, EntryState>();
  private slotWaiter: (() => void) | undefined;
  private pendingSettles: EntrySettlement[] = [];
  private settleScheduled = false;
  private readonly settleFlushes = new Set<Promise<void>>();
  private readonly templates = new Map<string, Promise<CachedTemplate | undefined>>();
  private maintenanceTimer: NodeJS.Timeout | undefined;
  private maintenanceRunning = false;
  private claimCursor = '0-0';
  private lastTemplateGc = 0;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: Logger;

  constructor(private readonly deps: WorkerDeps) {
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.log = deps.logger.child({ consumer: deps.config.deliveryConsumerName });
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  async start(): Promise<void> {
    await this.deps.queue.ensureGroup();
    this.running = true;
    this.loopDone = this.loop();
    this.maintenanceTimer = setInterval(() => void this.maintenance(), this.deps.config.deliveryMaintenanceIntervalMs);
    this.log.info('delivery worker started', {
      event: 'worker_started',
      concurrency: this.deps.config.deliveryConcurrency,
      maxAttempts: this.deps.config.deliveryMaxAttempts,
    });
  }

  /**
   * Stop taking work; let deliveries in flight finish for up to `deliveryShutdownTimeoutMs`, then abort
   * the rest and hand them back to the queue for another worker; settle everything; resolve.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.maintenanceTimer);
    this.wakeLoop();
    await this.loopDone; // the blocking read returns within deliveryBlockMs
    for (const p of this.backlog.splice(0)) this.release(p);

    const deadline = this.now() + this.deps.config.deliveryShutdownTimeoutMs;
    while (this.inFlight.size > 0 && this.now() < deadline) await sleep(20);
    if (this.inFlight.size > 0) {
      this.log.warn('aborting deliveries still in flight', { event: 'shutdown_abort_in_flight', count: this.inFlight.size });
      for (const ac of this.inFlight.values()) ac.abort();
      while (this.inFlight.size > 0) await sleep(10);
    }
    await this.flushSettles();
    await Promise.all(this.settleFlushes);
    this.log.info('delivery worker stopped', { event: 'worker_stopped', ...this.counters });
  }

  // ------------------------------------------------------------------ the read loop

  private async loop(): Promise<void> {
    const { config, queue, blocking } = this.deps;
    // First re-read what this consumer name left unsettled in an earlier life (crash, kill -9).
    let pendingFrom: string | undefined = '0-0';
    while (this.running) {
      await this.waitForSlot();
      if (!this.running) break;
      const free = config.deliveryConcurrency - this.inFlight.size;
      if (this.backlog.length) {
        for (const p of this.backlog.splice(0, free)) this.dispatch(p);
        continue;
      }
      let result;
      try {
        result = await queue.read(blocking, config.deliveryConsumerName, Math.min(free, config.deliveryBatchSize), config.deliveryBlockMs, pendingFrom);
      } catch (err) {
        this.log.error('reading the queue failed', { event: 'queue_read_failed', err: errMessage(err) });
        await sleep(500);
        continue;
      }
      if (pendingFrom !== undefined) {
        const last = result.lastEntryId;
        if (last === undefined) {
          pendingFrom = undefined;
          continue;
        }
        pendingFrom = last;
        this.log.info('resuming postbacks left pending by an earlier run', { event: 'pending_resumed', count: result.postbacks.length });
      }
      for (const m of result.malformed) this.deadLetterMalformed(m);
      const fresh = this.track(result.postbacks);
      if (!this.running) {
        for (const p of fresh) this.release(p);
        break;
      }
      // An entry holds a whole request's postbacks: start what the free slots allow, queue the rest.
      const room = config.deliveryConcurrency - this.inFlight.size;
      for (const p of fresh.slice(0, room)) this.dispatch(p);
      if (fresh.length > room) this.backlog.push(...fresh.slice(room));
    }
  }

  /** Start tracking the entries these postbacks belong to; returns those not already being worked on. */
  private track(postbacks: readonly QueuedPostback[]): QueuedPostback[] {
    const fresh: QueuedPostback[] = [];
    const now = this.now();
    const added = new Set<string>();
    for (const p of postbacks) {
      if (!added.has(p.entryId)) {
        if (this.entries.has(p.entryId)) continue; // read again (claimed back): already in hand
        added.add(p.entryId);
        this.entries.set(p.entryId, {
          entryId: p.entryId,
          size: p.entrySize,
          remaining: p.entrySize,
          finished: new Set(),
          touchedAt: now,
          retries: [],
          deadLetters: [],
        });
      }
      fresh.push(p);
    }
    return fresh;
  }

  private waitForSlot(): Promise<void> {
    if (this.inFlight.size < this.deps.config.deliveryConcurrency || !this.running) return Promise.resolve();
    return new Promise((resolve) => {
      this.slotWaiter = resolve;
    });
  }

  private wakeLoop(): void {
    const w = this.slotWaiter;
    this.slotWaiter = undefined;
    w?.();
  }

  private dispatch(p: QueuedPostback): void {
    const key = `${p.entryId}:${p.index}`;
    if (this.inFlight.has(key)) return;
    const ac = new AbortController();
    this.inFlight.set(key, ac);
    this.process(p, ac.signal)
      .catch((err) => {
        // Something threw while the postback was being prepared or sent: a postback that makes the code
        // throw would make it throw again, so handing it back would loop forever. It ends here, as a dead
        // letter with the error (replayable once the cause is fixed). Nothing happens if it already ended.
        this.log.error('processing a postback failed', { event: 'process_failed', postbackId: p.id, err: excerpt(errMessage(err), 500) });
        this.deadLetterUnsent(p, 'preparation_failed', 'ERR_PREPARE_FAILED', errMessage(err));
      })
      .finally(() => {
        this.inFlight.delete(key);
        this.wakeLoop();
      });
  }

  // ------------------------------------------------------------------ one postback

  private async process(p: QueuedPostback, signal: AbortSignal): Promise<void> {
    const { config } = this.deps;
    let cached: CachedTemplate | undefined;
    try {
      cached = await this.template(p.templateId);
    } catch {
      return this.release(p); // Redis unreachable: try again later
    }
    if (!cached) return this.deadLetterUnsent(p, 'permanent_error', 'ERR_TEMPLATE_MISSING', 'the endpoint template is gone from Redis');
    const { method } = cached.template;
    // Measured before anything is built: a long value in a repeated placeholder could expand past what
    // memory (or V8's longest string) allows. Accepted by an older release or other limits; ends here.
    const urlLength = expandedLength(cached.compiled, p.value, config.unmatchedPlaceholderDefault);
    if (urlLength > config.deliveryMaxUrlLength) {
      return this.deadLetterUnsent(p, 'too_large', 'ERR_URL_TOO_LONG', `the expanded URL would be ${urlLength} characters, more than DELIVERY_MAX_URL_LENGTH (${config.deliveryMaxUrlLength})`, cached.template);
    }
    if (method === 'POST') {
      const bytes = config.deliveryPostFormat === 'form' ? formBodyLength(p.value) : Buffer.byteLength(p.data);
      if (bytes > config.deliveryMaxBodyBytes) {
        return this.deadLetterUnsent(p, 'too_large', 'ERR_BODY_TOO_LARGE', `the POST body would be ${bytes} bytes, more than DELIVERY_MAX_BODY_BYTES (${config.deliveryMaxBodyBytes})`, cached.template);
      }
    }
    const url = expandTemplate(cached.compiled, p.value, config.unmatchedPlaceholderDefault);
    const attempt = p.attempts + 1;
    const startedAt = this.now();
    const outcome = await this.deps.deliver({ method, url, dataJson: p.data, data: p.value, postbackId: p.id, attempt, signal });
    if (signal.aborted && outcome.result.kind === 'error') {
      // Shutdown cut this attempt short: not the partner's fault, so it does not count.
      return this.release(p);
    }
    this.counters.attempts++;
    const retryAfterMs = parseRetryAfter(outcome.retryAfter, this.now());
    const delay = retryDelayMs(
      { baseMs: config.deliveryBackoffBaseMs, maxMs: config.deliveryBackoffMaxMs },
      attempt,
      this.random(),
      retryAfterMs,
    );
    const disposition = decide(outcome.result, attempt, config.deliveryMaxAttempts, delay);
    const line = this.attemptLine(p, method, url, attempt, startedAt, outcome);
    const action = disposition.action === 'ack' ? 'delivered' : disposition.action === 'retry' ? 'retried' : 'dead_lettered';
    this.deps.observer?.onAttempt?.({
      postbackId: p.id,
      attempt,
      action,
      endpointHost: line.endpointHost,
      status: line.status,
      ...(outcome.result.kind === 'error' ? { errCode: outcome.result.code } : {}),
      ...(disposition.action === 'dead' ? { reason: disposition.reason } : {}),
      durationMs: outcome.durationMs,
      queuedMs: line.queuedMs,
      at: startedAt,
    });
    const entry = this.entries.get(p.entryId)!;
    switch (disposition.action) {
      case 'ack':
        this.counters.delivered++;
        this.log.info('delivery attempt', { event: 'delivery_succeeded', ...line });
        break;
      case 'retry':
        this.counters.retried++;
        this.log.warn('delivery attempt', { event: 'delivery_retry_scheduled', ...line, nextAttemptInMs: disposition.delayMs });
        entry.retries.push({ postback: p, attempts: attempt, dueAtMs: this.now() + disposition.delayMs });
        break;
      case 'dead':
        this.counters.deadLettered++;
        this.log.error('delivery attempt', { event: 'delivery_dead_lettered', ...line, reason: disposition.reason });
        entry.deadLetters.push({
          fields: Queue.deadLetterFields(
            p,
            {
              reason: disposition.reason,
              status: outcome.result.kind === 'response' ? String(outcome.result.status) : '',
              error: errorText(outcome.result, outcome),
              attempts: attempt,
              template: cached.template,
            },
            this.now(),
          ),
        });
        break;
    }
    this.done(p);
  }

  /** Hand a postback back unfinished (shutting down, or Redis trouble): due again at once, same attempts. */
  private release(p: QueuedPostback): void {
    const entry = this.entries.get(p.entryId);
    if (!entry || entry.finished.has(p.index)) return;
    this.counters.released++;
    entry.retries.push({ postback: p, attempts: p.attempts, dueAtMs: this.now() });
    this.done(p);
  }

  /** One more postback of its entry has an outcome; the last one settles the entry. */
  private done(p: QueuedPostback): void {
    const entry = this.entries.get(p.entryId);
    if (!entry || entry.finished.has(p.index)) return;
    entry.finished.add(p.index);
    entry.remaining--;
    if (entry.remaining > 0) return;
    this.entries.delete(p.entryId);
    this.queueSettle({
      entryId: entry.entryId,
      size: entry.size,
      retries: entry.retries,
      deadLetters: entry.deadLetters,
    });
  }

  /** A URL as logged: partners' secrets redacted (redact.ts), and at most LOG_URL_MAX_CHARS long. */
  private logUrl(url: string): string {
    const { config } = this.deps;
    return excerpt(redactUrl(url, config.logRedactQueryParams, config.logRedactPathPatterns), config.logUrlMaxChars);
  }

  private attemptLine(p: QueuedPostback, method: string, url: string, attempt: number, startedAt: number, o: AttemptOutcome) {
    const { config } = this.deps;
    return {
      postbackId: p.id,
      attempt,
      maxAttempts: config.deliveryMaxAttempts,
      method,
      url: this.logUrl(url),
      endpointHost: hostOf(url),
      deliveredAt: new Date(startedAt).toISOString(),
      status: o.result.kind === 'response' ? o.result.status : null,
      durationMs: o.durationMs,
      // The brief asks for the response body in the log: kept, cut to LOG_RESPONSE_BODY_MAX_CHARS, off at 0.
      ...(config.logResponseBodyMaxChars > 0 ? { responseBody: excerpt(o.body, config.logResponseBodyMaxChars) } : {}),
      queuedMs: Math.max(0, startedAt - entryTimeMs(p.id)),
      ...(o.result.kind === 'error' ? { errCode: o.result.code, error: o.errorMessage === undefined ? undefined : excerpt(o.errorMessage, 500) } : {}),
    };
  }

  /**
   * A postback that ends without a request being sent (its template is gone, it is too large, preparing
   * it failed): dead-lettered at once with the reason, counted like any dead letter. No attempt is counted.
   */
  private deadLetterUnsent(p: QueuedPostback, reason: DeadReason, code: string, message: string, template?: Template): void {
    const entry = this.entries.get(p.entryId);
    if (!entry || entry.finished.has(p.index)) return;
    this.counters.deadLettered++;
    const endpointHost = template ? hostOf(template.url.replace(/\{[^{}]*\}/g, 'x')) : '';
    this.log.error('postback cannot be delivered', {
      event: 'delivery_dead_lettered',
      postbackId: p.id,
      reason,
      errCode: code,
      error: excerpt(message, 500),
      ...(template ? { method: template.method, urlTemplate: this.logUrl(template.url), endpointHost } : {}),
    });
    const now = this.now();
    this.deps.observer?.onAttempt?.({
      postbackId: p.id,
      attempt: p.attempts,
      action: 'dead_lettered',
      endpointHost,
      status: null,
      errCode: code,
      reason,
      durationMs: 0,
      queuedMs: Math.max(0, now - entryTimeMs(p.id)),
      at: now,
    });
    entry.deadLetters.push({
      fields: Queue.deadLetterFields(p, { reason, status: '', error: `${code}: ${message}`.slice(0, 500), attempts: p.attempts, ...(template ? { template } : {}) }, now),
    });
    this.done(p);
  }

  private deadLetterMalformed(m: MalformedEntry): void {
    if (this.entries.has(m.entryId)) return;
    this.counters.deadLettered++;
    this.log.error('malformed queue entry', { event: 'delivery_dead_lettered', entryId: m.entryId, reason: 'permanent_error', errCode: 'ERR_BAD_POSTBACK' });
    this.queueSettle({
      entryId: m.entryId,
      size: 0,
      retries: [],
      deadLetters: [{ fields: Queue.deadLetterFields(m, { reason: 'permanent_error', status: '', error: 'ERR_BAD_POSTBACK', attempts: 0 }, this.now()) }],
    });
  }

  private template(tid: string): Promise<CachedTemplate | undefined> {
    let hit = this.templates.get(tid);
    if (!hit) {
      if (this.templates.size >= TEMPLATE_CACHE_MAX) this.templates.clear();
      hit = this.deps.queue.getTemplate(tid).then((template) => {
        if (!template) {
          this.templates.delete(tid);
          return undefined;
        }
        return { template, compiled: compileTemplate(template.url) };
      });
      hit.catch(() => this.templates.delete(tid));
      this.templates.set(tid, hit);
    }
    return hit;
  }

  // ------------------------------------------------------------------ settling in batches

  private queueSettle(e: EntrySettlement): void {
    this.pendingSettles.push(e);
    if (this.pendingSettles.length >= this.deps.config.deliveryBatchSize) {
      void this.flushSettles();
    } else if (!this.settleScheduled) {
      this.settleScheduled = true;
      setImmediate(() => void this.flushSettles());
    }
  }

  private flushSettles(): Promise<void> {
    this.settleScheduled = false;
    if (this.pendingSettles.length === 0) return Promise.resolve();
    const batch = this.pendingSettles;
    this.pendingSettles = [];
    const flush = this.deps.queue.settle(batch, this.now()).then(
      () => undefined,
      (err) => {
        // Not settled: the entries stay pending and their postbacks will be delivered again (at-least-once).
        this.log.error('settling entries failed', { event: 'settle_failed', count: batch.length, err: errMessage(err) });
      },
    );
    this.settleFlushes.add(flush);
    void flush.finally(() => this.settleFlushes.delete(flush));
    return flush;
  }

  // ------------------------------------------------------------------ background duties

  /**
   * Entries this worker has held for a third of the claim idle time (many postbacks, slow partners, a
   * long backlog) are touched, so no other worker takes them over while this one is alive.
   */
  private async keepAlive(): Promise<void> {
    const { config, queue } = this.deps;
    const now = this.now();
    const stale: EntryState[] = [];
    for (const e of this.entries.values()) if (now - e.touchedAt > config.deliveryClaimMinIdleMs / 3) stale.push(e);
    if (stale.length === 0) return;
    await queue.keepAlive(config.deliveryConsumerName, stale.map((e) => e.entryId));
    for (const e of stale) e.touchedAt = now;
  }

  private async maintenance(): Promise<void> {
    if (this.maintenanceRunning || !this.running) return;
    this.maintenanceRunning = true;
    const { config, queue } = this.deps;
    try {
      await queue.promoteDueRetries(this.now());
      await this.keepAlive();
      if (this.backlog.length < config.deliveryBatchSize) {
        const claimed = await queue.claimAbandoned(config.deliveryConsumerName, config.deliveryClaimMinIdleMs, config.deliveryBatchSize, this.claimCursor);
        this.claimCursor = claimed.cursor;
        const fresh = this.track(claimed.postbacks);
        if (fresh.length) {
          this.counters.claimed += fresh.length;
          this.deps.observer?.onClaimed?.(fresh.length);
          this.log.warn('took over postbacks abandoned by another worker', { event: 'postbacks_claimed', count: fresh.length });
          if (this.running) this.backlog.push(...fresh);
          else for (const p of fresh) this.release(p);
        }
        for (const m of claimed.malformed) this.deadLetterMalformed(m);
      }
      if (this.now() - this.lastTemplateGc > TEMPLATE_GC_EVERY_MS) {
        this.lastTemplateGc = this.now();
        await queue.collectTemplates(this.now());
      }
    } catch (err) {
      this.log.error('queue maintenance failed', { event: 'maintenance_failed', err: errMessage(err) });
    } finally {
      this.maintenanceRunning = false;
    }
  }
}

function errorText(result: AttemptResult, o: AttemptOutcome): string {
  if (result.kind === 'error') return `${result.code}${o.errorMessage ? `: ${o.errorMessage}` : ''}`.slice(0, 500);
  return `HTTP ${result.status}`;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
