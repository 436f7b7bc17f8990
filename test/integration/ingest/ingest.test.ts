/**
 * The ingest gRPC server with a real client (demo registry): per-tap INVALID inside a live
 * stream, UploadBatch's per-tap results and limits, gRPC health checking and reflection, and the
 * /metrics, /healthz and /readyz endpoints.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { Direction, Scene, TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { codeOf, stream, tap, uploadBatch } from './grpc-taps.js';

const BATCH_MAX = 20;
let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline({ TAPFLOW_BATCH_MAX_TAPS: String(BATCH_MAX) });
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

const status = (s: TapStatus) => TapStatus[s];

describe('ingest - StreamTaps', () => {
  it('answers a malformed tap INVALID naming the field and keeps the stream going', async () => {
    const gate = 'BJ-RAIL-0301';
    const first = tap(gate, 1);
    const taps = [
      first,
      tap(gate, 2, { venueId: '' }),
      tap(gate, 3),
      tap(gate, 4, { scene: Scene.SCENE_UNSPECIFIED }),
      tap(gate, 5, { card: { $case: 'chip', value: { cardNumber: '990000000001', counter: 1, mac: Buffer.alloc(8) } } }),
      tap(gate, 6, { direction: 9 as Direction }),
      tap(gate, 7, { deviceTime: 1000 }),
      tap(gate, 8),
      first, // the same tap again: the same (terminal, seq) and content
    ];
    const out = await stream(p.client, p.metadata(gate), taps);
    expect(out.error).toBeUndefined();
    expect(out.acks).toHaveLength(taps.length);
    const got = out.acks.map((a) => [a.seq, status(a.status), a.reason.split(':').slice(0, 2).join(':')]).sort((a, b) => Number(a[0]) - Number(b[0]) || String(a[1]).localeCompare(String(b[1])));
    expect(got).toEqual([
      [1, 'ACCEPTED_DURABLE', ''],
      [1, 'DUPLICATE', 'already received; counted once'],
      [2, 'INVALID', 'INVALID_ARGUMENT: venue_id'],
      [3, 'ACCEPTED_DURABLE', ''],
      [4, 'INVALID', 'INVALID_ARGUMENT: scene'],
      [5, 'INVALID', 'INVALID_ARGUMENT: card.chip.card_number'],
      [6, 'INVALID', 'INVALID_ARGUMENT: direction'],
      [7, 'INVALID', 'INVALID_ARGUMENT: device_time'],
      [8, 'ACCEPTED_DURABLE', ''],
    ]);
    for (const a of out.acks) expect(a.eventId).toBe(`${gate}:${a.seq}`);
    // Nothing of an INVALID tap was published: only 1, 3 and 8 are decided, once each.
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${gate}'`))[0]!.n >= 3, 30_000, 'decisions');
    await new Promise((r) => setTimeout(r, 500));
    const decided = await p.query<{ seq: number }>(`SELECT seq FROM decisions WHERE terminal_id = '${gate}' ORDER BY seq`);
    expect(decided.map((d) => d.seq)).toEqual([1, 3, 8]);
  });
});

describe('ingest - UploadBatch', () => {
  it('gives one result per tap, in order, with the counts', async () => {
    const bus = 'BJ-BUS-0301';
    const [one, two] = [tap(bus, 1), tap(bus, 2)];
    const first = await uploadBatch(p.client, p.metadata(bus), { terminalId: bus, taps: [one, two] });
    expect(codeOf(first)).toBe('OK');
    const taps = [
      two, // already uploaded
      tap(bus, 3),
      tap(bus, 4, { amountFen: -1 }),
      tap(bus, 5),
      tap(bus, 6, { seq: 0 }),
      one, // already uploaded
      { ...tap(bus, 7), terminalId: '' }, // an offline tap may leave the terminal id to the batch
    ];
    const r = await uploadBatch(p.client, p.metadata(bus), { terminalId: bus, taps });
    if (!r.ok) throw r.error;
    expect(r.value.terminalId).toBe(bus);
    expect(r.value.acks.map((a) => [a.seq, status(a.status)])).toEqual([
      [2, 'DUPLICATE'],
      [3, 'ACCEPTED_DURABLE'],
      [4, 'INVALID'],
      [5, 'ACCEPTED_DURABLE'],
      [0, 'INVALID'],
      [1, 'DUPLICATE'],
      [7, 'ACCEPTED_DURABLE'],
    ]);
    expect(r.value.acks[2]!.reason).toContain('amount_fen');
    expect(r.value.acks[4]!.reason).toContain('seq');
    expect([r.value.accepted, r.value.duplicates, r.value.invalid]).toEqual([3, 2, 2]);
    // Batch taps are offline taps.
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${bus}'`))[0]!.n >= 5, 30_000, 'batch decisions');
    const rows = await p.query<{ seq: number; offline: number }>(`SELECT seq, offline FROM decisions WHERE terminal_id = '${bus}' ORDER BY seq`);
    expect(rows).toEqual([1, 2, 3, 5, 7].map((seq) => ({ seq, offline: 1 })));
  });

  it('refuses an oversize or empty batch with INVALID_ARGUMENT, publishing nothing', async () => {
    const bus = 'BJ-BUS-0302';
    const big = await uploadBatch(p.client, p.metadata(bus), { terminalId: bus, taps: Array.from({ length: BATCH_MAX + 1 }, (_, i) => tap(bus, i + 1)) });
    expect(codeOf(big)).toBe(grpc.status.INVALID_ARGUMENT);
    expect(big.ok ? '' : big.error.details).toContain(`at most ${BATCH_MAX}`);
    const empty = await uploadBatch(p.client, p.metadata(bus), { terminalId: bus, taps: [] });
    expect(codeOf(empty)).toBe(grpc.status.INVALID_ARGUMENT);
    // The largest allowed batch goes through: nothing of the refused one was kept (no duplicates).
    const max = await uploadBatch(p.client, p.metadata(bus), { terminalId: bus, taps: Array.from({ length: BATCH_MAX }, (_, i) => tap(bus, i + 1)) });
    if (!max.ok) throw max.error;
    expect([max.value.accepted, max.value.duplicates, max.value.invalid]).toEqual([BATCH_MAX, 0, 0]);
  });
});

describe('ingest - health and reflection', () => {
  it('answers grpc.health.v1.Health/Check SERVING, for the server and the service', async () => {
    const def = protoLoader.loadSync(healthProtoPath, { keepCase: true, longs: Number, enums: String, defaults: true });
    const Health = (grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } }).grpc.health.v1.Health;
    const client = new Health(`127.0.0.1:${p.grpcPort}`, grpc.credentials.createInsecure());
    const check = (service: string) =>
      new Promise<{ status?: string; code?: grpc.status }>((resolve) =>
        (client as unknown as { Check: (req: object, cb: (e: grpc.ServiceError | null, r: { status: string }) => void) => void }).Check({ service }, (e, r) => resolve(e ? { code: e.code } : { status: r.status })),
      );
    try {
      expect(await check('')).toEqual({ status: 'SERVING' });
      expect(await check('tapflow.v1.TerminalIngest')).toEqual({ status: 'SERVING' });
      expect(await check('no.such.Service')).toEqual({ code: grpc.status.NOT_FOUND });
    } finally {
      client.close();
    }
  });

  it.each(['v1alpha', 'v1'])('lists tapflow.v1.TerminalIngest through reflection %s', async (version) => {
    const require = createRequire(import.meta.url);
    const protoFile = join(dirname(require.resolve('@grpc/reflection')), '..', 'proto', 'grpc', 'reflection', version, 'reflection.proto');
    const def = protoLoader.loadSync(protoFile, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
    const ns = (grpc.loadPackageDefinition(def) as unknown as { grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> } }).grpc.reflection[version]!;
    const client = new ns.ServerReflection(`127.0.0.1:${p.grpcPort}`, grpc.credentials.createInsecure());
    type Resp = { list_services_response?: { service: { name: string }[] }; file_descriptor_response?: { file_descriptor_proto: Buffer[] }; error_response?: { error_message: string } };
    const ask = (req: object) =>
      new Promise<Resp>((resolve, reject) => {
        const call = (client as unknown as { ServerReflectionInfo: () => grpc.ClientDuplexStream<object, Resp> }).ServerReflectionInfo();
        call.on('data', (r: Resp) => {
          resolve(r);
          call.end();
        });
        call.on('error', reject);
        call.write(req);
      });
    try {
      const list = await ask({ list_services: '*' });
      const names = list.list_services_response!.service.map((s) => s.name);
      expect(names).toContain('tapflow.v1.TerminalIngest');
      const file = await ask({ file_containing_symbol: 'tapflow.v1.TerminalIngest' });
      expect(file.error_response).toBeUndefined();
      const text = Buffer.concat(file.file_descriptor_response!.file_descriptor_proto).toString('latin1');
      // The descriptor names the service's methods (DESIGN's stable names).
      for (const m of ['StreamTaps', 'UploadBatch', 'SettleClaim']) expect(text).toContain(m);
    } finally {
      client.close();
    }
  });
});

describe('ingest - metrics and readiness', () => {
  const url = (path: string) => `http://127.0.0.1:${p.app.metricsPort}${path}`;

  it('serves /healthz and /readyz 200 with every role ready', async () => {
    expect((await fetch(url('/healthz'))).status).toBe(200);
    const r = await fetch(url('/readyz'));
    expect(r.status).toBe(200);
    const body = (await r.json()) as { ready: boolean; checks: { name: string; ready: boolean }[] };
    expect(body.ready).toBe(true);
    expect(body.checks.map((c) => c.name).sort()).toEqual(['ingest', 'nats', 'settler', 'sink', 'validator']);
  });

  it('serves the ingest counters and the ack latency histogram on /metrics', async () => {
    const gate = 'BJ-RAIL-0399';
    const metric = async (series: string) => {
      const text = await (await fetch(url('/metrics'))).text();
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line ? Number(line.slice(series.length + 1)) : 0;
    };
    const names = [
      'tapflow_taps_received_total{kind="live"}',
      'tapflow_taps_published_total',
      'tapflow_taps_duplicate_total',
      'tapflow_taps_invalid_total{field="venue_id"}',
      'tapflow_ack_latency_seconds_count',
    ];
    const before = await Promise.all(names.map(metric));
    const out = await stream(p.client, p.metadata(gate), [tap(gate, 1), tap(gate, 2), tap(gate, 1), tap(gate, 3, { venueId: '' })]);
    expect(out.acks).toHaveLength(4);
    const after = await Promise.all(names.map(metric));
    expect(Object.fromEntries(names.map((n, i) => [n, after[i]! - before[i]!]))).toEqual({
      'tapflow_taps_received_total{kind="live"}': 4,
      'tapflow_taps_published_total': 2,
      'tapflow_taps_duplicate_total': 1,
      'tapflow_taps_invalid_total{field="venue_id"}': 1,
      'tapflow_ack_latency_seconds_count': 4,
    });
    const text = await (await fetch(url('/metrics'))).text();
    for (const m of ['tapflow_decisions_total', 'tapflow_stored_rows_total', 'tapflow_tap_to_store_latency_seconds_bucket', 'tapflow_inflight_publishes']) expect(text).toContain(m);
  });
});
