/**
 * Consumer backlog per role, stream and partition, read from JetStream consumer info on a timer
 * (src/observe/consumer-lag.ts), on a real nats-server: a partition whose owner is stuck in a
 * batch keeps a growing backlog whose oldest message ages, while a working partition drains to 0
 * — the old gauge, set only after a successful batch, showed the stuck one as it last was.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gauge } from 'prom-client';
import { startTestNats } from '../../support/nats.js';
import { connectBus, type Bus } from '../../../src/bus/connection.js';
import { PartitionWorker } from '../../../src/bus/partitions.js';
import { ensureTopology, openBuckets, type BucketSet } from '../../../src/bus/topology.js';
import { consumerOwner, readConsumerLag, startConsumerLag } from '../../../src/observe/consumer-lag.js';
import { createLogger } from '../../../src/observe/log.js';
import { createMetrics } from '../../../src/observe/metrics.js';
import type { NatsServerHandle } from '../../../src/runtime/nats-server.js';

let nats: NatsServerHandle;
let bus: Bus;
let buckets: BucketSet;
const log = createLogger('silent', { test: true });
const LEASE_MS = 2000;
const PARTITIONS = 2;

beforeAll(async () => {
  nats = await startTestNats();
  bus = await connectBus(nats.url, 'consumer-lag-test', log);
  await ensureTopology(bus, { partitions: PARTITIONS, duplicateWindowS: 120, streamMaxBytes: 64 * 1024 * 1024, streamMaxAgeS: 3600, leaseTtlMs: LEASE_MS, ackWaitS: 30 });
  buckets = await openBuckets(bus, LEASE_MS);
}, 60_000);

afterAll(async () => {
  await bus?.close();
  await nats?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function publish(subject: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await bus.js.publish(subject, new TextEncoder().encode(`m-${subject}-${i}`));
}

async function until(what: string, ok: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function gauge(g: Gauge, labels: Record<string, string>): Promise<number | undefined> {
  return (await g.get()).values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value;
}

describe('consumer lag - read from JetStream consumer info', () => {
  it('names the role and partition of every planned consumer', () => {
    expect(consumerOwner('validator-p3')).toEqual({ role: 'validator', partition: '3' });
    expect(consumerOwner('validator-claims-p12')).toEqual({ role: 'validator', partition: '12' });
    expect(consumerOwner('settler-claims-p0')).toEqual({ role: 'settler', partition: '0' });
    expect(consumerOwner('sink-decisions')).toEqual({ role: 'sink', partition: 'all' });
    expect(consumerOwner('risk-windows')).toEqual({ role: 'risk-windows', partition: 'all' });
    expect(consumerOwner('risk-windows-claims')).toEqual({ role: 'risk-windows', partition: 'all' });
    expect(consumerOwner('someone-elses')).toBeUndefined();
  });

  it('a stalled partition shows a growing backlog and an ageing oldest message; a working one drains', async () => {
    let release!: () => void;
    const stuck = new Promise<void>((r) => (release = r));
    const handled: number[] = [];
    const worker = new PartitionWorker({
      bus,
      leases: buckets.leases,
      role: 'validator',
      instanceId: 'lag-test-1',
      partitions: PARTITIONS,
      leaseTtlMs: LEASE_MS,
      batch: 4,
      log,
      maxDeliver: 20,
      deadLetter: async () => {},
      handler: {
        consumers: (p) => [{ stream: 'TAPS', durable: `validator-p${p}` }],
        // Partition 1's owner hangs in its first batch (a stalled dependency, a deadlock).
        handle: async (p, _spec, msgs) => {
          if (p === 1) await stuck;
          handled.push(...msgs.map(() => p));
        },
      },
    });
    const metrics = createMetrics({ processMetrics: false });
    await worker.start();
    const lag = startConsumerLag({ bus, partitions: PARTITIONS, roles: ['validator'], intervalMs: 1000, metrics, log });
    try {
      await publish('tapflow.taps.0', 10);
      await publish('tapflow.taps.1', 10);
      await until('partition 0 processed', async () => handled.filter((p) => p === 0).length === 10);

      const p1 = { role: 'validator', stream: 'TAPS', partition: '1' };
      const p0 = { role: 'validator', stream: 'TAPS', partition: '0' };
      // The timer's next read after both partitions got their taps.
      await until('partition 1 backlog in the gauge', async () => (await gauge(metrics.consumerPending, p1)) === 10);
      await until('partition 0 drained in the gauge', async () => (await gauge(metrics.consumerPending, p0)) === 0);
      expect(await gauge(metrics.consumerOldestAge, p0)).toBe(0);
      expect(await gauge(metrics.consumerPending, p1)).toBe(10);
      const age1 = (await gauge(metrics.consumerOldestAge, p1))!;
      expect(age1).toBeGreaterThan(0);

      // More taps arrive for the stuck partition: its backlog grows, its oldest message ages.
      await sleep(2000);
      await publish('tapflow.taps.1', 5);
      await until('partition 1 backlog grown', async () => (await gauge(metrics.consumerPending, p1)) === 15);
      expect((await gauge(metrics.consumerOldestAge, p1))!).toBeGreaterThan(age1 + 1);
      // risk-windows comes with a validator process: its consumer reads all partitions' decisions.
      expect(await gauge(metrics.consumerPending, { role: 'risk-windows', stream: 'DECISIONS', partition: 'all' })).toBe(0);

      // Released, the partition catches up and both gauges fall to 0.
      release();
      await until('partition 1 processed', async () => handled.filter((p) => p === 1).length === 15);
      await until('partition 1 drained in the gauge', async () => (await gauge(metrics.consumerPending, p1)) === 0);
      expect(await gauge(metrics.consumerOldestAge, p1)).toBe(0);
    } finally {
      release();
      await lag.stop();
      await worker.stop();
    }
  }, 60_000);

  it('the sink consumers: one series per stream with partition "all", the oldest message by its stream time', async () => {
    await publish('tapflow.settlements.1', 3);
    const before = Date.now();
    await sleep(1100);
    const lags = await readConsumerLag(bus, PARTITIONS, new Set(['sink']));
    expect(lags.map((l) => `${l.consumer} ${l.stream} ${l.partition}`).sort()).toEqual(['sink-decisions DECISIONS all', 'sink-risk RISK all', 'sink-settlements SETTLEMENTS all']);
    const settlements = lags.find((l) => l.consumer === 'sink-settlements')!;
    expect(settlements.pending).toBe(3);
    expect(settlements.oldestAgeS).toBeGreaterThanOrEqual(1);
    expect(settlements.oldestAgeS).toBeLessThanOrEqual((Date.now() - before) / 1000 + 1);
  });
});
