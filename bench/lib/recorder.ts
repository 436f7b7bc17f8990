/**
 * What the bench measures while it runs: HdrHistograms of latencies (recorded in microseconds,
 * reported in milliseconds), per-second series of throughput and latency, and status counts.
 */
import * as hdr from 'hdr-histogram-js';
import { mapped, maxOf } from './extremes.js';

/** A latency histogram: 1 µs to 1 hour, 3 significant digits. */
export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

/** Latency percentiles in ms (as the ghz summary gives them). */
export interface LatencySummary {
  count: number;
  mean_ms: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  p999_ms: number;
  max_ms: number;
}

const ms = (us: number) => Math.round(us) / 1000;

export function summarize(h: hdr.Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, mean_ms: 0, p50_ms: 0, p90_ms: 0, p99_ms: 0, p999_ms: 0, max_ms: 0 };
  return {
    count: h.totalCount,
    mean_ms: ms(h.mean),
    p50_ms: ms(h.getValueAtPercentile(50)),
    p90_ms: ms(h.getValueAtPercentile(90)),
    p99_ms: ms(h.getValueAtPercentile(99)),
    p999_ms: ms(h.getValueAtPercentile(99.9)),
    max_ms: ms(h.maxValue),
  };
}

/** Records a latency given in ms (fractions kept to the µs). */
export function recordMs(h: hdr.Histogram, latencyMs: number): void {
  h.recordValue(Math.max(1, Math.round(latencyMs * 1000)));
}

/** One second of the run. */
export interface SecondStats {
  /** Second index from the start of the measured window. */
  t: number;
  offered: number;
  sent: number;
  /** Final answers received in this second, by kind. */
  acked: number;
  accepted: number;
  stored: number;
  ack_p99_ms: number;
  stored_p99_ms: number;
}

/** Per-second counters and latency histograms, indexed by second from the window start. */
export class Timeline {
  readonly offered: number[] = [];
  readonly sent: number[] = [];
  readonly acked: number[] = [];
  readonly accepted: number[] = [];
  readonly stored: number[] = [];
  private readonly ackHist: hdr.Histogram[] = [];
  private readonly storedHist: hdr.Histogram[] = [];

  private static bump(a: number[], sec: number, n = 1): void {
    if (sec < 0) return;
    while (a.length <= sec) a.push(0);
    a[sec]! += n;
  }

  private static hist(a: hdr.Histogram[], sec: number): hdr.Histogram {
    while (a.length <= sec) a.push(newHistogram());
    return a[sec]!;
  }

  offer(atMs: number, n = 1): void {
    Timeline.bump(this.offered, Math.floor(atMs / 1000), n);
  }

  send(atMs: number, n = 1): void {
    Timeline.bump(this.sent, Math.floor(atMs / 1000), n);
  }

  /** A final answer at `atMs`; its latency is filed under the second it was *meant* to be sent. */
  ack(atMs: number, intendedMs: number, latencyMs: number, accepted: boolean, n = 1): void {
    const sec = Math.floor(atMs / 1000);
    Timeline.bump(this.acked, sec, n);
    if (accepted) Timeline.bump(this.accepted, sec, n);
    const h = Timeline.hist(this.ackHist, Math.max(0, Math.floor(intendedMs / 1000)));
    h.recordValueWithCount(Math.max(1, Math.round(latencyMs * 1000)), n);
  }

  store(atMs: number, intendedMs: number, latencyMs: number): void {
    Timeline.bump(this.stored, Math.floor(atMs / 1000));
    recordMs(Timeline.hist(this.storedHist, Math.max(0, Math.floor(intendedMs / 1000))), latencyMs);
  }

  seconds(): SecondStats[] {
    const n = Math.max(this.offered.length, this.sent.length, this.acked.length, this.stored.length, this.ackHist.length, this.storedHist.length);
    const out: SecondStats[] = [];
    for (let t = 0; t < n; t++) {
      const ah = this.ackHist[t];
      const sh = this.storedHist[t];
      out.push({
        t,
        offered: this.offered[t] ?? 0,
        sent: this.sent[t] ?? 0,
        acked: this.acked[t] ?? 0,
        accepted: this.accepted[t] ?? 0,
        stored: this.stored[t] ?? 0,
        ack_p99_ms: ah && ah.totalCount > 0 ? ms(ah.getValueAtPercentile(99)) : 0,
        stored_p99_ms: sh && sh.totalCount > 0 ? ms(sh.getValueAtPercentile(99)) : 0,
      });
    }
    return out;
  }
}

/** Counts by name. */
export class Counts {
  private readonly m = new Map<string, number>();
  add(k: string, n = 1): void {
    this.m.set(k, (this.m.get(k) ?? 0) + n);
  }
  get(k: string): number {
    return this.m.get(k) ?? 0;
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.m.entries()].sort((a, b) => b[1] - a[1]));
  }
  total(): number {
    let n = 0;
    for (const v of this.m.values()) n += v;
    return n;
  }
}

/** Where a ramp stopped keeping up. */
export interface Knee {
  /** Offered taps/s (moving average) at the last window that kept up. */
  offered: number;
  /** Answered (or stored) taps/s in that window. */
  kept: number;
  /** Second of the window's end. */
  at_s: number;
}

/**
 * The knee of a ramp: the highest offered rate (moving average over `window` seconds) before
 * the first window in which the pipeline fell behind. `by: 'acked'`: durable answers below
 * `keep` × offered, or ack p99 above `maxP99Ms` (the front door's knee); `by: 'stored'`:
 * decision rows stored below `keep` × offered (the whole pipeline's knee; the sink stores in
 * batches, so use a window of several seconds). Undefined when it never fell behind.
 */
export function findKnee(seconds: SecondStats[], o: { by?: 'acked' | 'stored'; keep?: number; maxP99Ms?: number; window?: number; skip?: number } = {}): Knee | undefined {
  const by = o.by ?? 'acked';
  const keep = o.keep ?? (by === 'acked' ? 0.95 : 0.9);
  const maxP99 = o.maxP99Ms ?? 100;
  const w = o.window ?? (by === 'acked' ? 3 : 5);
  const skip = o.skip ?? 2;
  let lastGood: Knee | undefined;
  for (let i = skip + w - 1; i < seconds.length; i++) {
    const win = seconds.slice(i - w + 1, i + 1);
    const offered = win.reduce((n, s) => n + s.offered, 0) / w;
    if (offered <= 0) break; // the window is over
    const kept = win.reduce((n, s) => n + (by === 'acked' ? s.acked : s.stored), 0) / w;
    const p99 = maxOf(mapped(win, (s) => s.ack_p99_ms), 0);
    const behind = kept < keep * offered || (by === 'acked' && p99 > maxP99);
    if (behind) return lastGood ?? { offered: Math.round(offered), kept: Math.round(kept), at_s: i + 1 };
    lastGood = { offered: Math.round(offered), kept: Math.round(kept), at_s: i + 1 };
  }
  return undefined;
}

/** A window in which acks fell behind the offered load. */
export interface BehindWindow {
  /** Window start, s from the start of the measured window. */
  from_s: number;
  offered: number;
  acked: number;
  /** Taps offered and not yet finally answered, at the window's start and end. */
  backlog_start: number;
  backlog_end: number;
}

/** Windows of the run in which acks fell behind (rush hour: there should be none). */
export interface BehindReport {
  window_s: number;
  /** Acks below this share of the offered taps count as behind (with a growing backlog). */
  keep: number;
  /** Windows with taps offered, and of those, windows behind. */
  windows: number;
  behind: number;
  /** The first 20 windows behind. */
  examples: BehindWindow[];
}

/**
 * Windows of `windowS` seconds (from the window start, while taps are offered) in which the
 * final answers were fewer than `keep` × the taps offered (by intended send time): the backlog
 * — taps offered and not yet finally answered — then grows by the shortfall (reported at each
 * window's start and end). A retried tap counts once it is finally answered. A partial last
 * window is judged on its own length.
 */
export function behindWindows(seconds: readonly SecondStats[], o: { windowS: number; keep?: number }): BehindReport {
  const keep = o.keep ?? 0.95;
  const r: BehindReport = { window_s: o.windowS, keep, windows: 0, behind: 0, examples: [] };
  let lastOffered = -1;
  seconds.forEach((s) => {
    if (s.offered > 0) lastOffered = s.t;
  });
  let backlog = 0;
  for (let from = 0; from <= lastOffered; from += o.windowS) {
    let offered = 0;
    let acked = 0;
    for (let t = from; t < from + o.windowS && t < seconds.length; t++) {
      offered += seconds[t]!.offered;
      acked += seconds[t]!.acked;
    }
    const start = backlog;
    backlog = Math.max(0, backlog + offered - acked);
    if (offered === 0) continue;
    r.windows++;
    if (acked < keep * offered) {
      r.behind++;
      if (r.examples.length < 20) r.examples.push({ from_s: from, offered, acked, backlog_start: start, backlog_end: backlog });
    }
  }
  return r;
}
