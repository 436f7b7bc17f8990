/**
 * What the settlements should add up to, computed by the bench with the settler's own pure core
 * (src/domain/settle: settleDecision for taps, settleClaim for claims) over what the simulator
 * sent — not over what tapflow stored — so that a lost, duplicated or mis-priced event shows as
 * a difference.
 *
 * Input: the taps the simulator expects ACCEPTED and that were acknowledged durable, as the
 * Decision the validator should produce (same fields ingest fills in: token, terminal region,
 * venue operator), fed per card in device-time order; and the claims that got an answer. The
 * settler sees a card's taps in arrival order instead, which differs for offline uploads; the
 * pure core guarantees the same sums for any arrival order within the re-rating window
 * (src/domain/settle/card.ts, test/unit/settle/properties.test.ts), which is what makes this
 * comparison sound. Journeys still open at the end cost 0 on both sides (no journey of the
 * bench outlasts a network's time limit, so the settler's sweep closes none).
 */
import type { SettlerData } from '../../src/domain/settle/index.js';
import { settleClaim, settleDecision, type CardSettleState } from '../../src/domain/settle/index.js';
import { partitionOf, regionOfCardNumber, tokenize } from '../../src/domain/card/token.js';
import type { Decision, Direction, MedicalClaimEvent, RiderCategory, Scene, Settlement } from '../../src/domain/types.js';
import {
  Direction as PbDirection,
  RiderCategory as PbRider,
  Scene as PbScene,
} from '../../src/gen/tapflow/v1/ingest.js';
import type { SimClaim, SimTap } from './fleet.js';
import { checkClaim, wireClaimOf } from '../../src/ingest/shape.js';

export interface KindTotal {
  settlements: number;
  fen: number;
}

export interface Expectation {
  /** Sum of every settlement's amount (fares, entries, adjustments, medical), fen. */
  fen: number;
  byKind: Record<string, KindTotal>;
  /** Per card token: the sum of its settlements, fen. */
  byCard: Map<string, number>;
  /** Medical claims: totals of the split fields, fen. */
  claims: { count: number; medfee_sumamt: number; hifp_pay: number; acct_pay: number; cash_payamt: number };
  /** Entries without their exit at the end (cost 0 until swept). */
  openJourneys: number;
}

/** The Decision the validator should produce for an accepted tap. */
export function expectedDecision(s: SimTap, data: SettlerData, tokenKey: Uint8Array, partitions: number): Decision {
  const t = s.tap;
  const cardToken = tokenize(tokenKey, 'card', s.cardNumber);
  const venue = data.venues.info(t.venueId);
  return {
    eventId: `${t.terminalId}:${t.seq}`,
    terminalId: t.terminalId,
    seq: t.seq,
    terminalRegion: s.terminalRegion,
    operatorId: venue?.operatorId ?? 'unknown',
    deviceTime: t.deviceTime,
    ingestTime: 0,
    scene: PbScene[t.scene] as Scene,
    venueId: t.venueId,
    direction: PbDirection[t.direction] as Direction,
    cardToken,
    cardRegion: regionOfCardNumber(s.cardNumber)!,
    form: t.card?.$case === 'qr' ? 'QR' : 'CHIP',
    amountFen: t.amountFen,
    riderCategory: PbRider[t.riderCategory] as RiderCategory,
    offline: s.phase !== 'live',
    partition: partitionOf(cardToken, partitions),
    decisionTime: 0,
    verdict: 'ACCEPTED',
    reason: 'OK',
    trace: [],
    riskRules: [],
  };
}

/** The claim event the settler should see (the fleet's claims are all accepted by validators). */
export function expectedClaim(c: SimClaim, tokenKey: Uint8Array, partitions: number): MedicalClaimEvent {
  // The same conversion ingest applies (src/ingest/shape.ts); ingest time does not affect money.
  const r = checkClaim(wireClaimOf(c.claim), { id: c.claim.terminalId, region: c.terminalRegion }, { tokenKey, partitions, ingestTime: 0 });
  if (!r.ok) throw new Error(`the fleet made a claim ingest refuses: ${r.error.field}: ${r.error.message}`);
  return r.claim;
}

/** Runs the settle core over the accepted taps and the claims; see the module comment. */
export function expectSettlements(o: { data: SettlerData; tokenKey: Uint8Array; partitions: number; taps: SimTap[]; claims: SimClaim[]; nowMs: number }): Expectation {
  const byCardTaps = new Map<string, Decision[]>();
  for (const s of o.taps) {
    const d = expectedDecision(s, o.data, o.tokenKey, o.partitions);
    let l = byCardTaps.get(d.cardToken);
    if (!l) byCardTaps.set(d.cardToken, (l = []));
    l.push(d);
  }
  const e: Expectation = { fen: 0, byKind: {}, byCard: new Map(), claims: { count: 0, medfee_sumamt: 0, hifp_pay: 0, acct_pay: 0, cash_payamt: 0 }, openJourneys: 0 };
  const add = (s: Settlement) => {
    e.fen += s.amountFen;
    const k = (e.byKind[s.kind] ??= { settlements: 0, fen: 0 });
    k.settlements++;
    k.fen += s.amountFen;
    e.byCard.set(s.cardToken, (e.byCard.get(s.cardToken) ?? 0) + s.amountFen);
  };
  for (const [, list] of byCardTaps) {
    list.sort((a, b) => a.deviceTime - b.deviceTime || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0));
    let state: CardSettleState | undefined;
    for (const d of list) {
      const r = settleDecision(o.data, state, d, o.nowMs);
      state = r.state;
      for (const s of r.settlements) add(s);
    }
    const last = state?.taps[state.taps.length - 1];
    if (last && last.d === 'E' && last.pa === undefined) e.openJourneys++;
  }
  for (const c of o.claims) {
    const r = settleClaim(o.data, undefined, expectedClaim(c, o.tokenKey, o.partitions), o.nowMs);
    add(r.settlement);
    const split = r.settlement.claim;
    if (split) {
      e.claims.count++;
      e.claims.medfee_sumamt += split.medfee_sumamt;
      e.claims.hifp_pay += split.hifp_pay;
      e.claims.acct_pay += split.acct_pay;
      e.claims.cash_payamt += split.cash_payamt;
    }
  }
  return e;
}
