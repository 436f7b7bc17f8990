/**
 * The largest message ingest accepts, over the wire with a real gRPC client (ingest alone, so
 * that what it published stays in the TAPS stream to be read back). The limit is what a batch of
 * TAPFLOW_BATCH_MAX_TAPS of the largest legal taps needs (src/domain/limits.ts): such a batch is
 * accepted whole; one byte more is refused with RESOURCE_EXHAUSTED, as is a message that inflates
 * beyond it, a length prefix announcing more (at once, before any of it arrives) and a stream
 * frame beyond it (that stream only). A message cut short by the end of its request is never
 * read. The server stays up and other terminals' streams go on.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { publishedTaps } from '../../support/taps-stream.js';
import { LONG_SEQS, LONGEST_TERMINAL_ID, largestBatch } from '../../support/largest-tap.js';
import { MAX_TAP_BYTES, maxMessageBytes } from '../../../src/domain/limits.js';
import { Tap, TapBatch, TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { RawClient, type RawBatchAck, type TapAck } from './raw-client.js';
import { grpcFrame, h2Call } from './h2-client.js';
import { metadata, tap } from './grpc-taps.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
/** Serves the largest venue id there is: 128 three-byte characters, whose region nothing tells. */
const BIG = { id: LONGEST_TERMINAL_ID, secret: 'big-secret' };
const GATE = { id: 'BJ-GATE-8001', secret: 'gate-8001' };
const OTHER = { id: 'BJ-GATE-8002', secret: 'gate-8002' };

let p: TestPipeline;
let dir: string;
let raw: RawClient;
let limit: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tapflow-limits-'));
  const file = join(dir, 'terminals.yaml');
  await writeFile(
    file,
    `terminals:
  - { id: ${BIG.id}, region: BJ, venues: ["国*"], secret_sha256: ${sha(BIG.secret)} }
  - { id: ${GATE.id}, region: BJ, venues: ["bj-subway:*"], secret_sha256: ${sha(GATE.secret)} }
  - { id: ${OTHER.id}, region: BJ, venues: ["bj-subway:*"], secret_sha256: ${sha(OTHER.secret)} }
`,
  );
  p = await startTestPipeline({ TAPFLOW_TERMINALS_FILE: file }, { roles: ['ingest'] });
  raw = new RawClient(`127.0.0.1:${p.grpcPort}`);
  limit = maxMessageBytes(p.cfg.TAPFLOW_BATCH_MAX_TAPS);
}, 120_000);

afterAll(async () => {
  raw?.close();
  await p?.stop();
  await rm(dir, { recursive: true, force: true });
});

const status = (a: TapAck) => TapStatus[a.status];
const bigMd = () => metadata(BIG.id, BIG.secret);
const gateMd = () => metadata(GATE.id, GATE.secret);
const frame = (t: Tap) => Buffer.from(Tap.encode(t).finish());

/** The server still answers: one tap of GATE's, ACCEPTED_DURABLE. */
async function stillServing(seq: number): Promise<void> {
  const out = await raw.stream(gateMd(), [frame(tap(GATE.id, seq))]);
  expect(out.acks.map(status)).toEqual(['ACCEPTED_DURABLE']);
}

describe('message limits - a full batch of the largest taps', () => {
  let batch: Buffer;

  it('is exactly the limit: 12,680,066 bytes for the default 5,000 taps', () => {
    expect(p.cfg.TAPFLOW_BATCH_MAX_TAPS).toBe(5000);
    batch = largestBatch(5000, { deviceTime: Date.now(), firstSeq: LONG_SEQS });
    expect([batch.length, limit]).toEqual([12_680_066, 12_680_066]);
    expect(TapBatch.decode(batch).taps.every((t) => Tap.encode(t).finish().length === MAX_TAP_BYTES)).toBe(true);
  });

  it('is accepted whole: every tap ACCEPTED_DURABLE, and each is in the TAPS stream', async () => {
    const r = await raw.unary<RawBatchAck>('uploadBatch', bigMd(), batch);
    if (!r.ok) throw r.error;
    const counts: Record<string, number> = {};
    for (const a of r.value.acks) counts[status(a)] = (counts[status(a)] ?? 0) + 1;
    expect(counts).toEqual({ ACCEPTED_DURABLE: 5000 });
    const published = await publishedTaps(p.app.ctx.bus);
    const ids = new Set(published.taps.map((t) => t.eventId));
    expect(ids.size).toBe(5000);
    for (let i = 0; i < 5000; i++) expect(ids.has(`${BIG.id}:${LONG_SEQS + i}`)).toBe(true);
  });

  it('one byte more is refused with RESOURCE_EXHAUSTED naming the limit; the server stays up', async () => {
    const r = await raw.unary('uploadBatch', bigMd(), Buffer.concat([batch, Buffer.from([0])]));
    expect(r.ok ? 'ok' : [grpc.status[r.error.code], r.error.details]).toEqual(['RESOURCE_EXHAUSTED', `Received message larger than max (${limit + 1} vs ${limit})`]);
    await stillServing(1);
  });
});

describe('message limits - beyond the limit otherwise', () => {
  it('a compressed message that inflates beyond the limit: RESOURCE_EXHAUSTED', async () => {
    const gzip = new RawClient(`127.0.0.1:${p.grpcPort}`, { 'grpc.default_compression_algorithm': 2 });
    try {
      // 20 MB of zeros in an unknown field: about 20 KB on the wire.
      const zeros = Buffer.alloc(20_000_000);
      const head = Buffer.from([0x7a, 0x80, 0xda, 0xc4, 0x09]); // field 15, length-delimited, 20,000,000
      const r = await gzip.unary('uploadBatch', gateMd(), Buffer.concat([head, zeros]));
      expect(r.ok ? 'ok' : [grpc.status[r.error.code], r.error.details]).toEqual(['RESOURCE_EXHAUSTED', `Received message that decompresses to a size larger than ${limit}`]);
    } finally {
      gzip.close();
    }
    await stillServing(2);
  });

  it('a length prefix announcing 4 GiB is refused at once, before any of it is sent', async () => {
    const out = await h2Call(p.grpcPort, 'UploadBatch', gateMd(), grpcFrame(Buffer.from([0x0a, 0x01]), 0xffff_ffff), { end: false, timeoutMs: 5000 });
    expect([out.status && grpc.status[out.status], out.message]).toEqual(['RESOURCE_EXHAUSTED', `Received message larger than max (4294967295 vs ${limit})`]);
    expect(out.ms).toBeLessThan(4000);
    await stillServing(3);
  });

  it('a stream frame beyond the limit ends that stream only: RESOURCE_EXHAUSTED; other streams go on', async () => {
    const before = Array.from({ length: 5 }, (_, i) => frame(tap(GATE.id, 100 + i)));
    const huge = Buffer.alloc(limit + 1);
    const others = Array.from({ length: 50 }, (_, i) => frame(tap(OTHER.id, i + 1)));
    const [a, b] = await Promise.all([raw.stream(gateMd(), [...before, huge, frame(tap(GATE.id, 200))]), raw.stream(metadata(OTHER.id, OTHER.secret), others)]);
    expect(a.error && [grpc.status[a.error.code], a.error.details]).toEqual(['RESOURCE_EXHAUSTED', `Received message larger than max (${limit + 1} vs ${limit})`]);
    // What came after the frame was never read; what came before was answered or is re-sent.
    expect(a.acks.map((x) => x.seq)).not.toContain(200n);
    for (const x of a.acks) expect(status(x)).toBe('ACCEPTED_DURABLE');
    expect(b.error).toBeUndefined();
    expect(b.acks.filter((x) => status(x) === 'ACCEPTED_DURABLE')).toHaveLength(50);
    // The ended stream is not left behind (a drain would wait for it).
    const ingest = p.app.roles.find((r) => r.name === 'ingest') as unknown as { service: { openStreamCount: number } };
    await p.until(async () => ingest.service.openStreamCount === 0, 5000, 'no open stream left');
    await stillServing(4);
  });
});

describe('message limits - a message cut short by the end of its request', () => {
  it('StreamTaps: the taps before it are answered, it is never read, and the stream ends OK', async () => {
    const cut = frame(tap(GATE.id, 302));
    const body = Buffer.concat([grpcFrame(frame(tap(GATE.id, 300))), grpcFrame(frame(tap(GATE.id, 301))), grpcFrame(cut.subarray(0, 20), cut.length)]);
    const out = await h2Call(p.grpcPort, 'StreamTaps', gateMd(), body, { end: true });
    expect([out.status, out.acks.map((x) => [x.seq, status(x)]).sort()]).toEqual([0, [[300n, 'ACCEPTED_DURABLE'], [301n, 'ACCEPTED_DURABLE']]]);
    const published = (await publishedTaps(p.app.ctx.bus)).taps.map((t) => t.eventId);
    expect(published).toContain(`${GATE.id}:301`);
    expect(published).not.toContain(`${GATE.id}:302`);
  });

  it('UploadBatch: there is no request: UNIMPLEMENTED (grpc-js), nothing published', async () => {
    const b = Buffer.from(TapBatch.encode({ terminalId: GATE.id, taps: [tap(GATE.id, 310)] }).finish());
    const out = await h2Call(p.grpcPort, 'UploadBatch', gateMd(), grpcFrame(b.subarray(0, 10), b.length), { end: true });
    expect([out.status && grpc.status[out.status], out.message]).toEqual(['UNIMPLEMENTED', 'Received no request message for server streaming method /tapflow.v1.TerminalIngest/UploadBatch']);
    expect((await publishedTaps(p.app.ctx.bus)).taps.map((t) => t.eventId)).not.toContain(`${GATE.id}:310`);
    await stillServing(5);
  });
});
