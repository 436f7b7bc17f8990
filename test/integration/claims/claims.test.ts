/**
 * Medical direct settlement through gRPC (issue 4 item 4): a Beijing-insured person treated in
 * Tianjin, through a real nats-server, the settler role and the embedded ClickHouse engine.
 *
 * The claims of one person, in order (BJ outpatient policy: deductible 1,800 yuan a year, tertiary
 * ratio 70 %; illustrative values of data/medical/policies.yaml):
 *   A  class A 1,000 + self-pay 200 yuan, account 500:  all in-scope under the deductible
 *   A  again (3 concurrent calls, then a changed bill under the same id): same answer, counted once
 *   B  class A 1,000 + class B 500 yuan, account 300:   sees 1,000 yuan of deductible used by A
 *   R  reverses B;  C  = B's bill again under a new id: the reversal restored the accumulations
 * Amounts are worked out by hand below (fen).
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { ClaimStatus, Region, Treatment, type ClaimResult } from '../../../src/gen/tapflow/v1/ingest.js';
import { clearingReport } from '../../../src/store/mod.js';
import { runCli } from '../cli/run-cli.js';
import { CLASS_A, CLASS_B, SELF_PAY, TJ_COUNTER, claim, getClaim, item, ok, settleClaim, signClaimsWith } from './grpc-claims.js';

let p: TestPipeline;
let md: grpc.Metadata;

beforeAll(async () => {
  p = await startTestPipeline();
  md = p.metadata(TJ_COUNTER);
  signClaimsWith(p.dataDir);
  // The bounded wait is measured from here on: the settler must own its partitions first.
  await p.until(async () => (await p.app.ctx.metrics.partitionsOwned.get()).values.some((v) => v.labels.role === 'settler' && v.value === p.cfg.TAPFLOW_PARTITIONS), 30_000, 'settler partitions');
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

const billA = { items: [item('A1', CLASS_A, 100_000), item('S1', SELF_PAY, 20_000)], personalAccountBalanceFen: 50_000 };
const billB = { items: [item('A1', CLASS_A, 100_000), item('B1', CLASS_B, 50_000)], personalAccountBalanceFen: 30_000 };

/** The amounts of a ClaimResult, without ids and texts. */
const amounts = (r: ClaimResult) => ({
  medfee: r.medfeeSumamt,
  fulamt: r.fulamtOwnpayAmt,
  preself: r.preselfpayAmt,
  inscp: r.inscpScpAmt,
  deductible: r.deductibleAmt,
  hifp: r.hifpPay,
  acct: r.acctPay,
  cash: r.cashPayamt,
  overCap: r.overCapAmt,
});

// A: medfee 120,000; self-pay 20,000; in scope 100,000, all under the deductible (100,000 of
// 180,000); the fund pays nothing; the account pays 50,000 of the patient's 100,000; cash 70,000.
const SPLIT_A = { medfee: 120_000, fulamt: 20_000, preself: 0, inscp: 100_000, deductible: 100_000, hifp: 0, acct: 50_000, cash: 70_000, overCap: 0 };
// B after A: medfee 150,000; class B first share 10 % = 5,000; in scope 145,000; deductible left
// 80,000; fund 70 % of 65,000 = 45,500; account 30,000; cash 150,000 − 45,500 − 30,000 = 74,500.
// (Had A been counted twice, no deductible would be left and the fund would pay 101,500.)
const SPLIT_B = { medfee: 150_000, fulamt: 0, preself: 5_000, inscp: 145_000, deductible: 80_000, hifp: 45_500, acct: 30_000, cash: 74_500, overCap: 0 };

const first: Record<string, ClaimResult> = {};

async function rows<T>(sql: string): Promise<T[]> {
  return p.query<T>(sql);
}

describe('claims - SettleClaim', () => {
  it('settles a BJ-insured claim at a Tianjin hospital within the wait, splitting the whole bill', async () => {
    const t0 = performance.now();
    // Three counters send the same claim at once: one publish, one settlement, one answer for all.
    const answers = await Promise.all([1, 2, 3].map(() => settleClaim(p.client, md, claim('A', billA))));
    const elapsed = performance.now() - t0;
    const results = answers.map(ok);
    expect(results.map((r) => ClaimStatus[r.status])).toEqual(['SETTLED', 'SETTLED', 'SETTLED']);
    expect(elapsed).toBeLessThan(p.cfg.TAPFLOW_CLAIM_WAIT_MS + 1000);
    const a = results[0]!;
    expect(a.claimId).toBe('A');
    expect(a.reason).toBe('OK');
    expect(a.policyVersion).toBe('medical-policies-2026.1-illustrative');
    expect(amounts(a)).toEqual(SPLIT_A);
    expect(a.medfeeSumamt).toBe(billA.items.reduce((n, i) => n + i.amountFen, 0));
    expect(a.hifpPay + a.acctPay + a.cashPayamt).toBe(a.medfeeSumamt);
    for (const r of results) expect(r).toEqual(a);
    first.A = a;
  });

  it('answers the same claim id again with the identical result, even with a changed bill', async () => {
    const again = ok(await settleClaim(p.client, md, claim('A', billA)));
    expect(again).toEqual(first.A);
    const changed = ok(await settleClaim(p.client, md, claim('A', billB)));
    expect(changed).toEqual(first.A);
  });

  it('a second claim sees the deductible the first used, once', async () => {
    const b = ok(await settleClaim(p.client, md, claim('B', billB)));
    expect(ClaimStatus[b.status]).toBe('SETTLED');
    expect(amounts(b)).toEqual(SPLIT_B);
    expect(b.hifpPay + b.acctPay + b.cashPayamt).toBe(b.medfeeSumamt);
    first.B = b;
  });

  it('a reversal returns REVERSED with the negated split and restores the accumulations', async () => {
    const r = ok(await settleClaim(p.client, md, claim('R', { items: [], reversesClaimId: 'B' })));
    expect(ClaimStatus[r.status]).toBe('REVERSED');
    expect(amounts(r)).toEqual(Object.fromEntries(Object.entries(SPLIT_B).map(([k, v]) => [k, v === 0 ? 0 : -v])));
    first.R = r;
    // The same bill under a new id is split exactly like B was: B's deductible and fund are back.
    const c = ok(await settleClaim(p.client, md, claim('C', billB)));
    expect(amounts(c)).toEqual(SPLIT_B);
    first.C = c;
  });

  it('refuses to reverse twice or to reverse an unknown claim (REJECTED with the reason)', async () => {
    const twice = ok(await settleClaim(p.client, md, claim('R2', { items: [], reversesClaimId: 'B' })));
    expect(ClaimStatus[twice.status]).toBe('REJECTED');
    expect(twice.reason).toContain('ALREADY_REVERSED by R');
    const unknown = ok(await settleClaim(p.client, md, claim('R3', { items: [], reversesClaimId: 'no-such-claim' })));
    expect(ClaimStatus[unknown.status]).toBe('REJECTED');
    expect(unknown.reason).toBe('CLAIM_NOT_FOUND');
    expect(amounts(unknown)).toEqual(Object.fromEntries(Object.keys(SPLIT_A).map((k) => [k, 0])));
  });
});

describe('claims - GetClaim', () => {
  it('returns the stored result', async () => {
    for (const id of ['A', 'B', 'R', 'C']) expect(ok(await getClaim(p.client, md, id))).toEqual(first[id]);
  });

  it('shows a claim only to the terminal that submitted it', async () => {
    const other = await getClaim(p.client, p.metadata('TJ-CLINIC-0002'), 'A');
    expect(other.ok ? 'ok' : other.error.code).toBe(grpc.status.NOT_FOUND);
  });

  it('answers NOT_FOUND for an unknown claim id and INVALID_ARGUMENT for none', async () => {
    const r = await getClaim(p.client, md, 'never-sent');
    expect(r.ok ? 'ok' : r.error.code).toBe(grpc.status.NOT_FOUND);
    const none = await getClaim(p.client, md, '');
    expect(none.ok ? 'ok' : none.error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(none.ok ? '' : none.error.details).toContain('claim_id');
  });

  it('refuses a caller without the terminal credential', async () => {
    const wrong = new grpc.Metadata();
    wrong.set('x-terminal-id', TJ_COUNTER);
    wrong.set('x-terminal-secret', 'not-the-secret');
    const r = await getClaim(p.client, wrong, 'A');
    expect(r.ok ? 'ok' : r.error.code).toBe(grpc.status.UNAUTHENTICATED);
    const s = await settleClaim(p.client, wrong, claim('Z', billA));
    expect(s.ok ? 'ok' : s.error.code).toBe(grpc.status.UNAUTHENTICATED);
  });
});

describe('claims - malformed', () => {
  const bad = claim('M', billA);
  it.each([
    ['claim_id', { ...bad, claimId: '' }],
    ['claim_id', { ...bad, claimId: 'x'.repeat(129) }],
    ['terminal_id', { ...bad, terminalId: 'TJ-CLINIC-0002' }],
    ['institution_id', { ...bad, institutionId: '' }],
    ['treatment', { ...bad, treatment: Treatment.TREATMENT_UNSPECIFIED }],
    ['id_number', { ...bad, idNumber: '1101051980010100' }],
    ['id_number', { ...bad, idNumber: '11010519800101001x' }],
    ['insured_region', { ...bad, insuredRegion: Region.REGION_UNSPECIFIED }],
    ['device_time', { ...bad, deviceTime: 0 }],
    ['personal_account_balance_fen', { ...bad, personalAccountBalanceFen: -1 }],
    ['items', { ...bad, items: [] }],
    ['items[0].code', { ...bad, items: [item('', CLASS_A, 1)] }],
    ['items[1].catalogue_class', { ...bad, items: [item('A1', CLASS_A, 1), item('X', 0, 1)] }],
    ['items[1].amount_fen', { ...bad, items: [item('A1', CLASS_A, 1), item('X', CLASS_B, -5)] }],
    ['card', { ...bad, card: undefined }],
    ['card.chip.card_number', { ...bad, card: { $case: 'chip' as const, value: { cardNumber: '990000000001', counter: 1, mac: Buffer.alloc(8) } } }],
  ])('INVALID_ARGUMENT naming %s', async (field, c) => {
    const r = await settleClaim(p.client, md, c);
    expect(r.ok ? 'ok' : r.error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(r.ok ? '' : r.error.details).toContain(`${field}: `);
  });

  it('settles nothing for a malformed claim', async () => {
    const r = await getClaim(p.client, md, 'M');
    expect(r.ok ? 'ok' : r.error.code).toBe(grpc.status.NOT_FOUND);
  });
});

describe('claims - ClickHouse and the ledger', () => {
  const ids = ['A:medical', 'B:medical', 'R:reversal', 'C:medical', 'R2:reversal', 'R3:reversal'];
  const idList = ids.map((i) => `'${i}'`).join(',');

  beforeAll(async () => {
    await p.until(async () => (await rows<{ n: number }>('SELECT count() AS n FROM claims'))[0]!.n >= ids.length, 30_000, `${ids.length} claim rows`);
    await p.until(async () => (await rows<{ n: number }>(`SELECT uniqExact(settlement_id) AS n FROM ledger WHERE settlement_id IN (${idList})`))[0]!.n >= 4, 30_000, 'ledger rows of 4 claims');
  });

  it('stores one row per claim id: the repeated claim A is there once', async () => {
    const claims = await rows<{ claim_id: string; status: string; n: number; medfee: number; hifp: number; acct: number; cash: number; insured: string; treated: string }>(
      `SELECT claim_id, any(status) AS status, count() AS n, any(medfee_sumamt) AS medfee, any(hifp_pay) AS hifp, any(acct_pay) AS acct, any(cash_payamt) AS cash,
              any(insured_region) AS insured, any(treatment_region) AS treated
       FROM claims GROUP BY claim_id ORDER BY claim_id`,
    );
    expect(claims.map((c) => [c.claim_id, c.status, c.n])).toEqual([
      ['A', 'SETTLED', 1],
      ['B', 'SETTLED', 1],
      ['C', 'SETTLED', 1],
      ['R', 'REVERSED', 1],
      ['R2', 'REJECTED', 1],
      ['R3', 'REJECTED', 1],
    ]);
    const a = claims.find((c) => c.claim_id === 'A')!;
    expect([a.medfee, a.hifp, a.acct, a.cash, a.insured, a.treated]).toEqual([120_000, 0, 50_000, 70_000, 'BJ', 'TJ']);
    const settled = await rows<{ n: number }>("SELECT count() AS n FROM settlements WHERE settlement_id = 'A:medical'");
    expect(settled[0]!.n).toBe(1);
    // No ID number or card number in the store: the person is a token.
    const persons = await rows<{ t: string }>('SELECT DISTINCT person_token AS t FROM claims');
    expect(persons.map((r) => r.t)).toHaveLength(1);
    expect(persons[0]!.t).toMatch(/^[0-9a-f]{32}$/);
  });

  it('balances the entries of every claim, and the reversed pair nets to zero per account', async () => {
    const per = await rows<{ s: string; d: number; c: number }>(`SELECT settlement_id AS s, sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger WHERE settlement_id IN (${idList}) GROUP BY s ORDER BY s`);
    // Rejected reversals move no money: no entries.
    expect(per.map((r) => r.s)).toEqual(['A:medical', 'B:medical', 'C:medical', 'R:reversal']);
    for (const r of per) expect(r.d, r.s).toBe(r.c);
    const pair = await rows<{ account: string; net: number }>(
      "SELECT account, sum(debit_fen) - sum(credit_fen) AS net FROM ledger WHERE settlement_id IN ('B:medical', 'R:reversal') GROUP BY account ORDER BY account",
    );
    expect(pair.length).toBeGreaterThan(0);
    for (const r of pair) expect(r.net, r.account).toBe(0);
  });

  it('books B as the chart of accounts says: BJ fund and account pay TJ, TJ pays the hospital', async () => {
    const b = await rows<{ account: string; d: number; c: number }>("SELECT account, sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger WHERE settlement_id = 'B:medical' GROUP BY account ORDER BY account");
    expect(b.map((r) => [r.account, r.d, r.c])).toEqual([
      ['cash:TJ', 74_500, 0],
      ['clearing-receivable:BJ:TJ', 75_500, 0],
      ['clearing:BJ:TJ', 0, 75_500],
      ['fund:BJ', 45_500, 0],
      ['institution:hospital:TJ:tmu-general-hospital', 0, 150_000],
      ['medacct:BJ', 30_000, 0],
    ]);
  });

  it('the clearing accounts show what BJ owes TJ for the day: A 50,000 + C 75,500', async () => {
    const report = await clearingReport(p.app.ctx.engine!, '2026-03-10');
    expect(report.totals.balanced).toBe(true);
    expect(report.positions).toEqual([{ debtor: 'BJ', creditor: 'TJ', amountFen: 125_500 }]);
    expect(report.regionNet).toEqual({ BJ: -125_500, TJ: 125_500, HE: 0 });
    const acc = Object.fromEntries(report.accounts.map((a) => [a.account, a.netFen]));
    expect(acc['clearing:BJ:TJ']).toBe(-125_500);
    expect(acc['clearing-receivable:BJ:TJ']).toBe(125_500);
    expect(acc['clearing:TJ:BJ']).toBeUndefined();
  });
});

describe('claims - the quote command reads the same accumulations', () => {
  it('tapflow medical quote --id-number uses the live year-to-date of the person', async () => {
    const r = await runCli(['medical', 'quote', 'data/medical/examples/claim-sample.json', '--id-number', claim('x').idNumber, '--json'], {
      NATS_URL: p.nats.url,
      TAPFLOW_DATA_DIR: p.dataDir,
      TAPFLOW_NATS_AUTOSTART: 'false',
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const q = JSON.parse(r.stdout) as { yearToDate: { deductibleFen: number; fundFen: number }; deductible_amt: number; hifp_pay: number };
    // 2026 outpatient: deductible A 100,000 + C 80,000 (B reversed); fund C 45,500.
    expect(q.yearToDate).toMatchObject({ deductibleFen: 180_000, fundFen: 45_500 });
    // The sample's 192,000 in scope now pays no deductible: 70 % = 134,400 from the fund.
    expect([q.deductible_amt, q.hifp_pay]).toEqual([0, 134_400]);
  });
});
