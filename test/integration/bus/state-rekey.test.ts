/**
 * Re-keying a partition's state on a token key rotation, against a real nats-server: a value
 * under a previous token moves to the current one (and through a rollback back again), the old
 * key is removed in the changelog and — after a checkpoint — in the KV bucket as a delete marker,
 * so that listing the durable keys (`tapflow token-keys status`) no longer counts it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNats } from '../../support/nats.js';
import { connectBus, type Bus } from '../../../src/bus/connection.js';
import { durableKeys, stateCodec, PartitionState } from '../../../src/bus/partition-state.js';
import { JsPublisher } from '../../../src/bus/publisher.js';
import { Buckets } from '../../../src/bus/subjects.js';
import { ensureTopology, openBuckets, type BucketSet } from '../../../src/bus/topology.js';
import { createLogger } from '../../../src/observe/log.js';
import type { NatsServerHandle } from '../../../src/runtime/nats-server.js';

let nats: NatsServerHandle;
let bus: Bus;
let buckets: BucketSet;
let publisher: JsPublisher;
const log = createLogger('silent', { test: true });
const OLD = 'a'.repeat(32);
const NEW = `k2.${'b'.repeat(32)}`;
const OTHER = 'c'.repeat(32);

beforeAll(async () => {
  nats = await startTestNats();
  bus = await connectBus(nats.url, 'state-rekey-test', log);
  await ensureTopology(bus, { partitions: 2, duplicateWindowS: 120, streamMaxBytes: 64 * 1024 * 1024, streamMaxAgeS: 3600, leaseTtlMs: 2000, ackWaitS: 5 });
  buckets = await openBuckets(bus, 2000);
  publisher = new JsPublisher(bus.nc, 2000);
}, 60_000);

afterAll(async () => {
  publisher?.close();
  await bus?.close();
  await nats?.stop();
});

type V = { n: number; token?: string };
const owner = () => new PartitionState<V>({ role: 'test', partition: 1, bus, publisher, kv: buckets.validatorState, bucket: Buckets.VALIDATOR_STATE, codec: stateCodec<V>(), maxCached: 1000, log });

describe('re-keying state', () => {
  it('moves a value from a previous token to the current one, durably, and forgets the old key', async () => {
    const a = owner();
    await a.restore();
    await a.load([OLD, OTHER]);
    a.set(OLD, { n: 7, token: OLD });
    a.set(OTHER, { n: 1 });
    await a.commit();
    await a.checkpoint();
    expect([...(await durableKeys(bus, buckets.validatorState, 'test', 2))].filter((k) => !k.startsWith('_')).sort()).toEqual([OLD, OTHER]);

    // A batch that fails before its commit: the move is undone.
    const b = owner();
    await b.restore();
    await b.loadAliased([{ key: NEW, previous: [OLD] }]);
    expect(b.rekey(NEW, [OLD], (v) => ({ ...v, token: NEW }))).toBe(OLD);
    expect(b.get(NEW)).toEqual({ n: 7, token: NEW });
    expect(b.get(OLD)).toBeUndefined();
    b.rollback();
    expect(b.get(OLD)).toEqual({ n: 7, token: OLD });
    expect(b.get(NEW)).toBeUndefined();

    // Again, committed: the value is under the new key; a second rekey finds nothing to move.
    await b.loadAliased([{ key: NEW, previous: [OLD] }]);
    expect(b.rekey(NEW, [OLD], (v) => ({ ...v, token: NEW }))).toBe(OLD);
    expect(b.rekey(NEW, [OLD])).toBeUndefined();
    await b.commit();
    // Before the checkpoint the changelog says the old key is gone; after it the bucket does.
    expect([...(await durableKeys(bus, buckets.validatorState, 'test', 2))].filter((k) => !k.startsWith('_')).sort()).toEqual([OTHER, NEW]);
    await b.checkpoint();
    const listed: string[] = [];
    for await (const k of await buckets.validatorState.keys()) if (!k.startsWith('_')) listed.push(k);
    expect(listed.sort()).toEqual([OTHER, NEW]);

    const c = owner();
    await c.restore();
    await c.loadAliased([{ key: NEW, previous: [OLD] }]);
    expect(c.get(NEW)).toEqual({ n: 7, token: NEW });
    expect(c.get(OLD)).toBeUndefined();
  });

  it('a key that has its own value is not replaced by an old one', async () => {
    const a = owner();
    await a.restore();
    await a.load(['d'.repeat(32), 'k2.' + 'e'.repeat(32)]);
    a.set('d'.repeat(32), { n: 1 });
    a.set('k2.' + 'e'.repeat(32), { n: 2 });
    await a.commit();
    await a.loadAliased([{ key: 'k2.' + 'e'.repeat(32), previous: ['d'.repeat(32)] }]);
    expect(a.rekey('k2.' + 'e'.repeat(32), ['d'.repeat(32)])).toBeUndefined();
    expect(a.get('d'.repeat(32))).toEqual({ n: 1 });
  });
});
