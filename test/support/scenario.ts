/**
 * Scripted tap streams for integration tests: a builder of taps with valid (or deliberately
 * broken) chip MACs and QR signatures made with a data dir's development keys, and a sender that
 * streams a script through a real ingest gRPC server.
 *
 * Determinism: a script is a fixed list of taps (terminal, seq, device time, card credentials).
 * The sender keeps each card's taps in script order — a card's next tap is written only after
 * the previous one was acknowledged durable (or, with {@link ScriptedTap.chain}, any chosen group
 * of taps) — so every run puts each card's taps into its
 * partition in the same order, whatever the number of replicas. Taps of different cards may
 * interleave differently from run to run; nothing card-keyed depends on that.
 */
import * as grpc from '@grpc/grpc-js';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { computeChipMac } from '../../src/domain/card/chip.js';
import { ed25519Signer, hmacSha256Mac, parseKeyFile, type KeysFile } from '../../src/domain/card/keys.js';
import { makeQrBody, signQr } from '../../src/domain/card/qr-sign.js';
import { regionOfCardNumber } from '../../src/domain/card/token.js';
import type { Region, RiderCategory, Scene } from '../../src/domain/types.js';
import type { ReasonCode } from '../../src/domain/reasons.js';
import { demoTerminalSecret } from '../../src/ingest/terminals.js';
import { Direction as PbDirection, RiderCategory as PbRider, Scene as PbScene, TapStatus, TerminalIngestClient, type BatchAck, type Tap, type TapAck } from '../../src/gen/tapflow/v1/ingest.js';

export type DirectionName = 'ENTRY' | 'EXIT' | 'SINGLE';

const SCENE: Record<Scene, PbScene> = { RAIL: PbScene.RAIL, BUS: PbScene.BUS, MEDICAL: PbScene.MEDICAL, CULTURE: PbScene.CULTURE, SERVICE: PbScene.SERVICE, BENEFIT: PbScene.BENEFIT };
const DIRECTION: Record<DirectionName, PbDirection> = { ENTRY: PbDirection.ENTRY, EXIT: PbDirection.EXIT, SINGLE: PbDirection.SINGLE };
const RIDER: Record<RiderCategory, PbRider> = { ADULT: PbRider.ADULT, STUDENT: PbRider.STUDENT, SENIOR: PbRider.SENIOR, DISABLED: PbRider.DISABLED };

/** What a scripted tap should come to: a decision, or an ingest answer that publishes nothing new. */
export type Expectation = { verdict: 'ACCEPTED' | 'REJECTED'; reason: ReasonCode } | { ack: 'DUPLICATE' | 'INVALID' };

/** One tap of a script. `eventId` is "<terminal>:<seq>", as ingest names it. */
export interface ScriptedTap {
  terminalId: string;
  tap: Tap;
  eventId: string;
  /** The card number the tap names (the chip's, or the one inside the QR code). */
  cardNumber: string;
  expect?: Expectation;
  /** A short description for failure messages. */
  label?: string;
  /**
   * Taps with the same chain are sent one after the other, each after the previous one's ack
   * (default: the card number, so each card's taps keep their order).
   */
  chain?: string;
}

/** A script step: one live tap (StreamTaps) or an offline upload (UploadBatch) of one terminal. */
export type ScriptStep = { kind: 'tap'; tap: ScriptedTap } | { kind: 'batch'; terminalId: string; taps: ScriptedTap[] };

export interface TapFields {
  card: string;
  terminal: string;
  venue: string;
  scene: Scene;
  direction: DirectionName;
  /** Device time, epoch ms. */
  at: number;
  amountFen?: number;
  rider?: RiderCategory;
  expect?: Expectation;
  label?: string;
}

export interface ChipOptions {
  /** Counter to use; default: the card's next counter (each card's counter rises by one per chip tap). */
  counter?: number;
  /** Break the MAC (one bit flipped). */
  badMac?: boolean;
}

export interface QrOptions {
  level?: 1 | 2;
  /** Issue time, epoch ms; default one second before the tap. */
  issuedAt?: number;
  /** Expiry − issue time, ms; default 60 s. */
  validityMs?: number;
  nonce?: string;
  /** Issuer named in the code (default: the card's region). Another region gives QR_UNKNOWN_ISSUER. */
  issuer?: Region;
  /** Sign with a key no region owns: QR_BAD_SIGNATURE. */
  forged?: boolean;
}

/** Reads a keys file with private keys (the development trust.json of a data dir). */
export function readIssuerKeys(path: string): KeysFile {
  return parseKeyFile(readFileSync(path, 'utf8'), path);
}

/**
 * Builds taps: numbers each terminal's taps from 1 (or from `firstSeq`), keeps each card's chip
 * counter, computes MACs and signs QR codes with the issuers' test keys.
 */
export class TapScript {
  private readonly seqs = new Map<string, number>();
  private readonly counters = new Map<string, number>();
  private readonly forger: KeyObject = generateKeyPairSync('ed25519').privateKey;

  constructor(private readonly keys: KeysFile) {}

  /** The next seq of a terminal (without using it). */
  peekSeq(terminal: string): number {
    return (this.seqs.get(terminal) ?? 0) + 1;
  }

  private nextSeq(terminal: string): number {
    const s = this.peekSeq(terminal);
    this.seqs.set(terminal, s);
    return s;
  }

  private base(f: TapFields, card: Tap['card'], seq = this.nextSeq(f.terminal)): ScriptedTap {
    const tap: Tap = {
      terminalId: f.terminal,
      seq,
      deviceTime: f.at,
      scene: SCENE[f.scene],
      venueId: f.venue,
      direction: DIRECTION[f.direction],
      card,
      amountFen: f.amountFen ?? 0,
      riderCategory: RIDER[f.rider ?? 'ADULT'],
    };
    return { terminalId: f.terminal, tap, eventId: `${f.terminal}:${seq}`, cardNumber: f.card, ...(f.expect && { expect: f.expect }), ...(f.label && { label: f.label }) };
  }

  /** A chip tap with a correct MAC (unless `badMac`). */
  chip(f: TapFields, o: ChipOptions = {}): ScriptedTap {
    const counter = o.counter ?? (this.counters.get(f.card) ?? 0) + 1;
    if (counter > (this.counters.get(f.card) ?? 0)) this.counters.set(f.card, counter);
    const region = regionOfCardNumber(f.card);
    const master = region && this.keys.regions[region]?.chipMasterKey;
    if (!master) throw new Error(`no chip master key for card ${f.card}`);
    const mac = Buffer.from(computeChipMac(hmacSha256Mac, master, { cardNumber: f.card, counter, terminalId: f.terminal, deviceTime: f.at, amountFen: f.amountFen ?? 0, venueId: f.venue }));
    if (o.badMac) mac[0] = mac[0]! ^ 0x01;
    return this.base(f, { $case: 'chip', value: { cardNumber: f.card, counter, mac } });
  }

  /** A QR tap with a code signed by the card's issuer (or as `o` says). */
  qr(f: TapFields, o: QrOptions = {}): ScriptedTap {
    const body = makeQrBody({ cardNumber: f.card, issuedAt: o.issuedAt ?? f.at - 1000, level: o.level ?? 2, ...(o.nonce && { nonce: o.nonce }), ...(o.validityMs && { validityMs: o.validityMs }) });
    if (o.issuer) body.issuer = o.issuer;
    const key = o.forged ? this.forger : this.keys.regions[regionOfCardNumber(f.card)!]?.qrPrivateKey;
    if (!key) throw new Error(`no QR private key for card ${f.card}`);
    return this.base(f, { $case: 'qr', value: { payload: signQr(ed25519Signer, key, body) } });
  }

  /** A QR tap presenting exactly the payload of an earlier QR tap (a replayed code). */
  qrAgain(earlier: ScriptedTap, f: TapFields): ScriptedTap {
    if (earlier.tap.card?.$case !== 'qr') throw new Error('qrAgain needs a QR tap');
    return this.base(f, earlier.tap.card);
  }

  /**
   * The same tap again. `sameSeq`: the terminal re-sends it (a duplicate (terminal, seq), answered
   * DUPLICATE); otherwise the very same card data under a new seq (a replayed chip transaction).
   */
  again(earlier: ScriptedTap, o: { sameSeq?: boolean; expect?: Expectation; label?: string } = {}): ScriptedTap {
    const seq = o.sameSeq ? earlier.tap.seq : this.nextSeq(earlier.terminalId);
    const tap: Tap = { ...earlier.tap, seq };
    return { terminalId: earlier.terminalId, tap, eventId: `${earlier.terminalId}:${seq}`, cardNumber: earlier.cardNumber, ...(o.expect && { expect: o.expect }), ...(o.label && { label: o.label }) };
  }
}

/** gRPC metadata of a demo-registry terminal. */
export function terminalMetadata(fleetKey: Uint8Array, terminalId: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-terminal-id', terminalId);
  md.set('x-terminal-secret', demoTerminalSecret(fleetKey, terminalId));
  return md;
}

/**
 * Streams taps to an ingest server: one StreamTaps call per terminal, kept open, acks matched by
 * (terminal, seq) in the order sent.
 */
export class TapSender {
  readonly client: TerminalIngestClient;
  private readonly calls = new Map<string, grpc.ClientDuplexStream<Tap, TapAck>>();
  private readonly waiting = new Map<string, { resolve: (a: TapAck) => void; reject: (e: Error) => void }[]>();
  private readonly ended: Promise<void>[] = [];

  constructor(
    target: string,
    private readonly fleetKey: Uint8Array,
  ) {
    this.client = new TerminalIngestClient(target, grpc.credentials.createInsecure());
  }

  private call(terminalId: string): grpc.ClientDuplexStream<Tap, TapAck> {
    let c = this.calls.get(terminalId);
    if (c) return c;
    c = this.client.streamTaps(terminalMetadata(this.fleetKey, terminalId));
    this.calls.set(terminalId, c);
    c.on('data', (a: TapAck) => {
      const q = this.waiting.get(`${a.terminalId}:${a.seq}`);
      q?.shift()?.resolve(a);
    });
    this.ended.push(
      new Promise<void>((resolve) => {
        const fail = (err: Error) => {
          // A later send opens a new stream (a test that kills ingest sends again).
          if (this.calls.get(terminalId) === c) this.calls.delete(terminalId);
          for (const [k, q] of this.waiting) {
            if (!k.startsWith(`${terminalId}:`)) continue;
            for (const w of q.splice(0)) w.reject(err);
          }
          resolve();
        };
        c!.on('end', () => fail(new Error(`stream of ${terminalId} ended before its ack`)));
        c!.on('error', (err) => fail(err));
      }),
    );
    return c;
  }

  /** Sends one live tap; resolves with its ack. */
  send(t: ScriptedTap): Promise<TapAck> {
    const call = this.call(t.terminalId);
    return new Promise<TapAck>((resolve, reject) => {
      const key = `${t.terminalId}:${t.tap.seq}`;
      let q = this.waiting.get(key);
      if (!q) this.waiting.set(key, (q = []));
      q.push({ resolve, reject });
      call.write(t.tap);
    });
  }

  /** Uploads an offline batch of one terminal. */
  batch(terminalId: string, taps: ScriptedTap[]): Promise<BatchAck> {
    return new Promise<BatchAck>((resolve, reject) => {
      this.client.uploadBatch({ terminalId, taps: taps.map((t) => t.tap) }, terminalMetadata(this.fleetKey, terminalId), (err, res) => (err ? reject(err) : resolve(res!)));
    });
  }

  /** Ends every stream (after its acks) and closes the client. */
  async close(): Promise<void> {
    for (const c of this.calls.values()) c.end();
    await Promise.race([Promise.all(this.ended), new Promise((r) => setTimeout(r, 5000))]);
    this.client.close();
  }
}

export interface SendScriptOptions {
  /** Taps written per burst (default: all at once). */
  burst?: number;
  /** Pause between bursts, ms (default 0). */
  pauseMs?: number;
  /** Called after each burst was written, with the number of steps written so far. */
  onBurst?: (written: number) => Promise<void> | void;
  /**
   * Retry as a terminal does (the fault suite): a tap or batch answered UNAVAILABLE or
   * OVERLOADED, or whose stream or call failed (ingest killed), is sent again with the same seq
   * after this pause (ms), for at most `retryForMs` (default 120 s). Unset: such an answer fails
   * the send.
   */
  retryMs?: number;
  retryForMs?: number;
  /** Called with every answer (retried ones too) as it arrives. */
  onAck?: (a: TapAck) => void;
  /** Called before each retry, naming the tap or batch and why. */
  onRetry?: (what: string, why: string) => void;
}

/** The acks of a script, by event id (a re-sent (terminal, seq) has two). */
export type AckLog = Map<string, TapAck[]>;

/**
 * Sends a script. Live taps of one card are chained (each written after the previous one of
 * that card was acknowledged); an offline batch waits for every tap before it, and the taps
 * after it wait for the batch. Resolves when every ack is in. Any ack other than
 * ACCEPTED_DURABLE, DUPLICATE or INVALID (UNAVAILABLE, OVERLOADED) fails the send: a test script
 * must not depend on retries.
 */
export async function sendScript(sender: TapSender, steps: ScriptStep[], o: SendScriptOptions = {}): Promise<AckLog> {
  const acks: AckLog = new Map();
  const final = (a: TapAck) => a.status === TapStatus.ACCEPTED_DURABLE || a.status === TapStatus.DUPLICATE || a.status === TapStatus.INVALID;
  const log = (a: TapAck) => {
    o.onAck?.(a);
    const list = acks.get(a.eventId);
    if (list) list.push(a);
    else acks.set(a.eventId, [a]);
  };
  const record = (a: TapAck) => {
    if (!final(a)) throw new Error(`tap ${a.eventId} answered ${TapStatus[a.status]}: ${a.reason}`);
    log(a);
  };
  /** Sends until every tap has a final answer (with retryMs), or once (without). */
  const retrying = async (what: string, attempt: () => Promise<TapAck[]>): Promise<void> => {
    if (o.retryMs === undefined) {
      (await attempt()).forEach(record);
      return;
    }
    const end = Date.now() + (o.retryForMs ?? 120_000);
    for (let last = ''; ; ) {
      try {
        const answers = await attempt();
        answers.forEach(log);
        if (answers.every(final)) return;
        last = answers.filter((a) => !final(a)).map((a) => `${TapStatus[a.status]} ${a.reason}`)[0]!;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > end) throw new Error(`${what}: no final answer within ${o.retryForMs ?? 120_000} ms; last: ${last}`);
      o.onRetry?.(what, last);
      await new Promise((r) => setTimeout(r, o.retryMs));
    }
  };
  const chains = new Map<string, Promise<void>>();
  const burst = o.burst ?? Number.MAX_SAFE_INTEGER;
  let written = 0;
  for (const step of steps) {
    if (step.kind === 'batch') {
      await Promise.all(chains.values());
      chains.clear();
      await retrying(`batch of ${step.terminalId}`, async () => (await sender.batch(step.terminalId, step.taps)).acks);
    } else {
      const t = step.tap;
      const chain = t.chain ?? t.cardNumber;
      const prev = chains.get(chain) ?? Promise.resolve();
      chains.set(
        chain,
        prev.then(() => retrying(`tap ${t.eventId}`, async () => [await sender.send(t)])),
      );
    }
    written++;
    if (written % burst === 0) {
      await o.onBurst?.(written);
      if (o.pauseMs) await new Promise((r) => setTimeout(r, o.pauseMs));
    }
  }
  await Promise.all(chains.values());
  return acks;
}

/** Every ScriptedTap of a script, in order. */
export function tapsOf(steps: ScriptStep[]): ScriptedTap[] {
  return steps.flatMap((s) => (s.kind === 'tap' ? [s.tap] : s.taps));
}
