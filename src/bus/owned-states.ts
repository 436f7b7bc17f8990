/**
 * The partition states a role owns in this process (partition-state.ts), with what every owner
 * needs around them: one task at a time per partition (a partition's consumers share its state),
 * a restore before the first batch (timed: metric tapflow_partition_restore_seconds), a
 * checkpoint every interval, and a last checkpoint when the partition is given up by choice.
 */
import type { KV } from '@nats-io/kv';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { Bus } from './connection.js';
import { PartitionState, type StateCodec } from './partition-state.js';
import type { JsPublisher } from './publisher.js';

export interface OwnedStatesOptions<T> {
  role: string;
  bus: Bus;
  publisher: JsPublisher;
  kv: KV;
  bucket: string;
  codec: StateCodec<T>;
  /** Most keys kept in memory per partition. */
  maxCachedPerPartition: number;
  /** A value's next deadline, for PartitionState.dueEntries(). */
  due?: (key: string, value: T) => number | undefined;
  log: Logger;
  metrics: Metrics;
}

export class OwnedStates<T> {
  private readonly states = new Map<number, PartitionState<T>>();
  private readonly tails = new Map<number, Promise<unknown>>();

  constructor(private readonly o: OwnedStatesOptions<T>) {}

  /** Starts owning partition p (its state is restored before its first task). */
  acquire(p: number): void {
    const { role, bus, publisher, kv, bucket, codec, maxCachedPerPartition, due, log } = this.o;
    this.states.set(p, new PartitionState<T>({ role, partition: p, bus, publisher, kv, bucket, codec, maxCached: maxCachedPerPartition, due, log }));
  }

  /** Stops owning p; `graceful`: checkpoint first, so that the next owner restores little. */
  async release(p: number, graceful: boolean): Promise<void> {
    if (graceful && this.states.has(p)) await this.checkpoint(p);
    this.states.delete(p);
  }

  /** Runs fn on p's state after the tasks before it, restoring the state first when needed. */
  run<R>(p: number, fn: (state: PartitionState<T>) => Promise<R>): Promise<R> {
    const task = async () => {
      const state = this.states.get(p);
      if (!state) throw new Error(`partition ${p} is not owned by this ${this.o.role}`);
      if (state.needsRestore) {
        const r = await state.restore();
        this.o.metrics.partitionRestore.observe({ role: this.o.role }, r.ms / 1000);
        this.o.log.info({ role: this.o.role, partition: p, ...r, ms: Math.round(r.ms) }, 'partition state restored');
      }
      return fn(state);
    };
    const next = (this.tails.get(p) ?? Promise.resolve()).then(task, task);
    this.tails.set(
      p,
      next.catch(() => undefined),
    );
    return next;
  }

  /**
   * Writes the changes since the last checkpoint of p: the values are taken between two of its
   * tasks, the writes go on while its next batches run.
   */
  async checkpoint(p: number): Promise<void> {
    const { written } = await this.run(p, async (s) => ({ written: s.checkpoint() }));
    await written;
  }

  /** The state of p, if owned (for read-only walks between tasks, e.g. sweeps). */
  get(p: number): PartitionState<T> | undefined {
    return this.states.get(p);
  }
}
