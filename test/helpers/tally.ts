/**
 * Counting for fault tests: which postbacks a client got a 202 for, and which arrived at the endpoint
 * (by a `seq` query parameter), so a test can say "none missing, N duplicates".
 */

/** Counts deliveries by the `seq` query parameter. */
export class Tally {
  readonly seen = new Map<string, number>();

  add(url: string): void {
    const seq = new URL(url, 'http://x').searchParams.get('seq');
    if (seq !== null) this.seen.set(seq, (this.seen.get(seq) ?? 0) + 1);
  }

  missing(expected: Iterable<string>): string[] {
    const out: string[] = [];
    for (const s of expected) if (!this.seen.has(s)) out.push(s);
    return out;
  }

  get duplicates(): number {
    let d = 0;
    for (const n of this.seen.values()) d += n - 1;
    return d;
  }

  async waitForAll(expected: readonly string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.missing(expected).length > 0) {
      if (Date.now() > deadline) {
        const m = this.missing(expected);
        throw new Error(`${m.length} of ${expected.length} postbacks never arrived (e.g. ${m.slice(0, 5).join(', ')})`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Clients posting to an ingest URL without pause, `perRequest` postbacks a request, each with a unique
 * seq; they remember which seqs got a 202 and count every other answer by status (0 = no answer).
 */
export class PostingClients {
  readonly acknowledged: string[] = [];
  readonly refused: Record<number, number> = {};
  /** Error codes of the refusals (ERR_QUEUE_FULL, ...), counted. */
  readonly codes: Record<string, number> = {};
  private sending = true;
  private next = 0;
  private readonly done: Promise<void[]>;

  /**
   * `padBytes`: an extra field of that many characters in each data object, to fill Redis faster;
   * `seqPrefix`: keeps the seqs of two sets of clients apart; `pauseOnRefusalMs`: how long a client waits
   * after a refusal (real clients honour Retry-After; 0 = hammer).
   */
  constructor(ingestUrl: string, endpointBase: string, clients = 4, perRequest = 10, padBytes = 0, seqPrefix = '', pauseOnRefusalMs = 0) {
    const pad = 'p'.repeat(padBytes);
    const one = async () => {
      while (this.sending) {
        const r = this.next++;
        const seq = (i: number) => `${seqPrefix}r${r}-${i}`;
        const data = Array.from({ length: perRequest }, (_, i) => (padBytes ? { seq: seq(i), pad } : { seq: seq(i) }));
        try {
          const res = await fetch(ingestUrl, {
            method: 'POST',
            body: JSON.stringify({ endpoint: { method: 'GET', url: `${endpointBase}/pb?seq={seq}` }, data }),
          });
          const text = await res.text();
          if (res.status === 202) this.acknowledged.push(...data.map((d) => d.seq));
          else {
            this.refused[res.status] = (this.refused[res.status] ?? 0) + 1;
            let code = 'unknown';
            try {
              code = JSON.parse(text).error.code;
            } catch {
              /* not our JSON */
            }
            this.codes[code] = (this.codes[code] ?? 0) + 1;
            if (pauseOnRefusalMs) await new Promise((r) => setTimeout(r, pauseOnRefusalMs));
          }
        } catch {
          this.refused[0] = (this.refused[0] ?? 0) + 1;
        }
      }
    };
    this.done = Promise.all(Array.from({ length: clients }, one));
  }

  /** Resolves once `n` postbacks in all have been acknowledged. */
  async waitAcknowledged(n: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.acknowledged.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.acknowledged.length} of ${n} postbacks acknowledged; refused: ${JSON.stringify(this.refused)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<void> {
    this.sending = false;
    await this.done;
  }
}
