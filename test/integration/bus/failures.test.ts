/**
 * The failure table, as the partition worker applies it, against a real nats-server: a message
 * the handler cannot process is dead-lettered with its code, reason and original headers and the
 * partition goes on; a batch that fails as a whole is redelivered after a backoff and processed
 * once the failure passes; a failure that outlasts TAPFLOW_MAX_DELIVER deliveries dead-letters
 * the messages as TF_RETRIES_EXHAUSTED instead of retrying forever; a data error thrown for a
 * whole batch dead-letters that batch.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNats } from '../../support/nats.js';
import { connectBus, type Bus } from '../../../src/bus/connection.js';
import { deadLetter } from '../../../src/bus/dead-letter.js';
import { PartitionWorker, type BatchOutcome, type ConsumerSpec, type DeadMessage } from '../../../src/bus/partitions.js';
import { ReplayHeaders } from '../../../src/bus/replay.js';
import { JsPublisher } from '../../../src/bus/publisher.js';
import { deployedPartitions, ensureTopology, openBuckets, type BucketSet } from '../../../src/bus/topology.js';
import { DeadLetter } from '../../../src/gen/tapflow/v1/bus.js';
import { TapflowError, type FailureCode } from '../../../src/domain/reasons.js';
import { createLogger } from '../../../src/observe/log.js';
import type { NatsServerHandle } from '../../../src/runtime/nats-server.js';

let nats: NatsServerHandle;
let bus: Bus;
let buckets: BucketSet;
let publisher: JsPublisher;
const log = createLogger('silent', { test: true });
const LEASE_MS = 2000;

beforeAll(async () => {
  nats = await startTestNats();
  bus = await connectBus(nats.url, 'failures-test', log);
  await ensureTopology(bus, { partitions: 4, duplicateWindowS: 120, streamMaxBytes: 64 * 1024 * 1024, streamMaxAgeS: 3600, leaseTtlMs: LEASE_MS, ackWaitS: 5 });
  buckets = await openBuckets(bus, LEASE_MS);
  publisher = new JsPublisher(bus.nc, 2000);
}, 60_000);

afterAll(async () => {
  publisher?.close();
  await bus?.close();
  await nats?.stop();
});

const text = (m: JsMsg) => new TextDecoder().decode(m.data);

/** Publishes the bodies to tapflow.taps.<p>, each with a test header, in order. */
async function publish(p: number, bodies: string[]): Promise<void> {
  for (const [i, b] of bodies.entries()) {
    const h = natsHeaders();
    h.set('Tapflow-Test', `${p}-${i}`);
    await bus.js.publish(`tapflow.taps.${p}`, new TextEncoder().encode(b), { headers: h, msgID: `t-${p}-${b}` });
  }
}

/** Every dead letter of a role so far, decoded. */
async function deadLetters(role: string): Promise<ReturnType<typeof DeadLetter.decode>[]> {
  const info = await bus.jsm.streams.info('DLQ');
  const out: ReturnType<typeof DeadLetter.decode>[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await bus.jsm.streams.getMessage('DLQ', { seq }).catch(() => undefined);
    if (m && m.subject === `tapflow.dlq.${role}`) out.push(DeadLetter.decode(m.data));
  }
  return out;
}

/** A worker owning one partition of the validator consumers (or `consumer`), with the given handler. */
function worker(role: string, p: number, handle: (msgs: JsMsg[]) => Promise<void | BatchOutcome>, maxDeliver = 3, consumer: ConsumerSpec = { stream: 'TAPS', durable: `validator-p${p}` }) {
  const failures: FailureCode[] = [];
  const buried: DeadMessage[] = [];
  const w = new PartitionWorker({
    bus,
    leases: buckets.leases,
    role,
    instanceId: `${role}-1`,
    partitions: 4,
    leaseTtlMs: LEASE_MS,
    batch: 16,
    log,
    maxDeliver,
    deadLetter: async (consumer, d) => {
      await deadLetter(publisher, role, consumer, d.msg, d.error, d.part);
      buried.push(d);
    },
    onBatchFailure: (code) => failures.push(code),
    handler: {
      // One partition of interest; the others have no messages.
      consumers: (q) => (q === p ? [consumer] : []),
      handle: (_q, _spec, msgs) => handle(msgs),
    },
  });
  return { w, failures, buried };
}

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function drained(p: number): Promise<boolean> {
  const c = await bus.jsm.consumers.info('TAPS', `validator-p${p}`);
  return c.num_pending === 0 && c.num_ack_pending === 0;
}

describe('failures - one message the handler cannot process', () => {
  it('is dead-lettered with its code, reason and original headers; the partition goes on in order', async () => {
    const processed: string[] = [];
    const { w, buried } = worker('failtest-a', 0, async (msgs) => {
      const dead: DeadMessage[] = [];
      for (const m of msgs) {
        if (text(m).startsWith('poison')) dead.push({ msg: m, error: new TapflowError('TF_EVENT_INVALID', `amount_fen: ${text(m)} is out of range`) });
        else processed.push(text(m));
      }
      return { dead };
    });
    await publish(0, ['a1', 'a2', 'poison-1', 'a3', 'a4', 'poison-2', 'a5']);
    await w.start();
    try {
      await until('every message handled', async () => processed.length === 5 && buried.length === 2 && (await drained(0)));
      expect(processed).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
      const dlq = await deadLetters('failtest-a');
      expect(dlq.map((d) => [d.errorCode, d.error, Buffer.from(d.data).toString(), d.stream, d.consumer, d.subject])).toEqual([
        ['TF_EVENT_INVALID', 'amount_fen: poison-1 is out of range', 'poison-1', 'TAPS', 'validator-p0', 'tapflow.taps.0'],
        ['TF_EVENT_INVALID', 'amount_fen: poison-2 is out of range', 'poison-2', 'TAPS', 'validator-p0', 'tapflow.taps.0'],
      ]);
      expect(dlq[0]!.headers).toContainEqual({ name: 'Tapflow-Test', value: '0-2' });
      expect(dlq[0]!.headers).toContainEqual({ name: 'Nats-Msg-Id', value: 't-0-poison-1' });
      expect(dlq[0]!.deliveryCount).toBe(1);
    } finally {
      await w.stop();
    }
  });
});

describe('failures - a batch that fails as a whole', () => {
  it('is redelivered after a backoff and processed once the failure passes, in order, nothing dead-lettered', async () => {
    const processed: string[] = [];
    let calls = 0;
    const { w, failures, buried } = worker('failtest-b', 1, async (msgs) => {
      calls++;
      // The store is down for the first two attempts.
      if (calls <= 2) throw new TapflowError('TF_STORE_FAILED', 'ClickHouse: connection refused');
      processed.push(...msgs.map(text));
    });
    await publish(1, ['b1', 'b2', 'b3']);
    await w.start();
    try {
      await until('the batch processed', async () => processed.length === 3 && (await drained(1)));
      expect(processed).toEqual(['b1', 'b2', 'b3']);
      expect(failures).toEqual(['TF_STORE_FAILED', 'TF_STORE_FAILED']);
      expect(buried).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('is dead-lettered as TF_RETRIES_EXHAUSTED after TAPFLOW_MAX_DELIVER deliveries, never retried forever', async () => {
    let calls = 0;
    const { w, failures, buried } = worker('failtest-c', 2, async () => {
      calls++;
      throw new TapflowError('TF_BUS_UNAVAILABLE', 'no PubAck within 2000 ms');
    });
    await publish(2, ['c1', 'c2']);
    await w.start();
    try {
      await until('both dead-lettered', async () => buried.length === 2 && (await drained(2)));
      const dlq = await deadLetters('failtest-c');
      expect(dlq.map((d) => [Buffer.from(d.data).toString(), d.errorCode, d.deliveryCount])).toEqual([
        ['c1', 'TF_RETRIES_EXHAUSTED', 3],
        ['c2', 'TF_RETRIES_EXHAUSTED', 3],
      ]);
      expect(dlq[0]!.error).toBe('TF_BUS_UNAVAILABLE in each of 3 deliveries; last: no PubAck within 2000 ms');
      expect(failures.every((f) => f === 'TF_BUS_UNAVAILABLE')).toBe(true);
      const before = calls;
      await new Promise((r) => setTimeout(r, 1000));
      expect(calls).toBe(before); // nothing comes back
    } finally {
      await w.stop();
    }
  });

  it('is dead-lettered whole when it fails with a data error (the table says term-dead-letter)', async () => {
    const { w, buried } = worker('failtest-d', 3, async () => {
      throw new TapflowError('TF_EVENT_INVALID', 'items: total 2^60 fen is above 1000000000');
    });
    await publish(3, ['d1']);
    await w.start();
    try {
      await until('dead-lettered', async () => buried.length === 1 && (await drained(3)));
      expect((await deadLetters('failtest-d')).map((d) => [d.errorCode, d.deliveryCount])).toEqual([['TF_EVENT_INVALID', 1]]);
    } finally {
      await w.stop();
    }
  });
});

describe('failures - a replayed dead letter', () => {
  it('is processed by the consumer that dead-lettered it; the other consumers of its subject pass it by', async () => {
    // Three decision bundles on one subject, read by the settler of partition 0 (and the sink and
    // the risk windows): a plain one, a replay for the sink, and a replay for this settler.
    for (const [body, replayFor] of [['e1', undefined], ['e2', 'sink-decisions'], ['e3', 'settler-p0']] as const) {
      const h = natsHeaders();
      if (replayFor) {
        h.set(ReplayHeaders.For, replayFor);
        h.set(ReplayHeaders.Of, 'DECISIONS:1');
      }
      await bus.js.publish('tapflow.decisions.0', new TextEncoder().encode(body), { headers: h, msgID: `replay-test-${body}` });
    }
    const seen: string[] = [];
    const { w, buried } = worker('failtest-e', 0, async (msgs) => void seen.push(...msgs.map(text)), 3, { stream: 'DECISIONS', durable: 'settler-p0' });
    await w.start();
    try {
      await until('the settler consumer drained', async () => {
        const c = await bus.jsm.consumers.info('DECISIONS', 'settler-p0');
        return c.num_pending === 0 && c.num_ack_pending === 0;
      });
      // Acknowledged, all three; handed to the handler, only the two for it.
      expect(seen).toEqual(['e1', 'e3']);
      expect(buried).toEqual([]);
    } finally {
      await w.stop();
    }
  });
});

describe('topology - the partition count is fixed', () => {
  it('refuses to start a process configured for another partition count than the deployment', async () => {
    const o = { partitions: 8, duplicateWindowS: 120, streamMaxBytes: 64 * 1024 * 1024, streamMaxAgeS: 3600, leaseTtlMs: LEASE_MS, ackWaitS: 5 };
    await expect(ensureTopology(bus, o)).rejects.toMatchObject({ code: 'TF_TOPOLOGY_MISMATCH', message: expect.stringContaining('set TAPFLOW_PARTITIONS=4') });
    // Nothing was changed: the deployment still has its 4 partitions.
    expect(await deployedPartitions(bus)).toBe(4);
  });
});

describe('redelivery - a message held past the ack wait', () => {
  it('reaches the handler once: the second delivery of a buffered message is not handled again', async () => {
    // The pull window holds every message at once; each batch takes 3 s and the ack wait is 5 s,
    // so the messages of the later batches wait in the buffer past their ack wait and are
    // delivered a second time into the same buffer (what a sink did under load: its rows were
    // stored twice, the fault suite's sigkill-settler scenario).
    const seen: string[] = [];
    const { w, buried } = worker(
      'redeliver-a',
      1,
      async (msgs) => {
        seen.push(...msgs.map(text));
        await new Promise((r) => setTimeout(r, 3000));
      },
      3,
      { stream: 'DECISIONS', durable: 'settler-p1' },
    );
    const bodies = Array.from({ length: 64 }, (_, i) => `r${String(i).padStart(2, '0')}`);
    for (const b of bodies) await bus.js.publish('tapflow.decisions.1', new TextEncoder().encode(b), { msgID: `r-${b}` });
    await w.start();
    try {
      await until('every message handled and acknowledged', async () => new Set(seen).size === bodies.length && (await bus.jsm.consumers.info('DECISIONS', 'settler-p1')).num_ack_pending === 0, 60_000);
      const info = await bus.jsm.consumers.info('DECISIONS', 'settler-p1');
      // The scenario happened: some message was delivered more than once.
      expect(info.num_redelivered + info.delivered.consumer_seq - bodies.length).toBeGreaterThan(0);
      expect(seen).toEqual(bodies);
      expect(buried).toEqual([]);
    } finally {
      await w.stop();
    }
  }, 90_000);
});
