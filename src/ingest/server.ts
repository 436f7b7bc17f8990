/**
 * The ingest role: tapflow's gRPC front door (service tapflow.v1.TerminalIngest).
 *
 * For each tap: read the frame strictly (wire.ts), authenticate the terminal (per call), check
 * the shape (shape.ts), look the (terminal_id, seq) up in the memory of recent taps
 * (seq-memory.ts: DUPLICATE, or INVALID SEQ_REUSED), replace the card number by its keyed token,
 * seal the credentials for the validators, and hand the tap to the bundler (bundler.ts), which
 * publishes it with the partition's other taps in one TapBundle on tapflow.taps.<partition>;
 * only after that bundle's PubAck is the tap answered ACCEPTED_DURABLE. At most `maxInflight`
 * taps wait for a PubAck per process; beyond it taps are answered OVERLOADED (RESOURCE_EXHAUSTED
 * for unary calls). While JetStream is unreachable, taps are answered UNAVAILABLE and new calls
 * fail with UNAVAILABLE.
 *
 * A stream ends only when every tap published on it was answered: OK after the client
 * half-closed, INVALID_ARGUMENT after a frame that cannot be read at all, UNAVAILABLE when the
 * process drains (taps that arrive during a short grace are answered UNAVAILABLE; the client
 * re-sends whatever was not answered, which is always safe).
 *
 * Medical claims: reserved for the submitting terminal in the tapflow_claims bucket
 * (claims-store.ts), published with sealed credentials to tapflow.claims.<card partition> for
 * the validator, answered with the settler's result within a bounded wait, or PENDING.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { KV } from '@nats-io/kv';
import {
  TerminalIngestService,
  TapStatus,
  ClaimStatus,
  ClaimResult,
  type BatchAck,
  type ClaimQuery,
  type TapAck,
} from '../gen/tapflow/v1/ingest.js';
import { claimSplitToPb, encodeBusClaim, encodeBusTap, encodeCredentials, encodeRiskFlag } from '../bus/codec.js';
import type { Bus } from '../bus/connection.js';
import type { JsPublisher } from '../bus/publisher.js';
import { subjects } from '../bus/subjects.js';
import { markPublished, readClaim, reserveClaim } from '../bus/claims-store.js';
import { tokensOf, type TokenKeySet } from '../domain/card/token-keys.js';
import { seal } from '../domain/card/seal.js';
import { FailureCodes, TapflowError, toTapflowError, type FailureCode } from '../domain/reasons.js';
import type { ClaimSplit, TapEvent, VenueDirectory } from '../domain/types.js';
import { claimEventId, seqReusedFlag } from '../domain/validate/index.js';
import { claimKey } from '../domain/claim-key.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import { TapBundler, type BundleOutcome } from './bundler.js';
import { tapDigest } from './digest.js';
import { SeqMemory } from './seq-memory.js';
import { checkClaim, checkTap, deviceTimeProblem, terminalIdOf, type TimeBounds } from './shape.js';
import { venueRefusal, VenueRegions } from './venue-scope.js';
import { TERMINAL_ID_PATTERN, type Terminal, type TerminalRegistry } from './terminals.js';
import { PeerIdentityCache } from './tls.js';
import type { PeerCertificate } from 'node:tls';
import { readBatch, readClaim as readClaimFrame, readClaimQuery, readTap, salvageIds, type Frame, type WireBatch, type WireClaim, type WireTap } from './wire.js';

export interface IngestOptions {
  bus: Bus;
  publisher: JsPublisher;
  /** Names this process in bundle message ids. */
  instanceId: string;
  claimsKv: KV;
  registry: TerminalRegistry;
  /**
   * Mutual TLS (tls.ts): a terminal is the one its verified client certificate names, unless
   * that certificate's serial is revoked. Absent: the static-secret path (development only).
   */
  mtls?: { revoked: { has(serial: string): boolean } };
  venues: VenueDirectory;
  /** Token keys: the current version, and during a rotation overlap the previous ones (token-keys.ts). */
  tokenKeys: TokenKeySet;
  sealKey: Uint8Array;
  partitions: number;
  maxInflight: number;
  batchMaxTaps: number;
  claimWaitMs: number;
  /** Live taps further than this from ingest time count as clock skew (ms). */
  clockSkewMs: number;
  /** Live taps further than this from ingest time are refused, INVALID device_time (ms). */
  liveTimeBoundMs: number;
  /** Stored taps (UploadBatch) older than this at ingest are refused, INVALID device_time (ms). */
  uploadMaxAgeMs: number;
  /** Recent (terminal_id, seq) remembered for DUPLICATE and SEQ_REUSED answers. */
  seqMemory: number;
  metrics: Metrics;
  log: Logger;
  /** Injected clock (epoch ms). */
  now?: () => number;
}

/**
 * How long a draining stream keeps answering taps that were already on their way (UNAVAILABLE)
 * before it ends (ms).
 */
export const DRAIN_GRACE_MS = 300;

const GRPC_CODE: Record<string, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  INTERNAL: grpc.status.INTERNAL,
};

function serviceError(code: FailureCode, message: string): grpc.ServiceError {
  const err = new Error(message) as grpc.ServiceError;
  err.code = GRPC_CODE[FailureCodes[code].grpc] ?? grpc.status.INTERNAL;
  err.details = `${code}: ${message}`;
  err.metadata = new grpc.Metadata();
  return err;
}

/** A field name as a metric label: list indices dropped, so the label set stays bounded. */
function fieldLabel(field: string): string {
  return field.replace(/\[\d+\]/g, '[]');
}

/** A StreamTaps frame as the deserializer hands it over: read, or not, with what could be salvaged. */
type TapFrame = Frame<WireTap> & { salvaged?: { terminalId: string; seq: bigint | undefined } };

/** A call as authentication sees it: its metadata and its TLS peer. */
interface AuthCall {
  metadata: grpc.Metadata;
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}

/** What a live stream is doing; transitions in {@link IngestService.handlers}.streamTaps. */
type StreamState = 'open' | 'ending' | 'ended';

interface OpenStream {
  /** Taps published and not answered yet. */
  inflight: number;
  state: StreamState;
  /** Set when the drain's grace has passed: end as soon as nothing is in flight. */
  drainDue: boolean;
  /** Serial of the client certificate the stream was opened with (mutual TLS). */
  serial?: string;
  /** Set when that certificate was revoked: end as soon as nothing is in flight. */
  refused?: grpc.ServiceError;
  tryEnd(): void;
}

export class IngestService {
  private mode: 'serving' | 'draining' = 'serving';
  private readonly openStreams = new Set<OpenStream>();
  private readonly now: () => number;
  private readonly seqs: SeqMemory;
  private readonly bundler: TapBundler;
  /** Taps handed to the bundler and not answered yet, by event id. */
  private readonly pendingTaps = new Map<string, { digest: string; outcome: Promise<BundleOutcome> }>();
  private readonly venueRegions: VenueRegions;
  private readonly timeBounds: TimeBounds;
  private readonly peers = new PeerIdentityCache();

  constructor(private readonly o: IngestOptions) {
    this.now = o.now ?? Date.now;
    this.venueRegions = new VenueRegions(o.venues);
    this.timeBounds = { liveMs: o.liveTimeBoundMs, uploadAgeMs: o.uploadMaxAgeMs };
    this.seqs = new SeqMemory(o.seqMemory);
    this.bundler = new TapBundler({ publisher: o.publisher, instanceId: o.instanceId, onBundle: (taps) => o.metrics.bundleTaps.observe(taps) });
  }

  /** Taps handed to the bundler and not answered yet. */
  get inflight(): number {
    return this.bundler.outstanding;
  }

  /** True from the start of a drain: /healthz and /readyz report it. */
  get draining(): boolean {
    return this.mode === 'draining';
  }

  /**
   * Begins the drain: new calls are refused; each open stream answers the taps in flight and
   * those still arriving for DRAIN_GRACE_MS, then ends with UNAVAILABLE.
   */
  startDrain(): void {
    this.mode = 'draining';
    const t = setTimeout(() => {
      for (const s of this.openStreams) {
        s.drainDue = true;
        s.tryEnd();
      }
    }, DRAIN_GRACE_MS);
    t.unref();
  }

  get openStreamCount(): number {
    return this.openStreams.size;
  }

  private authenticate(call: AuthCall): Terminal {
    return this.authenticated(call).terminal;
  }

  /**
   * Who is calling. Mutual TLS: the terminal its client certificate names (read once per
   * certificate), refused when the serial is revoked, the id unknown or disabled, or when
   * x-terminal-id metadata names another terminal. Dev-secrets: the id and secret metadata.
   */
  private authenticated(call: AuthCall): { terminal: Terminal; serial?: string } {
    const refuse = (code: 'UNAUTHENTICATED' | 'PERMISSION_DENIED', message: string) => {
      const failure: FailureCode = code === 'UNAUTHENTICATED' ? 'TF_INGEST_UNAUTHENTICATED' : 'TF_INGEST_PERMISSION_DENIED';
      this.o.metrics.ingestRefused.inc({ code: failure });
      return serviceError(failure, message);
    };
    const md = call.metadata;
    if (!this.o.mtls) {
      const r = this.o.registry.authenticate(md.get('x-terminal-id')[0]?.toString(), md.get('x-terminal-secret')[0]?.toString());
      if (!r.ok) throw refuse(r.code, r.message);
      return { terminal: r.terminal };
    }
    const peer = call.getAuthContext().sslPeerCertificate;
    if (!peer) throw refuse('UNAUTHENTICATED', 'no verified client certificate: connect with TLS and the terminal certificate issued by the fleet CA');
    const who = this.peers.identify(peer);
    if (!who.ok) throw refuse('UNAUTHENTICATED', who.message);
    if (this.o.mtls.revoked.has(who.serial)) throw refuse('UNAUTHENTICATED', `client certificate serial ${who.serial} of terminal ${who.terminalId} is revoked`);
    const r = this.o.registry.identify(who.terminalId);
    if (!r.ok) throw refuse(r.code, r.message);
    const claimed = md.get('x-terminal-id')[0]?.toString();
    if (claimed !== undefined && claimed !== who.terminalId) throw refuse('PERMISSION_DENIED', `x-terminal-id ${claimed} is not the terminal ${who.terminalId} that the client certificate names`);
    return { terminal: r.terminal, serial: who.serial };
  }

  /**
   * Ends the open streams whose client certificate is now revoked (after the taps in flight are
   * answered), with UNAUTHENTICATED naming the serial.
   */
  endRevokedStreams(revoked: { has(serial: string): boolean }): number {
    let n = 0;
    for (const s of this.openStreams) {
      if (s.serial === undefined || s.refused || !revoked.has(s.serial)) continue;
      s.refused = serviceError('TF_INGEST_UNAUTHENTICATED', `client certificate serial ${s.serial} was revoked; this stream ends`);
      this.o.metrics.ingestRefused.inc({ code: 'TF_INGEST_UNAUTHENTICATED' });
      n++;
      s.tryEnd();
    }
    return n;
  }

  /** Refuses a new call while draining or while JetStream is unreachable. */
  private admit(): void {
    if (this.draining) {
      this.o.metrics.ingestRefused.inc({ code: 'TF_DRAINING' });
      throw serviceError('TF_DRAINING', 'this ingest is shutting down; reconnect');
    }
    if (!this.o.bus.connected()) {
      this.o.metrics.ingestRefused.inc({ code: 'TF_BUS_UNAVAILABLE' });
      throw serviceError('TF_BUS_UNAVAILABLE', 'JetStream is not reachable');
    }
  }

  /** An ack; `seq` may be a bigint (a seq out of range is echoed exactly). */
  private ack(terminalId: string, seq: number | bigint, status: TapStatus, reason = ''): TapAck {
    // The generated encoder writes a bigint uint64 exactly; the type says number.
    return { terminalId, seq: seq as number, status, reason, eventId: `${terminalId}:${seq}` };
  }

  /** The answer to a tap whose bundle was not made durable: retry with the same seq. */
  private refusedAck(terminalId: string, seq: number, error: TapflowError): TapAck {
    this.o.metrics.ingestRefused.inc({ code: error.code });
    const status = error.code === 'TF_BUS_STREAM_FULL' ? TapStatus.OVERLOADED : TapStatus.UNAVAILABLE;
    return this.ack(terminalId, seq, status, `${FailureCodes[error.code].grpc}: ${error.message}; retry with the same seq`);
  }

  /** The unreadable frame's ack: by its salvaged (terminal_id, seq), or undefined when it has no seq. */
  private unreadableAck(frame: TapFrame & { ok: false }, terminal: Terminal): TapAck | undefined {
    const ids = frame.salvaged;
    if (!ids || ids.seq === undefined) return undefined;
    const terminalId = TERMINAL_ID_PATTERN.test(ids.terminalId) ? ids.terminalId : terminal.id;
    this.o.metrics.tapsInvalid.inc({ field: 'frame' });
    return this.ack(terminalId, ids.seq, TapStatus.INVALID, `INVALID_ARGUMENT: ${frame.error}`);
  }

  /**
   * Answers one tap (never rejects). Checks its shape, its device time against the bounds and
   * its venue against what the terminal serves, consults the seq memory, publishes it, and
   * answers from the PubAck.
   */
  private async submit(t: WireTap, terminal: Terminal, offline: boolean, t0: number): Promise<TapAck> {
    const m = this.o.metrics;
    const checked = checkTap(t, terminal.id);
    if (!checked.ok) {
      m.tapsInvalid.inc({ field: fieldLabel(checked.error.field) });
      return this.ack(t.terminalId || terminal.id, t.seq, TapStatus.INVALID, `INVALID_ARGUMENT: ${checked.error.field}: ${checked.error.message}`);
    }
    const c = checked.tap;
    const { terminalId, seq, deviceTime, venueId } = c.tap;
    // A clock a little off is counted (alert TapflowClockSkew); one far off is refused.
    if (!offline && Math.abs(deviceTime - t0) > this.o.clockSkewMs) m.clockSkew.inc({ region: terminal.region });
    const timeProblem = deviceTimeProblem(deviceTime, t0, offline, this.timeBounds);
    if (timeProblem !== undefined) {
      m.tapsInvalid.inc({ field: 'device_time' });
      return this.ack(terminalId, seq, TapStatus.INVALID, `INVALID_ARGUMENT: device_time: ${timeProblem}`);
    }
    const venue = this.o.venues.get(venueId);
    const refusal = venueRefusal(terminal, venueId, this.venueRegions.regionOf(venueId, venue));
    if (refusal !== undefined) {
      m.ingestRefused.inc({ code: 'TF_INGEST_PERMISSION_DENIED' });
      return this.ack(terminalId, seq, TapStatus.INVALID, `PERMISSION_DENIED: venue_id: ${refusal}`);
    }
    const eventId = `${terminalId}:${seq}`;
    const digest = tapDigest(c.tap);
    // The partition comes from the never-rotated partition key; during a key rotation overlap
    // the card's tokens under the previous versions go along, so its state can follow it.
    const { token: cardToken, previous: previousCardTokens, partition } = tokensOf(this.o.tokenKeys, 'card', c.cardNumber, this.o.partitions);
    // The same (terminal, seq) made durable before, or on its way now (a re-send before the
    // first copy's bundle was answered): answered from the first copy, nothing published again.
    const earlier = this.pendingTaps.get(eventId);
    const known = earlier?.digest ?? this.seqs.get(terminalId, seq);
    if (known !== undefined && known !== digest) {
      m.seqReused.inc({ stage: 'ingest' });
      const flag = seqReusedFlag({ eventId, terminalId, deviceTime, terminalRegion: terminal.region, contentDigest: digest }, known, this.now());
      await this.o.publisher.publish(subjects.risk(partition), encodeRiskFlag(flag), flag.flagId).then(
        () => m.riskFlags.inc({ rule: flag.ruleId, severity: flag.severity }),
        (err: unknown) => this.o.log.warn({ terminalId, err: (err as Error).message }, 'could not publish a SEQ_REUSED flag'),
      );
      return this.ack(terminalId, seq, TapStatus.INVALID, `SEQ_REUSED: seq ${seq} of ${terminalId} was used for another tap; the first one counts. Continue above the seqs already used.`);
    }
    if (earlier) {
      const r = await earlier.outcome;
      if (!r.ok) return this.refusedAck(terminalId, seq, r.error);
      m.tapsDuplicate.inc();
      return this.ack(terminalId, seq, TapStatus.DUPLICATE, 'already received; counted once');
    }
    if (known !== undefined) {
      m.tapsDuplicate.inc();
      return this.ack(terminalId, seq, TapStatus.DUPLICATE, 'already received; counted once');
    }
    if (!this.o.bus.connected()) {
      m.ingestRefused.inc({ code: 'TF_BUS_UNAVAILABLE' });
      return this.ack(terminalId, seq, TapStatus.UNAVAILABLE, 'UNAVAILABLE: JetStream is not reachable; retry with the same seq');
    }
    const ev: TapEvent = {
      eventId,
      terminalId,
      seq,
      terminalRegion: terminal.region,
      operatorId: terminal.operatorId ?? venue?.operatorId ?? 'unknown',
      deviceTime,
      ingestTime: t0,
      scene: c.scene,
      venueId,
      direction: c.direction,
      cardToken,
      ...(previousCardTokens.length > 0 && { previousCardTokens }),
      cardRegion: c.cardRegion,
      form: c.credentials.kind === 'chip' ? 'CHIP' : 'QR',
      amountFen: c.tap.amountFen,
      riderCategory: c.riderCategory,
      offline,
      partition,
      contentDigest: digest,
    };
    const sealed = seal(this.o.sealKey, encodeCredentials(c.credentials), eventId);
    const outcome = this.bundler.submit(partition, encodeBusTap(ev, sealed));
    this.pendingTaps.set(eventId, { digest, outcome });
    const r = await outcome;
    this.pendingTaps.delete(eventId);
    m.inflight.set(this.bundler.outstanding);
    if (!r.ok) return this.refusedAck(terminalId, seq, r.error);
    this.seqs.remember(terminalId, seq, digest);
    m.tapsPublished.inc();
    return this.ack(terminalId, seq, TapStatus.ACCEPTED_DURABLE);
  }

  /** The method implementations, for {@link serviceDefinition} (requests as wire.ts reads them). */
  readonly handlers = {
    streamTaps: (call: grpc.ServerDuplexStream<TapFrame, TapAck>) => {
      let terminal: Terminal;
      let serial: string | undefined;
      try {
        this.admit();
        ({ terminal, serial } = this.authenticated(call));
      } catch (err) {
        // emit('error') sends the status to the client; destroy() would leave the call hanging.
        call.emit('error', err as grpc.ServiceError);
        return;
      }
      const m = this.o.metrics;
      let inputDone = false;
      /** Set after a frame that cannot be read at all: the stream ends with this status. */
      let unreadable: grpc.ServiceError | undefined;
      /** One 'drain' wait at a time: a client that does not read its acks pauses the stream. */
      let waitingForDrain = false;
      const s: OpenStream = {
        inflight: 0,
        state: 'open',
        drainDue: false,
        ...(serial !== undefined && { serial }),
        tryEnd: () => {
          if (s.state !== 'open' || s.inflight > 0) return;
          if (unreadable) this.endStream(s, call, unreadable);
          else if (s.refused) this.endStream(s, call, s.refused);
          else if (s.drainDue) this.endStream(s, call, serviceError('TF_DRAINING', 'ingest is shutting down; reconnect and re-send every tap not answered (always safe)'));
          else if (inputDone) this.endStream(s, call);
        },
      };
      this.openStreams.add(s);
      const write = (ack: TapAck, t0: number) => {
        if (s.state === 'ended') return;
        m.ackLatency.observe((performance.now() - t0) / 1000);
        if (!call.write(ack) && !waitingForDrain) {
          waitingForDrain = true;
          call.pause();
          call.once('drain', () => {
            waitingForDrain = false;
            if (s.state === 'open' && !unreadable) call.resume();
          });
        }
      };
      call.on('data', (frame: TapFrame) => {
        if (s.state !== 'open' || unreadable || s.refused) return;
        const t0 = performance.now();
        m.tapsReceived.inc({ kind: 'live' });
        if (!frame.ok) {
          const ack = this.unreadableAck(frame, terminal);
          if (ack) {
            write(ack, t0);
            return;
          }
          m.framesUnreadable.inc({ method: 'StreamTaps' });
          this.o.log.warn({ terminalId: terminal.id, err: frame.error }, 'a StreamTaps frame could not be read; ending that stream after its taps in flight are answered');
          unreadable = serviceError('TF_INGEST_INVALID', `${frame.error}; the stream ends here: re-send every tap not answered on a new stream`);
          call.pause();
          s.tryEnd();
          return;
        }
        const t = frame.value;
        if (this.draining) {
          m.ingestRefused.inc({ code: 'TF_DRAINING' });
          write(this.ack(t.terminalId || terminal.id, t.seq, TapStatus.UNAVAILABLE, 'UNAVAILABLE: ingest is shutting down; retry on another connection'), t0);
          return;
        }
        if (this.bundler.outstanding >= this.o.maxInflight) {
          m.ingestRefused.inc({ code: 'TF_INGEST_OVERLOADED' });
          write(this.ack(t.terminalId || terminal.id, t.seq, TapStatus.OVERLOADED, 'RESOURCE_EXHAUSTED: too many taps in flight; retry with the same seq'), t0);
          return;
        }
        s.inflight++;
        void this.submit(t, terminal, false, Date.now()).then((ack) => {
          s.inflight--;
          write(ack, t0);
          s.tryEnd();
        });
      });
      call.on('end', () => {
        inputDone = true;
        s.tryEnd();
      });
      const gone = () => {
        s.state = 'ended';
        this.openStreams.delete(s);
      };
      call.on('error', gone);
      call.on('cancelled', gone);
    },

    uploadBatch: (call: grpc.ServerUnaryCall<Frame<WireBatch>, BatchAck>, callback: grpc.sendUnaryData<BatchAck>) => {
      const t0 = performance.now();
      let terminal: Terminal;
      let b: WireBatch;
      try {
        this.admit();
        terminal = this.authenticate(call);
        const frame = call.request;
        if (!frame.ok) {
          this.o.metrics.framesUnreadable.inc({ method: 'UploadBatch' });
          throw serviceError('TF_INGEST_INVALID', frame.error);
        }
        b = frame.value;
        const id = terminalIdOf(b.terminalId, terminal.id);
        if (!id.ok) {
          this.o.metrics.ingestRefused.inc({ code: 'TF_INGEST_PERMISSION_DENIED' });
          throw serviceError('TF_INGEST_PERMISSION_DENIED', `batch terminal_id ${b.terminalId} is not the authenticated terminal ${terminal.id}`);
        }
        if (b.taps.length === 0) throw serviceError('TF_INGEST_INVALID', 'taps: empty batch');
        if (b.taps.length > this.o.batchMaxTaps) throw serviceError('TF_INGEST_INVALID', `taps: at most ${this.o.batchMaxTaps} per batch, got ${b.taps.length}`);
        if (this.bundler.outstanding + b.taps.length > this.o.maxInflight) {
          this.o.metrics.ingestRefused.inc({ code: 'TF_INGEST_OVERLOADED' });
          throw serviceError('TF_INGEST_OVERLOADED', 'too many taps in flight; retry the batch after a pause');
        }
      } catch (err) {
        callback(err as grpc.ServiceError);
        return;
      }
      this.o.metrics.tapsReceived.inc({ kind: 'batch' }, b.taps.length);
      const now = Date.now();
      void Promise.all(b.taps.map((t) => this.submit(t, terminal, true, now))).then((acks) => {
        const res: BatchAck = { terminalId: terminal.id, acks, accepted: 0, duplicates: 0, invalid: 0 };
        for (const a of acks) {
          if (a.status === TapStatus.ACCEPTED_DURABLE) res.accepted++;
          else if (a.status === TapStatus.DUPLICATE) res.duplicates++;
          else if (a.status === TapStatus.INVALID) res.invalid++;
        }
        this.o.metrics.ackLatency.observe((performance.now() - t0) / 1000);
        callback(null, res);
      });
    },

    settleClaim: (call: grpc.ServerUnaryCall<Frame<WireClaim>, ClaimResult>, callback: grpc.sendUnaryData<ClaimResult>) => {
      void this.settleClaim(call, call.request).then(
        (r) => callback(null, r),
        (err: unknown) => callback(asServiceError(err)),
      );
    },

    getClaim: (call: grpc.ServerUnaryCall<Frame<ClaimQuery>, ClaimResult>, callback: grpc.sendUnaryData<ClaimResult>) => {
      void this.getClaim(call, call.request).then(
        (r) => callback(null, r),
        (err: unknown) => callback(asServiceError(err)),
      );
    },
  };

  /** Ends a stream once (OK, or with the error's status). */
  private endStream(s: OpenStream, call: grpc.ServerDuplexStream<TapFrame, TapAck>, error?: grpc.ServiceError): void {
    if (s.state !== 'open') return;
    s.state = 'ending';
    this.openStreams.delete(s);
    if (error) call.emit('error', error);
    else call.end();
    s.state = 'ended';
  }

  private async settleClaim(call: AuthCall, frame: Frame<WireClaim>): Promise<ClaimResult> {
    this.admit();
    const terminal = this.authenticate(call);
    if (!frame.ok) {
      this.o.metrics.framesUnreadable.inc({ method: 'SettleClaim' });
      throw serviceError('TF_INGEST_INVALID', frame.error);
    }
    const checked = checkClaim(frame.value, terminal, { tokenKey: this.o.tokenKeys, partitions: this.o.partitions, ingestTime: this.now() });
    if (!checked.ok) {
      this.o.metrics.tapsInvalid.inc({ field: `claim.${fieldLabel(checked.error.field)}` });
      throw serviceError('TF_INGEST_INVALID', `${checked.error.field}: ${checked.error.message}`);
    }
    const { claim, credentials } = checked;
    // The terminal's venue list applies to the institution; its region is the validator's to
    // decide, from the project list (INSTITUTION_NOT_IN_REGION).
    const refusal = venueRefusal(terminal, claim.institutionId, undefined, false);
    if (refusal !== undefined) {
      this.o.metrics.ingestRefused.inc({ code: 'TF_INGEST_PERMISSION_DENIED' });
      throw serviceError('TF_INGEST_PERMISSION_DENIED', `institution_id: ${refusal}`);
    }
    const key = claim.claimKey;
    const kv = this.o.claimsKv;
    const reserved = await reserveClaim(kv, key, terminal.id).catch((err: unknown) => {
      throw serviceError('TF_BUS_UNAVAILABLE', `claims store: ${(err as Error).message}`);
    });
    if (reserved.claim.terminalId !== terminal.id) {
      this.o.metrics.ingestRefused.inc({ code: 'TF_CLAIM_ID_TAKEN' });
      throw serviceError('TF_CLAIM_ID_TAKEN', `claim_id ${claim.claimId} was first sent by another terminal; use an id of your own (e.g. prefixed with your institution)`);
    }
    if (reserved.claim.state === 'DONE' && reserved.claim.result) return claimSplitToPb(reserved.claim.result);
    // Listen before publishing so the answer cannot slip past.
    const sub = this.o.bus.nc.subscribe(subjects.claimResult(key), { max: 1 });
    try {
      const sealed = seal(this.o.sealKey, encodeCredentials(credentials), claimEventId(key));
      await this.o.publisher.publish(subjects.claim(claim.cardPartition), encodeBusClaim(claim, sealed), `claim:${key}`);
    } catch (err) {
      sub.unsubscribe();
      const e = toTapflowError(err, 'TF_BUS_UNAVAILABLE');
      this.o.metrics.ingestRefused.inc({ code: e.code });
      throw serviceError(e.code, `${e.message}; nothing was settled: send the claim again`);
    }
    // PENDING is only ever answered for a claim GetClaim knows.
    if (reserved.claim.state === 'SUBMITTED' && !(await this.confirmPublished(key, terminal.id, reserved.revision))) {
      sub.unsubscribe();
      throw serviceError('TF_BUS_UNAVAILABLE', 'the claims store did not record the claim; send it again (it is settled once)');
    }
    const timer = setTimeout(() => sub.unsubscribe(), this.o.claimWaitMs);
    try {
      for await (const msg of sub) {
        return claimSplitToPb(JSON.parse(msg.string()) as ClaimSplit);
      }
    } finally {
      clearTimeout(timer);
    }
    // Settled meanwhile by a redelivery, or still pending.
    const now = await readClaim(kv, key).catch(() => undefined);
    if (now?.claim.state === 'DONE' && now.claim.result) return claimSplitToPb(now.claim.result);
    return pendingResult(claim.claimId);
  }

  /** Records that the claim is durable in JetStream (or finds it answered already). */
  private async confirmPublished(key: string, terminalId: string, revision: number): Promise<boolean> {
    try {
      if (await markPublished(this.o.claimsKv, key, terminalId, revision)) return true;
      const cur = await readClaim(this.o.claimsKv, key);
      return cur !== undefined && cur.claim.state !== 'SUBMITTED';
    } catch {
      return false;
    }
  }

  private async getClaim(call: AuthCall, frame: Frame<ClaimQuery>): Promise<ClaimResult> {
    const terminal = this.authenticate(call);
    if (!frame.ok) {
      this.o.metrics.framesUnreadable.inc({ method: 'GetClaim' });
      throw serviceError('TF_INGEST_INVALID', frame.error);
    }
    const q = frame.value;
    if (!q.claimId) throw serviceError('TF_INGEST_INVALID', 'claim_id: required');
    const found = await readClaim(this.o.claimsKv, claimKey(q.claimId)).catch((err: unknown) => {
      throw serviceError('TF_BUS_UNAVAILABLE', `claims store: ${(err as Error).message}`);
    });
    // Only the terminal that sent the claim may read it (another one learns nothing about it).
    if (!found || found.claim.terminalId !== terminal.id || found.claim.state === 'SUBMITTED') {
      throw serviceError('TF_CLAIM_NOT_FOUND', `no claim ${q.claimId} was received durably from ${terminal.id}`);
    }
    if (found.claim.state === 'DONE' && found.claim.result) return claimSplitToPb(found.claim.result);
    return pendingResult(q.claimId);
  }
}

function asServiceError(err: unknown): grpc.ServiceError {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as grpc.ServiceError).code === 'number') return err as grpc.ServiceError;
  const e = toTapflowError(err, 'TF_BUS_UNAVAILABLE');
  return serviceError(e.code, e.message);
}

function pendingResult(claimId: string): ClaimResult {
  return ClaimResult.fromPartial({ claimId, status: ClaimStatus.PENDING, reason: 'not settled within the wait; query GetClaim with this claim_id' });
}

const descriptorPath = fileURLToPath(new URL('../gen/tapflow.binpb', import.meta.url));

/**
 * The service as served: the generated definition with the strict, lossless readers of
 * wire.ts in place of the generated request decoders (which never throw here, so grpc-js never
 * ends a call with "Error deserializing request").
 */
function serviceDefinition(): grpc.ServiceDefinition {
  const s = TerminalIngestService;
  return {
    streamTaps: {
      ...s.streamTaps,
      requestDeserialize: (b: Buffer): TapFrame => {
        const f: TapFrame = readTap(b);
        if (!f.ok) f.salvaged = salvageIds(b);
        return f;
      },
    },
    uploadBatch: { ...s.uploadBatch, requestDeserialize: (b: Buffer) => readBatch(b) },
    settleClaim: { ...s.settleClaim, requestDeserialize: (b: Buffer) => readClaimFrame(b) },
    getClaim: { ...s.getClaim, requestDeserialize: (b: Buffer) => readClaimQuery(b) },
  } as unknown as grpc.ServiceDefinition;
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  /**
   * Largest request message (bytes): maxMessageBytes(TAPFLOW_BATCH_MAX_TAPS), src/domain/limits.ts.
   * grpc-js refuses a longer one from its length prefix, before reading it, and a compressed one
   * as soon as it inflates beyond it, with RESOURCE_EXHAUSTED ("Received message larger than max").
   */
  maxMessageBytes: number;
  /** Mutual TLS: the server's certificate and key, and the CA whose client certificates it requires. Absent: plaintext (dev-secrets). */
  tls?: { caPem: Buffer; certPem: Buffer; keyPem: Buffer };
}

/** Starts the gRPC server with TerminalIngest, health checking and reflection. */
export async function startGrpcServer(service: IngestService, o: GrpcServerOptions): Promise<{ server: grpc.Server; port: number; health: HealthImplementation }> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': o.maxMessageBytes,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(serviceDefinition(), service.handlers as unknown as grpc.UntypedServiceImplementation);
  const health = new HealthImplementation({ '': 'SERVING', 'tapflow.v1.TerminalIngest': 'SERVING' });
  health.addToServer(server);
  const pkgDef = protoLoader.loadFileDescriptorSetFromBuffer(readFileSync(descriptorPath));
  new ReflectionService(pkgDef).addToServer(server);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${o.host}:${o.port}`,
      o.tls ? grpc.ServerCredentials.createSsl(o.tls.caPem, [{ private_key: o.tls.keyPem, cert_chain: o.tls.certPem }], true) : grpc.ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  return { server, port: bound, health };
}

export { TapflowError };
