import { describe, expect, it } from 'vitest';
import { greatCircleKm, minimumTravelMs, type CardValidationState } from '../../../src/domain/validate/index.js';
import { chipTap, T0, validatorData, VENUES, decideNew as decideTap } from './fixtures.js';

const data = validatorData();

/** Decides a sequence of chip taps for one card (counters rising in device-time order given). */
function run(taps: { venue: string; t: number; direction?: 'ENTRY' | 'EXIT' | 'SINGLE'; counter: number; offline?: boolean }[], state?: CardValidationState) {
  const reasons: string[] = [];
  let s = state;
  for (const spec of taps) {
    const { tap, creds } = chipTap(spec);
    const r = decideTap(data, s, tap, creds, T0);
    reasons.push(r.decision.reason);
    s = r.state;
  }
  return { reasons, state: s! };
}

const XZM = 'bj-subway:西直门';
const GM = 'bj-subway:国贸';
const SJZ = 'sjz-metro:北国商城';
const PH = 'pharmacy:BJ:p1';

describe('behaviour - duplicates', () => {
  it('same venue and direction within the window (inclusive) is a duplicate', () => {
    expect(run([{ venue: PH, t: T0, direction: 'SINGLE', counter: 1 }, { venue: PH, t: T0 + 10_000, direction: 'SINGLE', counter: 2 }]).reasons).toEqual(['OK', 'DUPLICATE_TAP']);
    expect(run([{ venue: PH, t: T0, direction: 'SINGLE', counter: 1 }, { venue: PH, t: T0 + 10_001, direction: 'SINGLE', counter: 2 }]).reasons).toEqual(['OK', 'OK']);
  });

  it('another direction or another venue is no duplicate', () => {
    expect(run([{ venue: XZM, t: T0, direction: 'ENTRY', counter: 1 }, { venue: XZM, t: T0 + 5_000, direction: 'EXIT', counter: 2 }]).reasons).toEqual(['OK', 'OK']);
    expect(run([{ venue: PH, t: T0, direction: 'SINGLE', counter: 1 }, { venue: 'pharmacy:BJ:p2', t: T0 + 5_000, direction: 'SINGLE', counter: 2 }]).reasons).toEqual(['OK', 'OK']);
  });
});

describe('behaviour - passback', () => {
  it('re-entering the same station within the RAIL passback time (inclusive) is refused', () => {
    expect(run([{ venue: XZM, t: T0, counter: 1 }, { venue: XZM, t: T0 + 600_000, counter: 2 }]).reasons).toEqual(['OK', 'PASSBACK']);
    expect(run([{ venue: XZM, t: T0, counter: 1 }, { venue: XZM, t: T0 + 600_001, counter: 2 }]).reasons).toEqual(['OK', 'OK']);
  });

  it('an exit in between makes the re-entry legitimate', () => {
    const r = run([
      { venue: XZM, t: T0, counter: 1 },
      { venue: GM, t: T0 + 300_000, direction: 'EXIT', counter: 2 },
      { venue: XZM, t: T0 + 500_000, counter: 3 },
    ]);
    expect(r.reasons).toEqual(['OK', 'OK', 'OK']);
  });

  it('scenes without a passback time have none', () => {
    expect(run([{ venue: PH, t: T0, direction: 'SINGLE', counter: 1 }, { venue: PH, t: T0 + 60_000, direction: 'SINGLE', counter: 2 }]).reasons).toEqual(['OK', 'OK']);
  });

  it('a rejected tap does not count as a passage', () => {
    const r = run([
      { venue: XZM, t: T0, counter: 1 },
      { venue: XZM, t: T0 + 300_000, counter: 2 }, // PASSBACK
      { venue: XZM, t: T0 + 600_001, counter: 3 }, // 10 min after the accepted entry: fine
    ]);
    expect(r.reasons).toEqual(['OK', 'PASSBACK', 'OK']);
  });
});

describe('behaviour - impossible travel', () => {
  const km = greatCircleKm(VENUES.get(XZM) as { lat: number; lon: number }, VENUES.get(SJZ) as { lat: number; lon: number });
  const min = minimumTravelMs(km, data.settings.maxSpeedKmh);

  it('Beijing to Shijiazhuang is about 260 km', () => {
    expect(km).toBeGreaterThan(240);
    expect(km).toBeLessThan(290);
  });

  it('exactly at the speed bound is plausible; one ms faster is impossible', () => {
    expect(run([{ venue: XZM, t: T0, counter: 1 }, { venue: SJZ, t: T0 + min, counter: 2 }]).reasons).toEqual(['OK', 'OK']);
    const r = run([{ venue: XZM, t: T0, counter: 1 }, { venue: SJZ, t: T0 + min - 1, counter: 2 }]);
    expect(r.reasons).toEqual(['OK', 'IMPOSSIBLE_TRAVEL']);
  });

  it('raises a critical flag and names the data versions in the trace', () => {
    const a = chipTap({ venue: XZM, t: T0, counter: 1 });
    const s = decideTap(data, undefined, a.tap, a.creds, T0).state;
    const b = chipTap({ venue: SJZ, t: T0 + 600_000, counter: 2 });
    const r = decideTap(data, s, b.tap, b.creds, T0);
    expect(r.decision.reason).toBe('IMPOSSIBLE_TRAVEL');
    expect(r.decision.trace.at(-1)).toMatchObject({ rule: 'travel', version: 'defaults-1/venues-test-1' });
    expect(r.flags).toMatchObject([{ ruleId: 'builtin:IMPOSSIBLE_TRAVEL', severity: 'CRITICAL' }]);
  });

  it('is skipped when the tap venue has no coordinates, and looks past neighbours without them', () => {
    const NC = 'bj-subway:无坐标';
    expect(run([{ venue: SJZ, t: T0, counter: 1 }, { venue: NC, t: T0 + 60_000, direction: 'EXIT', counter: 2 }]).reasons).toEqual(['OK', 'OK']);
    const r = run([
      { venue: XZM, t: T0, counter: 1 },
      { venue: NC, t: T0 + 60_000, direction: 'EXIT', counter: 2 },
      { venue: SJZ, t: T0 + 120_000, counter: 3 },
    ]);
    expect(r.reasons).toEqual(['OK', 'OK', 'IMPOSSIBLE_TRAVEL']);
  });

  it('the speed bound is a setting', () => {
    const slow = validatorData({ settingsInput: { maxSpeedKmh: 60 } });
    const a = chipTap({ venue: XZM, t: T0, counter: 1 });
    const s = decideTap(slow, undefined, a.tap, a.creds, T0).state;
    const b = chipTap({ venue: GM, t: T0 + 5 * 60_000, direction: 'EXIT', counter: 2 }); // ~9.6 km in 5 min = 115 km/h
    expect(decideTap(slow, s, b.tap, b.creds, T0).decision.reason).toBe('IMPOSSIBLE_TRAVEL');
    expect(decideTap(data, s, b.tap, b.creds, T0).decision.reason).toBe('OK');
  });
});

describe('behaviour - offline taps are judged in device-time order', () => {
  // Live: entry at 西直门 at T0, exit at 国贸 at T0 + 3 h. Then an offline batch arrives.
  const live = run([
    { venue: XZM, t: T0, counter: 10 },
    { venue: GM, t: T0 + 3 * 3_600_000, direction: 'EXIT', counter: 20 },
  ]);

  it('the live taps were accepted', () => {
    expect(live.reasons).toEqual(['OK', 'OK']);
  });

  it('an offline tap is checked against its earlier device-time neighbour, not against the latest tap', () => {
    // 10 min after 西直门 in Shijiazhuang: impossible, although 2 h 50 min before 国贸 would be fine.
    const r = run([{ venue: SJZ, t: T0 + 600_000, counter: 11, offline: true }], live.state);
    expect(r.reasons).toEqual(['IMPOSSIBLE_TRAVEL']);
  });

  it('...and against its later device-time neighbour', () => {
    // 2 h 50 min after 西直门 (fine) but 10 min before 国贸 (impossible).
    const r = run([{ venue: SJZ, t: T0 + 3 * 3_600_000 - 600_000, counter: 15, offline: true }], live.state);
    expect(r.reasons).toEqual(['IMPOSSIBLE_TRAVEL']);
  });

  it('an offline tap plausible on both sides is accepted and slotted in device-time order', () => {
    const r = run([{ venue: SJZ, t: T0 + 1.5 * 3_600_000, direction: 'SINGLE', counter: 15, offline: true }], live.state);
    expect(r.reasons).toEqual(['OK']);
    expect(r.state.taps.map((x) => x.v)).toEqual([XZM, SJZ, GM]);
  });

  it('an offline duplicate of a later tap, and a passback before a later entry, are caught', () => {
    expect(run([{ venue: GM, t: T0 + 3 * 3_600_000 - 5_000, direction: 'EXIT', counter: 19, offline: true }], live.state).reasons).toEqual(['DUPLICATE_TAP']);
    expect(run([{ venue: XZM, t: T0 - 300_000, counter: 9, offline: true }], live.state).reasons).toEqual(['PASSBACK']);
  });
});
