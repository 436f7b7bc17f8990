import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkBalanced,
  netPositions,
  settleClaim,
  settleDecision,
  sweepExpired,
  type CardSettleState,
  type PersonMedicalState,
  type SettlerData,
} from '../../../src/domain/settle/index.js';
import type { CatalogueClass, Decision, Direction, Region, RiderCategory, Settlement } from '../../../src/domain/types.js';
import { at, claim, data, decision } from './helpers.js';

/** Venues of the transit streams: Beijing subway and bus, Tianjin metro and bus, Hebei bus. */
const TRANSIT = [
  'bj-subway:西单',
  'bj-subway:国贸',
  'bj-subway:西直门',
  'bj-subway:3号航站楼',
  'bj-subway:土桥',
  'bj-bus:1:0',
  'bj-bus:1:9',
  'bj-bus:52:3',
  'tj-metro:刘园',
  'tj-metro:天津站',
  'tj-metro:寨上',
  'tj-bus:8:2',
  'sjz-bus:1:0',
  'sjz-metro:西王',
  'sjz-metro:福泽',
];
const OTHER = ['museum:BJ:palace-museum', 'scenic:TJ:tianjin-eye', 'library:HE:hebei-library', 'service:TJ:heping-social-security-center', 'clinic:HE:yanjiao-community-1'];
const DIRECTIONS: Direction[] = ['ENTRY', 'EXIT', 'ENTRY', 'EXIT', 'SINGLE'];
const CATEGORIES: RiderCategory[] = ['ADULT', 'ADULT', 'STUDENT', 'SENIOR', 'DISABLED'];

// Around a month boundary (Asia/Shanghai), so per-month sums are exercised.
const START = at('2026-03-28T05:00');

/**
 * The shipped data with two changes, both data, not code: a re-rating window of 40 days, so that
 * whole months of taps can be shuffled (the equality holds for taps within the window; older ones
 * are not re-rated, by design), and the Beijing monthly tiers at a tenth of their thresholds
 * (10, 15 and 40 yuan), so that random streams of a few dozen taps cross all of them.
 */
function wideWindow(): SettlerData {
  const d = data();
  const networks = new Map(d.tariffs.networks);
  const bj = networks.get('bj-subway')!;
  networks.set('bj-subway', { ...bj, monthlyTiers: bj.monthlyTiers!.map((t) => ({ ...t, fromFen: t.fromFen / 10 })) });
  return { ...d, tariffs: { ...d.tariffs, networks, rerate: { windowMs: 40 * 86_400_000, maxTaps: 1000 } } };
}

const tapArb = fc.record({
  venue: fc.constantFrom(...TRANSIT),
  dir: fc.constantFrom(...DIRECTIONS),
  offsetMin: fc.integer({ min: 0, max: 6 * 24 * 60 }),
  purse: fc.boolean(),
});

function decisions(raw: { venue: string; dir: Direction; offsetMin: number; purse: boolean }[], category: RiderCategory, cardRegion: Region): Decision[] {
  return raw.map((t, i) =>
    decision({
      id: `T${i}`,
      venue: t.venue,
      dir: t.dir,
      time: START + t.offsetMin * 60_000 + i, // distinct device times
      category,
      cardRegion,
      amountFen: t.purse ? 300 : 0,
    }),
  );
}

interface Outcome {
  total: number;
  byMonth: Map<string, number>;
  ids: string[];
  settlements: Settlement[];
}

/** Settles decisions in the given arrival order, with sweeps at the given points; a final sweep at `end`. */
function settleAll(d: SettlerData, arrivals: Decision[], sweepsAfter: Set<number>, sweepNow: (i: number) => number, end: number): Outcome {
  let st: CardSettleState | undefined;
  const settlements: Settlement[] = [];
  arrivals.forEach((dec, i) => {
    const r = settleDecision(d, st, dec, dec.deviceTime);
    st = r.state;
    settlements.push(...r.settlements);
    if (sweepsAfter.has(i)) {
      const s = sweepExpired(d, st, sweepNow(i));
      st = s.state;
      settlements.push(...s.settlements);
    }
  });
  if (st) settlements.push(...sweepExpired(d, st, end).settlements);
  const byMonth = new Map<string, number>();
  for (const s of settlements) byMonth.set(s.businessDay.slice(0, 7), (byMonth.get(s.businessDay.slice(0, 7)) ?? 0) + s.amountFen);
  return { total: settlements.reduce((a, s) => a + s.amountFen, 0), byMonth: new Map([...byMonth].filter(([, v]) => v !== 0).sort()), ids: settlements.map((s) => s.settlementId), settlements };
}

describe('properties - late taps', () => {
  it('any arrival order (with sweeps in between) gives the in-order sum, per card and per month', () => {
    const d = wideWindow();
    let tiersSeen = 0;
    let adjustmentsSeen = 0;
    fc.assert(
      fc.property(
        fc.array(tapArb, { minLength: 4, maxLength: 60 }),
        fc.constantFrom(...CATEGORIES),
        fc.constantFrom<Region>('BJ', 'TJ', 'HE'),
        fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })),
        fc.array(fc.nat(80), { maxLength: 5 }),
        (raw, category, region, randoms, sweepPoints) => {
          const decs = decisions(raw, category, region);
          const end = START + 8 * 86_400_000;
          const inOrder = [...decs].sort((a, b) => a.deviceTime - b.deviceTime);
          const expected = settleAll(d, inOrder, new Set(), () => end, end);
          // A shuffled arrival order (Fisher–Yates from the generated stream).
          const shuffled = [...decs];
          const it = randoms[Symbol.iterator]();
          for (let i = shuffled.length - 1; i > 0; i--) {
            const j = Math.min(i, Math.floor((it.next().value as number) * (i + 1)));
            [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
          }
          // Sweeps at the device time of the last arrival plus 5 h: a plausible wall clock.
          const got = settleAll(d, shuffled, new Set(sweepPoints), (i) => shuffled[i]!.deviceTime + 5 * 3_600_000, end);
          expect(got.total).toBe(expected.total);
          expect(got.byMonth).toEqual(expected.byMonth);
          expect(new Set(got.ids).size).toBe(got.ids.length); // ids are unique: safe as Nats-Msg-Ids
          tiersSeen += expected.settlements.some((s) => s.trace.some((t) => t.rule === 'month-tier' && t.detail.includes('50%'))) ? 1 : 0;
          adjustmentsSeen += got.settlements.some((s) => s.kind === 'ADJUSTMENT') ? 1 : 0;
        },
      ),
      { numRuns: 150 },
    );
    // The generator must reach what the property is about: tiers crossed, adjustments emitted.
    expect(tiersSeen).toBeGreaterThan(10);
    expect(adjustmentsSeen).toBeGreaterThan(30);
  });

  it('with the shipped 72 h window and pruning, uploads up to 24 h late still give the in-order sums', () => {
    const d = data();
    fc.assert(
      fc.property(
        fc.array(fc.record({ tap: tapArb, delayMin: fc.integer({ min: 0, max: 24 * 60 }), offsetMin: fc.integer({ min: 0, max: 12 * 24 * 60 }) }), { minLength: 4, maxLength: 80 }),
        (raw) => {
          const decs = decisions(
            raw.map((r) => ({ ...r.tap, offsetMin: r.offsetMin })),
            'ADULT',
            'BJ',
          );
          const end = START + 14 * 86_400_000;
          const inOrder = [...decs].sort((a, b) => a.deviceTime - b.deviceTime);
          // Arrival at device time + delay: when a tap arrives, no tap newer than its arrival exists.
          const arrivals = decs.map((dec, i) => ({ dec, arrive: dec.deviceTime + raw[i]!.delayMin * 60_000 })).sort((a, b) => a.arrive - b.arrive);
          const expected = settleAll(d, inOrder, new Set(), () => end, end);
          const got = settleAll(d, arrivals.map((a) => a.dec), new Set(arrivals.map((_, i) => i)), (i) => arrivals[i]!.arrive, end);
          expect(got.settlements.filter((s) => s.settlementId.endsWith(':late'))).toEqual([]);
          expect(got.total).toBe(expected.total);
          expect(got.byMonth).toEqual(expected.byMonth);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('pruning to a few taps loses nothing for taps arriving in order', () => {
    const small = { ...wideWindow() };
    small.tariffs = { ...small.tariffs, rerate: { windowMs: 86_400_000, maxTaps: 16 } };
    fc.assert(
      fc.property(fc.array(tapArb, { minLength: 4, maxLength: 80 }), (raw) => {
        const inOrder = decisions(raw, 'STUDENT', 'TJ').sort((a, b) => a.deviceTime - b.deviceTime);
        const end = START + 8 * 86_400_000;
        const pruned = settleAll(small, inOrder, new Set(), () => end, end);
        const unpruned = settleAll(wideWindow(), inOrder, new Set(), () => end, end);
        expect(pruned.ids).toEqual(unpruned.ids);
        expect(pruned.total).toBe(unpruned.total);
      }),
      { numRuns: 100 },
    );
  });

  it('replaying already-applied decisions changes nothing', () => {
    const d = wideWindow();
    fc.assert(
      fc.property(fc.array(tapArb, { minLength: 1, maxLength: 30 }), (raw) => {
        const decs = decisions(raw, 'ADULT', 'BJ');
        let st: CardSettleState | undefined;
        for (const dec of decs) st = settleDecision(d, st, dec, 0).state;
        for (const dec of decs) {
          const r = settleDecision(d, st, dec, 0);
          expect(r.settlements).toEqual([]);
          expect(r.state).toBe(st);
        }
      }),
      { numRuns: 50 },
    );
  });
});

const itemArb = fc.record({
  code: fc.constantFrom('A01', 'B02', 'S03'),
  name: fc.constant('item'),
  catalogueClass: fc.constantFrom<CatalogueClass>('CLASS_A', 'CLASS_B', 'SELF_PAY'),
  amountFen: fc.integer({ min: 0, max: 2_000_000 }),
});

const eventArb = fc.oneof(
  fc.record({ type: fc.constant('tap' as const), venue: fc.constantFrom(...TRANSIT, ...OTHER), dir: fc.constantFrom(...DIRECTIONS), offsetMin: fc.integer({ min: 0, max: 3 * 24 * 60 }), purse: fc.integer({ min: 0, max: 500 }), category: fc.constantFrom(...CATEGORIES), card: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ type: fc.constant('sweep' as const), card: fc.integer({ min: 0, max: 3 }), offsetMin: fc.integer({ min: 0, max: 4 * 24 * 60 }) }),
  fc.record({
    type: fc.constant('claim' as const),
    institution: fc.constantFrom('hospital:BJ:pumch', 'clinic:TJ:heping-community-1', 'hospital:HE:langfang-people-hospital', 'pharmacy:HE:lerentang-sjz'),
    insured: fc.constantFrom<Region>('BJ', 'TJ', 'HE'),
    inpatient: fc.boolean(),
    items: fc.array(itemArb, { minLength: 1, maxLength: 4 }),
    balance: fc.integer({ min: 0, max: 300_000 }),
    reverse: fc.nat(10),
    person: fc.integer({ min: 0, max: 1 }),
  }),
);

describe('properties - ledger', () => {
  it('random event streams leave every settlement balanced, and the clearing accounts consistent', () => {
    const d = data();
    const CARD_REGIONS: Region[] = ['BJ', 'TJ', 'HE', 'BJ'];
    fc.assert(
      fc.property(fc.array(eventArb, { minLength: 1, maxLength: 80 }), (events) => {
        const cards = new Map<number, CardSettleState>();
        const persons = new Map<number, PersonMedicalState>();
        const claimIds: string[] = [];
        const all: Settlement[] = [];
        events.forEach((e, i) => {
          if (e.type === 'tap') {
            const dec = decision({ id: `E${i}`, venue: e.venue, dir: e.dir, time: START + e.offsetMin * 60_000, category: e.category, card: `card-${e.card}`, cardRegion: CARD_REGIONS[e.card]!, amountFen: e.purse });
            const r = settleDecision(d, cards.get(e.card), dec, 0);
            cards.set(e.card, r.state);
            all.push(...r.settlements);
          } else if (e.type === 'sweep') {
            const st = cards.get(e.card);
            if (st) {
              const r = sweepExpired(d, st, START + e.offsetMin * 60_000);
              cards.set(e.card, r.state);
              all.push(...r.settlements);
            }
          } else {
            const reverses = e.reverse < claimIds.length && e.reverse % 3 === 0 ? claimIds[e.reverse]! : '';
            const c = claim({
              claimId: `C${i}`,
              institutionId: e.institution,
              insuredRegion: e.insured,
              treatment: e.inpatient ? 'INPATIENT' : 'OUTPATIENT',
              items: e.items,
              personalAccountBalanceFen: e.balance,
              reversesClaimId: reverses,
              personToken: `person-${e.person}`,
            });
            const r = settleClaim(d, persons.get(e.person), c, 0);
            persons.set(e.person, r.state);
            claimIds.push(c.claimId);
            all.push(r.settlement);
            const split = r.settlement.claim!;
            if (split.status === 'SETTLED') {
              expect(split.hifp_pay + split.acct_pay + split.cash_payamt).toBe(split.medfee_sumamt);
              expect(Math.min(split.hifp_pay, split.acct_pay, split.cash_payamt)).toBeGreaterThanOrEqual(0);
            }
          }
        });
        for (const s of all) {
          const c = checkBalanced(s.ledger);
          expect(c.balanced, s.settlementId).toBe(true);
          for (const [n, e] of s.ledger.entries()) expect(e.entryId).toBe(`${s.settlementId}#${n + 1}`);
        }
        const entries = all.flatMap((s) => s.ledger);
        expect(checkBalanced(entries).balanced || entries.length === 0).toBe(true);
        const pos = netPositions(entries);
        expect(pos.consistent).toBe(true);
        expect(pos.regions.BJ + pos.regions.TJ + pos.regions.HE).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
