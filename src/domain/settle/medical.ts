/**
 * Medical direct settlement: "catalogue of the place of treatment, policy of the insured region".
 * The clinic classes each item by its own catalogue (CLASS_A fully covered, CLASS_B partly
 * covered, SELF_PAY); the insured region's policy (`<dataDir>/medical/policies.yaml`, illustrative
 * values) is applied against the person's accumulations of the calendar year (Asia/Shanghai, by
 * device time) per treatment type:
 *
 *   medfee_sumamt      = Σ items
 *   fulamt_ownpay_amt  = Σ SELF_PAY items
 *   preselfpay_amt     = Σ CLASS_B items × classBFirstSharePercent (each rounded half up)
 *   inscp_scp_amt      = medfee − fulamt − preselfpay            (in-scope amount)
 *   deductible_amt     = min(inscp, deductible − deductible used this year)   (annual basis)
 *                        min(inscp, deductible)                               (per-claim basis)
 *   fund share         = (inscp − deductible_amt) × ratio(institution level) (rounded half up)
 *   hifp_pay           = min(fund share, cap − fund paid this year)
 *   over_cap_amt       = fund share − hifp_pay       (what the cap cut off the fund's share)
 *   acct_pay           = min(account balance on the claim, patient share)
 *                        patient share = medfee − fulamt − hifp (+ fulamt if accountCoversSelfPay)
 *   cash_payamt        = medfee − hifp − acct
 *
 * Claim ids are idempotent: the person state keeps each claim's result, so the same claim id
 * again returns the same split and accumulates nothing. A reversal (reversesClaimId set) restores
 * the accumulations of the claim it undoes and emits a REVERSAL whose split and ledger are the
 * original's, negated. Later claims are not re-rated after a reversal (as at the counter).
 */
import { z } from 'zod';
import { readDataFile } from '../network/data-file.js';
import {
  fen,
  type ClaimSplit,
  type Fen,
  type InstitutionLevel,
  type MedicalClaimEvent,
  type Region,
  type Settlement,
  type TraceStep,
  type Treatment,
} from '../types.js';
import { MAX_CLAIM_ITEM_FEN, MAX_CLAIM_ITEMS, MAX_CLAIM_TOTAL_FEN, inRange } from '../limits.js';
import { ACCOUNTS } from './accounts.js';
import { negateEntries, Posting } from './ledger.js';
import { percentOf } from './money.js';
import { businessDay, shanghaiYear } from './time.js';

const Levels = ['PRIMARY', 'SECONDARY', 'TERTIARY'] as const;
const ByLevel = <T extends z.ZodType>(t: T) => z.object({ PRIMARY: t, SECONDARY: t, TERTIARY: t }).strict();
const Fen0 = z.number().int().nonnegative();
const Percent = z.number().int().min(0).max(100);

const TreatmentPolicySchema = z
  .object({
    deductibleBasis: z.enum(['annual', 'per-claim']),
    deductibleFen: ByLevel(Fen0),
    ratioPercent: ByLevel(Percent),
    annualCapFen: Fen0,
  })
  .strict();

const RegionPolicySchema = z
  .object({
    classBFirstSharePercent: Percent,
    accountCoversSelfPay: z.boolean(),
    outpatient: TreatmentPolicySchema,
    inpatient: TreatmentPolicySchema,
  })
  .strict();

const PoliciesFileSchema = z
  .object({
    version: z.string().min(1),
    /** Must be present (true) while the tables are not official: the files say so. */
    illustrative: z.boolean(),
    regions: z.object({ BJ: RegionPolicySchema, TJ: RegionPolicySchema, HE: RegionPolicySchema }).partial(),
  })
  .strict();

export type TreatmentPolicy = z.output<typeof TreatmentPolicySchema>;
export type RegionPolicy = z.output<typeof RegionPolicySchema>;

export interface MedicalPolicies {
  version: string;
  illustrative: boolean;
  regions: Partial<Record<Region, RegionPolicy>>;
}

/** Loads `<dataDir>/medical/policies.yaml`. */
export function loadMedicalPolicies(dataDir = 'data'): MedicalPolicies {
  const raw = readDataFile(dataDir, 'medical/policies.yaml', PoliciesFileSchema);
  return { version: raw.version, illustrative: raw.illustrative, regions: raw.regions };
}

/** Year-to-date accumulations of one person for one treatment type. */
export interface Accumulation {
  /** Deductible borne so far this year. */
  deductibleFen: Fen;
  /** Paid by the pooled fund so far this year (counts against the cap). */
  fundFen: Fen;
  medfeeFen: Fen;
  claims: number;
}

/** Compact record of an applied claim: enough to answer it again and to reverse it. */
interface ClaimRecord {
  /** Insertion order, for the size bound. */
  n: number;
  /** Calendar year and treatment whose accumulations it changed. */
  y: string;
  t: Treatment;
  /** S settled, V a reversal, X rejected. */
  s: 'S' | 'V' | 'X';
  reason: string;
  /** [medfee, fulamt, preself, inscp, deductible, hifp, acct, cash, overcap] */
  a: number[];
  pv: string;
  /** Set on an original: the reversal claim id that undid it. */
  rev?: string;
  /** Set on a reversal: the claim it undid. */
  of?: string;
  ins: Region;
  trt: Region;
  inst: string;
}

/**
 * Per-person medical state, plain data (a KV value, stored as MessagePack: partition-state.ts). Bounded: accumulations and claims of
 * the newest two calendar years seen, and at most {@link MAX_CLAIMS} claim records.
 */
export interface PersonMedicalState {
  v: 1;
  years: Record<string, Partial<Record<Treatment, Accumulation>>>;
  claims: Record<string, ClaimRecord>;
  seq: number;
}

/** Bound on claim records kept per person (idempotency and reversal horizon). */
export const MAX_CLAIMS = 1000;

export interface MedicalData {
  medical: MedicalPolicies;
}

const EMPTY_ACC: Accumulation = { deductibleFen: 0, fundFen: 0, medfeeFen: 0, claims: 0 };

type SplitAmounts = Pick<
  ClaimSplit,
  | 'medfee_sumamt'
  | 'fulamt_ownpay_amt'
  | 'preselfpay_amt'
  | 'inscp_scp_amt'
  | 'deductible_amt'
  | 'hifp_pay'
  | 'acct_pay'
  | 'cash_payamt'
  | 'over_cap_amt'
>;
const AMOUNT_FIELDS = [
  'medfee_sumamt',
  'fulamt_ownpay_amt',
  'preselfpay_amt',
  'inscp_scp_amt',
  'deductible_amt',
  'hifp_pay',
  'acct_pay',
  'cash_payamt',
  'over_cap_amt',
] as const satisfies readonly (keyof SplitAmounts)[];

const ZERO_AMOUNTS: SplitAmounts = Object.fromEntries(AMOUNT_FIELDS.map((f) => [f, 0])) as SplitAmounts;

/** Year-to-date input of {@link quoteClaim} (for the claim's treatment type). */
export interface YearToDate {
  /** Deductible already borne this year. @default 0 */
  deductibleFen?: Fen;
  /** Already paid by the fund this year. @default 0 */
  fundFen?: Fen;
}

/**
 * The split of a claim under the insured region's policy and the given year-to-date amounts.
 * Pure; used by {@link settleClaim} and `tapflow medical quote`.
 */
export function quoteClaim(data: MedicalData, claim: MedicalClaimEvent, ytd: YearToDate = {}): ClaimSplit & { trace: TraceStep[] } {
  const pv = data.medical.version;
  const trace: TraceStep[] = [];
  const step = (rule: string, detail: string): void => {
    trace.push({ rule, version: pv, detail });
  };
  const reject = (reason: string): ClaimSplit & { trace: TraceStep[] } => {
    step('reject', reason);
    return { claimId: claim.claimId, status: 'REJECTED', reason, ...ZERO_AMOUNTS, policy_version: pv, trace };
  };
  const policy = data.medical.regions[claim.insuredRegion];
  if (!policy) return reject(`NO_POLICY: no policy for insured region ${claim.insuredRegion}`);
  if (claim.items.length === 0) return reject('INVALID_CLAIM: no items');
  if (claim.items.length > MAX_CLAIM_ITEMS) return reject(`INVALID_CLAIM: ${claim.items.length} items, at most ${MAX_CLAIM_ITEMS}`);
  // Bounded items keep every sum below 2^53: the additions below are exact.
  let total = 0;
  for (const it of claim.items) {
    if (!inRange(it.amountFen, 0, MAX_CLAIM_ITEM_FEN)) return reject(`INVALID_CLAIM: item ${it.code} amount ${it.amountFen} outside 0..${MAX_CLAIM_ITEM_FEN}`);
    total += it.amountFen;
  }
  if (total > MAX_CLAIM_TOTAL_FEN) return reject(`INVALID_CLAIM: total ${total} above ${MAX_CLAIM_TOTAL_FEN}`);
  if (!Levels.includes(claim.institutionLevel)) return reject(`INVALID_CLAIM: institution level ${claim.institutionLevel}`);
  const tp = claim.treatment === 'INPATIENT' ? policy.inpatient : policy.outpatient;
  const level: InstitutionLevel = claim.institutionLevel;

  let medfee = 0;
  let fulamt = 0;
  let preself = 0;
  for (const it of claim.items) {
    medfee += it.amountFen;
    if (it.catalogueClass === 'SELF_PAY') fulamt += it.amountFen;
    else if (it.catalogueClass === 'CLASS_B') preself += percentOf(it.amountFen, policy.classBFirstSharePercent);
  }
  const inscp = medfee - fulamt - preself;
  step(
    'catalogue',
    `treating region ${claim.treatmentRegion} catalogue: total ${medfee}, self-pay ${fulamt}, class B first share ${policy.classBFirstSharePercent}% = ${preself}, in scope ${inscp} fen`,
  );

  const dedTotal = tp.deductibleFen[level];
  const dedUsed = tp.deductibleBasis === 'annual' ? (ytd.deductibleFen ?? 0) : 0;
  const dedRemaining = Math.max(0, dedTotal - dedUsed);
  const deductible = Math.min(inscp, dedRemaining);
  step(
    'deductible',
    `${claim.insuredRegion} ${claim.treatment.toLowerCase()} ${level} deductible ${dedTotal} fen (${tp.deductibleBasis}), ` +
      `${tp.deductibleBasis === 'annual' ? `used ${dedUsed} this year, ` : ''}applied ${deductible}`,
  );

  const ratio = tp.ratioPercent[level];
  const fundShare = percentOf(inscp - deductible, ratio);
  const fundUsed = ytd.fundFen ?? 0;
  const capRemaining = Math.max(0, tp.annualCapFen - fundUsed);
  const hifp = Math.min(fundShare, capRemaining);
  const overCap = fundShare - hifp;
  step('ratio', `fund pays ${ratio}% of ${inscp - deductible} = ${fundShare} fen`);
  step('cap', `annual cap ${tp.annualCapFen}, fund paid ${fundUsed} this year, remaining ${capRemaining}: hifp_pay ${hifp}, over cap ${overCap}`);

  const patientShare = medfee - fulamt - hifp + (policy.accountCoversSelfPay ? fulamt : 0);
  const balance = Math.max(0, Math.trunc(claim.personalAccountBalanceFen));
  const acct = Math.min(balance, patientShare);
  const cash = medfee - hifp - acct;
  step('account', `personal account balance ${balance}, pays ${acct} of ${patientShare}${policy.accountCoversSelfPay ? ' (self-pay items included)' : ''}; cash ${cash}`);

  return {
    claimId: claim.claimId,
    status: 'SETTLED',
    reason: 'OK',
    medfee_sumamt: fen(medfee),
    fulamt_ownpay_amt: fen(fulamt),
    preselfpay_amt: fen(preself),
    inscp_scp_amt: fen(inscp),
    deductible_amt: fen(deductible),
    hifp_pay: fen(hifp),
    acct_pay: fen(acct),
    cash_payamt: fen(cash),
    over_cap_amt: fen(overCap),
    policy_version: pv,
    trace,
  };
}

/** Posting of a claim split: fund, personal account and cash pay the institution. */
function claimLedger(settlementId: string, a: SplitAmounts, ins: Region, trt: Region, institutionId: string) {
  const post = new Posting(settlementId)
    .debit(ACCOUNTS.fund(ins), a.hifp_pay)
    .debit(ACCOUNTS.medicalAccount(ins), a.acct_pay);
  if (ins !== trt) {
    // The insured region's fund and accounts pay the treating region, which pays the institution.
    post
      .credit(ACCOUNTS.clearingPayable(ins, trt), a.hifp_pay + a.acct_pay)
      .debit(ACCOUNTS.clearingReceivable(ins, trt), a.hifp_pay + a.acct_pay);
  }
  return post.debit(ACCOUNTS.cash(trt), a.cash_payamt).credit(ACCOUNTS.institution(institutionId), a.medfee_sumamt).done();
}

function emptyState(): PersonMedicalState {
  return { v: 1, years: {}, claims: {}, seq: 0 };
}

function amountsOf(r: ClaimRecord): SplitAmounts {
  return Object.fromEntries(AMOUNT_FIELDS.map((f, i) => [f, r.a[i] ?? 0])) as SplitAmounts;
}

function negate(a: SplitAmounts): SplitAmounts {
  return Object.fromEntries(AMOUNT_FIELDS.map((f) => [f, a[f] === 0 ? 0 : -a[f]])) as SplitAmounts;
}

/** Rebuilds the settlement of an applied claim record (first answer and duplicates alike). */
function settlementOf(c: MedicalClaimEvent, r: ClaimRecord, trace: TraceStep[], nowMs: number): Settlement {
  const reversal = r.s === 'V' || (r.s === 'X' && c.reversesClaimId !== '');
  const settlementId = `${c.claimId}:${reversal ? 'reversal' : 'medical'}`;
  const amounts = amountsOf(r);
  let ledger: Settlement['ledger'] = [];
  let shown = amounts;
  let status: ClaimSplit['status'] = r.s === 'X' ? 'REJECTED' : 'SETTLED';
  if (r.s === 'S') ledger = claimLedger(settlementId, amounts, r.ins, r.trt, r.inst);
  if (r.s === 'V') {
    ledger = negateEntries(settlementId, claimLedger(settlementId, amounts, r.ins, r.trt, r.inst));
    shown = negate(amounts);
    status = 'REVERSED';
  }
  const claim: ClaimSplit = { claimId: c.claimId, status, reason: r.reason, ...shown, policy_version: r.pv };
  return {
    settlementId,
    eventId: c.claimId,
    kind: reversal ? 'REVERSAL' : 'MEDICAL',
    cardToken: c.cardToken,
    cardRegion: r.ins,
    terminalRegion: r.trt,
    operatorId: r.inst,
    network: '',
    scene: 'MEDICAL',
    venueId: r.inst,
    entryVenueId: '',
    deviceTime: c.deviceTime,
    settleTime: nowMs,
    businessDay: businessDay(c.deviceTime),
    amountFen: shown.acct_pay + shown.cash_payamt,
    baseFareFen: shown.medfee_sumamt,
    distanceM: 0,
    tariffVersion: r.pv,
    trace,
    ledger,
    claim,
    adjustsEventId: r.of ?? '',
    partition: c.partition,
    ingestTime: c.ingestTime,
  };
}

/**
 * Settles a medical claim (or a reversal, when `c.reversesClaimId` is set) against the person's
 * state. Idempotent per claim id: a claim already applied returns the same split and the state
 * unchanged. Deterministic: only `settleTime` uses `nowMs`.
 *
 * `refused`: the validator decided against the claim (its card, the hotlist or the project
 * list): it is recorded REJECTED with that reason code, moves no money and accumulates nothing.
 * A reversal is only accepted from the institution of the claim it undoes.
 */
export function settleClaim(
  data: MedicalData,
  state: PersonMedicalState | undefined,
  c: MedicalClaimEvent,
  nowMs: number,
  refused?: { reason: string; trace: TraceStep[] },
): { state: PersonMedicalState; settlement: Settlement } {
  const st = state ?? emptyState();
  const done = st.claims[c.claimId];
  if (done) return { state: st, settlement: settlementOf(c, done, [{ rule: 'duplicate', version: done.pv, detail: `claim ${c.claimId} already applied` }], nowMs) };

  // Copy what changes: the accumulations (small) and the claim map (records are replaced, not edited).
  const next: PersonMedicalState = {
    v: 1,
    seq: st.seq,
    years: Object.fromEntries(Object.entries(st.years).map(([y, acc]) => [y, Object.fromEntries(Object.entries(acc).map(([t, a]) => [t, { ...a }]))])),
    claims: { ...st.claims },
  };
  const year = shanghaiYear(c.deviceTime);
  next.seq += 1;
  let record: ClaimRecord;
  let trace: TraceStep[];
  const pv = data.medical.version;

  if (refused) {
    record = { n: next.seq, y: year, t: c.treatment, s: 'X', reason: refused.reason, a: AMOUNT_FIELDS.map(() => 0), pv, ins: c.insuredRegion, trt: c.treatmentRegion, inst: c.institutionId, ...(c.reversesClaimId && { of: c.reversesClaimId }) };
    trace = [...refused.trace, { rule: 'reject', version: pv, detail: `refused by the validator: ${refused.reason}; no money moves` }];
  } else if (c.reversesClaimId) {
    const orig = next.claims[c.reversesClaimId];
    const base = { n: next.seq, pv, ins: c.insuredRegion, trt: c.treatmentRegion, inst: c.institutionId, a: AMOUNT_FIELDS.map(() => 0) };
    if (!orig || orig.s !== 'S' || orig.rev || orig.inst !== c.institutionId) {
      // Another institution's claim is reported as not found: nothing is revealed about it.
      const reason = !orig || orig.inst !== c.institutionId ? 'CLAIM_NOT_FOUND' : orig.rev ? `ALREADY_REVERSED by ${orig.rev}` : 'NOT_REVERSIBLE';
      record = { ...base, y: year, t: c.treatment, s: 'X', reason, of: c.reversesClaimId };
      trace = [{ rule: 'reversal', version: pv, detail: `cannot reverse ${c.reversesClaimId}: ${reason}` }];
    } else {
      const a = amountsOf(orig);
      const acc = next.years[orig.y]?.[orig.t];
      if (acc) {
        acc.deductibleFen -= a.deductible_amt;
        acc.fundFen -= a.hifp_pay;
        acc.medfeeFen -= a.medfee_sumamt;
        acc.claims -= 1;
      }
      next.claims[c.reversesClaimId] = { ...orig, rev: c.claimId };
      record = { n: next.seq, y: orig.y, t: orig.t, s: 'V', reason: 'OK', a: orig.a, pv: orig.pv, of: c.reversesClaimId, ins: orig.ins, trt: orig.trt, inst: orig.inst };
      trace = [{ rule: 'reversal', version: orig.pv, detail: `reverses ${c.reversesClaimId}: restores deductible ${a.deductible_amt} and fund ${a.hifp_pay} of ${orig.y} ${orig.t.toLowerCase()}` }];
    }
  } else {
    const acc = next.years[year]?.[c.treatment] ?? EMPTY_ACC;
    const q = quoteClaim(data, c, { deductibleFen: acc.deductibleFen, fundFen: acc.fundFen });
    trace = q.trace;
    record = {
      n: next.seq,
      y: year,
      t: c.treatment,
      s: q.status === 'SETTLED' ? 'S' : 'X',
      reason: q.reason,
      a: AMOUNT_FIELDS.map((f) => q[f]),
      pv,
      ins: c.insuredRegion,
      trt: c.treatmentRegion,
      inst: c.institutionId,
    };
    if (record.s === 'S') {
      const y = (next.years[year] ??= {});
      const cur = (y[c.treatment] ??= { ...EMPTY_ACC });
      cur.deductibleFen += q.deductible_amt;
      cur.fundFen += q.hifp_pay;
      cur.medfeeFen += q.medfee_sumamt;
      cur.claims += 1;
    }
  }
  next.claims[c.claimId] = record;
  prune(next);
  return { state: next, settlement: settlementOf(c, record, trace, nowMs) };
}

/** Keeps the newest two calendar years and at most MAX_CLAIMS claim records. */
function prune(st: PersonMedicalState): void {
  const years = Object.keys(st.years).sort();
  const newest = years[years.length - 1];
  if (newest) {
    const keepFrom = String(Number(newest) - 1);
    for (const y of years) if (y < keepFrom) delete st.years[y];
    for (const [id, r] of Object.entries(st.claims)) if (r.y < keepFrom) delete st.claims[id];
  }
  const ids = Object.keys(st.claims);
  if (ids.length > MAX_CLAIMS) {
    ids.sort((a, b) => st.claims[a]!.n - st.claims[b]!.n);
    for (const id of ids.slice(0, ids.length - MAX_CLAIMS)) delete st.claims[id];
  }
}

/** Year-to-date accumulations of a person (for `tapflow medical quote` and the risk views). */
export function accumulationsOf(state: PersonMedicalState | undefined, year: string, treatment: Treatment): Accumulation {
  return { ...(state?.years[year]?.[treatment] ?? EMPTY_ACC) };
}
