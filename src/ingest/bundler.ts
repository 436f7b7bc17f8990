/**
 * Group commit of taps into bundles, per partition (issue 10: pay JetStream's per-message costs
 * per bundle, not per tap).
 *
 * A tap for partition P is queued; when P has no bundle in flight, the queue goes out at once as
 * one TapBundle on tapflow.taps.<P> — so a lone tap at low load is published immediately, never
 * after a timer. While P's bundle is in flight, the next taps gather; its PubAck answers every tap
 * of the bundle and sends what gathered meanwhile. A bundle closes at `maxTaps` taps or `maxBytes`
 * bytes; a full bundle goes out without waiting, up to `maxInFlight` bundles per partition (one
 * connection publishes them in order, so the stream keeps the partition's order).
 *
 * Nats-Msg-Id of a bundle: "t:<instance>:<n>", unique per publish. A tap is never re-published by
 * ingest: a bundle whose PubAck does not come answers its taps UNAVAILABLE and the terminal
 * re-sends them (possibly in another bundle); the validators' memory of applied events counts a
 * tap that was in fact stored twice only once.
 */
import { encodeTapBundle } from '../bus/codec.js';
import type { JsPublisher } from '../bus/publisher.js';
import { subjects } from '../bus/subjects.js';
import { toTapflowError, type TapflowError } from '../domain/reasons.js';

export interface BundlerOptions {
  publisher: JsPublisher;
  /** Names this ingest process in bundle message ids. */
  instanceId: string;
  /** Most taps in one bundle. @default 512 */
  maxTaps?: number;
  /** Most bytes of encoded taps in one bundle (NATS' default max_payload is 1 MiB). @default 262144 */
  maxBytes?: number;
  /** Most bundles of one partition in flight at once. @default 4 */
  maxInFlight?: number;
  /** Called with the size of every bundle published (metrics). */
  onBundle?: (taps: number, bytes: number) => void;
}

export type BundleOutcome = { ok: true } | { ok: false; error: TapflowError };

interface Entry {
  bytes: Uint8Array;
  done(o: BundleOutcome): void;
}

interface Queue {
  pending: Entry[];
  pendingBytes: number;
  inFlight: number;
}

export class TapBundler {
  private readonly queues = new Map<number, Queue>();
  private readonly maxTaps: number;
  private readonly maxBytes: number;
  private readonly maxInFlight: number;
  private sent = 0;
  private waiting = 0;

  constructor(private readonly o: BundlerOptions) {
    this.maxTaps = o.maxTaps ?? 512;
    this.maxBytes = o.maxBytes ?? 256 * 1024;
    this.maxInFlight = o.maxInFlight ?? 4;
  }

  /** Taps queued or in flight, not answered yet (the ingest's in-flight bound counts these). */
  get outstanding(): number {
    return this.waiting;
  }

  /** Queues an encoded BusTap for partition p; resolves when its bundle is durable (or not). */
  submit(p: number, busTap: Uint8Array): Promise<BundleOutcome> {
    let q = this.queues.get(p);
    if (!q) this.queues.set(p, (q = { pending: [], pendingBytes: 0, inFlight: 0 }));
    this.waiting++;
    const done = new Promise<BundleOutcome>((resolve) => q.pending.push({ bytes: busTap, done: resolve }));
    q.pendingBytes += busTap.length;
    if (q.inFlight === 0 || (q.inFlight < this.maxInFlight && this.full(q))) this.flush(p, q);
    return done;
  }

  private full(q: Queue): boolean {
    return q.pending.length >= this.maxTaps || q.pendingBytes >= this.maxBytes;
  }

  private flush(p: number, q: Queue): void {
    let n = 0;
    let bytes = 0;
    while (n < q.pending.length && n < this.maxTaps && (n === 0 || bytes + q.pending[n]!.bytes.length <= this.maxBytes)) bytes += q.pending[n++]!.bytes.length;
    const batch = q.pending.splice(0, n);
    q.pendingBytes -= bytes;
    q.inFlight++;
    const data = encodeTapBundle(batch.map((e) => e.bytes));
    this.o.onBundle?.(batch.length, data.length);
    const settle = (o: BundleOutcome) => {
      q.inFlight--;
      this.waiting -= batch.length;
      for (const e of batch) e.done(o);
      // What gathered while this bundle was in flight goes out now, full bundles first.
      while (q.pending.length > 0 && (q.inFlight === 0 || (q.inFlight < this.maxInFlight && this.full(q)))) this.flush(p, q);
    };
    this.o.publisher.publish(subjects.tap(p), data, `t:${this.o.instanceId}:${this.sent++}`).then(
      () => settle({ ok: true }),
      (err: unknown) => settle({ ok: false, error: toTapflowError(err, 'TF_BUS_UNAVAILABLE') }),
    );
  }
}
