/**
 * Fuzzing ingest over the wire: 100,000 generated inputs (fuzz-inputs.ts, fixed seed) through a
 * real gRPC server and a real nats-server — 60,000 StreamTaps frames (valid taps and byte
 * mutations of them) on a few streams at a time, and 40,000 taps in UploadBatch calls (value
 * mutations, a few byte mutations) — while a well-behaved terminal streams beside them. Ingest
 * runs alone, so what it published stays in the TAPS stream to be read back.
 *
 * It asserts: every input is answered — by its ack, or by the status that ended its stream
 * (INVALID_ARGUMENT after a frame with no readable seq; the frames after it are sent again on a
 * new stream) or refused its batch — and every answer is a documented one; what was published is
 * exactly the taps answered ACCEPTED_DURABLE, each well-formed; the well-behaved terminal's taps
 * are all accepted; the server is up afterwards. It prints what it tried and how each input was
 * answered. The inputs are the seed's but for their device times, which follow the clock (the
 * bounds are around ingest time): the counts move by a few from run to run.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { publishedTaps } from '../../support/taps-stream.js';
import { Tap, TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { VenueKinds } from '../../../src/domain/network/index.js';
import { RawClient, type RawBatchAck, type TapAck } from './raw-client.js';
import { FuzzInputs, varint, type FuzzInput } from './fuzz-inputs.js';
import { tap } from './grpc-taps.js';

const SEED = 20_261_130;
const STREAM_INPUTS = 60_000;
const BATCH_INPUTS = 40_000;
/** Streams sending at once, and frames per stream before it half-closes. */
const STREAM_LANES = 4;
const CHUNK = 40;
const BATCH_LANES = 2;
const BATCH_SIZE = 250;
const DAY = 86_400_000;
/** A venue id that says Beijing: of a Beijing network, or `<kind>:BJ:…`. */
const BEIJING_VENUE = new RegExp(`^(bj-subway:|bj-bus:|(${VenueKinds.join('|')}):BJ:)`);

let p: TestPipeline;
let raw: RawClient;

beforeAll(async () => {
  // Error level: ingest logs a warning for each of the thousands of streams ended here.
  p = await startTestPipeline({ TAPFLOW_LOG_LEVEL: 'error' }, { roles: ['ingest'] });
  raw = new RawClient(`127.0.0.1:${p.grpcPort}`);
}, 120_000);

afterAll(async () => {
  raw?.close();
  await p?.stop();
});

/**
 * What an INVALID reason may say (proto/tapflow/v1/ingest.proto, TapAck.reason): the status and
 * the field, or for a tap that cannot be read where in it ("seq", "chip.mac", "field 19000").
 */
const DOCUMENTED_INVALID = /^(INVALID_ARGUMENT: malformed Tap: [a-z_]+(?:\.[a-z_]+|\.?field \d+)*|INVALID_ARGUMENT: [a-z_]+(?:\.[a-z_]+)*|PERMISSION_DENIED: venue_id|SEQ_REUSED|INVALID_ARGUMENT: malformed Tap: field \d+): /;

/** The answer class of an ack: its status, and for INVALID the reason up to the field. */
function classOf(a: TapAck): string | undefined {
  const status = TapStatus[a.status];
  if (status === 'ACCEPTED_DURABLE' || status === 'DUPLICATE') return status;
  if (status !== 'INVALID') return undefined;
  const m = DOCUMENTED_INVALID.exec(a.reason);
  return m ? `INVALID ${m[1]!.replace(/field \d+/g, 'an unknown field')}` : undefined;
}

/** The bytes of a TapBatch of `terminal` holding these taps as they are. */
function batchBytes(terminal: string, taps: Uint8Array[]): Buffer {
  const len = (no: number, b: Uint8Array) => [Buffer.from([(no << 3) | 2, ...varint(BigInt(b.length))]), b];
  return Buffer.concat([...len(1, Buffer.from(terminal)), ...taps.flatMap((t) => len(2, t))]);
}

describe('ingest - fuzzing over the wire', () => {
  it(`answers ${STREAM_INPUTS + BATCH_INPUTS} generated inputs as documented, publishes only the taps it accepted, and stays up`, async () => {
    const t0 = Date.now();
    const gen = new FuzzInputs(SEED);
    const streamLanes = Array.from({ length: STREAM_LANES }, (_, i) => {
      const terminal = `BJ-FUZZ-S${i + 1}`;
      return { terminal, inputs: Array.from({ length: STREAM_INPUTS / STREAM_LANES }, () => gen.frame(terminal)) };
    });
    const batchLanes = Array.from({ length: BATCH_LANES }, (_, i) => {
      const terminal = `BJ-FUZZ-B${i + 1}`;
      return { terminal, inputs: Array.from({ length: BATCH_INPUTS / BATCH_LANES }, () => gen.batchTap(terminal)) };
    });
    const tried = new Map<string, number>();
    for (const x of [...streamLanes, ...batchLanes].flatMap((l) => l.inputs)) tried.set(x.kind, (tried.get(x.kind) ?? 0) + 1);

    const answers = new Map<string, number>();
    const count = (cls: string, n = 1) => answers.set(cls, (answers.get(cls) ?? 0) + n);
    const accepted = new Set<string>();
    const problems: string[] = [];
    const take = (a: TapAck, where: string) => {
      const cls = classOf(a);
      if (!cls) problems.push(`${where}: undocumented answer ${TapStatus[a.status]} ${JSON.stringify(a.reason)}`);
      count(cls ?? 'undocumented');
      if (a.status === TapStatus.ACCEPTED_DURABLE) {
        if (accepted.has(a.eventId)) problems.push(`${where}: ${a.eventId} accepted twice`);
        accepted.add(a.eventId);
      }
    };
    let streams = 0;
    let streamsEnded = 0;
    let batches = 0;

    // Each lane sends its frames CHUNK at a time on a stream; a stream that ends after k acks
    // ended at frame k (the frames before it are all answered before it ends, and none after
    // it is read): frame k is answered by that status, the rest are sent on a new stream.
    const streamLane = async ({ terminal, inputs }: { terminal: string; inputs: FuzzInput[] }) => {
      for (let i = 0; i < inputs.length; ) {
        const chunk = inputs.slice(i, i + CHUNK);
        streams++;
        const out = await raw.stream(p.metadata(terminal), chunk.map((x) => x.bytes), 60_000);
        for (const a of out.acks) take(a, terminal);
        if (!out.error) {
          if (out.acks.length !== chunk.length) problems.push(`${terminal}: a stream ended OK with ${out.acks.length} acks for ${chunk.length} frames`);
          i += chunk.length;
          continue;
        }
        const k = out.acks.length;
        if (out.error.code !== grpc.status.INVALID_ARGUMENT || !out.error.details.startsWith('TF_INGEST_INVALID: malformed Tap: ') || k >= chunk.length) {
          problems.push(`${terminal}: a stream ended with ${grpc.status[out.error.code]} "${out.error.details}" after ${k} of ${chunk.length} frames`);
          i += chunk.length;
          continue;
        }
        streamsEnded++;
        count('stream ended: INVALID_ARGUMENT (a frame with no readable seq)');
        i += k + 1;
      }
    };

    const batchLane = async ({ terminal, inputs }: { terminal: string; inputs: FuzzInput[] }) => {
      for (let i = 0; i < inputs.length; i += BATCH_SIZE) {
        const chunk = inputs.slice(i, i + BATCH_SIZE);
        batches++;
        const r = await raw.unary<RawBatchAck>('uploadBatch', p.metadata(terminal), batchBytes(terminal, chunk.map((x) => x.bytes)));
        if (r.ok) {
          if (r.value.acks.length !== chunk.length) problems.push(`${terminal}: ${r.value.acks.length} acks for a batch of ${chunk.length}`);
          for (const a of r.value.acks) take(a, terminal);
        } else if (r.error.code === grpc.status.INVALID_ARGUMENT && r.error.details.startsWith('TF_INGEST_INVALID: malformed TapBatch: ')) {
          count('batch refused: INVALID_ARGUMENT (malformed TapBatch)', chunk.length);
        } else {
          problems.push(`${terminal}: a batch refused with ${grpc.status[r.error.code]} "${r.error.details}"`);
        }
      }
    };

    // A well-behaved terminal streams valid taps while the others send their inputs.
    const calm = 'BJ-FUZZ-CALM';
    let fuzzing = true;
    let calmSent = 0;
    const calmAcks: TapAck[] = [];
    const calmLane = async () => {
      while (fuzzing) {
        const frames = Array.from({ length: 20 }, () => Buffer.from(Tap.encode(tap(calm, ++calmSent)).finish()));
        const out = await raw.stream(p.metadata(calm), frames, 60_000);
        if (out.error) problems.push(`${calm}: its stream ended with ${grpc.status[out.error.code]} "${out.error.details}"`);
        calmAcks.push(...out.acks);
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    const calmDone = calmLane();
    await Promise.all([...streamLanes.map(streamLane), ...batchLanes.map(batchLane)]);
    fuzzing = false;
    await calmDone;
    const seconds = (Date.now() - t0) / 1000;

    const published = await publishedTaps(p.app.ctx.bus);
    const fuzzTaps = published.taps.filter((t) => !t.terminalId.startsWith(calm));
    const unreadable = Number(/^tapflow_ingest_unreadable_frames_total\{method="StreamTaps"\} (\d+)/m.exec(await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text())?.[1] ?? 0);

    const total = STREAM_INPUTS + BATCH_INPUTS;
    const lines = [
      `ingest fuzz, seed ${SEED}: ${total} inputs in ${seconds.toFixed(1)} s — ${STREAM_INPUTS} StreamTaps frames on ${streams} streams (${STREAM_LANES} at a time), ${BATCH_INPUTS} taps in ${batches} UploadBatch calls; beside them ${calmAcks.length} valid taps of ${calm}`,
      `  tried: ${[...tried.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`,
      '  answered:',
      ...[...answers.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `    ${String(n).padStart(6)}  ${k}`),
      `  TAPS stream: ${published.bundles} bundles, ${fuzzTaps.length} fuzz taps published; ${accepted.size} answered ACCEPTED_DURABLE`,
    ];
    console.log(lines.join('\n'));

    expect(problems.slice(0, 20)).toEqual([]);
    // Every input answered once: by its ack, its stream's end, or its batch's refusal.
    expect([...answers.values()].reduce((a, b) => a + b, 0)).toBe(total);
    expect(unreadable).toBe(streamsEnded);
    // Published: exactly the taps answered ACCEPTED_DURABLE, each well-formed (the bus codec
    // refused none), of their own terminal, at a Beijing venue, at a device time in the bounds.
    expect(fuzzTaps.length).toBe(accepted.size);
    expect(fuzzTaps.filter((t) => !accepted.has(t.eventId)).map((t) => t.eventId)).toEqual([]);
    const malformed = fuzzTaps.filter(
      (t) =>
        !/^BJ-FUZZ-[SB]\d$/.test(t.terminalId) ||
        t.terminalRegion !== 'BJ' ||
        !BEIJING_VENUE.test(t.venueId) ||
        t.deviceTime - t.ingestTime > DAY ||
        t.ingestTime - t.deviceTime > (t.offline ? 30 * DAY : DAY),
    );
    expect(malformed.map((t) => `${t.eventId}: ${t.terminalRegion} ${t.venueId} ${t.deviceTime - t.ingestTime} ms from ingest time${t.offline ? ' (stored)' : ''}`)).toEqual([]);
    // The fuzzer reached the deep paths, not only the wire reader.
    expect(answers.get('ACCEPTED_DURABLE') ?? 0).toBeGreaterThan(5000);
    expect([...answers.keys()].filter((k) => k.startsWith('INVALID ')).length).toBeGreaterThan(15);
    // The well-behaved terminal was not disturbed.
    expect(calmAcks.length).toBe(calmSent);
    expect(calmAcks.every((a) => a.status === TapStatus.ACCEPTED_DURABLE)).toBe(true);
    expect(published.taps.filter((t) => t.terminalId === calm).length).toBe(calmSent);
    // And a valid tap sent afterwards is accepted.
    const after = await raw.stream(p.metadata('BJ-FUZZ-AFTER'), [Buffer.from(Tap.encode(tap('BJ-FUZZ-AFTER', 1)).finish())]);
    expect(after.acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
  }, 120_000);
});
