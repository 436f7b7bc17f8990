import { describe, expect, it } from 'vitest';
import {
  checkBalanced,
  nextSweepAt,
  settleDecision,
  sweepExpired,
  type CardSettleState,
  type SettleResult,
} from '../../../src/domain/settle/index.js';
import type { Decision, Settlement } from '../../../src/domain/types.js';
import { at, data, decision, type TapSpec } from './helpers.js';

const NOW = at('2026-03-10T00:00');

/** Settles taps in the given order; returns the final state, all settlements and notices. */
function run(taps: (TapSpec | Decision)[], state?: CardSettleState): SettleResult {
  let st = state;
  const settlements: Settlement[] = [];
  const notices: SettleResult['notices'] = [];
  for (const t of taps) {
    const r = settleDecision(data(), st, 'verdict' in t ? t : decision(t), NOW);
    st = r.state;
    settlements.push(...r.settlements);
    notices.push(...r.notices);
  }
  return { state: st!, settlements, notices };
}

const sum = (ss: Settlement[]): number => ss.reduce((s, x) => s + x.amountFen, 0);
/** Net amount per charge (the tap that owns it), zeros dropped. */
const perOwner = (ss: Settlement[]): Map<string, number> => {
  const m = new Map<string, number>();
  for (const s of ss) {
    const owner = s.kind === 'ADJUSTMENT' ? s.adjustsEventId : s.eventId;
    m.set(owner, (m.get(owner) ?? 0) + s.amountFen);
  }
  return new Map([...m].filter(([, v]) => v !== 0).sort());
};
const brief = (ss: Settlement[]) => ss.map((s) => [s.settlementId, s.kind, s.amountFen, s.adjustsEventId]);

describe('journeys - pairing', () => {
  it('an entry and an exit make one FARE on the exit tap', () => {
    const r = run([
      { id: 'e1', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-02T08:00' },
      { id: 'x1', venue: 'bj-subway:国贸', dir: 'EXIT', time: '2026-03-02T08:25' },
    ]);
    expect(brief(r.settlements)).toEqual([['x1:fare', 'FARE', 400, '']]);
    const s = r.settlements[0]!;
    expect(s).toMatchObject({ eventId: 'x1', network: 'bj-subway', scene: 'RAIL', venueId: 'bj-subway:国贸', entryVenueId: 'bj-subway:西单', distanceM: 7165, businessDay: '2026-03-02', settleTime: NOW });
    expect(s.ledger).toEqual([
      { entryId: 'x1:fare#1', account: 'card:BJ', debitFen: 400, creditFen: 0 },
      { entryId: 'x1:fare#2', account: 'operator:bj-subway', debitFen: 0, creditFen: 400 },
    ]);
  });

  it('two entries in a row close the first as an incomplete journey at the max fare', () => {
    const r = run([
      { id: 'e1', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-02T08:00' },
      { id: 'e2', venue: 'bj-subway:国贸', dir: 'ENTRY', time: '2026-03-02T18:00' },
      { id: 'x2', venue: 'bj-subway:西单', dir: 'EXIT', time: '2026-03-02T18:30' },
    ]);
    expect(brief(r.settlements)).toEqual([
      ['e1:fare', 'FARE', 1000, ''],
      ['x2:fare', 'FARE', 400, ''],
    ]);
    expect(r.settlements[0]!.trace.map((t) => t.detail).join()).toContain('a second entry');
  });

  it('an exit without an entry is an incomplete journey; the late entry re-rates it', () => {
    const exit = { id: 'x1', venue: 'bj-subway:国贸', dir: 'EXIT', time: '2026-03-02T08:25' } as const;
    const entry = { id: 'e1', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-02T08:00', offline: true } as const;
    const r = run([exit, entry]);
    expect(brief(r.settlements)).toEqual([
      ['x1:fare', 'FARE', 1000, ''],
      ['e1:adj:0', 'ADJUSTMENT', -600, 'x1'],
    ]);
    expect(sum(r.settlements)).toBe(sum(run([entry, exit]).settlements));
    // The adjustment reverses money with the sides of the ledger swapped.
    expect(r.settlements[1]!.ledger).toEqual([
      { entryId: 'e1:adj:0#1', account: 'card:BJ', debitFen: 0, creditFen: 600 },
      { entryId: 'e1:adj:0#2', account: 'operator:bj-subway', debitFen: 600, creditFen: 0 },
    ]);
  });

  it('a journey over the 4 h limit pays the fare plus the max fare', () => {
    const r = run([
      { id: 'e1', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-02T08:00' },
      { id: 'x1', venue: 'bj-subway:国贸', dir: 'EXIT', time: '2026-03-02T12:01' },
    ]);
    expect(sum(r.settlements)).toBe(1400);
  });

  it('an exit on another network does not pair: incomplete entry, incomplete exit', () => {
    const r = run([
      { id: 'e1', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-02T08:00' },
      { id: 'x1', venue: 'tj-metro:天津站', dir: 'EXIT', time: '2026-03-02T10:00' },
    ]);
    expect(brief(r.settlements)).toEqual([
      ['e1:fare', 'FARE', 1000, ''],
      ['x1:fare', 'FARE', 450, ''], // Tianjin max 500 × 90 % card discount
    ]);
  });
});

describe('journeys - incomplete journeys and late exits', () => {
  const entry = { id: 'e1', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-02T08:00' } as const;
  const lateExit = { id: 'x1', venue: 'bj-subway:国贸', dir: 'EXIT', time: '2026-03-02T08:40', offline: true } as const;

  it('the sweep charges the max fare only after the time limit, once', () => {
    const r = run([entry]);
    expect(r.settlements).toEqual([]);
    expect(nextSweepAt(data(), r.state)).toBe(at('2026-03-02T12:00') + 1);
    const early = sweepExpired(data(), r.state, at('2026-03-02T11:59'));
    expect(early.settlements).toEqual([]);
    expect(early.state).toBe(r.state);
    const swept = sweepExpired(data(), r.state, at('2026-03-02T12:01'));
    expect(brief(swept.settlements)).toEqual([['e1:fare', 'FARE', 1000, '']]);
    expect(swept.settlements[0]!.trace[0]!.detail).toContain('no exit within 240 min');
    expect(sweepExpired(data(), swept.state, at('2026-03-03T12:01')).settlements).toEqual([]);
    expect(nextSweepAt(data(), swept.state)).toBeUndefined();
  });

  it('a late exit re-rates the incomplete journey with an adjustment, never rewriting the FARE', () => {
    const swept = sweepExpired(data(), run([entry]).state, at('2026-03-02T13:00'));
    const r = run([lateExit], swept.state);
    expect(brief(r.settlements)).toEqual([
      ['x1:adj:0', 'ADJUSTMENT', -1000, 'e1'],
      ['x1:fare', 'FARE', 400, ''],
    ]);
    expect(r.settlements[0]).toMatchObject({ eventId: 'x1', deviceTime: at('2026-03-02T08:00'), businessDay: '2026-03-02' });
    expect(sum([...swept.settlements, ...r.settlements])).toBe(sum(run([entry, lateExit]).settlements));
  });
});

describe('journeys - buses and concessions', () => {
  it('a 65+ rider pays nothing on a Beijing bus and full fare on the subway', () => {
    const r = run([
      { id: 'b1', venue: 'bj-bus:1:0', dir: 'ENTRY', time: '2026-03-02T08:00', category: 'SENIOR' },
      { id: 'b2', venue: 'bj-bus:1:13', dir: 'EXIT', time: '2026-03-02T08:50', category: 'SENIOR' },
      { id: 's1', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-02T09:00', category: 'SENIOR' },
      { id: 's2', venue: 'bj-subway:国贸', dir: 'EXIT', time: '2026-03-02T09:25', category: 'SENIOR' },
    ]);
    expect(brief(r.settlements)).toEqual([
      ['b2:fare', 'FARE', 0, ''],
      ['s2:fare', 'FARE', 400, ''],
    ]);
    expect(r.settlements[0]!.ledger).toEqual([]);
    expect(r.settlements[0]!.baseFareFen).toBe(500);
  });

  it('a Beijing bus tap-off on another route does not pair: route fare to the far end for the tap-on', () => {
    const r = run([
      { id: 'b1', venue: 'bj-bus:1:3', dir: 'ENTRY', time: '2026-03-02T08:00' },
      { id: 'b2', venue: 'bj-bus:52:4', dir: 'EXIT', time: '2026-03-02T08:30' },
    ]);
    // Stop 3 of route 1 is at 4.4 km of 23 km: 18.6 km to the far end → 4 yuan, adult half.
    expect(brief(r.settlements)).toEqual([
      ['b1:fare', 'FARE', 200, ''],
      ['b2:fare', 'FARE', 100, ''], // stop 4 of route 52 at 5.8 km of 14.6: 8.8 km → 2 yuan, half
    ]);
  });

  it('Tianjin: bus then metro within 90 min gets 1 yuan off before the card discount; a late bus tap adjusts', () => {
    const bus = { id: 't1', venue: 'tj-bus:8:0', dir: 'SINGLE', time: '2026-03-02T07:30' } as const;
    const inn = { id: 'm1', venue: 'tj-metro:刘园', dir: 'ENTRY', time: '2026-03-02T08:00' } as const;
    const out = { id: 'm2', venue: 'tj-metro:天津站', dir: 'EXIT', time: '2026-03-02T08:35' } as const;
    const inOrder = run([bus, inn, out]);
    expect(brief(inOrder.settlements)).toEqual([
      ['t1:fare', 'FARE', 180, ''],
      ['m2:fare', 'FARE', 270, ''], // 12 stations: (400 − 100) × 90 %
    ]);
    const late = run([inn, out, { ...bus, offline: true }]);
    expect(brief(late.settlements)).toEqual([
      ['m2:fare', 'FARE', 360, ''],
      ['t1:fare', 'FARE', 180, ''],
      ['t1:adj:0', 'ADJUSTMENT', -90, 'm2'],
    ]);
    expect(sum(late.settlements)).toBe(sum(inOrder.settlements));
  });
});

describe('journeys - monthly tiers and late taps', () => {
  // Journeys of 3 yuan (西单 → 王府井, 2.6 km), two a day from 2 March.
  const journeys = (n: number): TapSpec[] =>
    Array.from({ length: n }, (_, i) => {
      const day = String(2 + Math.floor(i / 2)).padStart(2, '0');
      const hour = i % 2 ? '18' : '08';
      return [
        { id: `e${String(i).padStart(2, '0')}`, venue: 'bj-subway:西单', dir: 'ENTRY', time: `2026-03-${day}T${hour}:00` },
        { id: `x${String(i).padStart(2, '0')}`, venue: 'bj-subway:王府井', dir: 'EXIT', time: `2026-03-${day}T${hour}:20` },
      ] as TapSpec[];
    }).flat();

  it('the journey that takes the month past 100 yuan pays full fare; the next one 80 %', () => {
    const r = run(journeys(36));
    const fares = r.settlements.map((s) => s.amountFen);
    // 33 journeys: 99 yuan spent. The 34th is charged at full fare (spend before it 9,900 fen).
    expect(fares.slice(0, 34)).toEqual(Array(34).fill(300));
    expect(fares.slice(34)).toEqual([240, 240]);
    expect(r.settlements[33]!.trace.map((t) => t.rule)).not.toContain('month-tier');
    expect(r.settlements[34]!.trace.at(-1)).toMatchObject({ rule: 'month-tier', detail: expect.stringContaining('spent 10200 fen before this ride: tier from 10000 fen pays 80%, 300 → 240 fen') });
  });

  it('a late journey earlier in the month moves the tier boundary: later fares are adjusted', () => {
    const taps = journeys(35);
    // Journey 31 (17 March, within the 72 h re-rating window of the newest tap) arrives last.
    const late = taps.splice(62, 2).map((t) => ({ ...t, offline: true }));
    const r = run([...taps, ...late]);
    const inOrder = run(journeys(35));
    expect(sum(r.settlements)).toBe(sum(inOrder.settlements));
    // The late entry first looks like an incomplete journey (the next tap is an entry), which
    // shifts the tiers; its exit then pairs it. Per charge, FARE + adjustments end where in-order is.
    expect(r.settlements.filter((s) => s.kind === 'ADJUSTMENT').length).toBeGreaterThan(0);
    expect(perOwner(r.settlements)).toEqual(perOwner(inOrder.settlements));
    expect(perOwner(r.settlements).get('x33')).toBe(300);
    expect(perOwner(r.settlements).get('x34')).toBe(240);
    expect(r.settlements.every((s) => checkBalanced(s.ledger).balanced)).toBe(true);
  });

  it('a late journey pushes the later rides over 100 yuan: the ride that paid full fare is re-rated at 80 %', () => {
    const all = journeys(35);
    const late = all.splice(62, 2).map((t) => ({ ...t, offline: true })); // journey 31, 17 March
    const before = run(all);
    // Without journey 31: 31 journeys (93 yuan) before journey 32; journeys 32, 33, 34 then pay
    // full fare, taking the month to 102 yuan.
    expect(perOwner(before.settlements).get('x34')).toBe(300);
    expect(sum(before.settlements)).toBe(34 * 300);
    const after = run(late, before.state);
    // With it, 99 yuan are spent before journey 33 (full fare, the month reaches 102 yuan) and
    // journey 34 falls in the 80 % tier: an adjustment of −60 fen on its charge.
    const owners = perOwner([...before.settlements, ...after.settlements]);
    expect(owners.get('x33')).toBe(300);
    expect(owners.get('x34')).toBe(240);
    expect(after.settlements.filter((s) => s.kind === 'ADJUSTMENT' && s.adjustsEventId === 'x34').reduce((n, s) => n + s.amountFen, 0)).toBe(-60);
    expect(sum([...before.settlements, ...after.settlements])).toBe(34 * 300 + 240);
    expect(owners).toEqual(perOwner(run(journeys(35)).settlements));
  });

  it('a journey older than the re-rating window is not re-rated (NO_CHARGE, reported)', () => {
    const taps = journeys(35);
    const late = taps.splice(4, 2).map((t) => ({ ...t, offline: true })); // 3 March, two weeks late
    const r = run([...taps, ...late]);
    expect(r.settlements.slice(-2).map((s) => s.kind)).toEqual(['NO_CHARGE', 'NO_CHARGE']);
    expect(r.notices.map((n) => n.kind)).toEqual(['BEYOND_RERATE_WINDOW', 'BEYOND_RERATE_WINDOW']);
  });
});

describe('card state - idempotency, determinism, bounds', () => {
  const taps: TapSpec[] = [
    { id: 'e1', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-02T08:00' },
    { id: 'x1', venue: 'bj-subway:国贸', dir: 'EXIT', time: '2026-03-02T08:25' },
  ];

  it('an event already applied gives no settlements and the same state', () => {
    const r = run(taps);
    const again = settleDecision(data(), r.state, decision(taps[1]!), NOW + 5000);
    expect(again.settlements).toEqual([]);
    expect(again.state).toBe(r.state);
  });

  it('the same inputs give the same ids, amounts and ledger; only settleTime follows nowMs', () => {
    const st = run([taps[0]!]).state;
    const a = settleDecision(data(), st, decision(taps[1]!), 1);
    const b = settleDecision(data(), st, decision(taps[1]!), 2);
    const strip = (ss: Settlement[]) => ss.map(({ settleTime: _t, ...rest }) => rest);
    expect(strip(b.settlements)).toEqual(strip(a.settlements));
    expect(b.state).toEqual(a.state);
  });

  it('never changes the state it is given', () => {
    const st = run([taps[0]!]).state;
    const before = structuredClone(st);
    settleDecision(data(), st, decision(taps[1]!), NOW);
    sweepExpired(data(), st, at('2026-03-03T00:00'));
    settleDecision(data(), st, decision({ id: 'late', venue: 'bj-subway:国贸', dir: 'ENTRY', time: '2026-03-01T08:00' }), NOW);
    expect(st).toEqual(before);
  });

  it('the state survives JSON and gives the same answers', () => {
    const st = run([taps[0]!]).state;
    const viaJson = JSON.parse(JSON.stringify(st)) as CardSettleState;
    expect(settleDecision(data(), viaJson, decision(taps[1]!), NOW)).toEqual(settleDecision(data(), st, decision(taps[1]!), NOW));
  });

  it('stays bounded; taps older than the re-rating checkpoint are settled NO_CHARGE and reported', () => {
    const many: TapSpec[] = Array.from({ length: 600 }, (_, i) => ({
      id: `t${String(i).padStart(3, '0')}`,
      venue: i % 2 ? 'bj-subway:国贸' : 'bj-subway:西单',
      dir: i % 2 ? 'EXIT' : 'ENTRY',
      time: at('2026-03-01T06:00') + i * 10 * 60_000,
    }));
    const r = run(many);
    expect(r.state.taps.length).toBeLessThanOrEqual(data().tariffs.rerate.maxTaps);
    expect(JSON.stringify(r.state).length).toBeLessThan(100_000);
    expect(r.state.cursor).not.toBeNull();
    const tooLate = run([{ id: 'old', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-01T06:05', offline: true }], r.state);
    expect(brief(tooLate.settlements)).toEqual([['old:late', 'NO_CHARGE', 0, '']]);
    expect(tooLate.notices).toEqual([expect.objectContaining({ kind: 'BEYOND_RERATE_WINDOW', eventId: 'old' })]);
  });

  it('a rejected decision changes nothing', () => {
    const d = { ...decision(taps[0]!), verdict: 'REJECTED' as const, reason: 'HOTLIST_LOST' };
    const r = settleDecision(data(), undefined, d, NOW);
    expect(r.settlements).toEqual([]);
    expect(r.state.taps).toEqual([]);
  });
});

describe('purse taps, cross-region clearing, entries and no-charge scenes', () => {
  it('checks a purse debit against the tariff and reports a mismatch', () => {
    const r = run([
      { id: 'e1', venue: 'bj-subway:西单', dir: 'ENTRY', time: '2026-03-02T08:00' },
      { id: 'x1', venue: 'bj-subway:国贸', dir: 'EXIT', time: '2026-03-02T08:25', amountFen: 300 },
    ]);
    expect(r.notices).toEqual([{ kind: 'PURSE_MISMATCH', eventId: 'x1', debitedFen: 300, tariffFen: 400 }]);
    expect(r.settlements[0]!.ledger[0]).toMatchObject({ account: 'purse:BJ', debitFen: 400 });
    expect(r.settlements[0]!.trace.at(-1)).toMatchObject({ rule: 'purse-check', detail: expect.stringContaining('MISMATCH') });
    const ok = run([{ id: 'b1', venue: 'tj-bus:8:0', time: '2026-03-02T08:00', amountFen: 180 }]);
    expect(ok.notices).toEqual([]);
  });

  it('a Beijing card in Tianjin is cleared through the BJ→TJ clearing pair', () => {
    const r = run([{ id: 'b1', venue: 'tj-bus:8:0', time: '2026-03-02T08:00', cardRegion: 'BJ' }]);
    expect(r.settlements[0]!.ledger.map((e) => [e.account, e.debitFen, e.creditFen])).toEqual([
      ['card:BJ', 180, 0],
      ['clearing:BJ:TJ', 0, 180],
      ['clearing-receivable:BJ:TJ', 180, 0],
      ['operator:tj-bus', 0, 180],
    ]);
  });

  it('culture entries follow the venue policy and concession categories', () => {
    const entry = (venue: string, category: TapSpec['category'], id: string) =>
      run([{ id, venue, time: '2026-03-02T10:00', category }]).settlements[0]!;
    expect(entry('museum:BJ:palace-museum', 'ADULT', 'c1')).toMatchObject({ settlementId: 'c1:entry', kind: 'ENTRY', amountFen: 6000, baseFareFen: 6000 });
    expect(entry('museum:BJ:palace-museum', 'STUDENT', 'c2').amountFen).toBe(3000);
    expect(entry('museum:BJ:palace-museum', 'SENIOR', 'c3').amountFen).toBe(0);
    expect(entry('scenic:BJ:badaling-great-wall', 'SENIOR', 'c4').amountFen).toBe(2000);
    expect(entry('scenic:HE:longxing-temple', 'ADULT', 'c5').amountFen).toBe(4000);
    expect(entry('library:BJ:national-library', 'ADULT', 'c6')).toMatchObject({ kind: 'ENTRY', amountFen: 0, ledger: [] });
  });

  it('service and medical counter taps are NO_CHARGE, once', () => {
    const svc = decision({ id: 'v1', venue: 'service:BJ:dongcheng-social-insurance-center', time: '2026-03-02T10:00' });
    const r1 = settleDecision(data(), undefined, svc, NOW);
    expect(brief(r1.settlements)).toEqual([['v1:none', 'NO_CHARGE', 0, '']]);
    expect(settleDecision(data(), r1.state, svc, NOW).settlements).toEqual([]);
    const med = run([{ id: 'm1', venue: 'clinic:BJ:chaoyang-community-1', time: '2026-03-02T10:00' }]);
    expect(brief(med.settlements)).toEqual([['m1:none', 'NO_CHARGE', 0, '']]);
  });
});
