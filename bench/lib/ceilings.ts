/**
 * Raw ceilings, measured in the same run, on the same machine, with the same messages as the
 * pipeline:
 *
 * - gRPC streaming: the tape's encoded taps, on `streams` StreamTaps calls over `channels`
 *   connections, to an echo server (bench/echo-server.ts, a child process) that answers each
 *   with a TapAck; a window of taps in flight per stream (closed loop: this is a capacity, not
 *   a latency measurement).
 * - JetStream publish: the BusTap messages ingest would publish for those taps (tokenised,
 *   credentials sealed), with Nats-Msg-Id, through src/bus/publisher.ts's JsPublisher — the
 *   publisher ingest uses — with a window of publishes awaiting their PubAck; and, for
 *   comparison, through the client's js.publish() with the same window.
 * - JetStream consume: consume() of that pre-filled stream by a durable consumer with explicit
 *   acks (as the partition loops do), each message acked.
 *
 * The stream has tapflow's settings (file storage, interest retention, discard new) and its
 * consumer exists before publishing, so every message is stored as in the pipeline.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { JsPublisher } from '../../src/bus/publisher.js';
import { encodeBusTap, encodeCredentials } from '../../src/bus/codec.js';
import { MAX_ACK_PENDING } from '../../src/bus/topology.js';
import { partitionOf, regionOfCardNumber, tokenize } from '../../src/domain/card/token.js';
import { seal } from '../../src/domain/card/seal.js';
import type { CardCredentials, Direction, RiderCategory, Scene, TapEvent } from '../../src/domain/types.js';
import { Direction as PbDirection, RiderCategory as PbRider, Scene as PbScene, TapAck, type Tap } from '../../src/gen/tapflow/v1/ingest.js';
import type { BenchBus } from './tapflow.js';
import { REPO_ROOT, stopChild } from './tapflow.js';
import { sleep, within } from './fleet-client.js';
import type { ProcSampler } from './procstat.js';
import type { WorkCeiling } from './work-ceiling.js';

export interface CeilingResult {
  msgs_per_s: number;
  messages: number;
  seconds: number;
  /** Average message size, bytes. */
  message_bytes: number;
  notes: string;
  /** Work ceiling: µs per tap in each stage (bench/lib/work-ceiling.ts WORK_STAGES). */
  per_stage_us?: Record<string, number>;
}

export interface GrpcCeilingOptions {
  taps: Buffer[];
  streams: number;
  channels: number;
  /** Taps in flight per stream. */
  window: number;
  seconds: number;
  sampler?: ProcSampler;
}

/** Starts the echo server as a child process; resolves with its port and pid. */
async function startEcho(): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/echo-server.ts', '0'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8');
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('echo server did not start within 30 s')), 30_000);
    child.stdout!.on('data', (c: string) => {
      out += c;
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`echo server exited (${code})`)));
  });
  return { port, pid: child.pid!, stop: () => stopChild(child, 5000) };
}

/** Raw gRPC bidi streaming: taps answered by an echo server. */
export async function grpcCeiling(o: GrpcCeilingOptions): Promise<CeilingResult> {
  const echo = await startEcho();
  o.sampler?.watch('echo-server', echo.pid);
  const channels = Array.from({ length: o.channels }, () => new grpc.Client(`127.0.0.1:${echo.port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  let acked = 0;
  let measuring = false;
  let stop = false;
  let next = 0;
  const calls: grpc.ClientDuplexStream<Buffer, TapAck>[] = [];
  const done: Promise<unknown>[] = [];
  for (let i = 0; i < o.streams; i++) {
    const call = channels[i % channels.length]!.makeBidiStreamRequest<Buffer, TapAck>('/tapflow.v1.TerminalIngest/StreamTaps', (b) => b, (b) => TapAck.decode(b), new grpc.Metadata());
    calls.push(call);
    const send = () => call.write(o.taps[next++ % o.taps.length]!);
    call.on('data', () => {
      if (measuring) acked++;
      if (!stop) send();
    });
    done.push(once(call, 'status').catch(() => undefined));
    call.on('error', () => undefined);
    for (let k = 0; k < o.window; k++) send();
  }
  await sleep(1000); // warm-up: connections, JIT
  measuring = true;
  const t0 = performance.now();
  await sleep(o.seconds * 1000);
  const seconds = (performance.now() - t0) / 1000;
  measuring = false;
  const n = acked;
  stop = true;
  for (const c of calls) c.end();
  await within(Promise.all(done), 5000);
  for (const c of channels) c.close();
  o.sampler?.unwatch('echo-server');
  await echo.stop();
  const bytes = o.taps.reduce((s, b) => s + b.length, 0) / Math.max(1, o.taps.length);
  return { msgs_per_s: Math.round(n / seconds), messages: n, seconds: round2(seconds), message_bytes: Math.round(bytes), notes: `${o.streams} streams on ${o.channels} connections, ${o.window} taps in flight per stream, echo server in its own process` };
}

/** The BusTap messages ingest would publish for these taps (same sizes), with their event ids. */
export function busTapMessages(taps: Tap[], keys: { tokenKey: Uint8Array; sealKey: Uint8Array }, partitions: number): { data: Uint8Array; msgId: string; partition: number }[] {
  const out: { data: Uint8Array; msgId: string; partition: number }[] = [];
  for (const t of taps) {
    if (!t.card || !t.venueId) continue;
    const cardNumber = t.card.$case === 'chip' ? t.card.value.cardNumber : '110000000000';
    const creds: CardCredentials = t.card.$case === 'chip' ? { kind: 'chip', cardNumber, counter: t.card.value.counter, mac: t.card.value.mac } : { kind: 'qr', payload: t.card.value.payload };
    const cardToken = tokenize(keys.tokenKey, 'card', cardNumber);
    const eventId = `${t.terminalId}:${t.seq}`;
    const ev: TapEvent = {
      eventId,
      terminalId: t.terminalId,
      seq: t.seq,
      terminalRegion: t.terminalId.slice(0, 2) as TapEvent['terminalRegion'],
      operatorId: 'bench-operator',
      deviceTime: t.deviceTime,
      ingestTime: Date.now(),
      scene: PbScene[t.scene] as Scene,
      venueId: t.venueId,
      direction: PbDirection[t.direction] as Direction,
      cardToken,
      cardRegion: regionOfCardNumber(cardNumber) ?? 'BJ',
      form: t.card.$case === 'chip' ? 'CHIP' : 'QR',
      amountFen: t.amountFen,
      riderCategory: (PbRider[t.riderCategory] ?? 'ADULT') as RiderCategory,
      offline: false,
      partition: partitionOf(cardToken, partitions),
    };
    out.push({ data: encodeBusTap(ev, seal(keys.sealKey, encodeCredentials(creds), eventId)), msgId: eventId, partition: ev.partition });
  }
  return out;
}

export interface JetStreamCeilingOptions {
  bus: BenchBus;
  messages: { data: Uint8Array; msgId: string; partition: number }[];
  /** Publishes awaiting their PubAck. */
  window: number;
  seconds: number;
  /** Most messages to publish (bounds the stream for the consume ceiling). */
  maxMessages: number;
  duplicateWindowS: number;
}

const STREAM = 'BENCH_CEILING';
const CONSUMER = 'bench-consume';

/** Publishes with a window of `window` outstanding publishes; returns how many were acked. */
async function publishLoop(publish: (i: number) => Promise<unknown>, window: number, seconds: number, max: number): Promise<{ n: number; seconds: number; errors: number }> {
  let n = 0;
  let i = 0;
  let errors = 0;
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await new Promise<void>((resolve) => {
    let inflight = 0;
    const pump = () => {
      while (inflight < window && i < max && performance.now() < until) {
        inflight++;
        publish(i++).then(
          () => {
            n++;
            inflight--;
            pump();
          },
          () => {
            errors++;
            inflight--;
            pump();
          },
        );
      }
      if (inflight === 0) resolve();
    };
    pump();
  });
  return { n, seconds: (performance.now() - t0) / 1000, errors };
}

/**
 * JetStream publish (JsPublisher, then js.publish()) and consume ceilings on a scratch stream
 * with tapflow's stream settings; the stream is deleted afterwards.
 */
export async function jetStreamCeilings(o: JetStreamCeilingOptions): Promise<{ publish: CeilingResult; jsPublish: CeilingResult; consume: CeilingResult }> {
  const { jsm, js, nc } = o.bus;
  await jsm.streams.delete(STREAM).catch(() => undefined);
  await jsm.streams.add({
    name: STREAM,
    subjects: ['bench.ceiling.>'],
    storage: StorageType.File,
    retention: RetentionPolicy.Interest,
    discard: DiscardPolicy.New,
    max_bytes: 8 * 1024 ** 3,
    max_msgs: -1,
    duplicate_window: o.duplicateWindowS * 1_000_000_000,
    num_replicas: 1,
  });
  await jsm.consumers.add(STREAM, { durable_name: CONSUMER, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: MAX_ACK_PENDING, ack_wait: 30_000_000_000 });
  const m = o.messages;
  const bytes = Math.round(m.reduce((s, x) => s + x.data.length, 0) / Math.max(1, m.length));
  // Distinct ids per message (ids repeat on the tape when it is cycled: suffix the round).
  const idOf = (i: number) => `${m[i % m.length]!.msgId}#${Math.floor(i / m.length)}`;

  const publisher = new JsPublisher(nc, 10_000);
  const pub = await publishLoop((i) => publisher.publish(`bench.ceiling.${m[i % m.length]!.partition}`, m[i % m.length]!.data, idOf(i)), o.window, o.seconds, o.maxMessages);
  publisher.close();

  const offset = pub.n + pub.errors + 1;
  const jsp = await publishLoop(
    (i) => js.publish(`bench.ceiling.${m[i % m.length]!.partition}`, m[i % m.length]!.data, { msgID: idOf(offset + i) }),
    o.window,
    Math.max(2, o.seconds / 2),
    o.maxMessages,
  );

  // Consume everything stored, acking each message.
  const info = await jsm.consumers.info(STREAM, CONSUMER);
  const total = info.num_pending;
  const consumer = await js.consumers.get(STREAM, CONSUMER);
  let got = 0;
  const t0 = performance.now();
  const until = t0 + o.seconds * 2000;
  await new Promise<void>((resolve) => {
    void consumer
      .consume({
        max_messages: 1024,
        callback: (msg) => {
          msg.ack();
          got++;
          if (got >= total) resolve();
        },
      })
      .then((sub) => {
        const check = setInterval(() => {
          if (got >= total || performance.now() > until) {
            clearInterval(check);
            sub.stop();
            resolve();
          }
        }, 100);
      });
  });
  const consumeS = (performance.now() - t0) / 1000;
  await jsm.streams.delete(STREAM).catch(() => undefined);

  return {
    publish: { msgs_per_s: Math.round(pub.n / pub.seconds), messages: pub.n, seconds: round2(pub.seconds), message_bytes: bytes, notes: `src/bus/publisher.ts JsPublisher, Nats-Msg-Id, ${o.window} in flight${pub.errors ? `, ${pub.errors} failed` : ''}` },
    jsPublish: { msgs_per_s: Math.round(jsp.n / jsp.seconds), messages: jsp.n, seconds: round2(jsp.seconds), message_bytes: bytes, notes: `client js.publish() with msgID (noAsyncTraces), ${o.window} in flight${jsp.errors ? `, ${jsp.errors} failed` : ''}` },
    consume: { msgs_per_s: Math.round(got / consumeS), messages: got, seconds: round2(consumeS), message_bytes: bytes, notes: `consume() max_messages 1024, explicit ack of each message, max_ack_pending ${MAX_ACK_PENDING}` },
  };
}

/** Writes taps for bench/work-ceiling-process.ts: per tap a u32 LE length, a byte `offline`, the bytes. */
export function writeWorkTaps(file: string, taps: { bytes: Uint8Array; offline: boolean }[]): void {
  const size = taps.reduce((n, t) => n + 5 + t.bytes.length, 0);
  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  for (const t of taps) {
    buf.writeUInt32LE(t.bytes.length, at);
    buf[at + 4] = t.offline ? 1 : 0;
    buf.set(t.bytes, at + 5);
    at += 5 + t.bytes.length;
  }
  writeFileSync(file, buf);
}

export interface WorkCeilingRun {
  /** The run's taps in the order tapflow received them (a prefix is enough: see `seconds`). */
  taps: { bytes: Uint8Array; offline: boolean }[];
  hotlistedCards: string[];
  /** The run's TAPFLOW_DATA_DIR (keys) and a scratch folder for the taps file and the engine's data. */
  dataDir: string;
  scratchDir: string;
  partitions: number;
  seconds: number;
}

/**
 * The work ceiling (bench/lib/work-ceiling.ts) in a child process: tapflow's per-tap work on one
 * thread with no bus, the run's own taps, inserted into a fresh embedded engine.
 */
export async function workCeiling(o: WorkCeilingRun): Promise<CeilingResult> {
  const file = join(o.scratchDir, 'work-ceiling.taps');
  writeWorkTaps(file, o.taps);
  const options = { dataDir: o.dataDir, tariffDir: join(REPO_ROOT, 'data'), partitions: o.partitions, chdbDir: join(o.scratchDir, 'work-ceiling-chdb'), seconds: o.seconds, hotlistedCards: o.hotlistedCards };
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/work-ceiling-process.ts', file, JSON.stringify(options)], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`work ceiling process exited (${code}): ${err.trim().split('\n').slice(-5).join(' | ')}`);
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as WorkCeiling;
  const bytes = o.taps.reduce((n, t) => n + t.bytes.length, 0) / Math.max(1, o.taps.length);
  const verdicts = Object.entries(r.verdicts).map(([k, n]) => `${k} ${n}`).join(', ');
  return {
    msgs_per_s: r.tapsPerSecond,
    messages: r.taps,
    seconds: r.seconds,
    message_bytes: Math.round(bytes),
    notes: `the run's own taps through tapflow's per-tap work on one thread, no bus (ingest checks, tokens, sealing, codecs, decideTap with MAC/Ed25519, settleDecision, rows, chdb insert through the migrations' views; ${verdicts}${r.invalid ? `, ${r.invalid} invalid` : ''}; rows ${Object.entries(r.rows).map(([k, n]) => `${k} ${n}`).join(', ')})`,
    per_stage_us: r.perStageUs,
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
