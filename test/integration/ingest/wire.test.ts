/**
 * What a broken or hostile terminal puts on the wire, byte by byte, through a real gRPC client
 * and the whole pipeline: legal protobuf never ends a stream (64-bit values above 2^53 are read
 * without loss and answered INVALID naming the field), decoding is strict (trailing bytes, field
 * number 0, a stray end-group tag, a wrong wire type, an unknown enum value, a varint above
 * 2^64 − 1 make that tap INVALID, never stored; unknown fields are ignored), a frame that cannot
 * be read at all (random bytes, a tap cut before its seq) ends only its own stream after every
 * tap before it was answered, device times far from ingest time and venues of another region are
 * refused, a seq reused for other content is refused and flagged, and a client that stops
 * reading its acks is paused without piling up listeners.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { CatalogueClass, InstitutionLevel, MedicalClaim, Region, Tap, TapBatch, TapStatus, Treatment } from '../../../src/gen/tapflow/v1/ingest.js';
import { RawClient, type RawBatchAck, type TapAck } from './raw-client.js';
import { stream as streamTaps, tap } from './grpc-taps.js';
import { rng } from '../../../src/demo/generator.js';

let p: TestPipeline;
let raw: RawClient;

beforeAll(async () => {
  p = await startTestPipeline();
  raw = new RawClient(`127.0.0.1:${p.grpcPort}`);
}, 120_000);

afterAll(async () => {
  raw?.close();
  await p?.stop();
});

/** A protobuf varint. */
function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

/** The bytes of a tap, with more bytes after them (a later field overrides an earlier one). */
function bytes(t: Tap, ...tail: number[][]): Uint8Array {
  return Buffer.concat([Buffer.from(Tap.encode(t).finish()), ...tail.map((b) => Buffer.from(b))]);
}

const status = (a: TapAck) => TapStatus[a.status];

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** A length-delimited field. */
function len(no: number, b: Uint8Array | number[]): number[] {
  return [...varint(BigInt((no << 3) | 2)), ...varint(BigInt(b.length)), ...b];
}

/** The value of a tapflow counter with these labels, e.g. `code="TF_INGEST_PERMISSION_DENIED"`. */
async function counter(name: string, labels: string): Promise<number> {
  return metric(name, labels);
}

/** The answer of every frame of a stream by seq ("STATUS reason"), and how the stream ended. */
async function answers(gate: string, frames: Uint8Array[]): Promise<{ bySeq: Map<bigint, string>; error?: grpc.ServiceError }> {
  const out = await raw.stream(p.metadata(gate), frames);
  const bySeq = new Map<bigint, string>();
  for (const a of out.acks) {
    expect(bySeq.has(a.seq), `one answer for seq ${a.seq}`).toBe(false);
    bySeq.set(a.seq, `${status(a)} ${a.reason}`.trim());
  }
  return { bySeq, error: out.error };
}

async function storedSeqs(terminal: string): Promise<number[]> {
  return (await p.query<{ seq: number }>(`SELECT seq FROM decisions WHERE terminal_id = '${terminal}' ORDER BY seq`)).map((r) => Number(r.seq));
}

describe('ingest - 64-bit values on the wire', () => {
  const gate = 'BJ-RAIL-0801';
  let acks: TapAck[] = [];
  let error: grpc.ServiceError | undefined;

  it('answers a seq or device_time above 2^53 INVALID naming the field, echoes the seq exactly, and the stream goes on', async () => {
    const frames: Uint8Array[] = [];
    for (let s = 1; s <= 20; s++) frames.push(bytes(tap(gate, s)));
    frames.push(bytes(tap(gate, 21), [0x10, ...varint(2n ** 53n + 1n)])); // seq 2^53 + 1
    frames.push(bytes(tap(gate, 22), [0x10, ...varint(2n ** 64n - 1n)])); // seq 2^64 − 1
    frames.push(bytes(tap(gate, 23), [0x18, ...varint(2n ** 62n)])); // device_time 2^62
    frames.push(bytes(tap(gate, 24), [0x18, ...varint(-1n)])); // device_time −1 (10-byte varint)
    frames.push(bytes(tap(gate, 25), [0x48, ...varint(2n ** 60n)])); // amount_fen 2^60
    for (let s = 26; s <= 30; s++) frames.push(bytes(tap(gate, s)));
    ({ acks, error } = await raw.stream(p.metadata(gate), frames));
    expect(error).toBeUndefined();
    expect(acks).toHaveLength(frames.length);
    const bySeq = new Map(acks.map((a) => [a.seq, a]));
    for (let s = 1n; s <= 20n; s++) expect(status(bySeq.get(s)!), `seq ${s}`).toBe('ACCEPTED_DURABLE');
    for (let s = 26n; s <= 30n; s++) expect(status(bySeq.get(s)!), `seq ${s}`).toBe('ACCEPTED_DURABLE');
    const big = bySeq.get(2n ** 53n + 1n)!;
    expect([status(big), big.reason.split(':').slice(0, 2).join(':')]).toEqual(['INVALID', 'INVALID_ARGUMENT: seq']);
    expect(big.eventId).toBe(`${gate}:${2n ** 53n + 1n}`);
    expect(status(bySeq.get(2n ** 64n - 1n)!)).toBe('INVALID');
    expect(bySeq.get(23n)!.reason).toMatch(/^INVALID_ARGUMENT: device_time: .*got 4611686018427387904$/);
    expect(bySeq.get(24n)!.reason).toMatch(/^INVALID_ARGUMENT: device_time: .*got -1$/);
    expect(bySeq.get(25n)!.reason).toMatch(/^INVALID_ARGUMENT: amount_fen: /);
  });

  it('stores the 25 good taps, none of the out-of-range ones', async () => {
    await p.until(async () => (await storedSeqs(gate)).length >= 25, 30_000, '25 decisions');
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedSeqs(gate)).toEqual([...Array.from({ length: 20 }, (_, i) => i + 1), 26, 27, 28, 29, 30]);
  });
});

describe('ingest - strict decoding', () => {
  const gate = 'BJ-RAIL-0802';

  it.each([
    ['a 0x00 byte and garbage after a valid tap', [0x00, 0x01, 0x02, 0x03], /field number 0/],
    ['an end-group tag and garbage after a valid tap', [0x0c, 0x01, 0x02, 0x03], /unexpected end-group tag/],
    ['a start-group tag', [0x0b, 0x01], /unexpected start-group tag/],
    ['seq with the length-delimited wire type', [0x12, 0x01, 0x41], /seq: wire type length-delimited, expected varint/],
    ['a varint of 11 bytes', [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /longer than 10 bytes/],
    ['a chip counter above 2^32', [0x3a, 0x07, 0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20], /chip\.counter: .* does not fit/],
    ['a length beyond the frame', [0x2a, 0x7f, 0x41], /venue_id: length 127 beyond the end/],
  ])('answers %s INVALID, names the problem, and stores nothing of it', async (_what, tail, problem) => {
    const seq = 100 + Math.floor(Math.random() * 1e6);
    const out = await raw.stream(p.metadata(gate), [bytes(tap(gate, seq), tail), bytes(tap(gate, seq + 1))]);
    expect(out.error).toBeUndefined();
    const bad = out.acks.find((a) => a.seq === BigInt(seq));
    expect(bad && status(bad)).toBe('INVALID');
    expect(bad!.reason).toMatch(/^INVALID_ARGUMENT: malformed Tap: /);
    expect(bad!.reason).toMatch(problem);
    expect(status(out.acks.find((a) => a.seq === BigInt(seq + 1))!)).toBe('ACCEPTED_DURABLE');
    await p.until(async () => (await storedSeqs(gate)).includes(seq + 1), 30_000, `tap ${seq + 1} stored`);
    expect(await storedSeqs(gate)).not.toContain(seq);
  });

  it('ignores unknown fields (a newer contract) and accepts the tap', async () => {
    const out = await raw.stream(p.metadata(gate), [bytes(tap(gate, 5), [0xa8, 0x06, 0x01])]); // field 101, varint
    expect(out.acks.map(status)).toEqual(['ACCEPTED_DURABLE']);
  });
});

describe('ingest - a frame that cannot be read at all', () => {
  it('ends only its own stream, with INVALID_ARGUMENT, after answering every tap before it; other streams go on', async () => {
    const a = 'BJ-RAIL-0803';
    const b = 'BJ-RAIL-0804';
    const before = await metric('tapflow_ingest_unreadable_frames_total', 'method="StreamTaps"');
    const junk = Buffer.from('hello, this is not a tap at all');
    const framesA = [...Array.from({ length: 5 }, (_, i) => bytes(tap(a, i + 1))), junk, ...Array.from({ length: 3 }, (_, i) => bytes(tap(a, i + 6)))];
    const framesB = Array.from({ length: 10 }, (_, i) => bytes(tap(b, i + 1)));
    const [outA, outB] = await Promise.all([raw.stream(p.metadata(a), framesA), raw.stream(p.metadata(b), framesB)]);
    expect(outA.error?.code).toBe(3); // INVALID_ARGUMENT
    expect(outA.error?.details).toMatch(/^TF_INGEST_INVALID: malformed Tap: .*re-send every tap not answered/);
    expect(outA.acks.map((x) => [x.seq, status(x)]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([1n, 2n, 3n, 4n, 5n].map((s) => [s, 'ACCEPTED_DURABLE']));
    expect(outB.error).toBeUndefined();
    expect(outB.acks.filter((x) => status(x) === 'ACCEPTED_DURABLE')).toHaveLength(10);
    expect(await metric('tapflow_ingest_unreadable_frames_total', 'method="StreamTaps"')).toBe(before + 1);
    await p.until(async () => (await storedSeqs(a)).length >= 5 && (await storedSeqs(b)).length >= 10, 30_000, 'both streams stored');
    await new Promise((r) => setTimeout(r, 300));
    // Nothing after the unreadable frame was taken.
    expect(await storedSeqs(a)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('ingest - duplicates and reused seqs', () => {
  const gate = 'BJ-RAIL-0805';

  it('answers a re-send of the same tap DUPLICATE, and other content under a used seq INVALID SEQ_REUSED', async () => {
    const first = tap(gate, 1);
    const other = { ...first, venueId: 'bj-subway:国贸' };
    const reusedBefore = await metric('tapflow_seq_reused_total', 'stage="ingest"');
    const out1 = await raw.stream(p.metadata(gate), [bytes(first)]);
    const out2 = await raw.stream(p.metadata(gate), [bytes(first), bytes(other)]);
    expect(out1.acks.map(status)).toEqual(['ACCEPTED_DURABLE']);
    expect(out2.acks.map(status).sort()).toEqual(['DUPLICATE', 'INVALID']);
    const reused = out2.acks.find((a) => status(a) === 'INVALID')!;
    expect(reused.reason).toMatch(/^SEQ_REUSED: seq 1 of BJ-RAIL-0805 was used for another tap; the first one counts/);
    expect(await metric('tapflow_seq_reused_total', 'stage="ingest"')).toBe(reusedBefore + 1);
    // The terminal is flagged for the risk team; the first tap is stored once.
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM risk_flags WHERE rule_id = 'builtin:SEQ_REUSED' AND key = '${gate}'`))[0]!.n === 1, 30_000, 'SEQ_REUSED flag');
    const flag = (await p.query<{ key_kind: string; severity: string; event_id: string }>(`SELECT key_kind, severity, event_id FROM risk_flags WHERE rule_id = 'builtin:SEQ_REUSED' AND key = '${gate}'`))[0]!;
    expect(flag).toEqual({ key_kind: 'terminal', severity: 'WARNING', event_id: `${gate}:1` });
    await p.until(async () => (await storedSeqs(gate)).length >= 1, 30_000, 'the first tap stored');
    await new Promise((r) => setTimeout(r, 300));
    const rows = await p.query<{ venue_id: string }>(`SELECT venue_id FROM decisions WHERE terminal_id = '${gate}'`);
    expect(rows.map((r) => r.venue_id)).toEqual(['bj-subway:西直门']);
  });

  it('takes an empty terminal_id as the authenticated terminal, in StreamTaps and UploadBatch alike', async () => {
    const t = { ...tap(gate, 2), terminalId: '' };
    const out = await raw.stream(p.metadata(gate), [bytes(t)]);
    expect(out.acks.map((a) => [a.terminalId, a.seq, status(a)])).toEqual([[gate, 2n, 'ACCEPTED_DURABLE']]);
    const batch = TapBatch.encode({ terminalId: '', taps: [{ ...tap(gate, 3), terminalId: '' }] }).finish();
    const r = await raw.unary<RawBatchAck>('uploadBatch', p.metadata(gate), batch);
    expect(r.ok && r.value.acks.map((a) => [a.terminalId, TapStatus[a.status]])).toEqual([[gate, 'ACCEPTED_DURABLE']]);
  });
});

describe('ingest - UploadBatch and SettleClaim on the wire', () => {
  const bus = 'BJ-BUS-0806';

  it('answers one out-of-range tap of a batch INVALID and accepts the others', async () => {
    const good = (s: number) => Buffer.from(Tap.encode(tap(bus, s)).finish());
    const bad = Buffer.concat([good(2), Buffer.from([0x10, ...varint(2n ** 60n)])]);
    const field = (no: number, b: Buffer) => Buffer.concat([Buffer.from([(no << 3) | 2, ...varint(BigInt(b.length))]), b]);
    const batch = Buffer.concat([field(1, Buffer.from(bus)), field(2, good(1)), field(2, bad), field(2, good(3))]);
    const r = await raw.unary<RawBatchAck>('uploadBatch', p.metadata(bus), batch);
    if (!r.ok) throw r.error;
    expect(r.value.acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE', 'INVALID', 'ACCEPTED_DURABLE']);
    expect(r.value.acks[1]!.reason).toMatch(/^INVALID_ARGUMENT: seq: /);
    expect([r.value.accepted, r.value.invalid]).toEqual([2, 1]);
  });

  it('refuses an unreadable batch with INVALID_ARGUMENT naming the problem', async () => {
    const junk = Buffer.concat([Buffer.from(TapBatch.encode({ terminalId: bus, taps: [tap(bus, 9)] }).finish()), Buffer.from([0x00, 0x00])]);
    const r = await raw.unary('uploadBatch', p.metadata(bus), junk);
    expect(r.ok ? 'ok' : [r.error.code, /malformed TapBatch: .*field number 0/.test(r.error.details)]).toEqual([3, true]);
  });

  it('refuses a claim item above 2^53 fen with INVALID_ARGUMENT naming the item, and stays up', async () => {
    const claim: MedicalClaim = {
      claimId: 'wire-big-item',
      terminalId: 'TJ-CLINIC-0801',
      institutionId: 'hospital:TJ:tmu-general-hospital',
      institutionLevel: InstitutionLevel.TERTIARY,
      treatment: Treatment.OUTPATIENT,
      card: { $case: 'chip', value: { cardNumber: '110000008001', counter: 1, mac: Buffer.alloc(8) } },
      idNumber: '11010519800101001X',
      insuredRegion: Region.BJ,
      deviceTime: Date.now(),
      items: [{ code: 'A1', name: 'a', catalogueClass: CatalogueClass.CLASS_A, amountFen: 100 }],
      reversesClaimId: '',
      personalAccountBalanceFen: 0,
    };
    // A second item, written by hand: code "B", class A, amount 2^60.
    const item = Buffer.from([0x0a, 0x01, 0x42, 0x18, 0x01, 0x20, ...varint(2n ** 60n)]);
    const frame = Buffer.concat([Buffer.from(MedicalClaim.encode(claim).finish()), Buffer.from([0x5a, item.length]), item]);
    const r = await raw.unary('settleClaim', p.metadata('TJ-CLINIC-0801'), frame);
    expect(r.ok ? 'ok' : r.error.code).toBe(3);
    expect(r.ok ? '' : r.error.details).toMatch(/^TF_INGEST_INVALID: items\[1\]\.amount_fen: must be an integer from 0 to 100000000, got 1152921504606846976$/);
    // Still serving.
    const out = await raw.stream(p.metadata(bus), [bytes(tap(bus, 20))]);
    expect(out.acks.map(status)).toEqual(['ACCEPTED_DURABLE']);
  });
});

describe('ingest - flow control', () => {
  it('pauses a stream whose client does not read its acks, with one drain wait (no listener growth)', async () => {
    const gate = 'BJ-RAIL-0807';
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const call = raw.openStream(p.metadata(gate));
      const N = 4000;
      // Not reading: no 'data' listener, the client's buffer and HTTP/2 window fill up.
      for (let s = 1; s <= N; s++) call.write(Buffer.from(Tap.encode(tap(gate, s)).finish()));
      await new Promise((r) => setTimeout(r, 2000));
      const acks: TapAck[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (a: TapAck) => {
          acks.push(a);
          if (acks.length === N) resolve();
        });
        call.on('error', reject);
      });
      await done;
      call.end();
      expect(acks.filter((a) => status(a) === 'ACCEPTED_DURABLE')).toHaveLength(N);
      expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('ingest - unknown enum values, missing fields, wrong wire types, unknown fields', () => {
  const gate = 'BJ-RAIL-0820';
  const chipOf = (t: Tap) => Buffer.from(Tap.encode({ ...t, card: undefined }).finish());
  /** A chip card written by hand: card number, then what follows. */
  const chip = (seq: number, ...tail: number[]) => len(7, [...len(1, Buffer.from(`11${String(60_100_000 + seq).padStart(10, '0')}`)), 0x10, 0x01, ...tail]);
  const cases: [seq: bigint, what: string, frame: Uint8Array, answer: RegExp | string][] = [
    // Unknown enum values: INVALID naming the field and the value.
    [1n, 'scene 99', bytes(tap(gate, 1), [0x20, 99]), 'INVALID INVALID_ARGUMENT: scene: unknown value 99 (RAIL, BUS, MEDICAL, CULTURE, SERVICE, BENEFIT)'],
    [2n, 'direction 7', bytes(tap(gate, 2), [0x30, 7]), 'INVALID INVALID_ARGUMENT: direction: unknown value 7 (ENTRY, EXIT, SINGLE)'],
    [3n, 'rider_category 9', bytes(tap(gate, 3), [0x50, 9]), /^INVALID INVALID_ARGUMENT: rider_category: unknown value 9 /],
    [4n, 'scene −1 (a 10-byte varint)', bytes(tap(gate, 4), [0x20, ...varint(-1n)]), /^INVALID INVALID_ARGUMENT: scene: unknown value -1 /],
    [5n, 'direction −1', bytes(tap(gate, 5), [0x30, ...varint(-1n)]), /^INVALID INVALID_ARGUMENT: direction: unknown value -1 /],
    [6n, 'rider_category −1', bytes(tap(gate, 6), [0x50, ...varint(-1n)]), /^INVALID INVALID_ARGUMENT: rider_category: unknown value -1 /],
    // Missing fields (proto3 leaves a default value off the wire).
    [10n, 'no card', bytes(tap(gate, 10, { card: undefined })), 'INVALID INVALID_ARGUMENT: card: required: chip or qr'],
    [11n, 'no venue', bytes(tap(gate, 11, { venueId: '' })), 'INVALID INVALID_ARGUMENT: venue_id: required'],
    [12n, 'no scene', bytes(tap(gate, 12, { scene: 0 })), /^INVALID INVALID_ARGUMENT: scene: required /],
    [13n, 'no direction', bytes(tap(gate, 13, { direction: 0 })), /^INVALID INVALID_ARGUMENT: direction: required /],
    [14n, 'no device time', bytes(tap(gate, 14, { deviceTime: 0 })), /^INVALID INVALID_ARGUMENT: device_time: must be epoch milliseconds from 2015-01-01 to 2100-01-01, got 0$/],
    [15n, 'an empty chip', Buffer.concat([chipOf(tap(gate, 15)), Buffer.from([0x3a, 0x00])]), /^INVALID INVALID_ARGUMENT: card\.chip\.card_number: /],
    [16n, 'a chip without its MAC', Buffer.concat([chipOf(tap(gate, 16)), Buffer.from(chip(16))]), 'INVALID INVALID_ARGUMENT: card.chip.mac: must be 8 bytes'],
    // Wrong wire types: the tap cannot be read.
    [20n, 'device_time as 64-bit', bytes(tap(gate, 20), [0x19, 1, 2, 3, 4, 5, 6, 7, 8]), /malformed Tap: device_time: wire type 64-bit, expected varint$/],
    [21n, 'venue_id as varint', bytes(tap(gate, 21), [0x28, 0x01]), /malformed Tap: venue_id: wire type varint, expected length-delimited$/],
    [22n, 'scene as length-delimited', bytes(tap(gate, 22), len(4, [1])), /malformed Tap: scene: wire type length-delimited, expected varint$/],
    [23n, 'the chip as 32-bit', bytes(tap(gate, 23), [0x3d, 1, 2, 3, 4]), /malformed Tap: chip: wire type 32-bit, expected length-delimited$/],
    [24n, 'the chip MAC as varint', Buffer.concat([chipOf(tap(gate, 24)), Buffer.from(chip(24, 0x18, 0x05))]), /malformed Tap: chip\.mac: wire type varint, expected length-delimited$/],
    // Values at and above 2^63.
    [2n ** 63n, 'seq 2^63', bytes(tap(gate, 30), [0x10, ...varint(2n ** 63n)]), /^INVALID INVALID_ARGUMENT: seq: must be an integer from 1 to 2\^53-1, got 9223372036854775808$/],
    [31n, 'amount_fen 2^63 (−2^63 as int64)', bytes(tap(gate, 31), [0x48, ...varint(2n ** 63n)]), /^INVALID INVALID_ARGUMENT: amount_fen: .*got -9223372036854775808$/],
    [32n, 'scene 2^63', bytes(tap(gate, 32), [0x20, ...varint(2n ** 63n)]), /malformed Tap: scene: 9223372036854775808 does not fit the field$/],
    [33n, 'a chip counter of 2^63', Buffer.concat([chipOf(tap(gate, 33)), Buffer.from(len(7, [...len(1, Buffer.from('110060100033')), 0x10, ...varint(2n ** 63n), ...len(3, Buffer.alloc(8))]))]), /malformed Tap: chip\.counter: 9223372036854775808 does not fit the field$/],
    [35n, 'a venue_id that is not UTF-8', bytes(tap(gate, 35), len(5, [0x62, 0x6a, 0xff, 0xfe])), /malformed Tap: venue_id: not valid UTF-8$/],
    [36n, 'a field of wire type 6', bytes(tap(gate, 36), [0x2e, 0x01]), /malformed Tap: venue_id: unexpected wire type 6 tag$/],
    // Above 2^64 − 1: other decoders keep the low 64 bits (2^64 + 5 would be read as 5).
    [34n, 'device_time 2^64 + 5', bytes(tap(gate, 34), [0x18, 0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]), /malformed Tap: device_time: a varint above 2\^64 − 1$/],
  ];

  it('answers each INVALID naming the field and the problem, by its seq; the stream goes on and nothing of them is stored', async () => {
    const good = [40, 41].map((s) => bytes(tap(gate, s)));
    const { bySeq, error } = await answers(gate, [...cases.map((c) => c[2]), ...good]);
    expect(error).toBeUndefined();
    expect(bySeq.size).toBe(cases.length + good.length);
    for (const [seq, what, , want] of cases) {
      const got = bySeq.get(seq);
      expect(got, what).toBeDefined();
      if (typeof want === 'string') expect(got, what).toBe(want);
      else expect(got, what).toMatch(want);
      if (want instanceof RegExp && want.source.startsWith('malformed')) expect(got, what).toMatch(/^INVALID INVALID_ARGUMENT: malformed Tap: /);
    }
    expect(bySeq.get(40n)).toBe('ACCEPTED_DURABLE');
    expect(bySeq.get(41n)).toBe('ACCEPTED_DURABLE');
    await p.until(async () => (await storedSeqs(gate)).length >= 2, 30_000, 'the two good taps stored');
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedSeqs(gate)).toEqual([40, 41]);
  });

  it('accepts a tap with unknown fields of every wire type, at the top and inside the chip', async () => {
    const g = 'BJ-RAIL-0821';
    const frames = [
      bytes(tap(g, 1), [0x90, 0x03, 0x01]), // field 50, varint
      bytes(tap(g, 2), [0x99, 0x03, 1, 2, 3, 4, 5, 6, 7, 8]), // field 51, 64-bit
      bytes(tap(g, 3), len(52, Buffer.from('a newer contract'))), // field 52, length-delimited
      bytes(tap(g, 4), [0xad, 0x03, 1, 2, 3, 4]), // field 53, 32-bit
      bytes(tap(g, 5), [0x90, 0x03, ...varint(2n ** 64n - 1n)]), // an unknown 64-bit varint at its largest
      Buffer.concat([chipOf(tap(g, 6)), Buffer.from(len(7, [...len(1, Buffer.from('110060100006')), 0x10, 0x01, ...len(3, Buffer.alloc(8)), 0x48, 0x07]))]), // chip field 9
    ];
    const { bySeq, error } = await answers(g, frames);
    expect(error).toBeUndefined();
    expect([...bySeq.entries()].sort((a, b) => Number(a[0] - b[0]))).toEqual([1n, 2n, 3n, 4n, 5n, 6n].map((s) => [s, 'ACCEPTED_DURABLE']));
  });

  it('ends only its own stream for a seq above 2^64 − 1 (no seq to answer by), after answering the taps before it', async () => {
    const g = 'BJ-RAIL-0822';
    const overflow = bytes(tap(g, 9), [0x10, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]); // 2^64 + 1
    const out = await raw.stream(p.metadata(g), [bytes(tap(g, 1)), overflow, bytes(tap(g, 2))]);
    expect(out.error?.code).toBe(3);
    expect(out.error?.details).toMatch(/^TF_INGEST_INVALID: malformed Tap: seq: a varint above 2\^64 − 1; the stream ends here/);
    // Seq 1 is answered once, for the tap that is seq 1: never for 2^64 + 1 cut to its low bits.
    expect(out.acks.map((a) => [a.seq, status(a)])).toEqual([[1n, 'ACCEPTED_DURABLE']]);
    await p.until(async () => (await storedSeqs(g)).length >= 1, 30_000, 'seq 1 stored');
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedSeqs(g)).toEqual([1]);
  });
});

describe('ingest - truncated frames and random bytes', () => {
  it('answers a tap cut at every length: the one complete legal prefix ACCEPTED, the others INVALID or ending their own stream', async () => {
    const g = 'BJ-RAIL-0823';
    const base = (seq: number) => bytes(tap(g, seq));
    const full = base(1000).length;
    // The only cut that is itself a legal tap: everything but rider_category (2 bytes, last).
    const legalCut = Buffer.from(Tap.encode({ ...tap(g, 1000), riderCategory: 0 }).finish()).length;
    expect(legalCut).toBe(full - 2);
    const outcomes = await Promise.all(
      Array.from({ length: full - 1 }, async (_, i) => {
        const cut = i + 1;
        const out = await raw.stream(p.metadata(g), [base(1000 + cut).subarray(0, cut)]);
        if (out.error) {
          expect(out.acks, `cut ${cut}`).toEqual([]);
          expect([out.error.code, out.error.details.split(':')[0]], `cut ${cut}`).toEqual([3, 'TF_INGEST_INVALID']);
          return [cut, 'stream ended'] as const;
        }
        expect(out.acks, `cut ${cut}`).toHaveLength(1);
        return [cut, status(out.acks[0]!)!] as const;
      }),
    );
    const accepted = outcomes.filter(([, o]) => o === 'ACCEPTED_DURABLE').map(([c]) => c);
    expect(accepted).toEqual([legalCut]);
    const kinds = new Set(outcomes.map(([, o]) => o));
    expect([...kinds].sort()).toEqual(['ACCEPTED_DURABLE', 'INVALID', 'stream ended']);
    await p.until(async () => (await storedSeqs(g)).length >= 1, 30_000, 'the legal cut stored');
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedSeqs(g)).toEqual([1000 + legalCut]);
  });

  it('random bytes: each frame INVALID or its own stream ended; a batch of them INVALID_ARGUMENT; other terminals go on, nothing is stored', async () => {
    const random = rng(20261130);
    const junk = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
    const g = 'BJ-RAIL-0824';
    const calm = 'BJ-RAIL-0825';
    const calmTaps = Array.from({ length: 200 }, (_, i) => tap(calm, i + 1));
    const [outcomes, calmOut] = await Promise.all([
      Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          const out = await raw.stream(p.metadata(g), [junk(1 + Math.floor(random() * 300))]);
          if (out.error) return `stream ${out.error.code}`;
          expect(out.acks, `frame ${i}`).toHaveLength(1);
          return status(out.acks[0]!)!;
        }),
      ),
      streamTaps(p.client, p.metadata(calm), calmTaps),
    ]);
    for (const o of outcomes) expect(['INVALID', 'stream 3']).toContain(o);
    expect(calmOut.error).toBeUndefined();
    expect(calmOut.acks.filter((a) => a.status === TapStatus.ACCEPTED_DURABLE)).toHaveLength(200);
    for (let i = 0; i < 20; i++) {
      const r = await raw.unary<RawBatchAck>('uploadBatch', p.metadata(g), junk(1 + Math.floor(random() * 3000)));
      // Random bytes that happen to read as a batch have no tap, or taps that are INVALID.
      if (r.ok) expect(r.value.accepted, `batch ${i}`).toBe(0);
      else expect(['INVALID_ARGUMENT', 'PERMISSION_DENIED'], `batch ${i}: ${r.error.details}`).toContain(grpc.status[r.error.code]);
    }
    await p.until(async () => (await storedSeqs(calm)).length >= 200, 30_000, 'the calm terminal stored');
    expect(await storedSeqs(g)).toEqual([]);
  });
});

describe('ingest - device time around ingest time', () => {
  const H = 3_600_000;
  const DAY = 24 * H;

  it('refuses live taps years or a day off, INVALID naming device_time; counts the skew; the stream goes on', async () => {
    const g = 'BJ-RAIL-0830';
    const now = Date.now();
    const skewBefore = await counter('tapflow_clock_skew_taps_total', 'region="BJ"');
    const taps = [
      tap(g, 1, { deviceTime: now }),
      tap(g, 2, { deviceTime: now - 7 * 365 * DAY }),
      tap(g, 3, { deviceTime: now + 3 * 365 * DAY }),
      tap(g, 4, { deviceTime: now - 25 * H }),
      tap(g, 5, { deviceTime: now - 10 * 60_000 }), // skewed, within the bound
      tap(g, 6, { deviceTime: now + 23 * H }),
    ];
    const { bySeq, error } = await answers(g, taps.map((t) => bytes(t)));
    expect(error).toBeUndefined();
    expect(bySeq.get(1n)).toBe('ACCEPTED_DURABLE');
    expect(bySeq.get(2n)).toMatch(/^INVALID INVALID_ARGUMENT: device_time: 20\d\d-.* is 7\.0 years before ingest time; a live tap may be at most 24 h behind it \(TAPFLOW_LIVE_TIME_BOUND_MS\): send taps held longer with UploadBatch/);
    expect(bySeq.get(3n)).toMatch(/^INVALID INVALID_ARGUMENT: device_time: 20\d\d-.* is 3\.0 years after ingest time; a live tap may be at most 24 h ahead of it/);
    expect(bySeq.get(4n)).toMatch(/^INVALID INVALID_ARGUMENT: device_time: .* is 25 h before ingest time/);
    expect(bySeq.get(5n)).toBe('ACCEPTED_DURABLE');
    expect(bySeq.get(6n)).toBe('ACCEPTED_DURABLE');
    // Every live tap beyond TAPFLOW_CLOCK_SKEW_MS is counted, refused or not.
    expect(await counter('tapflow_clock_skew_taps_total', 'region="BJ"')).toBe(skewBefore + 5);
    await p.until(async () => (await storedSeqs(g)).length >= 3, 30_000, 'three taps stored');
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedSeqs(g)).toEqual([1, 5, 6]);
  });

  it('takes stored taps up to 30 days old in UploadBatch, not older, nor a day ahead', async () => {
    const bus = 'BJ-BUS-0830';
    const now = Date.now();
    const batch = TapBatch.encode({
      terminalId: bus,
      taps: [tap(bus, 1, { deviceTime: now - 20 * DAY }), tap(bus, 2, { deviceTime: now - 40 * DAY }), tap(bus, 3, { deviceTime: now + 3 * DAY }), tap(bus, 4, { deviceTime: now - 7 * 365 * DAY }), tap(bus, 5, { deviceTime: now - 29 * H })],
    }).finish();
    const r = await raw.unary<RawBatchAck>('uploadBatch', p.metadata(bus), batch);
    if (!r.ok) throw r.error;
    const got = r.value.acks.map((a) => `${status(a)} ${a.reason}`.trim());
    expect(got[0]).toBe('ACCEPTED_DURABLE');
    expect(got[1]).toMatch(/^INVALID INVALID_ARGUMENT: device_time: .* is 40 days before ingest time; a stored tap may be at most 30 days old \(TAPFLOW_UPLOAD_MAX_AGE_MS\)$/);
    expect(got[2]).toMatch(/^INVALID INVALID_ARGUMENT: device_time: .* is 3 days after ingest time; a stored tap may be at most 24 h ahead of it/);
    expect(got[3]).toMatch(/^INVALID INVALID_ARGUMENT: device_time: .* is 7\.0 years before ingest time; a stored tap may be at most 30 days old/);
    expect(got[4]).toBe('ACCEPTED_DURABLE');
    expect([r.value.accepted, r.value.invalid]).toEqual([2, 3]);
    await p.until(async () => (await storedSeqs(bus)).length >= 2, 30_000, 'two stored taps decided');
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedSeqs(bus)).toEqual([1, 5]);
  });
});

describe('ingest - terminals bound to the venues of their region (demo registry)', () => {
  it('refuses a tap for a venue of another region, or of no known region: INVALID, reason PERMISSION_DENIED; the stream goes on', async () => {
    const g = 'BJ-RAIL-0840';
    const deniedBefore = await counter('tapflow_ingest_refused_total', 'code="TF_INGEST_PERMISSION_DENIED"');
    const taps = [
      tap(g, 1),
      tap(g, 2, { venueId: 'tj-metro:刘园' }),
      tap(g, 3, { venueId: 'museum:HE:hebei-museum' }),
      tap(g, 4, { venueId: 'somewhere' }),
      tap(g, 5, { venueId: 'museum:BJ:not-on-the-list', scene: 4, direction: 3 }), // BJ by its id: the validator decides it
      tap(g, 6),
    ];
    const { bySeq, error } = await answers(g, taps.map((t) => bytes(t)));
    expect(error).toBeUndefined();
    expect(Object.fromEntries([...bySeq.entries()].map(([k, v]) => [String(k), v]))).toEqual({
      1: 'ACCEPTED_DURABLE',
      2: `INVALID PERMISSION_DENIED: venue_id: venue tj-metro:刘园 is in TJ; terminal ${g} serves BJ`,
      3: `INVALID PERMISSION_DENIED: venue_id: venue museum:HE:hebei-museum is in HE; terminal ${g} serves BJ`,
      4: `INVALID PERMISSION_DENIED: venue_id: terminal ${g} serves the venues of BJ; venue somewhere is not one tapflow knows the region of`,
      5: 'ACCEPTED_DURABLE',
      6: 'ACCEPTED_DURABLE',
    });
    expect(await counter('tapflow_ingest_refused_total', 'code="TF_INGEST_PERMISSION_DENIED"')).toBe(deniedBefore + 3);
    await p.until(async () => (await storedSeqs(g)).length >= 3, 30_000, 'three taps decided');
    await new Promise((r) => setTimeout(r, 300));
    expect(await storedSeqs(g)).toEqual([1, 5, 6]);
  });

  it('refuses such a tap in a batch, and takes the others', async () => {
    const bus = 'TJ-BUS-0840';
    const batch = TapBatch.encode({ terminalId: bus, taps: [tap(bus, 1, { venueId: 'tj-bus:8:0', scene: 2, direction: 3 }), tap(bus, 2, { venueId: 'bj-bus:1:0', scene: 2, direction: 3 })] }).finish();
    const r = await raw.unary<RawBatchAck>('uploadBatch', p.metadata(bus), batch);
    if (!r.ok) throw r.error;
    expect(r.value.acks.map((a) => `${status(a)} ${a.reason}`.trim())).toEqual(['ACCEPTED_DURABLE', `INVALID PERMISSION_DENIED: venue_id: venue bj-bus:1:0 is in BJ; terminal ${bus} serves TJ`]);
  });
});
