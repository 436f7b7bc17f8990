/**
 * Rush hour: the windows in which acks fell behind the offered load (acked < 95% of offered
 * while the backlog of unanswered taps grew), from the per-second timeline. Pure.
 */
import { describe, expect, it } from 'vitest';
import { behindWindows, type SecondStats } from '../../../bench/lib/recorder.js';

const sec = (t: number, offered: number, acked: number): SecondStats => ({ t, offered, sent: offered, acked, accepted: acked, stored: 0, ack_p99_ms: 0, stored_p99_ms: 0 });

describe('bench rush hour - windows where acks fall behind', () => {
  it('finds none when every window is answered, the drain after the window not counted', () => {
    const s = [...Array.from({ length: 20 }, (_, t) => sec(t, 1000, 990)), sec(20, 0, 200), sec(21, 0, 0)];
    expect(behindWindows(s, { windowS: 5 })).toEqual({ window_s: 5, keep: 0.95, windows: 4, behind: 0, examples: [] });
    expect(behindWindows(s, { windowS: 1 }).behind).toBe(0);
  });

  it('counts the windows of the peak where answers lag and the backlog grows', () => {
    // A peak of 3000/s answered at 2000/s from 10 s to 20 s, caught up after it.
    const s = Array.from({ length: 30 }, (_, t) => (t >= 10 && t < 20 ? sec(t, 3000, 2000) : t >= 20 && t < 25 ? sec(t, 1000, 3000) : sec(t, 1000, 1000)));
    const r = behindWindows(s, { windowS: 5 });
    expect(r.windows).toBe(6);
    expect(r.behind).toBe(2);
    expect(r.examples[0]).toEqual({ from_s: 10, offered: 15_000, acked: 10_000, backlog_start: 0, backlog_end: 5000 });
    expect(r.examples[1]).toMatchObject({ from_s: 15, backlog_start: 5000, backlog_end: 10_000 });
    // Catching up (more answers than offered) is not behind; 1 s windows see the same seconds.
    expect(behindWindows(s, { windowS: 1 }).behind).toBe(10);
  });
});
