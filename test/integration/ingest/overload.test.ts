/**
 * Back pressure with TAPFLOW_MAX_INFLIGHT=1: taps beyond the bound are answered OVERLOADED
 * (retry with the same seq), a batch over it is RESOURCE_EXHAUSTED, and no tap is ever lost
 * silently: each gets ACCEPTED_DURABLE or OVERLOADED, and every durable one is decided.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { TapStatus, type TapAck } from '../../../src/gen/tapflow/v1/ingest.js';
import { codeOf, stream, tap, uploadBatch } from './grpc-taps.js';

let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline({ TAPFLOW_MAX_INFLIGHT: '1' });
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

describe('ingest - in-flight bound', () => {
  const gate = 'BJ-RAIL-0501';
  const N = 200;
  let acks: TapAck[] = [];

  it('answers OVERLOADED beyond the bound, and every tap either durable or OVERLOADED', async () => {
    const out = await stream(p.client, p.metadata(gate), Array.from({ length: N }, (_, i) => tap(gate, i + 1)));
    expect(out.error).toBeUndefined();
    acks = out.acks;
    expect(acks).toHaveLength(N);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(N);
    const counts: Record<string, number> = {};
    for (const a of acks) counts[TapStatus[a.status]] = (counts[TapStatus[a.status]] ?? 0) + 1;
    expect(Object.keys(counts).sort()).toEqual(['ACCEPTED_DURABLE', 'OVERLOADED']);
    expect(counts.OVERLOADED).toBeGreaterThan(0);
    for (const a of acks.filter((x) => x.status === TapStatus.OVERLOADED)) expect(a.reason).toMatch(/^RESOURCE_EXHAUSTED: .*retry with the same seq/);
  });

  it('stores exactly the durable taps; a retry of the overloaded ones makes the stream complete', async () => {
    const durable = acks.filter((a) => a.status === TapStatus.ACCEPTED_DURABLE).map((a) => a.seq);
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${gate}'`))[0]!.n >= durable.length, 30_000, 'durable taps decided');
    const decided = async () => (await p.query<{ seq: number }>(`SELECT seq FROM decisions WHERE terminal_id = '${gate}' ORDER BY seq`)).map((r) => r.seq);
    expect(await decided()).toEqual([...durable].sort((a, b) => a - b));

    // The terminal retries what was OVERLOADED, one at a time (within the bound), same seq.
    let pending = acks.filter((a) => a.status === TapStatus.OVERLOADED).map((a) => a.seq);
    for (let round = 0; pending.length > 0 && round < 50; round++) {
      const next: number[] = [];
      for (const seq of pending) {
        const [a] = (await stream(p.client, p.metadata(gate), [tap(gate, seq)])).acks;
        if (a?.status !== TapStatus.ACCEPTED_DURABLE && a?.status !== TapStatus.DUPLICATE) next.push(seq);
      }
      pending = next;
    }
    expect(pending).toEqual([]);
    await p.until(async () => (await decided()).length >= N, 30_000, `${N} decisions`);
    expect(await decided()).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  });

  it('refuses a batch larger than the bound with RESOURCE_EXHAUSTED, and counts the refusals', async () => {
    const bus = 'BJ-BUS-0501';
    const r = await uploadBatch(p.client, p.metadata(bus), { terminalId: bus, taps: [tap(bus, 1), tap(bus, 2)] });
    expect(codeOf(r)).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const text = await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text();
    const refused = Number(/^tapflow_ingest_refused_total\{code="TF_INGEST_OVERLOADED"\} (\d+)/m.exec(text)?.[1] ?? 0);
    const overloaded = acks.filter((a) => a.status === TapStatus.OVERLOADED).length;
    expect(refused).toBeGreaterThanOrEqual(overloaded + 1);
  });
});
