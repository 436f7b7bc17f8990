/**
 * Consumer backlog per role, stream and partition, read from JetStream on a timer.
 *
 * Every TAPFLOW_LAG_INTERVAL_MS a process running validator, risk-windows, settler or sink reads
 * the consumer info of every durable consumer of those roles (src/bus/topology.ts consumerPlan),
 * whether or not it owns the partition right now, and exports:
 * - tapflow_consumer_pending: num_pending + num_ack_pending (not delivered yet, or delivered
 *   and not acknowledged);
 * - tapflow_consumer_oldest_pending_age_seconds: now − the time of the oldest message the
 *   consumer has not acknowledged. That message is the first one on the consumer's filter subject
 *   after its ack floor (every message at or below the floor is acknowledged), fetched with
 *   STREAM.MSG.GET {seq: floor + 1, next_by_subj: filter}; only consumers with something pending
 *   are fetched, one message each.
 * Read from the server rather than after a batch, the gauges keep moving when processing stalls.
 * Every replica of a role exports the same series (same role, stream, partition; another
 * instance): rules and panels take `max by (role, stream, partition)`.
 */
import type { MsgRequest } from '@nats-io/jetstream';
import type { Bus } from '../bus/connection.js';
import { consumerPlan } from '../bus/topology.js';
import { Streams, type StreamName } from '../bus/subjects.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

/** The role that consumes a durable consumer of consumerPlan, and its partition label. */
export function consumerOwner(name: string): { role: string; partition: string } | undefined {
  const m = /^(validator|settler)(?:-claims)?-p(\d+)$/.exec(name);
  if (m) return { role: m[1]!, partition: m[2]! };
  if (name.startsWith('sink-')) return { role: 'sink', partition: 'all' };
  if (name === 'risk-windows' || name === 'risk-windows-claims') return { role: 'risk-windows', partition: 'all' };
  return undefined;
}

export interface ConsumerLag {
  role: string;
  stream: StreamName;
  partition: string;
  consumer: string;
  pending: number;
  oldestAgeS: number;
}

/** The lag of every consumer of `roles`, read now (one consumer at a time: a small, steady load). */
export async function readConsumerLag(bus: Bus, partitions: number, roles: ReadonlySet<string>, now: () => number = Date.now): Promise<ConsumerLag[]> {
  const out: ConsumerLag[] = [];
  for (const c of consumerPlan(partitions)) {
    const owner = consumerOwner(c.name);
    if (!owner || !roles.has(owner.role)) continue;
    const stream = Streams[c.stream].name;
    const info = await bus.jsm.consumers.info(stream, c.name);
    const pending = info.num_pending + info.num_ack_pending;
    let oldestAgeS = 0;
    if (pending > 0) {
      const query = { seq: info.ack_floor.stream_seq + 1, next_by_subj: c.filter } as unknown as MsgRequest;
      const msg = await bus.jsm.streams.getMessage(stream, query);
      if (msg) oldestAgeS = Math.max(0, (now() - msg.time.getTime()) / 1000);
    }
    out.push({ role: owner.role, stream: c.stream, partition: owner.partition, consumer: c.name, pending, oldestAgeS });
  }
  return out;
}

/** Starts the timer; stop() ends it (and waits for a read in progress). */
export function startConsumerLag(o: { bus: Bus; partitions: number; roles: Iterable<string>; intervalMs: number; metrics: Metrics; log: Logger }): { stop(): Promise<void>; read(): Promise<void> } {
  // A validator process also runs the risk-windows worker (src/validate/role.ts).
  const named = [...o.roles].flatMap((r) => (r === 'validator' ? [r, 'risk-windows'] : [r]));
  const roles = new Set(named.filter((r) => ['validator', 'risk-windows', 'settler', 'sink'].includes(r)));
  let running: Promise<void> | undefined;
  let failures = 0;
  const read = (): Promise<void> =>
    (running ??= readConsumerLag(o.bus, o.partitions, roles)
      .then((lags) => {
        failures = 0;
        for (const l of lags) {
          const labels = { role: l.role, stream: l.stream, partition: l.partition };
          o.metrics.consumerPending.set(labels, l.pending);
          o.metrics.consumerOldestAge.set(labels, l.oldestAgeS);
        }
      })
      .catch((err: unknown) => {
        // Expected while NATS reconnects; the gauges keep their last values meanwhile.
        failures++;
        o.log[failures >= 3 ? 'warn' : 'debug']({ err: (err as Error).message, failures }, 'reading consumer lag failed');
      })
      .finally(() => (running = undefined)));
  if (roles.size === 0) return { stop: async () => {}, read: async () => {} };
  const timer = setInterval(() => void read(), o.intervalMs);
  timer.unref();
  void read();
  return {
    read,
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
