/**
 * What a broken or hostile terminal puts on the wire, byte by byte, through a real gRPC client
 * and the whole pipeline: legal protobuf never ends a stream (64-bit values above 2^53 are read
 * without loss and answered INVALID naming the field), decoding is strict (trailing bytes, field
 * number 0, a stray end-group tag, a wrong wire type make that tap INVALID, never stored), a frame
 * that cannot be read at all ends only its own stream after every tap before it was answered, a
 * seq reused for other content is refused and flagged, and a client that stops reading its acks
 * is paused without piling up listeners.
 */
import type * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { CatalogueClass, InstitutionLevel, MedicalClaim, Region, Tap, TapBatch, TapStatus, Treatment } from '../../../src/gen/tapflow/v1/ingest.js';
import { RawClient, type RawBatchAck, type TapAck } from './raw-client.js';
import { tap } from './grpc-taps.js';

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
