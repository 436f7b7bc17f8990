/**
 * Overload, proven over the wire (issue 11, item 3), against a real nats-server and ingest in a
 * process of its own (`tapflow ingest`, test/support/processes.ts), so its memory can be read:
 *
 * 1. a client that stops reading its acks is paused — ingest stops reading its taps (HTTP/2 flow
 *    control holds the rest in the client) — while another terminal's stream, on another
 *    connection, keeps getting its acks; once the client reads again, every tap is answered
 *    (ACCEPTED_DURABLE, or OVERLOADED where the released backlog outran the in-flight bound —
 *    those are re-sent with the same seqs and accepted);
 * 2. a flood beyond capacity (concurrent batches of the largest taps and streams of taps on
 *    several connections) is answered RESOURCE_EXHAUSTED (batches over the in-flight bound) and
 *    OVERLOADED (taps over it, then taps refused by the full TAPS stream), while the process's
 *    RSS, sampled from /proc/<pid>/status during the flood, stays under the bound the README
 *    states (docs: "Overload");
 * 3. taps that meet a full stream (discard new, TAPFLOW_STREAM_MAX_BYTES) are answered OVERLOADED
 *    — none acknowledged, none stored — and accepted when re-sent after room is made;
 * 4. every tap answered ACCEPTED_DURABLE is in the TAPS stream exactly once.
 */
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TapBatch, TapStatus, Tap, TerminalIngestClient, type BatchAck, type TapAck } from '../../../src/gen/tapflow/v1/ingest.js';
import { connectBus, type Bus } from '../../../src/bus/connection.js';
import { decodeBusTap, splitTapBundle } from '../../../src/bus/codec.js';
import { consumerPlan } from '../../../src/bus/topology.js';
import { loadConfig } from '../../../src/config/config.js';
import { maxMessageBytes } from '../../../src/domain/limits.js';
import { overloadRssBoundBytes } from '../../../src/ingest/overload.js';
import { localKeys } from '../../../src/runtime/keys.js';
import { createLogger } from '../../../src/observe/log.js';
import { startTestNats } from '../../support/nats.js';
import { setupBus } from '../../support/bus.js';
import { testPipelineSettings } from '../../support/pipeline.js';
import { ingestPortOf, prepareSharedKeys, spawnRole, type RoleProcess } from '../../support/processes.js';
import { terminalMetadata } from '../../support/scenario.js';
import { largestTap } from '../../support/largest-tap.js';
import { grpcFrame } from './h2-client.js';
import { readAck } from './raw-client.js';
import { tap } from './grpc-taps.js';
import type { NatsServerHandle } from '../../../src/runtime/nats-server.js';

const MAX_INFLIGHT = 2048;
/** A venue the demo terminals serve (the largest tap's venue belongs to no region). */
const VENUE = 'bj-subway:西直门';
const BATCH_MAX_TAPS = 1000;
/** Room for parts 1 and 2's accepted taps, small enough for the flood to fill it. */
const STREAM_MAX_BYTES = 24 * 1024 ** 2;
/** The flood: connections, and UploadBatch calls and StreamTaps calls at once on each. */
const FLOOD = { connections: 4, batchesPerConnection: 4, streamsPerConnection: 4, tapsPerStream: 1500, rounds: 3 };

let nats: NatsServerHandle;
let dataDir: string;
let ingest: RoleProcess;
let port: number;
let metricsPort: number;
let bus: Bus;
let fleetKey: Uint8Array;
/** Every ack ACCEPTED_DURABLE seen in this file, by event id (part 4 checks them). */
const durable = new Set<string>();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

async function receivedLive(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return Number(/^tapflow_taps_received_total\{kind="live"\} (\d+)/m.exec(text)?.[1] ?? 0);
}

/** A client on a connection of its own (grpc-js would otherwise share one between clients). */
function ownClient(): TerminalIngestClient {
  return new TerminalIngestClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

/** Writes the taps on one StreamTaps call, half-closes, and collects every ack (reading them). */
function streamAll(client: TerminalIngestClient, terminalId: string, taps: Tap[], deadlineMs = 120_000): Promise<{ acks: TapAck[]; error?: grpc.ServiceError }> {
  const call = client.streamTaps(terminalMetadata(fleetKey, terminalId), { deadline: Date.now() + deadlineMs });
  const acks: TapAck[] = [];
  return new Promise((resolve) => {
    call.on('data', (a: TapAck) => acks.push(a));
    call.on('end', () => resolve({ acks }));
    call.on('error', (error: grpc.ServiceError) => resolve({ acks, error }));
    for (const t of taps) call.write(t);
    call.end();
  });
}

function upload(client: TerminalIngestClient, terminalId: string, taps: Tap[]): Promise<{ ok: true; value: BatchAck } | { ok: false; error: grpc.ServiceError }> {
  return new Promise((resolve) =>
    client.uploadBatch({ terminalId, taps }, terminalMetadata(fleetKey, terminalId), { deadline: Date.now() + 120_000 }, (error, value) => resolve(error ? { ok: false, error } : { ok: true, value: value! })),
  );
}

function remember(acks: { status: TapStatus; eventId: string }[]): void {
  for (const a of acks) if (a.status === TapStatus.ACCEPTED_DURABLE) durable.add(a.eventId);
}

const countBy = (acks: { status: TapStatus }[]) => {
  const c: Record<string, number> = {};
  for (const a of acks) c[TapStatus[a.status]] = (c[TapStatus[a.status]] ?? 0) + 1;
  return c;
};

/** Event ids of every tap the TAPS stream holds, read (and acknowledged: room made) through the validators' consumers. */
async function drainTaps(): Promise<string[]> {
  const ids: string[] = [];
  for (const c of consumerPlan(4).filter((x) => x.stream === 'TAPS')) {
    const consumer = await bus.js.consumers.get('TAPS', c.name);
    for (;;) {
      const pending = (await consumer.info()).num_pending;
      if (pending === 0) break;
      const batch = await consumer.fetch({ max_messages: Math.min(500, pending), expires: 2000 });
      for await (const m of batch) {
        for (const t of splitTapBundle(m.data)) ids.push(decodeBusTap(t).tap.eventId);
        m.ack();
      }
    }
  }
  return ids;
}
const stored: string[] = [];

beforeAll(async () => {
  nats = await startTestNats();
  dataDir = await mkdtemp(join(tmpdir(), 'tapflow-overload-'));
  const env: Record<string, string> = {
    ...(testPipelineSettings(nats.url, dataDir) as Record<string, string>),
    TAPFLOW_LOG_LEVEL: 'info',
    TAPFLOW_MAX_INFLIGHT: String(MAX_INFLIGHT),
    TAPFLOW_BATCH_MAX_TAPS: String(BATCH_MAX_TAPS),
    TAPFLOW_STREAM_MAX_BYTES: String(STREAM_MAX_BYTES),
  };
  const cfg = loadConfig({}, env);
  prepareSharedKeys(cfg);
  fleetKey = localKeys(cfg).fleetKey;
  await setupBus(nats.url, env);
  ingest = spawnRole('ingest', { env });
  port = await ingestPortOf(ingest, 60_000);
  metricsPort = (await ingest.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('metrics, /healthz') && typeof l.port === 'number')).port as number;
  bus = await connectBus(nats.url, 'overload-test', createLogger('warn'));
}, 120_000);

afterAll(async () => {
  await bus?.close();
  await ingest?.stop();
  await nats?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('ingest under overload, over the wire', () => {
  it('pauses a stream whose client stops reading its acks, while another stream goes on', async () => {
    const slow = 'BJ-RAIL-0601';
    // Far more taps than the flow-control windows and buffers on the way hold (the server's
    // HTTP/2 receive window, the chunk grpc-js is decoding, the acks waiting to be written):
    // where the stream stops depends on which chunk the first refused write falls in, never on N.
    const N = 20_000;
    // A hand-written HTTP/2 client with a 1 KiB stream window that never reads its answer.
    const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 1024 } });
    const headers: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': '/tapflow.v1.TerminalIngest/StreamTaps', 'content-type': 'application/grpc', te: 'trailers' };
    for (const [k, v] of Object.entries(terminalMetadata(fleetKey, slow).getMap())) headers[k] = String(v);
    const req = session.request(headers, { endStream: false });
    req.pause();
    const before = await receivedLive();
    let written = 0;
    for (let i = 1; i <= N; i++) req.write(grpcFrame(Tap.encode(tap(slow, i)).finish()), () => written++);
    req.end();

    // Ingest reads some taps, answers them until the client's window and the call's buffers are
    // full, then stops reading: the count of taps it received stops growing far below N.
    let read = 0;
    for (let stable = 0; stable < 10; ) {
      await sleep(200);
      const now = (await receivedLive()) - before;
      stable = now === read ? stable + 1 : 0;
      read = now;
    }
    console.log(`paused after ${read} of ${N} taps read`);
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(N / 4);
    expect(written).toBeLessThan(N);

    // Another terminal, on a connection of its own, is served meanwhile.
    const other = ownClient();
    const fast = 'BJ-RAIL-0602';
    const out = await streamAll(other, fast, Array.from({ length: 300 }, (_, i) => tap(fast, i + 1)), 30_000);
    other.close();
    expect(out.error).toBeUndefined();
    expect(out.acks).toHaveLength(300);
    expect(countBy(out.acks)).toEqual({ ACCEPTED_DURABLE: 300 });
    remember(out.acks);
    // The paused stream is still paused.
    expect((await receivedLive()) - before - 300).toBe(read);

    // The slow client reads again: every one of its taps is answered, durably.
    const chunks: Buffer[] = [];
    const ended = new Promise<void>((resolve) => {
      req.on('end', resolve);
      req.on('error', () => resolve());
    });
    let status: string | undefined;
    req.on('trailers', (h) => (status = String(h['grpc-status'])));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.resume();
    await ended;
    session.close();
    const all = Buffer.concat(chunks);
    const acks: ReturnType<typeof readAck>[] = [];
    for (let at = 0; at + 5 <= all.length; ) {
      const len = all.readUInt32BE(at + 1);
      acks.push(readAck(all.subarray(at + 5, at + 5 + len)));
      at += 5 + len;
    }
    expect(status).toBe('0');
    expect(acks).toHaveLength(N);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(N);
    // Read at full speed, the backlog may outrun the in-flight bound for a moment: those taps are
    // answered OVERLOADED (retry with the same seq), nothing else.
    const counts = countBy(acks);
    expect(Object.keys(counts).filter((k) => k !== 'ACCEPTED_DURABLE' && k !== 'OVERLOADED')).toEqual([]);
    remember(acks);
    // The terminal re-sends those with the same seqs, as a real one does: all accepted.
    const again = acks.filter((a) => a.status === TapStatus.OVERLOADED).map((a) => tap(slow, Number(a.seq)));
    if (again.length > 0) {
      const retry = ownClient();
      const redo = await streamAll(retry, slow, again, 30_000);
      retry.close();
      expect(redo.error).toBeUndefined();
      expect(countBy(redo.acks)).toEqual({ ACCEPTED_DURABLE: again.length });
      remember(redo.acks);
    }
    console.log(`resumed: ${JSON.stringify(counts)}; ${again.length} re-sent with the same seqs, all ACCEPTED_DURABLE`);
  }, 120_000);

  it('answers a flood beyond capacity RESOURCE_EXHAUSTED / OVERLOADED, within the documented memory bound', async () => {
    const idle = await rssBytes(ingest.pid);
    const bound = overloadRssBoundBytes({ idleRssBytes: idle, maxInflight: MAX_INFLIGHT, maxMessageBytes: maxMessageBytes(BATCH_MAX_TAPS), requestsAtOnce: FLOOD.connections * (FLOOD.batchesPerConnection + FLOOD.streamsPerConnection) });
    let peak = idle;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await rssBytes(ingest.pid));
        await sleep(20);
      }
    })();

    const clients = Array.from({ length: FLOOD.connections }, ownClient);
    const batchResults: Awaited<ReturnType<typeof upload>>[] = [];
    const tapAcks: TapAck[] = [];
    const streamErrors: grpc.ServiceError[] = [];
    let seq = 1;
    const now = Date.now();
    for (let round = 0; round < FLOOD.rounds; round++) {
      const calls: Promise<void>[] = [];
      clients.forEach((client, c) => {
        const terminalId = `BJ-BUS-07${String(c).padStart(2, '0')}`;
        for (let b = 0; b < FLOOD.batchesPerConnection; b++) {
          const taps = Array.from({ length: BATCH_MAX_TAPS }, () => ({ ...largestTap({ terminalId, seq: 2 ** 49 + seq++, deviceTime: now - 60_000 }), venueId: VENUE }));
          calls.push(upload(client, terminalId, taps).then((r) => void batchResults.push(r)));
        }
        for (let s = 0; s < FLOOD.streamsPerConnection; s++) {
          const gate = `BJ-RAIL-07${String(c * FLOOD.streamsPerConnection + s).padStart(2, '0')}`;
          const taps = Array.from({ length: FLOOD.tapsPerStream }, () => ({ ...largestTap({ terminalId: gate, seq: 2 ** 49 + seq++, deviceTime: Date.now() }), venueId: VENUE }));
          calls.push(
            streamAll(client, gate, taps).then((r) => {
              tapAcks.push(...r.acks);
              if (r.error) streamErrors.push(r.error);
            }),
          );
        }
      });
      await Promise.all(calls);
    }
    sampling = false;
    await sampler;
    for (const c of clients) c.close();

    const exhausted = batchResults.filter((r) => !r.ok && r.error.code === grpc.status.RESOURCE_EXHAUSTED).length;
    const batchAcks = batchResults.flatMap((r) => (r.ok ? r.value.acks : []));
    for (const r of batchResults) if (!r.ok) expect(r.error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(streamErrors).toEqual([]);
    // Every tap of every stream was answered, one ack each.
    expect(tapAcks).toHaveLength(FLOOD.rounds * FLOOD.connections * FLOOD.streamsPerConnection * FLOOD.tapsPerStream);
    const counts = countBy([...tapAcks, ...batchAcks]);
    console.log(
      `flood: ${batchResults.length} batches (${exhausted} RESOURCE_EXHAUSTED), ${tapAcks.length + batchAcks.length} taps answered ${JSON.stringify(counts)}; ` +
        `RSS idle ${(idle / 1024 ** 2).toFixed(1)} MiB, peak ${(peak / 1024 ** 2).toFixed(1)} MiB, bound ${(bound / 1024 ** 2).toFixed(1)} MiB`,
    );
    expect(exhausted).toBeGreaterThan(0);
    expect(counts.OVERLOADED ?? 0).toBeGreaterThan(0);
    expect(counts.ACCEPTED_DURABLE ?? 0).toBeGreaterThan(0);
    expect(Object.keys(counts).filter((k) => k !== 'ACCEPTED_DURABLE' && k !== 'OVERLOADED')).toEqual([]);
    for (const a of [...tapAcks, ...batchAcks].filter((x) => x.status === TapStatus.OVERLOADED)) expect(a.reason).toMatch(/^RESOURCE_EXHAUSTED: .*retry with the same seq/);
    remember([...tapAcks, ...batchAcks]);
    expect(peak).toBeLessThanOrEqual(bound);
  }, 300_000);

  it('answers taps that meet a full stream OVERLOADED, stores none of them, and accepts them after room is made', async () => {
    const gate = 'BJ-RAIL-0801';
    // Fill what room the flood left with taps of this size, until a stream of them is refused as a whole.
    let filler = 1;
    for (let i = 0; i < 50; i++) {
      const c = ownClient();
      const out = await streamAll(c, 'BJ-RAIL-0802', Array.from({ length: 2000 }, () => tap('BJ-RAIL-0802', filler++)));
      c.close();
      remember(out.acks);
      if (out.acks.every((a) => a.status === TapStatus.OVERLOADED)) break;
    }
    const info = await bus.jsm.streams.info('TAPS');
    expect(info.config.max_bytes).toBe(STREAM_MAX_BYTES);

    const client = ownClient();
    const taps = Array.from({ length: 50 }, (_, i) => tap(gate, i + 1));
    const full = await streamAll(client, gate, taps, 30_000);
    expect(full.error).toBeUndefined();
    expect(full.acks).toHaveLength(50);
    expect(countBy(full.acks)).toEqual({ OVERLOADED: 50 });
    for (const a of full.acks) expect(a.reason).toMatch(/^RESOURCE_EXHAUSTED: stream full: .*retry with the same seq/);
    // Refused, so not stored: the stream holds no tap of this gate.
    stored.push(...(await drainTaps()));
    expect(stored.filter((id) => id.startsWith(`${gate}:`))).toEqual([]);

    // Room made (the taps read above were acknowledged: interest retention removed them); the
    // same taps re-sent with the same seqs are accepted.
    expect((await bus.jsm.streams.info('TAPS')).state.messages).toBe(0);
    const retry = await streamAll(client, gate, taps, 30_000);
    client.close();
    expect(countBy(retry.acks)).toEqual({ ACCEPTED_DURABLE: 50 });
    remember(retry.acks);
  }, 300_000);

  it('keeps every tap answered ACCEPTED_DURABLE in the TAPS stream exactly once', async () => {
    stored.push(...(await drainTaps()));
    const times = new Map<string, number>();
    for (const id of stored) times.set(id, (times.get(id) ?? 0) + 1);
    const missing = [...durable].filter((id) => !times.has(id));
    const twice = [...times].filter(([, n]) => n > 1).map(([id]) => id);
    expect(durable.size).toBeGreaterThan(5000);
    expect(missing).toEqual([]);
    expect(twice).toEqual([]);
    // Nothing was stored that was not answered ACCEPTED_DURABLE.
    expect([...times.keys()].filter((id) => !durable.has(id))).toEqual([]);
  }, 120_000);
});
