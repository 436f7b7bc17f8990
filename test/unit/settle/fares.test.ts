import { describe, expect, it } from 'vitest';
import { applyMonthlyTiers, bandFare, quoteFare, type FareQuoteInput } from '../../../src/domain/settle/index.js';
import { at, data } from './helpers.js';

// A Monday at noon: outside Beijing's early-morning discount.
const NOON = at('2026-03-02T12:00');
const fare = (q: Partial<FareQuoteInput> & { network: string }): number => quoteFare(data(), { entryTime: NOON, ...q }).fareFen;

describe('fares - Beijing subway distance bands (fare_rules.json, 100 m allowance)', () => {
  // The source's bands end at …099 m: up to 6 km is 3 yuan including the 100 m allowance, so
  // 6.0 km and 6.099 km pay 3 yuan and 6.1 km pays 4.
  it.each([
    [0, 300],
    [6.0, 300],
    [6.099, 300],
    [6.1, 400],
    [12.099, 400],
    [12.1, 500],
    [22.099, 500],
    [22.1, 600],
    [32.099, 600],
    [32.1, 700], // then +1 yuan per 20 km
    [52.1, 800],
    [72.1, 900],
    [92.1, 1000],
    [112.099, 1000],
    [112.1, 1100],
    [132.1, 1200],
  ])('%s km → %s fen', (km, fen) => {
    expect(fare({ network: 'bj-subway', distanceKm: km })).toBe(fen);
  });

  it('prices real journeys by the shortest path', () => {
    const q = quoteFare(data(), { network: 'bj-subway', from: '西单', to: '国贸', entryTime: NOON });
    expect([q.distanceM, q.fareFen, q.estimated]).toEqual([7165, 400, false]);
    expect(q.trace.map((t) => t.rule)).toEqual(['path', 'band']);
    expect(fare({ network: 'bj-subway', from: '苹果园', to: '国贸' })).toBe(600); // 25.6 km
  });

  it('adds the airport line flat fare to the main network fare', () => {
    const q = quoteFare(data(), { network: 'bj-subway', from: '3号航站楼', to: '西单', entryTime: NOON });
    expect(q.fareFen).toBe(2500 + 500); // 首都机场线 ¥25 + 13.1 km on the main network
    expect(q.trace.map((t) => t.rule)).toContain('special-line');
  });

  it('halves the fare for early entries at the listed stations on weekdays only', () => {
    const monday = fare({ network: 'bj-subway', from: '土桥', to: '国贸', entryTime: at('2026-03-02T06:30') });
    const sunday = fare({ network: 'bj-subway', from: '土桥', to: '国贸', entryTime: at('2026-03-01T06:30') });
    const late = fare({ network: 'bj-subway', from: '土桥', to: '国贸', entryTime: at('2026-03-02T07:00') });
    expect([monday, sunday, late]).toEqual([250, 500, 500]);
  });

  it('adds the max fare when a journey exceeds the 4 h limit', () => {
    const q = { network: 'bj-subway', from: '西单', to: '国贸', entryTime: NOON };
    expect(fare({ ...q, exitTime: NOON + 240 * 60_000 })).toBe(400);
    expect(fare({ ...q, exitTime: NOON + 241 * 60_000 })).toBe(400 + 1000);
  });
});

describe('fares - other networks', () => {
  it.each([
    [6.0, 200],
    [6.001, 300],
    [13.0, 300],
    [20.0, 400],
    [28.0, 500],
    [36.0, 600],
    [45.0, 700],
    [54.0, 800],
    [54.001, 900], // then +1 yuan per 10 km
    [64.0, 900],
    [64.001, 1000],
  ])('Shijiazhuang metro %s km → %s fen', (km, fen) => {
    expect(fare({ network: 'sjz-metro', distanceKm: km })).toBe(fen);
  });

  it.each([
    [1, 200],
    [5, 200],
    [6, 300],
    [10, 300],
    [11, 400],
    [16, 400],
    [17, 500],
    [40, 500],
  ])('Tianjin metro %s stations → %s fen before the card discount', (n, fen) => {
    expect(fare({ network: 'tj-metro', stationCount: n, category: 'SENIOR' })).toBe(fen); // SENIOR: 100 % on the metro
  });

  it.each([
    [10.0, 200],
    [10.001, 300],
    [15.0, 300],
    [15.001, 400],
    [23.0, 500],
  ])('Beijing bus %s km → %s fen list price (ADULT pays half)', (km, fen) => {
    const q = quoteFare(data(), { network: 'bj-bus', distanceKm: km, entryTime: NOON });
    expect(q.baseFareFen).toBe(fen);
    expect(q.fareFen).toBe(fen / 2);
  });

  it('Beijing bus between two stops of a route: distance from routeKm', () => {
    const q = quoteFare(data(), { network: 'bj-bus', from: 'bj-bus:1:0', to: 'bj-bus:1:13', entryTime: NOON, category: 'STUDENT' });
    expect([q.distanceM, q.baseFareFen, q.fareFen]).toEqual([23000, 500, 125]);
  });

  it('Tianjin and Hebei buses are flat, tap once', () => {
    expect(quoteFare(data(), { network: 'tj-bus', from: 'tj-bus:8:0', entryTime: NOON }).baseFareFen).toBe(200);
    expect(quoteFare(data(), { network: 'sjz-bus', from: 'sjz-bus:1:2', entryTime: NOON }).baseFareFen).toBe(150);
  });
});

describe('fares - concessions', () => {
  it('65+ and disabled riders are free on Beijing buses but pay full fare on the subway', () => {
    for (const category of ['SENIOR', 'DISABLED'] as const) {
      expect(fare({ network: 'bj-bus', from: 'bj-bus:1:0', to: 'bj-bus:1:5', category })).toBe(0);
      expect(fare({ network: 'bj-subway', from: '西单', to: '国贸', category })).toBe(400);
    }
    expect(fare({ network: 'bj-bus', from: 'bj-bus:1:0', to: 'bj-bus:1:5', category: 'ADULT' })).toBe(100);
    expect(fare({ network: 'bj-bus', from: 'bj-bus:1:0', to: 'bj-bus:1:5', category: 'STUDENT' })).toBe(50);
  });
});

describe('fares - Tianjin bus↔metro transfer', () => {
  const metro = { network: 'tj-metro', stationCount: 8, exitTime: NOON + 20 * 60_000 } as const; // 3 yuan list price

  it('takes 1 yuan off BEFORE the card discount: (300 − 100) × 90 % = 180, not 300 × 90 % − 100 = 170', () => {
    const q = quoteFare(data(), { ...metro, entryTime: NOON, previousLeg: { network: 'tj-bus', endTime: NOON - 90 * 60_000 } });
    expect(q.fareFen).toBe(180);
    expect(q.trace.map((t) => t.rule)).toEqual(['band', 'transfer', 'category']);
  });

  it('only within 90 minutes, only between bus and metro', () => {
    expect(fare({ ...metro, previousLeg: { network: 'tj-bus', endTime: NOON - 91 * 60_000 } })).toBe(270);
    expect(fare({ ...metro, previousLeg: { network: 'tj-metro', endTime: NOON - 10 * 60_000 } })).toBe(270);
    expect(fare({ ...metro, previousLeg: { network: 'bj-bus', endTime: NOON - 10 * 60_000 } })).toBe(270);
    expect(fare({ network: 'tj-bus', from: 'tj-bus:8:0', previousLeg: { network: 'tj-metro', endTime: NOON - 30 * 60_000 } })).toBe(90);
  });
});

describe('fares - monthly spend tiers (Beijing subway)', () => {
  const tiers = data().tariffs.networks.get('bj-subway')!.monthlyTiers!;
  const pay = (spentFen: number, fareFen = 300) => applyMonthlyTiers(tiers, spentFen, fareFen).payFen;

  // The spend before the ride picks the tier: before 100 yuan full fare, from 100 yuan 80 %,
  // from 150 yuan 50 %, from 400 yuan full fare again.
  it.each([
    ['100 yuan', 9_999, 300],
    ['100 yuan', 10_000, 240],
    ['100 yuan', 10_001, 240],
    ['150 yuan', 14_999, 240],
    ['150 yuan', 15_000, 150],
    ['150 yuan', 15_001, 150],
    ['400 yuan', 39_999, 150],
    ['400 yuan', 40_000, 300],
    ['400 yuan', 40_001, 300],
  ])('around %s: %i fen spent before a 3 yuan ride, it pays %i fen', (_boundary, spent, expected) => {
    expect(pay(spent)).toBe(expected);
  });

  it('a ride that takes the month past a threshold is not split: it pays the rate of the spend before it', () => {
    expect(applyMonthlyTiers(tiers, 9_900, 300)).toEqual({ payFen: 300, tier: { fromFen: 0, payPercent: 100 } });
    expect(applyMonthlyTiers(tiers, 14_900, 300)).toEqual({ payFen: 240, tier: { fromFen: 10_000, payPercent: 80 } });
    expect(applyMonthlyTiers(tiers, 39_900, 300)).toEqual({ payFen: 150, tier: { fromFen: 15_000, payPercent: 50 } });
    // A large fare (airport line) from 90 yuan: all of it at full fare, none at 80 %.
    expect(pay(9_000, 3_000)).toBe(3_000);
  });

  it('rounds the whole ride half up to the fen', () => {
    expect(pay(15_000, 5)).toBe(3); // 2.5 fen
    expect(pay(10_000, 7)).toBe(6); // 5.6 fen
    expect(pay(10_000, 0)).toBe(0);
  });

  it('quoteFare picks the tier from the month-to-date spend and reports the new spend', () => {
    const below = quoteFare(data(), { network: 'bj-subway', from: '西单', to: '国贸', entryTime: NOON, monthToDateFen: 9_999 });
    expect([below.fareFen, below.monthToDateAfterFen]).toEqual([400, 9_999 + 400]);
    expect(below.trace.map((t) => t.rule)).not.toContain('month-tier');
    const at = quoteFare(data(), { network: 'bj-subway', from: '西单', to: '国贸', entryTime: NOON, monthToDateFen: 10_000 });
    expect([at.fareFen, at.monthToDateAfterFen]).toEqual([320, 10_000 + 320]);
    expect(at.trace.at(-1)).toMatchObject({ rule: 'month-tier', detail: 'month 2026-03 spent 10000 fen before this ride: tier from 10000 fen pays 80%, 400 → 320 fen' });
  });
});

describe('fares - bands', () => {
  it('bandFare continues the last closed band in steps', () => {
    const t = { bands: [{ upTo: 10, fareFen: 100 }], beyond: { everyM: 5, addFen: 10 } };
    expect([bandFare(t, 10).fareFen, bandFare(t, 11).fareFen, bandFare(t, 15).fareFen, bandFare(t, 16).fareFen]).toEqual([100, 110, 110, 120]);
  });
});
