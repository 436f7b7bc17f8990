/**
 * nats-server dies mid-stream: no tap may be answered ACCEPTED_DURABLE unless it is in
 * JetStream, the stream must keep answering (UNAVAILABLE) during the outage, and recover when
 * nats-server is back; every durable tap then reaches ClickHouse exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as grpc from '@grpc/grpc-js';
import { startTestPipeline, type TestPipeline } from '../support/pipeline.js';
import { TapStatus, Direction, Scene, RiderCategory, type Tap, type TapAck } from '../../src/gen/tapflow/v1/ingest.js';

let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline();
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

const terminal = 'BJ-RAIL-0042';
function tap(seq: number): Tap {
  // Each tap a different card (the MAC is not checked for durability; a bad MAC is still a decision).
  return {
    terminalId: terminal,
    seq,
    deviceTime: Date.now(),
    scene: Scene.RAIL,
    venueId: 'bj-subway:西直门',
    direction: Direction.ENTRY,
    card: { $case: 'chip', value: { cardNumber: `11${String(50_000_000 + seq).padStart(10, '0')}`, counter: 1, mac: Buffer.alloc(8) } },
    amountFen: 0,
    riderCategory: RiderCategory.ADULT,
  };
}

describe('pipeline - nats-server outage', () => {
  it('never acknowledges a tap as durable that is not, and recovers after the outage', async () => {
    const call: grpc.ClientDuplexStream<Tap, TapAck> = p.client.streamTaps(p.metadata(terminal));
    const last = new Map<number, TapAck>();
    const all: TapAck[] = [];
    call.on('data', (a: TapAck) => {
      last.set(a.seq, a);
      all.push(a);
    });
    const ended = new Promise<void>((resolve, reject) => {
      call.on('end', resolve);
      call.on('error', reject);
    });
    const send = async (from: number, to: number) => {
      for (let s = from; s <= to; s++) {
        call.write(tap(s));
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const waitAcks = (n: number) => p.until(async () => all.length >= n, 20_000, `${n} acks`);

    await send(1, 100);
    await waitAcks(100);
    await p.nats.kill();
    await send(101, 200); // during the outage
    await waitAcks(200);
    const duringOutage = all.slice(100).map((a) => TapStatus[a.status]);
    expect(duringOutage.filter((s) => s === 'UNAVAILABLE').length).toBeGreaterThan(0);
    await p.nats.restart();
    await p.until(async () => p.app.ctx.bus.connected(), 20_000, 'reconnect');
    await send(201, 300);
    await waitAcks(300);
    // The terminal retries what was not durable, with the same seq.
    let retries = [...last.values()].filter((a) => a.status !== TapStatus.ACCEPTED_DURABLE && a.status !== TapStatus.DUPLICATE).map((a) => a.seq);
    for (let round = 0; retries.length > 0 && round < 20; round++) {
      const before = all.length;
      for (const s of retries) call.write(tap(s));
      await waitAcks(before + retries.length);
      retries = [...last.values()].filter((a) => a.status !== TapStatus.ACCEPTED_DURABLE && a.status !== TapStatus.DUPLICATE).map((a) => a.seq);
      if (retries.length > 0) await new Promise((r) => setTimeout(r, 500));
    }
    call.end();
    await ended;
    expect(retries).toEqual([]);
    for (let s = 1; s <= 300; s++) expect(['ACCEPTED_DURABLE', 'DUPLICATE']).toContain(TapStatus[last.get(s)!.status]);

    // Every tap ever answered ACCEPTED_DURABLE (or DUPLICATE: already stored) is decided and stored exactly once.
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${terminal}'`))[0]!.n >= 300, 60_000, '300 decisions');
    const rows = await p.query<{ seq: number; n: number }>(`SELECT seq, count() AS n FROM decisions WHERE terminal_id = '${terminal}' GROUP BY seq ORDER BY seq`);
    expect(rows.length).toBe(300);
    expect(rows.every((r) => r.n === 1)).toBe(true);
    const durable = new Set(all.filter((a) => a.status === TapStatus.ACCEPTED_DURABLE).map((a) => a.seq));
    const stored = new Set(rows.map((r) => r.seq));
    for (const s of durable) expect(stored.has(s)).toBe(true);
  }, 180_000);
});
