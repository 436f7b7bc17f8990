/**
 * Diagnostics that say where latency comes from while tapflow is measured:
 *
 * - JetStream probe: the bench publishes one small message every `intervalMs` to a scratch
 *   stream (file storage, like tapflow's) with its own connection and records the PubAck time.
 *   When tapflow's acks stall but the probe's do not, the stall is inside tapflow; when both do,
 *   nats-server (or the machine) is the cause.
 * - The bench's own event-loop delay (perf_hooks.monitorEventLoopDelay): when it is high, the
 *   simulator itself was late and the figures include its delay.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { JsPublisher } from '../../src/bus/publisher.js';
import type { BenchBus } from './tapflow.js';
import { newHistogram, recordMs, summarize, type LatencySummary } from './recorder.js';

const PROBE_STREAM = 'BENCH_PROBE';

export class JetStreamProbe {
  readonly hist = newHistogram();
  /** Worst PubAck per second (ms), indexed by second from `start`. */
  readonly worstPerSecond: number[] = [];
  failures = 0;
  private timer?: NodeJS.Timeout;
  private publisher?: JsPublisher;
  private seq = 0;

  constructor(
    private readonly bus: BenchBus,
    private readonly intervalMs = 50,
  ) {}

  async start(now: () => number): Promise<void> {
    await this.bus.jsm.streams.delete(PROBE_STREAM).catch(() => undefined);
    await this.bus.jsm.streams.add({ name: PROBE_STREAM, subjects: ['bench.probe'], storage: StorageType.File, retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old, max_msgs: 10_000, num_replicas: 1 });
    this.publisher = new JsPublisher(this.bus.nc, 10_000);
    const payload = new Uint8Array(200);
    this.timer = setInterval(() => {
      const t0 = performance.now();
      const sec = Math.max(0, Math.floor(now() / 1000));
      this.publisher!.publish('bench.probe', payload, `probe-${++this.seq}`).then(
        () => {
          const ms = performance.now() - t0;
          recordMs(this.hist, ms);
          while (this.worstPerSecond.length <= sec) this.worstPerSecond.push(0);
          this.worstPerSecond[sec] = Math.max(this.worstPerSecond[sec]!, Math.round(ms * 10) / 10);
        },
        () => this.failures++,
      );
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<LatencySummary> {
    if (this.timer) clearInterval(this.timer);
    this.publisher?.close();
    await this.bus.jsm.streams.delete(PROBE_STREAM).catch(() => undefined);
    return summarize(this.hist);
  }
}

/** The bench process's event-loop delay over a period. */
export class LoopDelay {
  private readonly h: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  start(): void {
    this.h.enable();
  }
  /** p99 and max in ms. */
  stop(): { p99_ms: number; max_ms: number; mean_ms: number } {
    this.h.disable();
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    return { p99_ms: ms(this.h.percentile(99)), max_ms: ms(this.h.max), mean_ms: ms(this.h.mean) };
  }
}
