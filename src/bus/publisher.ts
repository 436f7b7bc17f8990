/**
 * A pipelined JetStream publisher.
 *
 * js.publish() from the client costs a request object, a timer and (by default) an Error with
 * a stack per message; here many publishes share one reply subscription instead. Each message
 * goes to JetStream as a core NATS publish with a reply subject "<inbox>.<token>" and a
 * Nats-Msg-Id header; the stream answers on the reply subject with a PubAck:
 *   {"stream":"TAPS","seq":42}                     stored
 *   {"stream":"TAPS","seq":42,"duplicate":true}    an earlier message had this Nats-Msg-Id
 *   {"error":{"code":503,"err_code":10077,...}}    refused (stream full: discard new)
 * or a 503 "no responders" status when no stream listens on the subject (JetStream down).
 * A publish not answered within the timeout fails as unavailable; the caller decides.
 */
import { createInbox, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { TapflowError } from '../domain/reasons.js';

export interface PubAckResult {
  stream: string;
  seq: number;
  duplicate: boolean;
}

interface Pending {
  resolve(r: PubAckResult): void;
  reject(e: TapflowError): void;
  deadline: number;
}

/** JetStream API error codes that matter here. */
const JS_ERR_STREAM_FULL = new Set([10077, 10047, 10028]); // max messages / bytes / store resources
const JS_ERR_WRONG_LAST_SEQ = new Set([10071, 10164]); // expected last (subject) sequence mismatch

export interface PublishOptions {
  /** For CAS writes (KV): fail unless the subject's last sequence is this (0 = subject empty). */
  expectLastSubjectSeq?: number;
  /** More headers (names as NATS headers, e.g. "Tapflow-Error-Code"). */
  headers?: Record<string, string>;
}

export class JsPublisher {
  private readonly prefix: string;
  private readonly sub: Subscription;
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    this.prefix = createInbox();
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (_err, msg) => this.onReply(msg) });
    this.sweeper = setInterval(() => this.sweep(), Math.min(250, timeoutMs)).unref();
  }

  /** Publishes awaiting their PubAck. */
  get inflight(): number {
    return this.pending.size;
  }

  publish(subject: string, data: Uint8Array, msgId: string | undefined, opts?: PublishOptions): Promise<PubAckResult> {
    if (this.nc.isClosed()) return Promise.reject(new TapflowError('TF_BUS_UNAVAILABLE', 'NATS connection closed'));
    const token = (this.next++).toString(36);
    const h = natsHeaders();
    if (msgId !== undefined) h.set('Nats-Msg-Id', msgId);
    if (opts?.expectLastSubjectSeq !== undefined) h.set('Nats-Expected-Last-Subject-Sequence', String(opts.expectLastSubjectSeq));
    if (opts?.headers) for (const [k, v] of Object.entries(opts.headers)) h.set(k, v);
    return new Promise<PubAckResult>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, deadline: Date.now() + this.timeoutMs });
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}.${token}`, headers: h });
      } catch (err) {
        this.pending.delete(token);
        reject(new TapflowError('TF_BUS_UNAVAILABLE', `publish to ${subject} failed: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  /** Fails every pending publish (e.g. on shutdown). */
  close(): void {
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    for (const [token, p] of this.pending) {
      this.pending.delete(token);
      p.reject(new TapflowError('TF_BUS_UNAVAILABLE', 'publisher closed'));
    }
  }

  private onReply(msg: Msg): void {
    const token = msg.subject.slice(this.prefix.length + 1);
    const p = this.pending.get(token);
    if (!p) return; // already timed out
    this.pending.delete(token);
    if (msg.headers && msg.headers.code >= 400 && msg.data.length === 0) {
      p.reject(new TapflowError('TF_BUS_UNAVAILABLE', `JetStream did not answer (${msg.headers.code} ${msg.headers.description})`));
      return;
    }
    let ack: { stream?: string; seq?: number; duplicate?: boolean; error?: { code: number; err_code?: number; description?: string } };
    try {
      ack = JSON.parse(new TextDecoder().decode(msg.data));
    } catch {
      p.reject(new TapflowError('TF_BUS_UNAVAILABLE', 'unreadable PubAck'));
      return;
    }
    if (ack.error) {
      const code = ack.error.err_code ?? 0;
      const what = `${ack.error.code} ${ack.error.err_code ?? ''} ${ack.error.description ?? ''}`.trim();
      if (JS_ERR_STREAM_FULL.has(code)) p.reject(new TapflowError('TF_BUS_STREAM_FULL', `stream full: ${what}`));
      else if (JS_ERR_WRONG_LAST_SEQ.has(code)) p.reject(new TapflowError('TF_STATE_CONFLICT', `state changed concurrently: ${what}`));
      else p.reject(new TapflowError('TF_BUS_UNAVAILABLE', `JetStream refused: ${what}`));
      return;
    }
    p.resolve({ stream: ack.stream ?? '', seq: ack.seq ?? 0, duplicate: ack.duplicate === true });
  }

  private sweep(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      // Insertion order is deadline order (one timeout for all): stop at the first live one.
      if (p.deadline > now) break;
      this.pending.delete(token);
      p.reject(new TapflowError('TF_BUS_UNAVAILABLE', `no PubAck within ${this.timeoutMs} ms`));
    }
  }
}

/**
 * Marks a promise that is awaited later — a batch's outputs, published in a loop that yields to
 * the event loop (`pace()`) and awaited together after it: a rejection that arrives while the
 * loop is still at work (a PubAck refused by a JetStream node going down) is reported where the
 * promise is awaited, instead of as an unhandled rejection, which would end the process.
 */
export function awaitedLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}
