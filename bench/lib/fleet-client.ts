/**
 * The simulated fleet's side of the wire: live terminals on StreamTaps (one stream per
 * terminal; with mutual TLS, the default, each terminal on a TLS connection of its own with its
 * own certificate, as real terminals connect; on the dev-secrets path multiplexed on a few
 * plaintext HTTP/2 connections), station computers and buses on
 * UploadBatch, clinics on SettleClaim — with what real terminals do when tapflow pushes back:
 * a tap answered OVERLOADED or UNAVAILABLE, or a call refused with RESOURCE_EXHAUSTED or
 * UNAVAILABLE, is sent again with the same seq after a growing pause (jittered, at most
 * {@link MAX_ATTEMPTS} times). Latency always runs from the intended send time of the first
 * attempt.
 *
 * Messages go out pre-encoded (the tape holds the bytes): the client's serializer is the
 * identity, so the simulator spends no CPU on protobuf while it is measured, except decoding
 * acknowledgements.
 */
import * as grpc from '@grpc/grpc-js';
import { BatchAck, ClaimResult, ClaimStatus, TapAck, TapBatch, TapStatus } from '../../src/gen/tapflow/v1/ingest.js';
import { demoTerminalSecret } from '../../src/ingest/terminals.js';
import { issueTerminalCert, type FleetCa } from '../../src/ingest/tls.js';
import type { SimTap } from './fleet.js';
import { Counts, newHistogram, recordMs, Timeline } from './recorder.js';
import { asBuffer, type BatchItem, type ClaimItem, type LiveItem } from './tape.js';

const METHOD = {
  stream: '/tapflow.v1.TerminalIngest/StreamTaps',
  batch: '/tapflow.v1.TerminalIngest/UploadBatch',
  claim: '/tapflow.v1.TerminalIngest/SettleClaim',
};

/** Attempts per tap, batch or claim before the last answer is taken as final. */
export const MAX_ATTEMPTS = 40;
const RETRY_STATUSES = new Set([TapStatus.OVERLOADED, TapStatus.UNAVAILABLE]);
const RETRY_CODES = new Set([grpc.status.RESOURCE_EXHAUSTED, grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);

const identity = (b: Buffer) => b;

/** Final answer of a tap, kept on the tape for the checks. */
export interface TapResult {
  status: TapStatus;
  reason: string;
  attempts: number;
  /** ms from the window start (warm taps: negative). */
  ackedAt: number;
  /** Intended send time, ms from the window start. */
  intended: number;
}

export interface FleetClientOptions {
  target: string;
  /** HTTP/2 connections the terminals share (dev-secrets; with mutual TLS a connection per terminal). */
  channels: number;
  /**
   * Mutual TLS: each terminal gets a certificate from this CA (issued in memory before it first
   * connects) and a connection of its own. Absent: plaintext, static secrets (dev-secrets).
   */
  tls?: { ca: FleetCa };
  fleetKey: Uint8Array;
  timeline: Timeline;
}

interface Pending {
  item: LiveItem;
  intended: number;
  sentAt: number;
  attempts: number;
}

interface TerminalStream {
  id: string;
  channel: grpc.Client;
  call?: grpc.ClientDuplexStream<Buffer, TapAck>;
  pending: Map<number, Pending>;
  ended: boolean;
}

/** Pause before attempt n+1 (ms): 50 · 2^n, at most 2 s, ±50% jitter. */
export function backoffMs(attempt: number, random = Math.random): number {
  const base = Math.min(2000, 50 * 2 ** Math.min(attempt, 10));
  return base * (0.5 + random());
}

export class FleetClient {
  readonly results = new Map<SimTap, TapResult>();
  /** Claim answers (SETTLED / PENDING / REJECTED with the split); undefined after a gRPC error. */
  readonly claimResults = new Map<ClaimItem, ClaimResult | undefined>();
  readonly liveStatus = new Counts();
  readonly batchStatus = new Counts();
  readonly claimStatus = new Counts();
  readonly liveAck = newHistogram();
  /** Live and batch acks since the last progress line (reset by {@link takeRecent}). */
  private recent = newHistogram();
  /** Live taps: from the actual (first) send, not the intended time: the sender's own lateness removed. */
  readonly liveService = newHistogram();
  readonly batchAck = newHistogram();
  readonly batchTapAck = newHistogram();
  readonly claimLatency = newHistogram();
  retries = 0;
  streamErrors = 0;
  inflightLive = 0;
  inflightBatches = 0;
  inflightClaims = 0;
  lastAckAt = 0;
  private readonly channels: grpc.Client[] = [];
  /** Mutual TLS: each terminal's own connection. */
  private readonly terminalChannels = new Map<string, grpc.Client>();
  private readonly caPem?: Buffer;
  private readonly streams = new Map<string, TerminalStream>();
  private readonly md = new Map<string, grpc.Metadata>();
  /** performance.now() of the window start. */
  private w0 = performance.now();
  private closing = false;

  constructor(private readonly o: FleetClientOptions) {
    if (o.tls) this.caPem = Buffer.from(o.tls.ca.certPem);
    for (let i = 0; i < (o.tls ? 0 : o.channels); i++) {
      // A local subchannel pool per client: each gets its own connection instead of sharing one.
      this.channels.push(new grpc.Client(o.target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 }));
    }
  }

  /** p99 (ms) of the answers received since the last call, and their count; starts a new period. */
  takeRecent(): { p99: number; n: number } {
    const h = this.recent;
    this.recent = newHistogram();
    return { p99: h.totalCount > 0 ? h.getValueAtPercentile(99) / 1000 : 0, n: h.totalCount };
  }

  /** Sets the window start; every time below is ms from it. */
  startWindow(w0 = performance.now()): void {
    this.w0 = w0;
  }

  now(): number {
    return performance.now() - this.w0;
  }

  private metadata(id: string): grpc.Metadata {
    let m = this.md.get(id);
    if (!m) {
      m = new grpc.Metadata();
      m.set('x-terminal-id', id);
      if (!this.o.tls) m.set('x-terminal-secret', demoTerminalSecret(this.o.fleetKey, id));
      this.md.set(id, m);
    }
    return m;
  }

  private channelFor(id: string): grpc.Client {
    if (this.o.tls) {
      let c = this.terminalChannels.get(id);
      if (!c) {
        const cert = issueTerminalCert(this.o.tls.ca, id, 1);
        c = new grpc.Client(this.o.target, grpc.credentials.createSsl(this.caPem!, Buffer.from(cert.keyPem), Buffer.from(cert.certPem)), {
          'grpc.ssl_target_name_override': 'localhost',
          'grpc.max_receive_message_length': 64 * 1024 * 1024,
          'grpc.max_send_message_length': 64 * 1024 * 1024,
        });
        this.terminalChannels.set(id, c);
      }
      return c;
    }
    let h = 0;
    for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
    return this.channels[h % this.channels.length]!;
  }

  // ---------------------------------------------------------------- live

  /** Opens one stream per terminal (before the window: terminals stay connected all day). */
  openStreams(terminalIds: Iterable<string>): void {
    for (const id of terminalIds) if (!this.streams.has(id)) this.open({ id, channel: this.channelFor(id), pending: new Map(), ended: false });
  }

  /**
   * Resolves when every connection is up (with mutual TLS: every terminal's handshake done), so
   * the window measures taps, not a fleet's connection storm: deployed terminals stay connected.
   */
  async waitConnected(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const all = this.o.tls ? [...this.terminalChannels.values()] : this.channels;
    await Promise.all(
      all.map(
        (c) => new Promise<void>((res, rej) => c.waitForReady(deadline, (err) => (err ? rej(new Error(`a terminal connection was not up within ${timeoutMs} ms: ${err.message}`)) : res()))),
      ),
    );
  }

  get openStreamCount(): number {
    return this.streams.size;
  }

  private open(s: TerminalStream): void {
    this.streams.set(s.id, s);
    const call = s.channel.makeBidiStreamRequest<Buffer, TapAck>(METHOD.stream, identity, (b) => TapAck.decode(b), this.metadata(s.id));
    s.call = call;
    call.on('data', (a: TapAck) => this.onAck(s, a));
    call.on('error', () => {
      if (s.call !== call) return;
      this.streamErrors++;
      s.call = undefined;
      if (this.closing && s.pending.size === 0) return;
      // Reconnect and send what is unanswered again (same seq: answered DUPLICATE if it was stored).
      setTimeout(() => {
        if (s.call) return;
        this.open(s);
        for (const p of s.pending.values()) {
          p.attempts++;
          this.retries++;
          s.call!.write(p.item.bytes);
        }
      }, 250);
    });
    call.on('end', () => {
      if (s.call === call) s.ended = true;
    });
  }

  /** Sends a live tap now (meant for `item.at`). */
  sendLive(item: LiveItem): void {
    const id = item.sim.tap.terminalId;
    let s = this.streams.get(id);
    if (!s) {
      s = { id, channel: this.channelFor(id), pending: new Map(), ended: false };
      this.open(s);
    }
    const now = this.now();
    s.pending.set(item.sim.tap.seq, { item, intended: item.at, sentAt: now, attempts: 1 });
    this.inflightLive++;
    this.o.timeline.send(now);
    s.call?.write(item.bytes);
  }

  private onAck(s: TerminalStream, a: TapAck): void {
    const p = s.pending.get(a.seq);
    if (!p) return;
    const now = this.now();
    if (RETRY_STATUSES.has(a.status) && p.attempts < MAX_ATTEMPTS && !this.closing) {
      this.liveStatus.add(`retry:${TapStatus[a.status]}`);
      p.attempts++;
      this.retries++;
      setTimeout(() => {
        if (s.pending.get(a.seq) === p) s.call?.write(p.item.bytes);
      }, backoffMs(p.attempts - 2));
      return;
    }
    s.pending.delete(a.seq);
    this.inflightLive--;
    const name = TapStatus[a.status] ?? String(a.status);
    this.liveStatus.add(name);
    const latency = now - p.intended;
    const accepted = a.status === TapStatus.ACCEPTED_DURABLE || a.status === TapStatus.DUPLICATE;
    recordMs(this.liveAck, latency);
    recordMs(this.recent, latency);
    recordMs(this.liveService, now - p.sentAt);
    this.o.timeline.ack(now, p.intended, latency, accepted);
    this.results.set(p.item.sim, { status: a.status, reason: a.reason, attempts: p.attempts, ackedAt: now, intended: p.intended });
    this.lastAckAt = now;
  }

  /** Ends every stream once its taps are answered (or after `timeoutMs`). */
  async closeStreams(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.inflightLive > 0 && Date.now() < until) await sleep(50);
    this.closing = true;
    for (const s of this.streams.values()) s.call?.end();
  }

  // ---------------------------------------------------------------- batches

  /**
   * Uploads a batch (meant for `item.at`); resolves once every tap has a final answer. Taps
   * answered OVERLOADED or UNAVAILABLE go again in a smaller batch.
   */
  async uploadBatch(item: BatchItem, warm = false): Promise<void> {
    const intended = item.at;
    let taps = item.taps;
    let bytes = item.bytes;
    this.inflightBatches++;
    if (!warm) this.o.timeline.send(this.now(), taps.length);
    for (let attempt = 1; ; attempt++) {
      const r = await this.unary<BatchAck>(METHOD.batch, bytes, item.terminalId, (b) => BatchAck.decode(b));
      const now = this.now();
      if (r.error) {
        const retry = RETRY_CODES.has(r.error.code) && attempt < MAX_ATTEMPTS;
        this.batchStatus.add(`${retry ? 'retry:' : ''}grpc:${grpc.status[r.error.code]}`);
        if (retry) {
          this.retries++;
          await sleep(backoffMs(attempt - 1));
          continue;
        }
        for (const t of taps) this.finalTap(t, TapStatus.UNAVAILABLE, `grpc ${grpc.status[r.error.code]}: ${r.error.details}`, attempt, now, intended, warm);
        break;
      }
      const again: SimTap[] = [];
      r.value!.acks.forEach((a, i) => {
        const t = taps[i];
        if (!t) return;
        if (RETRY_STATUSES.has(a.status) && attempt < MAX_ATTEMPTS) again.push(t);
        else this.finalTap(t, a.status, a.reason, attempt, now, intended, warm);
      });
      if (again.length === 0) break;
      this.batchStatus.add('retry:taps', again.length);
      this.retries++;
      taps = again;
      bytes = asBuffer(TapBatch.encode({ terminalId: item.terminalId, taps: again.map((t) => t.tap) }).finish());
      await sleep(backoffMs(attempt - 1));
    }
    this.inflightBatches--;
    if (!warm) recordMs(this.batchAck, this.now() - intended);
  }

  private finalTap(t: SimTap, status: TapStatus, reason: string, attempts: number, now: number, intended: number, warm: boolean): void {
    this.results.set(t, { status, reason, attempts, ackedAt: now, intended });
    if (warm) return;
    const name = TapStatus[status] ?? String(status);
    this.batchStatus.add(name);
    const accepted = status === TapStatus.ACCEPTED_DURABLE || status === TapStatus.DUPLICATE;
    recordMs(this.batchTapAck, now - intended);
    recordMs(this.recent, now - intended);
    this.o.timeline.ack(now, intended, now - intended, accepted);
    this.lastAckAt = now;
  }

  // ---------------------------------------------------------------- claims

  /** Sends a claim (meant for `item.at`); resolves with its final answer. */
  async settleClaim(item: ClaimItem): Promise<void> {
    this.inflightClaims++;
    for (let attempt = 1; ; attempt++) {
      const r = await this.unary<ClaimResult>(METHOD.claim, item.bytes, item.sim.claim.terminalId, (b) => ClaimResult.decode(b));
      if (r.error && RETRY_CODES.has(r.error.code) && attempt < MAX_ATTEMPTS) {
        this.retries++;
        await sleep(backoffMs(attempt - 1));
        continue;
      }
      recordMs(this.claimLatency, this.now() - item.at);
      this.claimStatus.add(r.error ? `grpc:${grpc.status[r.error.code]}` : (ClaimStatus[r.value!.status] ?? String(r.value!.status)));
      this.claimResults.set(item, r.value);
      break;
    }
    this.inflightClaims--;
  }

  private unary<T>(method: string, bytes: Buffer, terminalId: string, decode: (b: Buffer) => T): Promise<{ value?: T; error?: grpc.ServiceError }> {
    return new Promise((resolve) => {
      this.channelFor(terminalId).makeUnaryRequest<Buffer, T>(method, identity, decode, bytes, this.metadata(terminalId), { deadline: Date.now() + 60_000 }, (err, value) =>
        resolve(err ? { error: err } : { value: value! }),
      );
    });
  }

  close(): void {
    this.closing = true;
    for (const s of this.streams.values()) s.call?.cancel();
    for (const c of this.channels) c.close();
    for (const c of this.terminalChannels.values()) c.close();
  }
}

/** ms (from the window start) of the latest final answer among `taps`, 0 when none was answered. */
export function lastAnswerMs(taps: Iterable<SimTap>, results: ReadonlyMap<SimTap, TapResult>): number {
  let last = 0;
  for (const s of taps) last = Math.max(last, results.get(s)?.ackedAt ?? 0);
  return last;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves with `p`, or after `ms` at the latest, without keeping the process alive for the timer. */
export function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms);
    timer.unref();
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}
