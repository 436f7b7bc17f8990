/**
 * SIGTERM-style drain (app.shutdown) while a stream is open with taps in flight: /healthz and
 * /readyz report draining, every tap the server had received before the drain gets an ack
 * (ACCEPTED_DURABLE, or UNAVAILABLE: not durable, retry), the stream the client keeps open ends
 * with UNAVAILABLE (re-send what was not answered) rather than OK, a new call during the drain is
 * refused UNAVAILABLE, and after a restart every tap acknowledged durable is decided and stored —
 * nothing acknowledged is lost.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { startApp, type RunningApp } from '../../../src/runtime/app.js';
import { ROLE_FACTORIES } from '../../../src/cli/roles.js';
import { createLogger } from '../../../src/observe/log.js';
import { TapStatus, TerminalIngestClient, type Tap, type TapAck } from '../../../src/gen/tapflow/v1/ingest.js';
import { tap } from './grpc-taps.js';

let p: TestPipeline;
let restarted: RunningApp | undefined;

beforeAll(async () => {
  p = await startTestPipeline({ TAPFLOW_SHUTDOWN_TIMEOUT_MS: '30000' });
}, 120_000);

afterAll(async () => {
  await restarted?.shutdown('test done');
  await p?.stop();
});

/** Sum of a counter's series (all labels), read synchronously enough: no collect() on ours. */
async function counter(c: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await c.get()).values.reduce((n, v) => n + v.value, 0);
}

describe('ingest - drain on shutdown', () => {
  const gate = 'BJ-RAIL-0701';
  const N = 3000;
  const acks = new Map<number, TapAck[]>();
  let receivedBeforeDrain = 0;
  let inflightAtDrain = 0;
  let callEnd: { error?: grpc.ServiceError } = {};
  let duringDrain: grpc.status | 'OK' | undefined;
  let health: { healthz: number; body: string; readyz: number } | undefined;

  it('acks every tap received before the drain and refuses new calls during it', async () => {
    const m = p.app.ctx.metrics;
    const receivedAtStart = await counter(m.tapsReceived);
    const call = p.client.streamTaps(p.metadata(gate));
    let shutdown: Promise<void> | undefined;
    const ended = new Promise<void>((resolve) => {
      call.on('end', () => resolve());
      call.on('error', (error: grpc.ServiceError) => {
        callEnd = { error };
        resolve();
      });
    });
    call.on('data', (a: TapAck) => {
      acks.set(a.seq, [...(acks.get(a.seq) ?? []), a]);
      // Client and server share this event loop: start the drain at a moment when the server
      // has publishes waiting for their PubAck, some way into the stream.
      if (!shutdown && acks.size >= 200 && p.app.ctx.publisher.inflight > 0) {
        inflightAtDrain = p.app.ctx.publisher.inflight;
        // hashMap reads are synchronous: nothing is received between this and the drain's start.
        const values = (m.tapsReceived as unknown as { hashMap: Record<string, { value: number }> }).hashMap;
        receivedBeforeDrain = Object.values(values).reduce((n, v) => n + v.value, 0) - receivedAtStart;
        shutdown = p.app.shutdown('test: SIGTERM');
        void (async () => {
          const h = await fetch(`http://127.0.0.1:${p.app.metricsPort}/healthz`);
          const r = await fetch(`http://127.0.0.1:${p.app.metricsPort}/readyz`);
          health = { healthz: h.status, body: await h.text(), readyz: r.status };
        })().catch(() => undefined);
        // A new call now is refused (the server is draining, or already gone).
        const late = p.client.streamTaps(p.metadata('BJ-RAIL-0702'), { deadline: Date.now() + 5000 });
        late.on('data', () => (duringDrain = 'OK'));
        late.on('error', (e: grpc.ServiceError) => (duringDrain ??= e.code));
        late.on('end', () => (duringDrain ??= 'OK'));
        late.write(tap('BJ-RAIL-0702', 1));
        late.end();
      }
    });
    let over = false;
    void ended.then(() => (over = true));
    const write = (t: Tap) => new Promise<void>((resolve) => (call.write(t) ? resolve() : call.once('drain', resolve)));
    // The client keeps the stream open and keeps sending through the drain, as a gate would.
    for (let s = 1; s <= N && !over; s++) {
      await write(tap(gate, s));
      if (shutdown) await new Promise((r) => setTimeout(r, 2));
    }
    await ended;
    await shutdown;
    await p.until(async () => duringDrain !== undefined, 10_000, 'the late call to end');

    expect(shutdown, 'the drain never started: no publish was in flight after 200 acks').toBeDefined();
    expect(inflightAtDrain).toBeGreaterThan(0);
    expect(receivedBeforeDrain).toBeGreaterThan(0);
    // A stream's taps arrive in order: the first receivedBeforeDrain seqs were on the server.
    for (let s = 1; s <= receivedBeforeDrain; s++) {
      const a = acks.get(s);
      expect(a, `tap ${s} received before the drain has no ack`).toBeDefined();
      expect(a).toHaveLength(1);
      expect(['ACCEPTED_DURABLE', 'UNAVAILABLE']).toContain(TapStatus[a![0]!.status]);
    }
    // Taps that reached it during the drain are refused, never silently accepted.
    for (const [seq, list] of acks) if (seq > receivedBeforeDrain) expect(list.map((a) => TapStatus[a.status]), `tap ${seq}`).toEqual(['UNAVAILABLE']);
    // Not OK: the client did not half-close, so it must learn to re-send what was not answered.
    expect(callEnd.error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(callEnd.error?.details).toMatch(/re-send every tap not answered/);
    expect(duringDrain).toBe(grpc.status.UNAVAILABLE);
    expect(health).toEqual({ healthz: 503, body: 'draining\n', readyz: 503 });
  });

  it('after a restart, every tap acknowledged durable is decided and stored once', async () => {
    const durable = [...acks.values()].flat().filter((a) => a.status === TapStatus.ACCEPTED_DURABLE).map((a) => a.seq);
    expect(durable.length).toBeGreaterThan(0);
    // The same deployment starts again: same NATS, same data dir (the embedded ClickHouse store).
    restarted = await startApp(
      p.cfg,
      (['ingest', 'validator', 'settler', 'sink'] as const).map((r) => ({ name: r, create: ROLE_FACTORIES[r] })),
      { installSignalHandlers: false, log: createLogger(p.cfg.TAPFLOW_LOG_LEVEL, { test: true, restarted: true }) },
    );
    const engine = restarted.ctx.engine!;
    const decided = async () => engine.query<{ seq: number; n: number }>(`SELECT seq, count() AS n FROM decisions WHERE terminal_id = '${gate}' GROUP BY seq ORDER BY seq`);
    await p.until(async () => (await decided()).length >= durable.length, 60_000, `${durable.length} durable taps decided`);
    const rows = await decided();
    const stored = new Set(rows.map((r) => r.seq));
    const missing = durable.filter((s) => !stored.has(s));
    expect(missing).toEqual([]);
    expect(rows.filter((r) => r.n !== 1)).toEqual([]);
    // Nothing that was refused got in either.
    const refused = new Set([...acks.values()].flat().filter((a) => a.status !== TapStatus.ACCEPTED_DURABLE).map((a) => a.seq));
    expect(rows.filter((r) => refused.has(r.seq))).toEqual([]);

    // The restarted ingest takes taps again.
    const ingest = restarted.roles.find((r) => r.name === 'ingest') as unknown as { port: number };
    const client = new TerminalIngestClient(`127.0.0.1:${ingest.port}`, grpc.credentials.createInsecure());
    try {
      const call = client.streamTaps(p.metadata(gate));
      const got = await new Promise<TapAck>((resolve, reject) => {
        call.on('data', resolve);
        call.on('error', reject);
        call.write(tap(gate, N + 1));
      });
      call.end();
      expect(TapStatus[got.status]).toBe('ACCEPTED_DURABLE');
    } finally {
      client.close();
    }
  });
});
