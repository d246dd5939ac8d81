/**
 * The bench's books: which postbacks ingest acknowledged (the ids in its 202 answers) and which arrived
 * at the counting endpoint (by X-Postback-Id, and by the request's own `seq` value when it has one).
 * From those two sets alone it says how many were sent, arrived, went missing or arrived twice, so a
 * bench figure is never quoted for a run that lost postbacks.
 */

export interface Counts {
  /** Postbacks ingest acknowledged (202) during the run. */
  readonly acknowledged: number;
  /** Deliveries that reached the endpoint, repeats included. */
  readonly arrivals: number;
  /** Distinct postbacks (by X-Postback-Id) that reached the endpoint. */
  readonly arrivedUnique: number;
  /** Acknowledged postbacks that never arrived. */
  readonly missing: number;
  /** Arrivals beyond the first of the same postback (at-least-once repeats). */
  readonly duplicates: number;
  /**
   * Distinct postbacks that arrived without the client having seen a 202: requests in flight when the
   * load generator stopped (ingest enqueued them, the answer never reached the client).
   */
  readonly unacknowledgedArrived: number;
  /** The same data value (`seq`) arriving under two different postback ids: ingest enqueued it twice. */
  readonly duplicateValues: number;
  /** Every acknowledged postback arrived. */
  readonly ok: boolean;
}

export class Ledger {
  private readonly acked = new Set<string>();
  private readonly arrived = new Map<string, number>();
  private readonly seqOwner = new Map<string, string>();
  private arrivalCount = 0;
  private duplicateValueCount = 0;

  /** Record ids from ingest's 202 body `{"accepted":n,"ids":[...]}` (or any list of ids). */
  acknowledge(ids: Iterable<string>): void {
    for (const id of ids) this.acked.add(id);
  }

  /** Parse one 202 answer body and acknowledge its ids; false when the body is not an ingest answer. */
  acknowledgeBody(body: string): boolean {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return false;
    }
    const ids = (parsed as { ids?: unknown })?.ids;
    if (!Array.isArray(ids)) return false;
    this.acknowledge(ids.map(String));
    return true;
  }

  /** One delivery reached the endpoint. `seq` is the data's own unique value, when the run sets one. */
  arrive(postbackId: string, seq?: string): void {
    this.arrivalCount++;
    const n = this.arrived.get(postbackId);
    this.arrived.set(postbackId, (n ?? 0) + 1);
    if (n === undefined && seq !== undefined) {
      const owner = this.seqOwner.get(seq);
      if (owner === undefined) this.seqOwner.set(seq, postbackId);
      else if (owner !== postbackId) this.duplicateValueCount++;
    }
  }

  get acknowledgedCount(): number {
    return this.acked.size;
  }

  get arrivals(): number {
    return this.arrivalCount;
  }

  /** Acknowledged postbacks that have arrived so far. */
  acknowledgedArrived(): number {
    let n = 0;
    for (const id of this.acked) if (this.arrived.has(id)) n++;
    return n;
  }

  /** Up to `limit` acknowledged ids that have not arrived. */
  missingIds(limit = 10): string[] {
    const out: string[] = [];
    for (const id of this.acked) {
      if (!this.arrived.has(id)) {
        out.push(id);
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  counts(): Counts {
    let missing = 0;
    for (const id of this.acked) if (!this.arrived.has(id)) missing++;
    let unacked = 0;
    for (const id of this.arrived.keys()) if (!this.acked.has(id)) unacked++;
    return {
      acknowledged: this.acked.size,
      arrivals: this.arrivalCount,
      arrivedUnique: this.arrived.size,
      missing,
      duplicates: this.arrivalCount - this.arrived.size,
      unacknowledgedArrived: unacked,
      duplicateValues: this.duplicateValueCount,
      ok: missing === 0,
    };
  }
}
