/**
 * The bench's report step on the sizes of a batch or burst run (one entry per tap, a few
 * hundred thousand): no extreme is taken by spreading an array into a call's arguments, which
 * overflows V8's stack (a 150,000-tap batch run crashed the bench that way). Pure functions
 * only; no tapflow, no timing.
 */
import { describe, expect, it } from 'vitest';
import { TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { mapped, maxOf, minOf } from '../../../bench/lib/extremes.js';
import { lastAnswerMs, type TapResult } from '../../../bench/lib/fleet-client.js';
import type { SimTap } from '../../../bench/lib/fleet.js';
import { summarizeProc, type ProcSample } from '../../../bench/lib/procstat.js';
import { findKnee, Timeline, type SecondStats } from '../../../bench/lib/recorder.js';
import { renderChart } from '../../../bench/lib/svg.js';

const N = 200_000;

describe('bench extremes - many values', () => {
  it('maxOf and minOf take any number of values, skip NaN and say what an empty input gives', () => {
    const xs = Array.from({ length: N }, (_, i) => (i * 7919) % N);
    expect(() => Math.max(...xs)).toThrow(RangeError); // why the bench does not spread
    expect(maxOf(xs)).toBe(N - 1);
    expect(minOf(xs)).toBe(0);
    expect(maxOf(mapped(xs, (x) => -x - 1))).toBe(-1);
    expect(maxOf([], 0)).toBe(0);
    expect(minOf([NaN, 3, NaN, -2])).toBe(-2);
    expect(maxOf([])).toBe(Number.NEGATIVE_INFINITY);
  });
});

describe('bench report step - 200,000 taps and samples', () => {
  it('finds the last answer among 200,000 taps', () => {
    const taps: SimTap[] = [];
    const results = new Map<SimTap, TapResult>();
    for (let i = 0; i < N; i++) {
      const s = { tap: { terminalId: 'T', seq: i + 1 } } as SimTap;
      taps.push(s);
      if (i % 3 !== 0) results.set(s, { status: TapStatus.ACCEPTED_DURABLE, reason: '', attempts: 1, ackedAt: (i * 31) % 90_001, intended: 0 });
    }
    expect(lastAnswerMs(taps, results)).toBe(90_000);
    expect(lastAnswerMs([], results)).toBe(0);
  });

  it('summarises 200,000 process samples (CPU and RSS maxima, growth)', () => {
    const samples: ProcSample[] = Array.from({ length: N }, (_, i) => ({ t: i * 1000, cpuPct: i === 1234 ? 199 : 50, rssMb: 100 + (i === N - 1 ? 60 : 0) }));
    const s = summarizeProc({ name: 'tapflow', pid: 1, samples });
    expect(s.cpu_max_pct).toBe(199);
    expect(s.rss_mb_max).toBe(160);
    expect(s.rss_mb_last).toBe(160);
  });

  it('keeps a per-second timeline of 200,000 answers and finds a knee over 200,000 seconds', () => {
    const tl = new Timeline();
    for (let i = 0; i < N; i++) {
      tl.offer(i % 60_000);
      tl.ack(i % 60_000, i % 60_000, 5, true);
    }
    const secs = tl.seconds();
    expect(secs.length).toBe(60);
    expect(secs.reduce((n, s) => n + s.acked, 0)).toBe(N);
    const long: SecondStats[] = Array.from({ length: N }, (_, t) => ({ t, offered: 100, sent: 100, acked: t < N - 10 ? 100 : 10, accepted: 0, stored: 0, ack_p99_ms: 1, stored_p99_ms: 0 }));
    expect(findKnee(long)?.offered).toBe(100);
  });

  it('draws a chart of 200,000 points per series', () => {
    const points: [number, number][] = Array.from({ length: N }, (_, i) => [i / 1000, (i % 997) + 1]);
    const svg = renderChart('big', [
      { title: 'linear', unit: 'taps/s', series: [{ name: 'a', color: '#000', points }] },
      { title: 'log', unit: 'ms', log: true, series: [{ name: 'b', color: '#111', points }] },
    ]);
    expect(svg).not.toContain('NaN');
    expect(svg.match(/<polyline /g)?.length).toBe(2);
  });
});
