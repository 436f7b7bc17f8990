/**
 * Partition ownership and ordered, batched consumption.
 *
 * Card-keyed subjects are split into P partitions. Each partition has one owner at a time among
 * a role's replicas, so a card's events are processed in stream order by exactly one process,
 * which can cache that card's state. Ownership is a lease in the KV bucket tapflow_leases
 * (bucket TTL = lease TTL):
 *   member.<role>.<instance>   = <instance>   renewed every TTL/3: the live replicas of a role
 *   part.<role>.<p>            = <instance>   the owner of partition p, renewed by CAS on its revision
 * Replicas sorted by id share partitions deterministically (partition p goes to member p mod n).
 * A replica releases what is no longer its share; a dead replica's leases expire after the TTL
 * and the partition's new owner resumes from the consumer's first unacknowledged message.
 * During a hand-over two processes could briefly both work on a partition; state writes are
 * compare-and-set on the KV revision and outputs carry deterministic Nats-Msg-Ids, so the
 * loser's writes fail and nothing is counted twice.
 *
 * Each owned partition runs a loop per consumer: fetch up to `batch` messages, hand them to the
 * handler, and acknowledge them only after the handler resolved. The failure table
 * (src/domain/reasons.ts, src/bus/failures.ts) decides what happens when something fails:
 * - a message the handler could not process (it returns it in `dead`, with a data error) is
 *   dead-lettered and acknowledged; the rest of the batch goes on — one poison message never
 *   stops its partition;
 * - a batch that failed as a whole (the bus or the store unavailable) is nak'ed and redelivered
 *   in order after a backoff (250 ms doubling to 30 s); a message delivered `maxDeliver` times
 *   is dead-lettered as TF_RETRIES_EXHAUSTED instead, so nothing is retried forever.
 * A dead letter replayed to its subject (`tapflow dlq replay`) names the consumer it is for; the
 * other consumers of the subject acknowledge it without handing it to their handler.
 *
 * Order across a hand-over: messages delivered to a previous subscription and never
 * acknowledged (its process was killed, or they were in flight when it stopped) stay pending on
 * the server until the consumer's ack wait expires, while the server already hands newer
 * messages to the new subscription. Processing those first would decide a card's taps out of
 * stream order. So a new subscription holds everything it receives until the consumer has no
 * unacknowledged message outside its own buffer (num_ack_pending ≤ what it holds), then
 * processes what it holds sorted by stream sequence. Every message pending elsewhere comes back
 * to it (after the ack wait at the latest), and every message never delivered has a higher
 * sequence than those delivered, so stream order is kept. One check per subscription suffices:
 * a released or dead subscription is gone from the server before the lease can move (release
 * unsubscribes before deleting the lease; a killed process's connection closes before its lease
 * expires), and the server hands no message to a pull request whose inbox lost its interest.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Bus } from './connection.js';
import type { Logger } from '../observe/log.js';
import { Streams, type StreamName } from './subjects.js';
import { FailureCodes, TapflowError, type FailureCode } from '../domain/reasons.js';
import { batchFailure, redeliveryDelayMs } from './failures.js';
import { replayedFor } from './replay.js';

export interface ConsumerSpec {
  stream: StreamName;
  durable: string;
  /** Most messages per batch (default: the worker's batch). */
  batch?: number;
  /** Longest wait for a batch to fill (ms, default 1000). */
  expiresMs?: number;
  /** Most bytes of messages per batch (default BATCH_BYTES); the pull window holds two batches or more. */
  batchBytes?: number;
}

/**
 * A message the handler could not process, and why (a data error: never retried). With `part`,
 * only that part of the message (e.g. one tap of a bundle) is dead; the message itself was
 * processed and is acknowledged with its batch.
 */
export interface DeadMessage {
  msg: JsMsg;
  error: TapflowError;
  part?: { name: string; data: Uint8Array };
}

/** What became of a batch besides the messages processed. */
export interface BatchOutcome {
  /** Not processed (e.g. behind a gap): handed back for redelivery. */
  nak?: JsMsg[];
  /** Not processable: dead-lettered, then acknowledged. */
  dead?: DeadMessage[];
}

export interface PartitionHandler {
  /** Consumers to run for partition p (e.g. the settler: its decisions and its claims). */
  consumers(p: number): ConsumerSpec[];
  /**
   * Process a batch in order. Resolve only when its effects are durable. A message whose decoding
   * or pure processing fails goes in `dead` and the others are processed; throw only when the
   * batch as a whole failed (I/O), so that it is redelivered.
   */
  handle(p: number, consumer: ConsumerSpec, msgs: JsMsg[]): Promise<void | BatchOutcome>;
  /** Called after a message of this handler was dead-lettered (e.g. to answer a waiting claim). */
  onDeadLetter?(p: number, consumer: ConsumerSpec, dead: DeadMessage): Promise<void>;
  /** Called when the partition is gained (before the first batch) and lost (after the last). */
  onAcquire?(p: number): Promise<void> | void;
  /** `graceful`: released by choice (stop, rebalance) with the lease still ours; not when it was lost. */
  onRelease?(p: number, graceful: boolean): Promise<void> | void;
  /** Periodic work of an owned partition (e.g. closing expired journeys), run between batches. */
  tick?(p: number): Promise<void>;
  /** How often tick runs (ms). */
  tickMs?: number;
}

export interface PartitionWorkerOptions {
  bus: Bus;
  leases: KV;
  role: string;
  instanceId: string;
  partitions: number;
  leaseTtlMs: number;
  batch: number;
  handler: PartitionHandler;
  log: Logger;
  /** Deliveries of a message before a transient failure dead-letters it (TAPFLOW_MAX_DELIVER). */
  maxDeliver: number;
  /** Publishes a dead letter (durable when it resolves) and counts it. */
  deadLetter: (consumer: string, dead: DeadMessage) => Promise<void>;
  onOwned?: (count: number) => void;
  /** A batch failed as a whole with this code. */
  onBatchFailure?: (code: FailureCode) => void;
}

interface Owned {
  revision: number;
  stop: boolean;
  loops: Promise<void>[];
  /** Set once the partition is being given up. */
  releasing?: Promise<void>;
}

export class PartitionWorker {
  private readonly owned = new Map<number, Owned>();
  private timer?: NodeJS.Timeout;
  private stopping = false;
  private memberRev = 0;
  /** When the last lease round renewed everything we own (ms): fencing for stalled owners. */
  private renewedAt = Date.now();
  private ticking?: Promise<void>;

  constructor(private readonly o: PartitionWorkerOptions) {}

  get ownedPartitions(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => {
      if (!this.ticking) this.ticking = this.tick().finally(() => (this.ticking = undefined));
    }, Math.max(200, Math.floor(this.o.leaseTtlMs / 3)));
    this.timer.unref();
  }

  /** Stops fetching, finishes the batches in hand, releases the leases. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    await Promise.all(this.ownedPartitions.map((p) => this.release(p)));
    await this.o.leases.delete(this.memberKey()).catch(() => undefined);
  }

  private memberKey(): string {
    return `member.${this.o.role}.${this.o.instanceId}`;
  }

  private partKey(p: number): string {
    return `part.${this.o.role}.${p}`;
  }

  /** One round of the lease protocol. */
  private async tick(): Promise<void> {
    if (this.stopping) return;
    const { leases, role, instanceId, partitions } = this.o;
    try {
      this.memberRev = await leases.put(this.memberKey(), instanceId);
      // A set: the KV key listing yields a key again when it is updated while being listed (the
      // members renew every TTL/3), and a duplicate would change everyone's share for a round.
      const found = new Set<string>([instanceId]);
      for await (const k of await leases.keys(`member.${role}.*`)) found.add(k.slice(`member.${role}.`.length));
      const members = [...found].sort();
      const me = members.indexOf(instanceId);
      const mine = new Set<number>();
      for (let p = 0; p < partitions; p++) if (p % members.length === me) mine.add(p);
      // Renew what we own first, all at once: a round must never let a lease run out behind
      // slower work (a release waits for the batch in hand, an acquisition restores state).
      const renewals = await Promise.all(
        [...this.owned].filter(([p, o]) => mine.has(p) && !o.releasing).map(async ([p, o]) => {
          try {
            o.revision = await leases.update(this.partKey(p), instanceId, o.revision);
            return undefined;
          } catch (err) {
            this.o.log.warn({ role, partition: p, err: (err as Error).message }, 'lease lost');
            return p;
          }
        }),
      );
      this.renewedAt = Date.now();
      // Then release what was lost or is no longer our share — in the background: a release
      // finishes the batch in hand and checkpoints, and the next round must come on time.
      for (const p of renewals) if (p !== undefined) void this.release(p, false);
      for (const p of this.owned.keys()) if (!mine.has(p)) void this.release(p);
      // And claim our share where it is free (a partition still being released is still owned).

      for (const p of mine) {
        if (this.owned.has(p) || this.stopping) continue;
        try {
          const rev = await leases.create(this.partKey(p), instanceId);
          this.acquire(p, rev);
        } catch {
          // Held by another replica until it releases it or its lease expires.
        }
      }
      this.o.onOwned?.(this.owned.size);
    } catch (err) {
      this.o.log.warn({ role, err: (err as Error).message }, 'lease round failed');
    }
  }

  /**
   * Owns partition p from now on (its lease is renewed with the others) and starts its consumers
   * once the handler has restored its state — in the background, so that a long restore never
   * holds up a lease round. A failed restore gives the partition back for a later round.
   */
  private acquire(p: number, revision: number): void {
    const o: Owned = { revision, stop: false, loops: [] };
    this.owned.set(p, o);
    o.loops = [
      (async () => {
        try {
          await this.o.handler.onAcquire?.(p);
        } catch (err) {
          this.o.log.warn({ role: this.o.role, partition: p, err: (err as Error).message }, 'partition could not be taken over; giving it back');
          o.stop = true;
          o.loops = [];
          void this.release(p);
          return;
        }
        if (o.stop) return;
        this.o.log.debug({ role: this.o.role, partition: p }, 'partition acquired');
        await Promise.all(this.o.handler.consumers(p).map((c) => this.loop(p, c, o)));
      })(),
    ];
  }

  /** Gives partition p up (once: a second call waits for the first). */
  private release(p: number, deleteLease = true): Promise<void> {
    const o = this.owned.get(p);
    if (!o) return Promise.resolve();
    o.releasing ??= (async () => {
      o.stop = true;
      await Promise.all(o.loops);
      await Promise.resolve(this.o.handler.onRelease?.(p, deleteLease)).catch((err: unknown) => this.o.log.warn({ role: this.o.role, partition: p, err: (err as Error).message }, 'release step failed'));
      if (deleteLease) await this.o.leases.delete(this.partKey(p), { previousSeq: o.revision }).catch(() => undefined);
      this.owned.delete(p);
      this.o.onOwned?.(this.owned.size);
    })();
    return o.releasing;
  }

  /** Dead-letters messages (durable when it resolves) and lets the handler react. */
  private async bury(p: number, spec: ConsumerSpec, dead: DeadMessage[]): Promise<void> {
    for (const d of dead) {
      await this.o.deadLetter(spec.durable, d);
      this.o.log.warn({ role: this.o.role, partition: p, consumer: spec.durable, seq: d.msg.seq, code: d.error.code, err: d.error.message }, 'message dead-lettered; the partition goes on');
      await this.o.handler.onDeadLetter?.(p, spec, d);
    }
  }

  /**
   * A batch failed as a whole: the failure table decides. A `term-dead-letter` code dead-letters
   * every message of the batch; otherwise the batch is redelivered after a backoff, except the
   * messages already delivered `maxDeliver` times, which are dead-lettered as TF_RETRIES_EXHAUSTED.
   */
  private async failBatch(p: number, spec: ConsumerSpec, msgs: JsMsg[], e: TapflowError): Promise<void> {
    this.o.onBatchFailure?.(e.code);
    const poison = FailureCodes[e.code].bus === 'term-dead-letter';
    const dead: DeadMessage[] = [];
    const retry: JsMsg[] = [];
    for (const m of msgs) {
      if (poison) dead.push({ msg: m, error: e });
      else if (m.info.deliveryCount >= this.o.maxDeliver) {
        dead.push({ msg: m, error: new TapflowError('TF_RETRIES_EXHAUSTED', `${e.code} in each of ${m.info.deliveryCount} deliveries; last: ${e.message}`, { cause: e }) });
      } else retry.push(m);
    }
    const deliveries = Math.max(...msgs.map((m) => m.info.deliveryCount));
    this.o.log.warn({ role: this.o.role, partition: p, consumer: spec.durable, code: e.code, err: e.message, deliveries, deadLettered: dead.length }, dead.length > 0 ? 'batch failed; dead-lettering what cannot be retried' : 'batch failed; redelivering after a backoff');
    try {
      await this.bury(p, spec, dead);
      for (const d of dead) d.msg.ack();
    } catch (err) {
      // The dead-letter stream is not reachable either: everything comes back and is tried again.
      this.o.log.warn({ role: this.o.role, partition: p, consumer: spec.durable, err: (err as Error).message }, 'dead-lettering failed; redelivering');
      for (const d of dead) d.msg.nak(redeliveryDelayMs(d.msg.info.deliveryCount));
    }
    for (const m of retry) m.nak(redeliveryDelayMs(m.info.deliveryCount));
  }

  /**
   * One consumer of an owned partition. Messages arrive through consume() (the client keeps a
   * window of pulls open) into a buffer; the loop takes up to a batch at a time, in order. On a
   * failure the batch and everything buffered behind it are nak'ed and the subscription is
   * restarted, so that redeliveries come back in stream order.
   */
  private async loop(p: number, spec: ConsumerSpec, o: Owned): Promise<void> {
    const { bus, batch, handler, log } = this.o;
    const stream = Streams[spec.stream].name;
    const max = spec.batch ?? batch;
    const maxBytes = spec.batchBytes ?? BATCH_BYTES;
    const lingerMs = spec.expiresMs ?? 0;
    let backoff = 0;
    let consumeFailures = 0;
    let lastTick = Date.now();
    let ticking: Promise<void> | undefined;
    // Only the first consumer of a partition runs the partition's tick.
    const ticks = handler.tick !== undefined && handler.consumers(p)[0]?.durable === spec.durable;
    // Sequences this loop handled and acknowledged: a copy of one of them still on its way (a
    // message held past the ack wait is delivered again) is acknowledged unseen, never handled twice.
    const handled = new RecentSeqs(HANDLED_MEMORY);
    while (!o.stop) {
      if (backoff > 0) await sleep(backoff);
      if (o.stop) break;
      const buffer: JsMsg[] = [];
      let wake: (() => void) | undefined;
      // Set when this subscription is given up: anything it still delivers goes straight back.
      let dead = false;
      let sub: Awaited<ReturnType<Awaited<ReturnType<typeof bus.js.consumers.get>>['consume']>>;
      try {
        const consumer = await bus.js.consumers.get(stream, spec.durable);
        // The pull window, in bytes (a message may be a bundle of hundreds of taps), and the
        // consumer's max_ack_pending in messages: what a process holds is bounded; the backlog
        // stays in JetStream.
        sub = await consumer.consume({
          max_bytes: Math.max(PULL_WINDOW_BYTES, 2 * maxBytes),
          expires: 5000,
          callback: (m) => {
            if (dead) {
              m.nak();
              return;
            }
            buffer.push(m);
            wake?.();
          },
        });
      } catch (err) {
        consumeFailures++;
        // Expected briefly while the bus reconnects; worth an operator's look when it lasts.
        log[consumeFailures >= 5 ? 'warn' : 'debug']({ partition: p, consumer: spec.durable, failures: consumeFailures, err: (err as Error).message }, 'consume failed');
        backoff = Math.min(2000, backoff * 2 || 100);
        continue;
      }
      consumeFailures = 0;
      log.debug({ partition: p, consumer: spec.durable }, 'consuming');
      let failed = false;
      let closed = false;
      // Until the in-order gate opens (module comment), nothing is handed to the handler.
      let gated = true;
      let gateLogged = false;
      const subscribedAt = Date.now();
      let gateDeadline: number | undefined;
      void sub.closed().then(
        () => (closed = true),
        () => (closed = true),
      );
      while (!o.stop && !failed) {
        if (ticks && !ticking && Date.now() - lastTick >= (handler.tickMs ?? 5000)) {
          // In the background (one at a time): the partition's batches go on meanwhile.
          lastTick = Date.now();
          ticking = handler.tick!(p)
            .catch((err: unknown) => log.warn({ partition: p, err: (err as Error).message }, 'partition tick failed'))
            .finally(() => (ticking = undefined));
        }
        if (buffer.length < max) {
          // Wait for messages (or linger for a fuller batch), waking at least every 250 ms to tick.
          const wait = buffer.length === 0 ? 250 : lingerMs;
          if (wait > 0) {
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, wait);
              wake = () => {
                if (buffer.length === 0 || buffer.length >= max) {
                  clearTimeout(t);
                  resolve();
                }
              };
            });
            wake = undefined;
          }
        }
        if (gated) {
          // Count what we hold before asking: what reaches us after the count is newer. Distinct
          // sequences: a message held past the ack wait is delivered to us a second time.
          const n = buffer.length;
          const held = new Set(buffer.slice(0, n).map((m) => m.seq)).size;
          let pending: number;
          try {
            const info = await bus.jsm.consumers.info(stream, spec.durable);
            pending = info.num_ack_pending;
            // Bound the wait: whatever is pending comes back within one ack wait; should a message
            // never come back (e.g. state lost in a server crash), the partition must not stall.
            gateDeadline ??= Date.now() + 2 * Math.ceil((info.config.ack_wait ?? 30e9) / 1e6) + 1000;
          } catch (err) {
            log.debug({ partition: p, consumer: spec.durable, err: (err as Error).message }, 'consumer info failed; gate stays closed');
            await sleep(100);
            continue;
          }
          if (pending > held && Date.now() > gateDeadline!) {
            log.warn({ role: this.o.role, partition: p, consumer: spec.durable, held, pending }, 'messages of a previous owner did not come back within twice the ack wait; going on without them');
          } else if (pending > held) {
            // Messages in flight to us count too: only a wait that lasts is worth a log line.
            if (!gateLogged && Date.now() - subscribedAt > 1000) {
              gateLogged = true;
              log.info({ role: this.o.role, partition: p, consumer: spec.durable, held, pending }, 'holding messages until those delivered to a previous owner come back (ack wait)');
            }
            if (closed && buffer.length === 0) break;
            await sleep(100);
            continue;
          }
          // One delivery per message (the latest), in stream order.
          const first = [...new Map(buffer.splice(0, n).map((m) => [m.seq, m])).values()].sort((a, b) => a.seq - b.seq);
          buffer.unshift(...first);
          gated = false;
          if (gateLogged) log.info({ role: this.o.role, partition: p, consumer: spec.durable, held }, "previous owner's messages are back; resuming in stream order");
        }
        if (buffer.length === 0) {
          if (closed) break;
          continue;
        }
        // Fencing: an owner whose leases were not renewed for 2/3 of their life may have lost
        // them without knowing; it starts no batch until a lease round succeeds again.
        if (Date.now() - this.renewedAt > (this.o.leaseTtlMs * 2) / 3) {
          await sleep(50);
          continue;
        }
        const taken = buffer.splice(0, batchLength(buffer, max, maxBytes));
        // One copy per sequence: a message held in the buffer past the ack wait is delivered a
        // second time, and both copies must not reach the handler (a sink would store its rows
        // twice, a settler apply it to a card's state twice). The latest delivery is handled; the
        // other copies are acknowledged with it. A copy of a message handled already is
        // acknowledged unseen.
        const copies = new Map<number, JsMsg[]>();
        const latest = new Map<number, JsMsg>();
        for (const m of taken) {
          if (handled.has(m.seq)) {
            m.ack();
            continue;
          }
          const had = latest.get(m.seq);
          if (had) copies.set(m.seq, [...(copies.get(m.seq) ?? []), had]);
          latest.set(m.seq, m);
        }
        // A replayed dead letter is for the consumer that dead-lettered it (src/bus/replay.ts):
        // the other consumers of its subject acknowledge it unseen.
        const msgs = [...latest.values()].filter((m) => {
          const target = replayedFor(m);
          if (target === undefined || target === spec.durable) return true;
          m.ack();
          for (const c of copies.get(m.seq) ?? []) c.ack();
          return false;
        });
        if (msgs.length === 0) continue;
        try {
          const r = await handler.handle(p, spec, msgs);
          const back = new Set(r ? (r.nak ?? []) : []);
          // Dead letters are durable before their messages are acknowledged.
          await this.bury(p, spec, r ? (r.dead ?? []) : []);
          for (const m of msgs) {
            if (back.has(m)) m.nak(250);
            else {
              m.ack();
              for (const c of copies.get(m.seq) ?? []) c.ack();
              handled.add(m.seq);
            }
          }
          backoff = 0;
        } catch (err) {
          await this.failBatch(p, spec, msgs, batchFailure(err));
          failed = true;
          backoff = Math.min(2000, backoff * 2 || 100);
        }
      }
      // Lost the partition, stopping, or failed: give back what is buffered, in order.
      dead = true;
      sub.stop();
      for (const m of buffer.splice(0)) m.nak();
    }
    await ticking;
  }
}

/** Sequences a consumer loop remembers as handled (RecentSeqs): far more than a pull window holds. */
const HANDLED_MEMORY = 65_536;

/** The last `capacity` sequences added (insertion order), for membership tests. */
export class RecentSeqs {
  private readonly seqs = new Set<number>();

  constructor(private readonly capacity: number) {}

  has(seq: number): boolean {
    return this.seqs.has(seq);
  }

  add(seq: number): void {
    this.seqs.delete(seq);
    this.seqs.add(seq);
    if (this.seqs.size > this.capacity) this.seqs.delete(this.seqs.values().next().value!);
  }
}

/**
 * Most bytes of messages a consumer's pull window holds (see loop): a few batches' worth, so a
 * busy process holds little and the backlog stays in JetStream.
 */
export const PULL_WINDOW_BYTES = 2 * 1024 * 1024;

/**
 * Most bytes of messages in one batch (besides the batch's message count): a batch of bundles is
 * bounded in taps, hence in the time it holds the thread — about 1,000 taps, some 0.2 s of work.
 */
export const BATCH_BYTES = 256 * 1024;

/** How many of the buffered messages form the next batch: up to `max` and `maxBytes`, at least one. */
export function batchLength(buffer: readonly { data: Uint8Array }[], max: number, maxBytes: number): number {
  let n = 0;
  let bytes = 0;
  while (n < buffer.length && n < max) {
    bytes += buffer[n]!.data.length;
    if (n > 0 && bytes > maxBytes) break;
    n++;
  }
  return n;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
