/**
 * Row mapping from the domain types to tapflow's tables (columns in migrations/0001 and 0003). Pure:
 * no I/O, no clock — `stored_time` is filled by ClickHouse (DEFAULT now64(3)).
 *
 * Storage formats:
 * - DateTime64(3) columns are sent as the string '<epoch seconds>.<millis>' (e.g.
 *   '1700000000.123'). Both engines parse it exactly, whatever the server's time zone or
 *   date_time_input_format; a bare epoch-ms number is not read the same way by every version.
 * - Booleans are 0/1 (UInt8); trace steps are a JSON string `[{"rule","version","detail"}]`.
 * - Money is integer fen; a non-integer amount throws (it is a bug upstream, not data to store).
 */
import type { ClaimSplit, Decision, EpochMs, RiskFlag, Settlement, TraceStep } from '../domain/types.js';
import { fen } from '../domain/types.js';
import { DEFAULT_RISK_FLAG_STREAM, type SourceStream, feeds } from './sources.js';

/** '<epoch seconds>.<millis>' for a DateTime64(3) column. */
export function dateTime64(ms: EpochMs, what = 'time'): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`${what} must be non-negative integer epoch milliseconds, got ${ms}`);
  return `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}`;
}

function seqOf(streamSeq: number): number {
  if (!Number.isSafeInteger(streamSeq) || streamSeq < 0) throw new RangeError(`streamSeq must be a non-negative integer, got ${streamSeq}`);
  return streamSeq;
}

function traceJson(trace: readonly TraceStep[]): string {
  return JSON.stringify(trace.map((t) => ({ rule: t.rule, version: t.version, detail: t.detail })));
}

/** A row of `decisions`. */
export type DecisionRow = {
  event_id: string;
  terminal_id: string;
  seq: number;
  terminal_region: string;
  operator_id: string;
  device_time: string;
  ingest_time: string;
  decision_time: string;
  scene: string;
  venue_id: string;
  direction: string;
  card_token: string;
  card_region: string;
  form: string;
  amount_fen: number;
  rider_category: string;
  offline: 0 | 1;
  partition: number;
  verdict: string;
  reason: string;
  trace: string;
  risk_rules: string[];
  stream_seq: number;
};

/** Maps a validator's decision (from the DECISIONS stream message `streamSeq`). */
export function decisionRow(d: Decision, streamSeq: number): DecisionRow {
  return {
    event_id: d.eventId,
    terminal_id: d.terminalId,
    seq: d.seq,
    terminal_region: d.terminalRegion,
    operator_id: d.operatorId,
    device_time: dateTime64(d.deviceTime, 'deviceTime'),
    ingest_time: dateTime64(d.ingestTime, 'ingestTime'),
    decision_time: dateTime64(d.decisionTime, 'decisionTime'),
    scene: d.scene,
    venue_id: d.venueId,
    direction: d.direction,
    card_token: d.cardToken,
    card_region: d.cardRegion,
    form: d.form,
    amount_fen: fen(d.amountFen, 'amountFen'),
    rider_category: d.riderCategory,
    offline: d.offline ? 1 : 0,
    partition: d.partition,
    verdict: d.verdict,
    reason: d.reason,
    trace: traceJson(d.trace),
    risk_rules: [...d.riskRules],
    stream_seq: seqOf(streamSeq),
  };
}

/** The ClaimSplit amounts, shared by `settlements` and `claims`. */
type SplitColumns = {
  medfee_sumamt: number;
  fulamt_ownpay_amt: number;
  preselfpay_amt: number;
  inscp_scp_amt: number;
  deductible_amt: number;
  hifp_pay: number;
  acct_pay: number;
  cash_payamt: number;
  over_cap_amt: number;
  policy_version: string;
};

function splitColumns(c: ClaimSplit | undefined): SplitColumns {
  return {
    medfee_sumamt: fen(c?.medfee_sumamt ?? 0, 'medfee_sumamt'),
    fulamt_ownpay_amt: fen(c?.fulamt_ownpay_amt ?? 0, 'fulamt_ownpay_amt'),
    preselfpay_amt: fen(c?.preselfpay_amt ?? 0, 'preselfpay_amt'),
    inscp_scp_amt: fen(c?.inscp_scp_amt ?? 0, 'inscp_scp_amt'),
    deductible_amt: fen(c?.deductible_amt ?? 0, 'deductible_amt'),
    hifp_pay: fen(c?.hifp_pay ?? 0, 'hifp_pay'),
    acct_pay: fen(c?.acct_pay ?? 0, 'acct_pay'),
    cash_payamt: fen(c?.cash_payamt ?? 0, 'cash_payamt'),
    over_cap_amt: fen(c?.over_cap_amt ?? 0, 'over_cap_amt'),
    policy_version: c?.policy_version ?? '',
  };
}

/** A row of `settlements`. */
export type SettlementRow = {
  settlement_id: string;
  event_id: string;
  kind: string;
  card_token: string;
  card_region: string;
  terminal_region: string;
  operator_id: string;
  network: string;
  scene: string;
  venue_id: string;
  entry_venue_id: string;
  device_time: string;
  ingest_time: string;
  settle_time: string;
  business_day: string;
  amount_fen: number;
  base_fare_fen: number;
  distance_m: number;
  tariff_version: string;
  trace: string;
  adjusts_event_id: string;
  partition: number;
  claim_id: string;
  claim_status: string;
  stream_seq: number;
} & SplitColumns;

/** A row of `ledger`. */
export type LedgerRow = {
  entry_id: string;
  settlement_id: string;
  event_id: string;
  business_day: string;
  account: string;
  debit_fen: number;
  credit_fen: number;
  card_region: string;
  terminal_region: string;
  kind: string;
  device_time: string;
  stream_seq: number;
};

/** A row of `claims`. */
export type ClaimRow = {
  claim_id: string;
  settlement_id: string;
  event_id: string;
  status: string;
  reason: string;
  person_token: string;
  card_token: string;
  insured_region: string;
  treatment_region: string;
  institution_id: string;
  device_time: string;
  business_day: string;
  stream_seq: number;
} & SplitColumns;

export interface SettlementRows {
  settlement: SettlementRow;
  /** One row per ledger entry of the settlement (may be empty, e.g. NO_CHARGE). */
  ledger: LedgerRow[];
  /** Present when the settlement carries a medical claim split. */
  claim?: ClaimRow;
}

const BUSINESS_DAY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Maps a settler's output (from the SETTLEMENTS stream message `streamSeq`) to its rows in
 * `settlements`, `ledger` and, for medical claims, `claims`. In a claim row the insured region
 * is the card's region, the treatment region the terminal's, and the institution the venue.
 * @param extra.personToken the claim's person token: a Settlement does not carry it (yet).
 */
export function settlementRows(s: Settlement, streamSeq: number, extra: { personToken?: string } = {}): SettlementRows {
  const stream_seq = seqOf(streamSeq);
  if (!BUSINESS_DAY.test(s.businessDay)) throw new RangeError(`businessDay must be YYYY-MM-DD, got ${JSON.stringify(s.businessDay)}`);
  const deviceTime = dateTime64(s.deviceTime, 'deviceTime');
  const claim = s.claim;
  const settlement: SettlementRow = {
    settlement_id: s.settlementId,
    event_id: s.eventId,
    kind: s.kind,
    card_token: s.cardToken,
    card_region: s.cardRegion,
    terminal_region: s.terminalRegion,
    operator_id: s.operatorId,
    network: s.network,
    scene: s.scene,
    venue_id: s.venueId,
    entry_venue_id: s.entryVenueId,
    device_time: deviceTime,
    ingest_time: dateTime64(s.ingestTime, 'ingestTime'),
    settle_time: dateTime64(s.settleTime, 'settleTime'),
    business_day: s.businessDay,
    amount_fen: fen(s.amountFen, 'amountFen'),
    base_fare_fen: fen(s.baseFareFen, 'baseFareFen'),
    // Metres are a measurement, not money: rounding a fractional estimate is harmless.
    distance_m: Math.max(0, Math.round(s.distanceM)),
    tariff_version: s.tariffVersion,
    trace: traceJson(s.trace),
    adjusts_event_id: s.adjustsEventId,
    partition: s.partition,
    claim_id: claim?.claimId ?? '',
    claim_status: claim?.status ?? '',
    ...splitColumns(claim),
    stream_seq,
  };
  const ledger: LedgerRow[] = s.ledger.map((e) => ({
    entry_id: e.entryId,
    settlement_id: s.settlementId,
    event_id: s.eventId,
    business_day: s.businessDay,
    account: e.account,
    debit_fen: fen(e.debitFen, 'debitFen'),
    credit_fen: fen(e.creditFen, 'creditFen'),
    card_region: s.cardRegion,
    terminal_region: s.terminalRegion,
    kind: s.kind,
    device_time: deviceTime,
    stream_seq,
  }));
  const rows: SettlementRows = { settlement, ledger };
  if (claim) {
    rows.claim = {
      claim_id: claim.claimId,
      settlement_id: s.settlementId,
      event_id: s.eventId,
      status: claim.status,
      reason: claim.reason,
      ...splitColumns(claim),
      person_token: extra.personToken ?? '',
      card_token: s.cardToken,
      insured_region: s.cardRegion,
      treatment_region: s.terminalRegion,
      institution_id: s.venueId,
      device_time: deviceTime,
      business_day: s.businessDay,
      stream_seq,
    };
  }
  return rows;
}

/** A row of `risk_flags`. */
export type RiskFlagRow = {
  flag_id: string;
  event_id: string;
  rule_id: string;
  rule_version: string;
  severity: string;
  key_kind: string;
  key: string;
  detail: string;
  device_time: string;
  flag_time: string;
  region: string;
  stream_seq: number;
  /** The stream the flag came from (migration 0003). */
  source_stream: SourceStream;
};

/**
 * Maps a risk flag from the message `streamSeq` of `sourceStream`: DECISIONS (a flag inside a
 * validator's decision bundle), SETTLEMENTS (inside a settler's settlement bundle) or RISK (a
 * flag alone, the default).
 */
export function riskFlagRow(f: RiskFlag, streamSeq: number, sourceStream: SourceStream = DEFAULT_RISK_FLAG_STREAM): RiskFlagRow {
  if (!feeds('risk_flags', sourceStream)) throw new RangeError(`sourceStream ${sourceStream} does not feed risk_flags`);
  return {
    flag_id: f.flagId,
    event_id: f.eventId,
    rule_id: f.ruleId,
    rule_version: f.ruleVersion,
    severity: f.severity,
    key_kind: f.keyKind,
    key: f.key,
    detail: f.detail,
    device_time: dateTime64(f.deviceTime, 'deviceTime'),
    flag_time: dateTime64(f.flagTime, 'flagTime'),
    region: f.region,
    stream_seq: seqOf(streamSeq),
    source_stream: sourceStream,
  };
}
