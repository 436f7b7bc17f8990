import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  accumulationsOf,
  checkBalanced,
  quoteClaim,
  settleClaim,
  type PersonMedicalState,
} from '../../../src/domain/settle/index.js';
import type { ClaimItem, MedicalClaimEvent } from '../../../src/domain/types.js';
import { at, claim, data, DATA_DIR } from './helpers.js';

const A = (amountFen: number, code = 'A1'): ClaimItem => ({ code, name: 'class A item', catalogueClass: 'CLASS_A', amountFen });
const B = (amountFen: number): ClaimItem => ({ code: 'B1', name: 'class B item', catalogueClass: 'CLASS_B', amountFen });
const SELF = (amountFen: number): ClaimItem => ({ code: 'S1', name: 'self-pay item', catalogueClass: 'SELF_PAY', amountFen });

function settleAll(claims: MedicalClaimEvent[], state?: PersonMedicalState) {
  let st = state;
  const out = claims.map((c) => {
    const r = settleClaim(data(), st, c, 42);
    st = r.state;
    return r.settlement;
  });
  return { state: st!, settlements: out };
}

// Beijing (insured) outpatient at a TERTIARY hospital, illustrative policy: annual deductible
// 1800 yuan, fund 70 %, annual cap 20 000 yuan, class B first share 10 %.
describe('medical - splits around the deductible', () => {
  it('below the deductible: the fund pays nothing, the account then cash pay all', () => {
    const s = settleAll([claim({ claimId: 'c1', items: [A(100_000)], personalAccountBalanceFen: 50_000 })]).settlements[0]!;
    expect(s.claim).toMatchObject({
      status: 'SETTLED',
      medfee_sumamt: 100_000,
      inscp_scp_amt: 100_000,
      deductible_amt: 100_000,
      hifp_pay: 0,
      acct_pay: 50_000,
      cash_payamt: 50_000,
      over_cap_amt: 0,
    });
    expect(s).toMatchObject({ settlementId: 'c1:medical', kind: 'MEDICAL', amountFen: 100_000, baseFareFen: 100_000 });
  });

  it('a claim crossing the deductible: the rest of the deductible, then 70 % from the fund', () => {
    const { settlements, state } = settleAll([claim({ claimId: 'c1', items: [A(100_000)] }), claim({ claimId: 'c2', items: [A(200_000)] })]);
    expect(settlements[1]!.claim).toMatchObject({ deductible_amt: 80_000, hifp_pay: 84_000, cash_payamt: 116_000 });
    expect(accumulationsOf(state, '2026', 'OUTPATIENT')).toEqual({ deductibleFen: 180_000, fundFen: 84_000, medfeeFen: 300_000, claims: 2 });
  });

  it('exactly at the deductible, and one fen over (70 % of 1 fen rounds half up to 1)', () => {
    expect(quoteClaim(data(), claim({ claimId: 'q', items: [A(180_000)] })).hifp_pay).toBe(0);
    expect(quoteClaim(data(), claim({ claimId: 'q', items: [A(180_001)] })).hifp_pay).toBe(1);
  });

  it('class B first share and self-pay items stay with the patient', () => {
    const q = quoteClaim(data(), claim({ claimId: 'q', items: [A(300_000), B(50_000), SELF(20_000)], personalAccountBalanceFen: 1_000_000 }), { deductibleFen: 180_000 });
    expect(q).toMatchObject({
      medfee_sumamt: 370_000,
      fulamt_ownpay_amt: 20_000,
      preselfpay_amt: 5_000,
      inscp_scp_amt: 345_000,
      deductible_amt: 0,
      hifp_pay: 241_500,
      // Beijing's account pays the in-scope patient share only, not the self-pay item.
      acct_pay: 370_000 - 20_000 - 241_500,
      cash_payamt: 20_000,
    });
  });

  it('a policy may let the personal account pay self-pay items (Hebei, illustrative)', () => {
    const q = quoteClaim(data(), claim({ claimId: 'q', insuredRegion: 'HE', items: [SELF(20_000)], personalAccountBalanceFen: 50_000 }));
    expect([q.acct_pay, q.cash_payamt]).toEqual([20_000, 0]);
  });
});

describe('medical - annual cap', () => {
  it('the fund stops at the cap; the cut-off share is over_cap_amt', () => {
    const q = quoteClaim(data(), claim({ claimId: 'q', items: [A(100_000)] }), { deductibleFen: 180_000, fundFen: 1_990_000 });
    expect(q).toMatchObject({ hifp_pay: 10_000, over_cap_amt: 60_000, cash_payamt: 90_000 });
    const capped = quoteClaim(data(), claim({ claimId: 'q', items: [A(100_000)] }), { deductibleFen: 180_000, fundFen: 2_000_000 });
    expect([capped.hifp_pay, capped.over_cap_amt]).toEqual([0, 70_000]);
  });

  it('accumulates to the cap over several claims of the year', () => {
    const claims = Array.from({ length: 12 }, (_, i) => claim({ claimId: `big${i}`, items: [A(500_000)], deviceTime: at('2026-02-01T09:00') + i * 86_400_000 }));
    const { state, settlements } = settleAll(claims);
    expect(accumulationsOf(state, '2026', 'OUTPATIENT').fundFen).toBe(2_000_000);
    expect(settlements.reduce((s, x) => s + x.claim!.hifp_pay, 0)).toBe(2_000_000);
    expect(settlements.at(-1)!.claim!.hifp_pay).toBe(0);
  });

  it('inpatient deductibles are per admission, by institution level', () => {
    const inpatient = (id: string) => claim({ claimId: id, treatment: 'INPATIENT', items: [A(1_000_000)] });
    const { settlements } = settleAll([inpatient('h1'), inpatient('h2')]);
    expect(settlements.map((s) => s.claim!.deductible_amt)).toEqual([130_000, 130_000]);
    expect(settlements[0]!.claim!.hifp_pay).toBe(739_500); // 85 % of 870 000
  });

  it('accumulations are per calendar year in Asia/Shanghai', () => {
    const dec31 = claim({ claimId: 'y1', items: [A(180_000)], deviceTime: at('2026-12-31T23:30') });
    // 00:30 on 1 January in Beijing is still 31 December in UTC.
    const jan1 = claim({ claimId: 'y2', items: [A(100_000)], deviceTime: at('2027-01-01T00:30') });
    const { settlements, state } = settleAll([dec31, jan1]);
    expect(settlements[1]!.claim!.deductible_amt).toBe(100_000); // a new year, a new deductible
    expect(settlements.map((s) => s.businessDay)).toEqual(['2026-12-31', '2027-01-01']);
    expect(accumulationsOf(state, '2027', 'OUTPATIENT').deductibleFen).toBe(100_000);
  });
});

describe('medical - idempotency and reversal', () => {
  it('the same claim id twice: the same split, accumulated once', () => {
    const c = claim({ claimId: 'c1', items: [A(300_000)] });
    const first = settleClaim(data(), undefined, c, 1);
    const again = settleClaim(data(), first.state, c, 2);
    expect(again.state).toBe(first.state);
    expect(again.settlement.claim).toEqual(first.settlement.claim);
    expect(again.settlement.ledger).toEqual(first.settlement.ledger);
    expect(again.settlement.settlementId).toBe(first.settlement.settlementId);
    expect(accumulationsOf(again.state, '2026', 'OUTPATIENT').claims).toBe(1);
  });

  it('a reversal restores the accumulations and emits the negated split and ledger', () => {
    const { state, settlements } = settleAll([
      claim({ claimId: 'c1', items: [A(300_000)], personalAccountBalanceFen: 10_000 }),
      claim({ claimId: 'r1', items: [], reversesClaimId: 'c1' }),
    ]);
    const [orig, rev] = settlements as [typeof settlements[0], typeof settlements[0]];
    expect(rev).toMatchObject({ settlementId: 'r1:reversal', kind: 'REVERSAL', adjustsEventId: 'c1', amountFen: -orig.amountFen });
    expect(rev.claim).toMatchObject({ status: 'REVERSED', hifp_pay: -orig.claim!.hifp_pay, medfee_sumamt: -300_000 });
    expect(rev.ledger.map((e) => [e.account, e.debitFen, e.creditFen])).toEqual(orig.ledger.map((e) => [e.account, e.creditFen, e.debitFen]));
    expect(accumulationsOf(state, '2026', 'OUTPATIENT')).toEqual({ deductibleFen: 0, fundFen: 0, medfeeFen: 0, claims: 0 });
    // The next claim meets the whole deductible again.
    const next = settleClaim(data(), state, claim({ claimId: 'c2', items: [A(300_000)] }), 0).settlement;
    expect(next.claim).toEqual({ ...orig.claim, claimId: 'c2', acct_pay: 0, cash_payamt: orig.claim!.cash_payamt + orig.claim!.acct_pay });
  });

  it('a reversal twice is idempotent; reversing again or an unknown claim is rejected with no ledger', () => {
    const base = settleAll([claim({ claimId: 'c1', items: [A(300_000)] }), claim({ claimId: 'r1', items: [], reversesClaimId: 'c1' })]);
    const dup = settleClaim(data(), base.state, claim({ claimId: 'r1', items: [], reversesClaimId: 'c1' }), 0);
    expect(dup.state).toBe(base.state);
    expect(dup.settlement.claim).toEqual(base.settlements[1]!.claim);
    const again = settleClaim(data(), base.state, claim({ claimId: 'r2', items: [], reversesClaimId: 'c1' }), 0);
    expect(again.settlement).toMatchObject({ kind: 'REVERSAL', amountFen: 0, ledger: [], claim: { status: 'REJECTED', reason: 'ALREADY_REVERSED by r1' } });
    const unknown = settleClaim(data(), undefined, claim({ claimId: 'r3', items: [], reversesClaimId: 'nope' }), 0);
    expect(unknown.settlement.claim).toMatchObject({ status: 'REJECTED', reason: 'CLAIM_NOT_FOUND' });
  });

  it('never changes the state it is given', () => {
    const { state } = settleAll([claim({ claimId: 'c1', items: [A(300_000)] })]);
    const before = structuredClone(state);
    settleClaim(data(), state, claim({ claimId: 'r1', items: [], reversesClaimId: 'c1' }), 0);
    settleClaim(data(), state, claim({ claimId: 'c2', items: [A(1_000)] }), 0);
    expect(state).toEqual(before);
  });

  it('a claim without items is rejected and accumulates nothing', () => {
    const r = settleClaim(data(), undefined, claim({ claimId: 'e', items: [] }), 0);
    expect(r.settlement).toMatchObject({ kind: 'MEDICAL', amountFen: 0, ledger: [], claim: { status: 'REJECTED' } });
    expect(r.state.years).toEqual({});
  });
});

describe('medical - clearing', () => {
  it('fund, account and cash pay the institution; cross-region through the insured → treating clearing pair', () => {
    const s = settleClaim(
      data(),
      undefined,
      claim({ claimId: 'x1', insuredRegion: 'HE', institutionId: 'hospital:BJ:pumch', items: [A(100_000)], personalAccountBalanceFen: 10_000 }),
      0,
    ).settlement;
    // Hebei outpatient TERTIARY (illustrative): deductible 500 yuan, fund 50 %.
    expect(s.claim).toMatchObject({ deductible_amt: 50_000, hifp_pay: 25_000, acct_pay: 10_000, cash_payamt: 65_000 });
    expect(s.ledger.map((e) => [e.account, e.debitFen, e.creditFen])).toEqual([
      ['fund:HE', 25_000, 0],
      ['medacct:HE', 10_000, 0],
      ['clearing:HE:BJ', 0, 35_000],
      ['clearing-receivable:HE:BJ', 35_000, 0],
      ['cash:BJ', 65_000, 0],
      ['institution:hospital:BJ:pumch', 0, 100_000],
    ]);
    expect(checkBalanced(s.ledger).balanced).toBe(true);
    expect(s).toMatchObject({ cardRegion: 'HE', terminalRegion: 'BJ', scene: 'MEDICAL', venueId: 'hospital:BJ:pumch' });
  });
});

describe('medical - policies', () => {
  it('the shipped policy tables are marked illustrative, in the data and in the file', () => {
    expect(data().medical.illustrative).toBe(true);
    expect(data().medical.version).toMatch(/illustrative/);
    expect(readFileSync(join(DATA_DIR, 'medical/policies.yaml'), 'utf8')).toMatch(/ILLUSTRATIVE VALUES ONLY/);
  });

  it('quoteClaim is the code settleClaim runs', () => {
    const c = claim({ claimId: 'q1', items: [A(250_000), B(40_000)], personalAccountBalanceFen: 7_000 });
    const { trace, ...split } = quoteClaim(data(), c, { deductibleFen: 30_000 });
    const st = settleClaim(data(), undefined, claim({ claimId: 'c0', items: [A(30_000)] }), 0).state;
    expect(settleClaim(data(), st, c, 0).settlement.claim).toEqual(split);
    expect(trace.map((t) => t.rule)).toEqual(['catalogue', 'deductible', 'ratio', 'cap', 'account']);
  });
});

describe('medical - claims the validator refused, reversals and bounds', () => {
  it('records a refused claim REJECTED with the validator reason: no money, no ledger, no accumulation', () => {
    const refused = { reason: 'CHIP_MAC_INVALID', trace: [{ rule: 'chip-mac', version: 'k1', detail: 'MAC does not verify' }] };
    const r = settleClaim(data(), undefined, claim({ claimId: 'x1', items: [A(100_000)] }), 42, refused);
    expect(r.settlement.claim).toMatchObject({ status: 'REJECTED', reason: 'CHIP_MAC_INVALID', medfee_sumamt: 0, hifp_pay: 0, cash_payamt: 0 });
    expect(r.settlement.ledger).toEqual([]);
    expect(r.settlement.trace.map((s) => s.rule)).toEqual(['chip-mac', 'reject']);
    expect(accumulationsOf(r.state, '2026', 'OUTPATIENT')).toEqual({ deductibleFen: 0, fundFen: 0, medfeeFen: 0, claims: 0 });
    // Idempotent: the same claim id again gives the same answer, even if now accepted.
    const again = settleClaim(data(), r.state, claim({ claimId: 'x1', items: [A(100_000)] }), 43);
    expect(again.settlement.claim).toMatchObject({ status: 'REJECTED', reason: 'CHIP_MAC_INVALID' });
  });

  it('refuses a reversal from another institution as CLAIM_NOT_FOUND, and the claim stays reversible by its own', () => {
    const { state } = settleAll([claim({ claimId: 'o1', items: [A(300_000)] })]);
    const other = settleClaim(data(), state, claim({ claimId: 'r-other', institutionId: 'hospital:BJ:chaoyang-hospital', items: [], reversesClaimId: 'o1' }), 44);
    expect(other.settlement.claim).toMatchObject({ status: 'REJECTED', reason: 'CLAIM_NOT_FOUND' });
    expect(other.settlement.ledger).toEqual([]);
    const own = settleClaim(data(), other.state, claim({ claimId: 'r-own', items: [], reversesClaimId: 'o1' }), 45);
    expect(own.settlement.claim?.status).toBe('REVERSED');
  });

  it('rejects items beyond the bounds instead of overflowing (sums stay exact below 2^53)', () => {
    const item = quoteClaim(data(), claim({ claimId: 'b1', items: [A(2 ** 53)] }));
    expect([item.status, item.reason]).toEqual(['REJECTED', 'INVALID_CLAIM: item A1 amount 9007199254740992 outside 0..100000000']);
    const total = quoteClaim(data(), claim({ claimId: 'b2', items: Array.from({ length: 11 }, (_, i) => A(100_000_000, `A${i}`)) }));
    expect([total.status, total.reason]).toEqual(['REJECTED', 'INVALID_CLAIM: total 1100000000 above 1000000000']);
    expect(() => settleClaim(data(), undefined, claim({ claimId: 'b3', items: [A(2 ** 60)] }), 1)).not.toThrow();
  });
});
