/**
 * Open-loop rate control: when each event is *meant* to be sent.
 *
 * The offered load is fixed before the run as a list of intended send times (ms from the start
 * of the measured window). The sender fires every event whose time has come, however slowly
 * tapflow answers, and latency is measured from the intended time, not from the moment the
 * event actually left: a stalled server shows up as latency instead of being hidden by a
 * sender that waited for it (coordinated omission).
 *
 * Pure: no clock, no I/O; randomness from a seeded generator.
 */
import { rng } from '../../src/demo/generator.js';

/** Rate over time. Rates are events per second; times are seconds from the start. */
export type RateShape =
  /** The same rate for the whole run. */
  | { kind: 'constant'; rate: number }
  /** Linear from `from` to `to` over the run: finds the knee. */
  | { kind: 'ramp'; from: number; to: number }
  /**
   * A weekday morning peak (06:00–10:00) compressed into the run, scaled so that its highest
   * point is `peak` (see {@link RUSH_HOUR_CURVE}).
   */
  | { kind: 'rush-hour'; peak: number }
  /** Everything at once, at t = 0 (an offline burst). */
  | { kind: 'burst' };

/**
 * The morning curve as (hour of day, share of the peak rate), linear between points.
 * Illustrative shape of a Beijing weekday: the 08:00–09:00 hour carries about 16% of the day's
 * taps (DESIGN.md, sizing facts), the hours either side climb to it and fall from it. Not a
 * published series: replace with an operator's own counts when sizing a deployment.
 */
export const RUSH_HOUR_CURVE: readonly (readonly [number, number])[] = [
  [6.0, 0.15],
  [6.5, 0.3],
  [7.0, 0.55],
  [7.5, 0.85],
  [8.0, 1.0],
  [8.5, 0.92],
  [9.0, 0.62],
  [9.5, 0.42],
  [10.0, 0.3],
];

/** Linear interpolation in a sorted (x, y) table; clamps outside it. */
export function interpolate(table: readonly (readonly [number, number])[], x: number): number {
  const first = table[0]!;
  const last = table[table.length - 1]!;
  if (x <= first[0]) return first[1];
  if (x >= last[0]) return last[1];
  for (let i = 1; i < table.length; i++) {
    const [x1, y1] = table[i]!;
    if (x <= x1) {
      const [x0, y0] = table[i - 1]!;
      return y0 + ((y1 - y0) * (x - x0)) / (x1 - x0);
    }
  }
  return last[1];
}

/** The offered rate (events/s) at `tS` seconds into a run of `durationS` seconds. */
export function rateAt(shape: RateShape, tS: number, durationS: number): number {
  const f = durationS > 0 ? Math.min(1, Math.max(0, tS / durationS)) : 0;
  switch (shape.kind) {
    case 'constant':
      return shape.rate;
    case 'ramp':
      return shape.from + (shape.to - shape.from) * f;
    case 'rush-hour': {
      const first = RUSH_HOUR_CURVE[0]![0];
      const last = RUSH_HOUR_CURVE[RUSH_HOUR_CURVE.length - 1]![0];
      return shape.peak * interpolate(RUSH_HOUR_CURVE, first + f * (last - first));
    }
    case 'burst':
      return Number.POSITIVE_INFINITY;
  }
}

/** How arrivals are spread: evenly (deterministic gaps) or as a Poisson process. */
export type Arrivals = 'uniform' | 'poisson';

export interface ScheduleOptions {
  shape: RateShape;
  /** Length of the measured window, s. Ignored for a burst. */
  durationS: number;
  /** @default 'poisson' */
  arrivals?: Arrivals;
  /** For a burst: how many events. */
  count?: number;
  /** Seed of the Poisson gaps. @default 1 */
  seed?: number;
  /** Refuse to plan more events than this (memory bound). @default 5_000_000 */
  maxEvents?: number;
}

/**
 * Intended send times, ms from the start, ascending. Uniform arrivals put event i where the
 * integral of the rate reaches i + 0.5; Poisson arrivals draw exponential gaps at the rate of
 * the moment (thinning-free: the rate is read at the current time, fine for slowly varying
 * shapes). A burst gives `count` zeros.
 */
export function intendedTimes(o: ScheduleOptions): Float64Array {
  const max = o.maxEvents ?? 5_000_000;
  if (o.shape.kind === 'burst') {
    const n = o.count ?? 0;
    if (n > max) throw new RangeError(`burst of ${n} events is more than the limit ${max}`);
    return new Float64Array(n);
  }
  const out: number[] = [];
  const endMs = o.durationS * 1000;
  const random = rng(o.seed ?? 1);
  const arrivals = o.arrivals ?? 'poisson';
  if (arrivals === 'uniform') {
    // Walk in 1 ms steps accumulating the rate's integral: exact enough, and monotone.
    let acc = 0;
    let next = 0.5;
    for (let t = 0; t < endMs; t++) {
      const r = rateAt(o.shape, (t + 0.5) / 1000, o.durationS) / 1000;
      const before = acc;
      acc += r;
      while (acc >= next) {
        // Position of the crossing inside this millisecond.
        out.push(t + (r > 0 ? (next - before) / r : 0));
        next += 1;
        if (out.length > max) throw new RangeError(`more than ${max} events planned: lower the rate or the duration`);
      }
    }
  } else {
    let t = 0;
    for (;;) {
      const r = rateAt(o.shape, t / 1000, o.durationS);
      if (!(r > 0)) {
        t += 1; // a zero rate: step forward until it rises
        if (t >= endMs) break;
        continue;
      }
      t += (-Math.log(1 - random()) * 1000) / r;
      if (t >= endMs) break;
      out.push(t);
      if (out.length > max) throw new RangeError(`more than ${max} events planned: lower the rate or the duration`);
    }
  }
  return Float64Array.from(out);
}

/** Expected number of events of a shape over a run (the integral of the rate). */
export function expectedCount(shape: RateShape, durationS: number, count = 0): number {
  if (shape.kind === 'burst') return count;
  let n = 0;
  const steps = 1000;
  for (let i = 0; i < steps; i++) n += rateAt(shape, ((i + 0.5) / steps) * durationS, durationS) * (durationS / steps);
  return n;
}

