/**
 * A partition's keyed state against a real nats-server: one changelog message per batch, a new
 * owner restoring what the old one committed, fencing of a stale owner's append, checkpoints to
 * the KV bucket taken while batches go on, and memory bounded by eviction of clean keys.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNats } from '../../support/nats.js';
import { connectBus, type Bus } from '../../../src/bus/connection.js';
import { stateCodec, PartitionState } from '../../../src/bus/partition-state.js';
import { JsPublisher } from '../../../src/bus/publisher.js';
import { Buckets, Streams } from '../../../src/bus/subjects.js';
import { ensureTopology, openBuckets, type BucketSet } from '../../../src/bus/topology.js';
import { TapflowError } from '../../../src/domain/reasons.js';
import { createLogger } from '../../../src/observe/log.js';
import type { NatsServerHandle } from '../../../src/runtime/nats-server.js';

let nats: NatsServerHandle;
let bus: Bus;
let buckets: BucketSet;
let publisher: JsPublisher;
const log = createLogger('silent', { test: true });

beforeAll(async () => {
  nats = await startTestNats();
  bus = await connectBus(nats.url, 'partition-state-test', log);
  await ensureTopology(bus, { partitions: 4, duplicateWindowS: 120, streamMaxBytes: 64 * 1024 * 1024, streamMaxAgeS: 3600, leaseTtlMs: 2000, ackWaitS: 5 });
  buckets = await openBuckets(bus, 2000);
  publisher = new JsPublisher(bus.nc, 2000);
}, 60_000);

afterAll(async () => {
  publisher?.close();
  await bus?.close();
  await nats?.stop();
});

type V = { n: number };
/** An owner of `partition` of a test role (each test its own partition: no shared changelog). */
const owner = (partition: number, maxCached = 1000) =>
  new PartitionState<V>({ role: 'test', partition, bus, publisher, kv: buckets.validatorState, bucket: Buckets.VALIDATOR_STATE, codec: stateCodec<V>(), maxCached, log });

/** Sets keys as one batch and commits it. */
async function batch(s: PartitionState<V>, values: Record<string, number>): Promise<void> {
  await s.load(Object.keys(values));
  for (const [k, n] of Object.entries(values)) s.set(k, { n });
  await s.commit();
}

async function restored(partition: number, maxCached?: number): Promise<PartitionState<V>> {
  const s = owner(partition, maxCached);
  await s.restore();
  return s;
}

async function kvValue(key: string): Promise<V | undefined> {
  const e = await buckets.validatorState.get(key);
  return e && e.operation === 'PUT' && e.value.length > 0 ? stateCodec<V>().decode(e.value) : undefined;
}

describe('partition state', () => {
  it('makes a batch durable as one changelog message; a new owner restores it', async () => {
    const a = await restored(0);
    const before = (await bus.jsm.streams.info(Streams.STATE.name)).state.messages;
    await batch(a, { 'p0.a': 1, 'p0.b': 2, 'p0.c': 3 });
    await batch(a, { 'p0.a': 4 });
    expect((await bus.jsm.streams.info(Streams.STATE.name)).state.messages - before).toBe(2);

    const b = owner(0);
    const r = await b.restore();
    expect(r.messages).toBe(2);
    await b.load(['p0.a', 'p0.b', 'p0.c', 'p0.none']);
    expect([b.get('p0.a'), b.get('p0.b'), b.get('p0.c'), b.get('p0.none')]).toEqual([{ n: 4 }, { n: 2 }, { n: 3 }, undefined]);
  });

  it("refuses a stale owner's append (fencing), rolls its batch back and restores before the next", async () => {
    const old = await restored(1);
    await batch(old, { 'p1.a': 1 });
    const next = await restored(1);
    await batch(next, { 'p1.a': 2 });

    await old.load(['p1.a']);
    old.set('p1.a', { n: 99 });
    const err = await old.commit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TapflowError);
    expect((err as TapflowError).code).toBe('TF_STATE_CONFLICT');
    expect(old.needsRestore).toBe(true);
    expect(old.get('p1.a')).toEqual({ n: 1 });
    await old.restore();
    await old.load(['p1.a']);
    expect(old.get('p1.a')).toEqual({ n: 2 });
  });

  it('checkpoints to the KV bucket: the next owner replays nothing and reads the keys from KV', async () => {
    const a = await restored(2);
    await batch(a, { 'p2.a': 1, 'p2.b': 2 });
    await batch(a, { 'p2.b': 3 });
    expect(a.pending).toBe(2);
    await a.checkpoint();
    expect(a.pending).toBe(0);
    expect([await kvValue('p2.a'), await kvValue('p2.b')]).toEqual([{ n: 1 }, { n: 3 }]);

    const b = owner(2);
    const r = await b.restore();
    expect(r.messages).toBe(0);
    await b.load(['p2.a', 'p2.b']);
    expect([b.get('p2.a'), b.get('p2.b')]).toEqual([{ n: 1 }, { n: 3 }]);
  });

  it('goes on with batches while a checkpoint is written; a key changed meanwhile stays dirty', async () => {
    const a = await restored(3);
    await batch(a, { 'p3.a': 1, 'p3.b': 1 });
    const writing = a.checkpoint();
    // The values were taken when it was called: this batch is not in this checkpoint.
    await batch(a, { 'p3.a': 2 });
    await writing;
    expect(await kvValue('p3.a')).toEqual({ n: 1 });
    expect(a.pending).toBe(1);
    await a.checkpoint();
    expect(await kvValue('p3.a')).toEqual({ n: 2 });
    expect(a.pending).toBe(0);

    // The changelog after the mark replays what the bucket lacks.
    await batch(a, { 'p3.b': 5 });
    const b = owner(3);
    expect((await b.restore()).messages).toBe(1);
    await b.load(['p3.a', 'p3.b']);
    expect([b.get('p3.a'), b.get('p3.b')]).toEqual([{ n: 2 }, { n: 5 }]);
  });

  it('keeps memory bounded: clean keys beyond the bound are dropped and read again from KV', async () => {
    const a = await restored(0, 10);
    const values = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`p0.e${i}`, i]));
    await batch(a, values);
    // Dirty keys stay until checkpointed.
    expect(a.size).toBeGreaterThanOrEqual(30);
    await a.checkpoint();
    expect(a.size).toBeLessThanOrEqual(10);
    await a.load(Object.keys(values));
    expect(Object.keys(values).map((k) => a.get(k)?.n)).toEqual(Object.values(values));
  });

  it('does not read keys it knows are new; reads every key a checkpoint wrote (no key missed)', async () => {
    // A partition never checkpointed: nothing of it is in the bucket.
    const p = 5;
    const first = await restored(p);
    const keys = Array.from({ length: 300 }, (_, i) => `p5.k${i}`);
    await first.load(keys);
    expect(first.skippedReads).toBe(300);
    await batch(first, Object.fromEntries(keys.map((k, i) => [k, i])));
    await first.checkpoint();

    // The next owner reads the checkpointed keys (the filter has them) and skips new ones.
    const next = await restored(p, 50);
    await next.load(keys);
    expect(keys.map((k) => next.get(k)?.n)).toEqual(keys.map((_, i) => i));
    const before = next.skippedReads;
    await next.load(['p5.new1', 'p5.new2']);
    expect(next.skippedReads - before).toBeGreaterThanOrEqual(1);
    expect([next.get('p5.new1'), next.get('p5.new2')]).toEqual([undefined, undefined]);
  });

  it('reads values written as JSON by earlier versions, and writes MessagePack', async () => {
    const codec = stateCodec<V>();
    expect(codec.decode(new TextEncoder().encode('{"n":7}'))).toEqual({ n: 7 });
    const packed = codec.encode({ n: 7 });
    expect(packed[0]).not.toBe(0x7b);
    expect(packed.length).toBeLessThan('{"n":7}'.length);
    expect(codec.decode(packed)).toEqual({ n: 7 });
  });

  it('keeps committed values as their bytes: get() gives a copy, the batch in hand its own objects', async () => {
    const s = await restored(6);
    await s.load(['p6.a']);
    s.set('p6.a', { n: 1 });
    // In the batch: the object set is the object read.
    expect(s.get('p6.a')).toBe(s.get('p6.a'));
    await s.commit();
    // Committed: decoded from the bytes on each read — equal values, never a shared object that a
    // caller could change without set().
    const first = s.get('p6.a');
    expect(first).toEqual({ n: 1 });
    first!.n = 99;
    expect(s.get('p6.a')).toEqual({ n: 1 });
    // The checkpoint writes the bytes the changelog holds; the next owner reads the same value.
    await s.checkpoint();
    expect(await kvValue('p6.a')).toEqual({ n: 1 });
    s.set('p6.a', { n: 2 });
    s.rollback();
    expect(s.get('p6.a')).toEqual({ n: 1 });
  });

  it('visits only the keys due (dueEntries), after a restore too; keys the batch in hand changed are not', async () => {
    const withDue = (partition: number) =>
      new PartitionState<V>({ role: 'test', partition, bus, publisher, kv: buckets.validatorState, bucket: Buckets.VALIDATOR_STATE, codec: stateCodec<V>(), maxCached: 1000, log, due: (k, v) => (k.endsWith('.none') ? undefined : v.n) });
    const a = withDue(7);
    await a.restore();
    await a.load(['p7.k10', 'p7.k20', 'p7.k30', 'p7.none']);
    a.set('p7.k10', { n: 10 });
    a.set('p7.k20', { n: 20 });
    a.set('p7.k30', { n: 30 });
    a.set('p7.none', { n: 0 });
    expect([...a.dueEntries(100)]).toEqual([]); // not committed yet
    await a.commit();
    expect([...a.dueEntries(5)].map(([k]) => k)).toEqual([]);
    expect([...a.dueEntries(20)]).toEqual([
      ['p7.k10', { n: 10 }],
      ['p7.k20', { n: 20 }],
    ]);
    a.set('p7.k10', { n: 40 });
    expect([...a.dueEntries(20)].map(([k]) => k)).toEqual(['p7.k20']);
    await a.commit();
    expect([...a.dueEntries(35)].map(([k]) => k)).toEqual(['p7.k20', 'p7.k30']);

    // A new owner knows the deadlines from the changelog it replays.
    const b = withDue(7);
    await b.restore();
    expect([...b.dueEntries(35)].map(([k]) => k).sort()).toEqual(['p7.k20', 'p7.k30']);
    expect([...b.dueEntries(1000)].map(([k]) => k).sort()).toEqual(['p7.k10', 'p7.k20', 'p7.k30']);
  });
});
