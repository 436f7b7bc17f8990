/**
 * The ingest role: tapflow's gRPC front door (service tapflow.v1.TerminalIngest).
 *
 * For each tap: authenticate the terminal (per call), check the shape, replace the card number
 * by its keyed token, seal the credentials for the validators, publish to
 * tapflow.taps.<partition> with Nats-Msg-Id "<terminal_id>:<seq>", and only after JetStream's
 * PubAck answer ACCEPTED_DURABLE (or DUPLICATE when JetStream saw that id before). At most
 * `maxInflight` publishes wait for a PubAck per process; beyond it taps are answered
 * OVERLOADED (RESOURCE_EXHAUSTED for unary calls). While JetStream is unreachable, taps are
 * answered UNAVAILABLE and new calls fail with UNAVAILABLE.
 */
import { createHash } from 'node:crypto';
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
  type BatchAck,
  type ClaimQuery,
  ClaimResult,
  type MedicalClaim,
  type Tap,
  type TapAck,
  type TapBatch,
  type TerminalIngestServer,
  InstitutionLevel as PbLevel,
  Treatment as PbTreatment,
  CatalogueClass as PbClass,
  Region as PbRegion,
} from '../gen/tapflow/v1/ingest.js';
import { claimSplitToPb, encodeBusClaim, encodeBusTap, encodeCredentials } from '../bus/codec.js';
import type { Bus } from '../bus/connection.js';
import type { JsPublisher } from '../bus/publisher.js';
import { subjects } from '../bus/subjects.js';
import { partitionOf, tokenize } from '../domain/card/token.js';
import { seal } from '../domain/card/seal.js';
import { FailureCodes, TapflowError, toTapflowError, type FailureCode } from '../domain/reasons.js';
import type { ClaimSplit, MedicalClaimEvent, TapEvent, VenueDirectory } from '../domain/types.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import { checkCard, checkTap, claimEvent, ID_NUMBER_PATTERN } from './shape.js';
import type { Terminal, TerminalRegistry } from './terminals.js';

export interface IngestOptions {
  bus: Bus;
  publisher: JsPublisher;
  claimsKv: KV;
  registry: TerminalRegistry;
  venues: VenueDirectory;
  tokenKey: Uint8Array;
  sealKey: Uint8Array;
  partitions: number;
  maxInflight: number;
  batchMaxTaps: number;
  claimWaitMs: number;
  /** Live taps further than this from ingest time count as clock skew (ms). */
  clockSkewMs: number;
  metrics: Metrics;
  log: Logger;
  /** Injected clock (epoch ms). */
  now?: () => number;
}

const GRPC_CODE: Record<string, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  NOT_FOUND: grpc.status.NOT_FOUND,
  INTERNAL: grpc.status.INTERNAL,
};

function serviceError(code: FailureCode, message: string): grpc.ServiceError {
  const err = new Error(message) as grpc.ServiceError;
  err.code = GRPC_CODE[FailureCodes[code].grpc] ?? grpc.status.INTERNAL;
  err.details = `${code}: ${message}`;
  err.metadata = new grpc.Metadata();
  return err;
}

/** Key of a claim id in subjects and KV (claim ids are chosen by institutions: any text). */
export function claimKey(claimId: string): string {
  return createHash('sha256').update(claimId).digest('hex').slice(0, 40);
}

export class IngestService {
  private draining = false;
  private readonly openStreams = new Set<{ inflight: number; end(): void }>();
  private readonly now: () => number;

  constructor(private readonly o: IngestOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Begins the drain: new calls are refused, open streams end once their taps are acked. */
  startDrain(): void {
    this.draining = true;
    for (const s of this.openStreams) if (s.inflight === 0) s.end();
  }

  get openStreamCount(): number {
    return this.openStreams.size;
  }

  private authenticate(md: grpc.Metadata): Terminal {
    const id = md.get('x-terminal-id')[0]?.toString();
    const secret = md.get('x-terminal-secret')[0]?.toString();
    const r = this.o.registry.authenticate(id, secret);
    if (!r.ok) {
      const code: FailureCode = r.code === 'UNAUTHENTICATED' ? 'TF_INGEST_UNAUTHENTICATED' : 'TF_INGEST_PERMISSION_DENIED';
      this.o.metrics.ingestRefused.inc({ code });
      throw serviceError(code, r.message);
    }
    return r.terminal;
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

  private ack(t: Tap, status: TapStatus, reason = ''): TapAck {
    return { terminalId: t.terminalId, seq: t.seq, status, reason, eventId: `${t.terminalId}:${t.seq}` };
  }

  /**
   * Publishes one tap; resolves with its ack (never rejects). `reserved` says the caller already
   * counted this tap against the in-flight bound.
   */
  private async submit(t: Tap, terminal: Terminal, offline: boolean, t0: number): Promise<TapAck> {
    const m = this.o.metrics;
    const checked = checkTap(t, terminal.id);
    if (!checked.ok) {
      m.tapsInvalid.inc({ field: checked.error.field });
      return this.ack(t, TapStatus.INVALID, `INVALID_ARGUMENT: ${checked.error.field}: ${checked.error.message}`);
    }
    if (!this.o.bus.connected()) {
      m.ingestRefused.inc({ code: 'TF_BUS_UNAVAILABLE' });
      return this.ack(t, TapStatus.UNAVAILABLE, 'UNAVAILABLE: JetStream is not reachable; retry with the same seq');
    }
    const c = checked.tap;
    const eventId = `${t.terminalId}:${t.seq}`;
    if (!offline && Math.abs(t.deviceTime - t0) > this.o.clockSkewMs) m.clockSkew.inc({ region: terminal.region });
    const cardToken = tokenize(this.o.tokenKey, 'card', c.cardNumber);
    const partition = partitionOf(cardToken, this.o.partitions);
    const venue = this.o.venues.get(t.venueId);
    const ev: TapEvent = {
      eventId,
      terminalId: t.terminalId,
      seq: t.seq,
      terminalRegion: terminal.region,
      operatorId: terminal.operatorId ?? venue?.operatorId ?? 'unknown',
      deviceTime: t.deviceTime,
      ingestTime: t0,
      scene: c.scene,
      venueId: t.venueId,
      direction: c.direction,
      cardToken,
      cardRegion: c.cardRegion,
      form: c.credentials.kind === 'chip' ? 'CHIP' : 'QR',
      amountFen: t.amountFen,
      riderCategory: c.riderCategory,
      offline,
      partition,
    };
    const sealed = seal(this.o.sealKey, encodeCredentials(c.credentials), eventId);
    try {
      const ack = await this.o.publisher.publish(subjects.tap(partition), encodeBusTap(ev, sealed), eventId);
      if (ack.duplicate) {
        m.tapsDuplicate.inc();
        return this.ack(t, TapStatus.DUPLICATE, 'already received; counted once');
      }
      m.tapsPublished.inc();
      return this.ack(t, TapStatus.ACCEPTED_DURABLE);
    } catch (err) {
      const e = toTapflowError(err, 'TF_BUS_UNAVAILABLE');
      m.ingestRefused.inc({ code: e.code });
      const status = e.code === 'TF_BUS_STREAM_FULL' ? TapStatus.OVERLOADED : TapStatus.UNAVAILABLE;
      return this.ack(t, status, `${FailureCodes[e.code].grpc}: ${e.message}; retry with the same seq`);
    } finally {
      m.inflight.set(this.o.publisher.inflight);
    }
  }

  readonly handlers: TerminalIngestServer = {
    streamTaps: (call) => {
      let terminal: Terminal;
      try {
        this.admit();
        terminal = this.authenticate(call.metadata);
      } catch (err) {
        // emit('error') sends the status to the client; destroy() would leave the call hanging.
        call.emit('error', err as grpc.ServiceError);
        return;
      }
      const m = this.o.metrics;
      let ended = false;
      const state = {
        inflight: 0,
        end: () => {
          if (!ended) {
            ended = true;
            this.openStreams.delete(state);
            call.end();
          }
        },
      };
      this.openStreams.add(state);
      let inputDone = false;
      const maybeEnd = () => {
        if ((inputDone || this.draining) && state.inflight === 0) state.end();
      };
      const write = (ack: TapAck, t0: number) => {
        if (ended) return;
        m.ackLatency.observe((performance.now() - t0) / 1000);
        // Flow control: stop reading taps while the client is not reading acks.
        if (!call.write(ack)) {
          call.pause();
          call.once('drain', () => call.resume());
        }
      };
      call.on('data', (t: Tap) => {
        const t0 = performance.now();
        m.tapsReceived.inc({ kind: 'live' });
        if (this.draining) {
          m.ingestRefused.inc({ code: 'TF_DRAINING' });
          write(this.ack(t, TapStatus.UNAVAILABLE, 'UNAVAILABLE: ingest is shutting down; retry on another connection'), t0);
          return;
        }
        if (this.o.publisher.inflight >= this.o.maxInflight) {
          m.ingestRefused.inc({ code: 'TF_INGEST_OVERLOADED' });
          write(this.ack(t, TapStatus.OVERLOADED, 'RESOURCE_EXHAUSTED: too many taps in flight; retry with the same seq'), t0);
          return;
        }
        state.inflight++;
        void this.submit(t, terminal, false, Date.now()).then((ack) => {
          state.inflight--;
          write(ack, t0);
          maybeEnd();
        });
      });
      call.on('end', () => {
        inputDone = true;
        maybeEnd();
      });
      call.on('error', () => {
        ended = true;
        this.openStreams.delete(state);
      });
      call.on('cancelled', () => {
        ended = true;
        this.openStreams.delete(state);
      });
    },

    uploadBatch: (call, callback) => {
      const t0 = performance.now();
      let terminal: Terminal;
      try {
        this.admit();
        terminal = this.authenticate(call.metadata);
        const b: TapBatch = call.request;
        if (b.terminalId !== terminal.id) {
          this.o.metrics.ingestRefused.inc({ code: 'TF_INGEST_PERMISSION_DENIED' });
          throw serviceError('TF_INGEST_PERMISSION_DENIED', `batch terminal_id ${b.terminalId} is not the authenticated terminal ${terminal.id}`);
        }
        if (b.taps.length === 0) throw serviceError('TF_INGEST_INVALID', 'taps: empty batch');
        if (b.taps.length > this.o.batchMaxTaps) throw serviceError('TF_INGEST_INVALID', `taps: at most ${this.o.batchMaxTaps} per batch, got ${b.taps.length}`);
        if (this.o.publisher.inflight + b.taps.length > this.o.maxInflight) {
          this.o.metrics.ingestRefused.inc({ code: 'TF_INGEST_OVERLOADED' });
          throw serviceError('TF_INGEST_OVERLOADED', 'too many taps in flight; retry the batch after a pause');
        }
      } catch (err) {
        callback(err as grpc.ServiceError);
        return;
      }
      const b = call.request;
      this.o.metrics.tapsReceived.inc({ kind: 'batch' }, b.taps.length);
      const now = Date.now();
      void Promise.all(b.taps.map((t) => this.submit(t.terminalId ? t : { ...t, terminalId: terminal.id }, terminal, true, now))).then((acks) => {
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

    settleClaim: (call, callback) => {
      void this.settleClaim(call.metadata, call.request).then(
        (r) => callback(null, r),
        (err: grpc.ServiceError) => callback(err),
      );
    },

    getClaim: (call, callback) => {
      void this.getClaim(call.metadata, call.request).then(
        (r) => callback(null, r),
        (err: grpc.ServiceError) => callback(err),
      );
    },
  };

  private async settleClaim(md: grpc.Metadata, c: MedicalClaim): Promise<ClaimResult> {
    this.admit();
    const terminal = this.authenticate(md);
    const ev = this.checkClaim(c, terminal);
    const key = claimKey(c.claimId);
    const existing = await this.readClaim(key, terminal.id);
    if (existing && existing.status !== ClaimStatus.PENDING) return existing;
    // Listen before publishing so the answer cannot slip past.
    const sub = this.o.bus.nc.subscribe(subjects.claimResult(key), { max: 1 });
    try {
      const ack = await this.o.publisher.publish(subjects.claim(ev.partition), encodeBusClaim(ev), `claim:${key}`);
      void ack;
    } catch (err) {
      sub.unsubscribe();
      const e = toTapflowError(err, 'TF_BUS_UNAVAILABLE');
      throw serviceError(e.code, e.message);
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
    return (await this.readClaim(key, terminal.id)) ?? pendingResult(c.claimId);
  }

  private async getClaim(md: grpc.Metadata, q: ClaimQuery): Promise<ClaimResult> {
    const terminal = this.authenticate(md);
    if (!q.claimId) throw serviceError('TF_INGEST_INVALID', 'claim_id: required');
    const r = await this.readClaim(claimKey(q.claimId), terminal.id);
    if (!r) throw serviceError('TF_CLAIM_NOT_FOUND', `no claim ${q.claimId}`);
    return r;
  }

  /**
   * A stored claim result; only the terminal that submitted the claim may read it (another
   * terminal is told there is no such claim, which reveals nothing about other institutions).
   */
  private async readClaim(key: string, terminalId: string): Promise<ClaimResult | undefined> {
    const e = await this.o.claimsKv.get(key).catch(() => null);
    if (!e || e.operation !== 'PUT') return undefined;
    const stored = JSON.parse(new TextDecoder().decode(e.value)) as ClaimSplit & { terminalId?: string };
    if (stored.terminalId !== undefined && stored.terminalId !== terminalId) return undefined;
    return claimSplitToPb(stored);
  }

  private checkClaim(c: MedicalClaim, terminal: Terminal): MedicalClaimEvent {
    const bad = (field: string, message: string) => {
      this.o.metrics.tapsInvalid.inc({ field });
      return serviceError('TF_INGEST_INVALID', `${field}: ${message}`);
    };
    if (!c.claimId || c.claimId.length > 128) throw bad('claim_id', 'required, at most 128 characters');
    if (c.terminalId !== terminal.id) throw bad('terminal_id', `does not match the authenticated terminal ${terminal.id}`);
    if (!c.institutionId) throw bad('institution_id', 'required');
    if (!(c.institutionLevel in PbLevel) || c.institutionLevel === PbLevel.INSTITUTION_LEVEL_UNSPECIFIED) throw bad('institution_level', 'required');
    if (!(c.treatment in PbTreatment) || c.treatment === PbTreatment.TREATMENT_UNSPECIFIED) throw bad('treatment', 'required');
    if (!ID_NUMBER_PATTERN.test(c.idNumber)) throw bad('id_number', 'must be 17 digits and a check character');
    if (c.insuredRegion === PbRegion.REGION_UNSPECIFIED || !(c.insuredRegion in PbRegion)) throw bad('insured_region', 'required (BJ, TJ, HE)');
    if (!Number.isSafeInteger(c.deviceTime) || c.deviceTime <= 0) throw bad('device_time', 'must be epoch milliseconds');
    if (!Number.isSafeInteger(c.personalAccountBalanceFen) || c.personalAccountBalanceFen < 0) throw bad('personal_account_balance_fen', 'must be a non-negative integer');
    if (!c.reversesClaimId && c.items.length === 0) throw bad('items', 'at least one item');
    c.items.forEach((it, i) => {
      if (!it.code) throw bad(`items[${i}].code`, 'required');
      if (!(it.catalogueClass in PbClass) || it.catalogueClass === PbClass.CATALOGUE_CLASS_UNSPECIFIED) throw bad(`items[${i}].catalogue_class`, 'required');
      if (!Number.isSafeInteger(it.amountFen) || it.amountFen < 0) throw bad(`items[${i}].amount_fen`, 'must be a non-negative integer');
    });
    const card = checkCard(c.card, 'card');
    if (!card.ok) throw bad(card.error.field, card.error.message);
    return claimEvent(c, { cardNumber: card.card.cardNumber, treatmentRegion: terminal.region, tokenKey: this.o.tokenKey, partitions: this.o.partitions, ingestTime: this.now() });
  }
}

function pendingResult(claimId: string): ClaimResult {
  return ClaimResult.fromPartial({ claimId, status: ClaimStatus.PENDING, reason: 'not settled within the wait; query GetClaim with this claim_id' });
}

const descriptorPath = fileURLToPath(new URL('../gen/tapflow.binpb', import.meta.url));

/** Starts the gRPC server with TerminalIngest, health checking and reflection. */
export async function startGrpcServer(service: IngestService, host: string, port: number): Promise<{ server: grpc.Server; port: number; health: HealthImplementation }> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(TerminalIngestService, service.handlers);
  const health = new HealthImplementation({ '': 'SERVING', 'tapflow.v1.TerminalIngest': 'SERVING' });
  health.addToServer(server);
  const pkgDef = protoLoader.loadFileDescriptorSetFromBuffer(readFileSync(descriptorPath));
  new ReflectionService(pkgDef).addToServer(server);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port: bound, health };
}

export { TapflowError };
