/**
 * Row mapping from the domain types to tapflow's tables (columns in migrations/0001, 0003 and 0005).
 * Pure: no I/O, no clock — `stored_time` is filled by ClickHouse (DEFAULT now64(3)).
 *
 * Each table has one mapping, `write<Table>(w, …)`, that writes a row field by field through a
 * {@link RowWriter}. Into an {@link InsertBatch} it encodes the row for the INSERT directly (the
 * sink's path: no row object, no per-row serialisation, see row-encoding.ts); `decisionRow`,
 * `settlementRows` and `riskFlagRow` run the same mapping into plain objects.
 *
 * Formats of the plain objects:
 * - DateTime64(3) columns are the string '<epoch seconds>.<millis>' (e.g. '1700000000.123').
 *   Both engines parse it exactly, whatever the server's time zone or date_time_input_format; a
 *   bare epoch-ms number is not read the same way by every version.
 * - Booleans are 0/1 (UInt8); trace steps are a JSON string `[{"rule","version","detail"}]`.
 * - Money is integer fen; a non-integer amount throws (it is a bug upstream, not data to store).
 */
import type { ClaimSplit, Decision, EpochMs, RiskFlag, Settlement, TraceStep } from '../domain/types.js';
import { fen } from '../domain/types.js';
import type { RowWriter } from './row-encoding.js';
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

/** The keys of a trace step in the JSON of the `trace` columns, in order. */
const TRACE_KEYS: readonly (keyof TraceStep)[] = ['rule', 'version', 'detail'];

const NO_TOKENS: readonly string[] = [];

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
  /** During a token key rotation overlap, the card's tokens under the previous key versions (migration 0005). */
  previous_card_tokens: string[];
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

/** Writes the `decisions` row of a validator's decision from the DECISIONS message `streamSeq`. */
export function writeDecision(w: RowWriter, d: Decision, streamSeq: number): void {
  w.string('event_id', d.eventId);
  w.string('terminal_id', d.terminalId);
  w.int('seq', d.seq);
  w.string('terminal_region', d.terminalRegion);
  w.string('operator_id', d.operatorId);
  w.dateTime64('device_time', d.deviceTime);
  w.dateTime64('ingest_time', d.ingestTime);
  w.dateTime64('decision_time', d.decisionTime);
  w.string('scene', d.scene);
  w.string('venue_id', d.venueId);
  w.string('direction', d.direction);
  w.string('card_token', d.cardToken);
  w.stringArray('previous_card_tokens', d.previousCardTokens ?? NO_TOKENS);
  w.string('card_region', d.cardRegion);
  w.string('form', d.form);
  w.int('amount_fen', fen(d.amountFen, 'amountFen'));
  w.string('rider_category', d.riderCategory);
  w.int('offline', d.offline ? 1 : 0);
  w.int('partition', d.partition);
  w.string('verdict', d.verdict);
  w.string('reason', d.reason);
  w.jsonRecords('trace', d.trace, TRACE_KEYS);
  w.stringArray('risk_rules', d.riskRules);
  w.int('stream_seq', seqOf(streamSeq));
  w.endRow();
}

/** Maps a validator's decision (from the DECISIONS stream message `streamSeq`). */
export function decisionRow(d: Decision, streamSeq: number): DecisionRow {
  return objectRows(SHAPES.decisions, (w) => writeDecision(w, d, streamSeq))[0] as DecisionRow;
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

function writeSplit(w: RowWriter, c: ClaimSplit | undefined): void {
  w.int('medfee_sumamt', fen(c?.medfee_sumamt ?? 0, 'medfee_sumamt'));
  w.int('fulamt_ownpay_amt', fen(c?.fulamt_ownpay_amt ?? 0, 'fulamt_ownpay_amt'));
  w.int('preselfpay_amt', fen(c?.preselfpay_amt ?? 0, 'preselfpay_amt'));
  w.int('inscp_scp_amt', fen(c?.inscp_scp_amt ?? 0, 'inscp_scp_amt'));
  w.int('deductible_amt', fen(c?.deductible_amt ?? 0, 'deductible_amt'));
  w.int('hifp_pay', fen(c?.hifp_pay ?? 0, 'hifp_pay'));
  w.int('acct_pay', fen(c?.acct_pay ?? 0, 'acct_pay'));
  w.int('cash_payamt', fen(c?.cash_payamt ?? 0, 'cash_payamt'));
  w.int('over_cap_amt', fen(c?.over_cap_amt ?? 0, 'over_cap_amt'));
  w.string('policy_version', c?.policy_version ?? '');
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

function businessDay(s: Settlement): string {
  if (!BUSINESS_DAY.test(s.businessDay)) throw new RangeError(`businessDay must be YYYY-MM-DD, got ${JSON.stringify(s.businessDay)}`);
  return s.businessDay;
}

/** Writes the `settlements` row of a settler's output from the SETTLEMENTS message `streamSeq`. */
export function writeSettlement(w: RowWriter, s: Settlement, streamSeq: number): void {
  const claim = s.claim;
  w.string('settlement_id', s.settlementId);
  w.string('event_id', s.eventId);
  w.string('kind', s.kind);
  w.string('card_token', s.cardToken);
  w.string('card_region', s.cardRegion);
  w.string('terminal_region', s.terminalRegion);
  w.string('operator_id', s.operatorId);
  w.string('network', s.network);
  w.string('scene', s.scene);
  w.string('venue_id', s.venueId);
  w.string('entry_venue_id', s.entryVenueId);
  w.dateTime64('device_time', s.deviceTime);
  w.dateTime64('ingest_time', s.ingestTime);
  w.dateTime64('settle_time', s.settleTime);
  w.string('business_day', businessDay(s));
  w.int('amount_fen', fen(s.amountFen, 'amountFen'));
  w.int('base_fare_fen', fen(s.baseFareFen, 'baseFareFen'));
  // Metres are a measurement, not money: rounding a fractional estimate is harmless.
  w.int('distance_m', Math.max(0, Math.round(s.distanceM)));
  w.string('tariff_version', s.tariffVersion);
  w.jsonRecords('trace', s.trace, TRACE_KEYS);
  w.string('adjusts_event_id', s.adjustsEventId);
  w.int('partition', s.partition);
  w.string('claim_id', claim?.claimId ?? '');
  w.string('claim_status', claim?.status ?? '');
  writeSplit(w, claim);
  w.int('stream_seq', seqOf(streamSeq));
  w.endRow();
}

/** Writes the `ledger` rows of a settler's output, one per ledger entry; returns how many. */
export function writeLedger(w: RowWriter, s: Settlement, streamSeq: number): number {
  const stream_seq = seqOf(streamSeq);
  const day = businessDay(s);
  for (const e of s.ledger) {
    w.string('entry_id', e.entryId);
    w.string('settlement_id', s.settlementId);
    w.string('event_id', s.eventId);
    w.string('business_day', day);
    w.string('account', e.account);
    w.int('debit_fen', fen(e.debitFen, 'debitFen'));
    w.int('credit_fen', fen(e.creditFen, 'creditFen'));
    w.string('card_region', s.cardRegion);
    w.string('terminal_region', s.terminalRegion);
    w.string('kind', s.kind);
    w.dateTime64('device_time', s.deviceTime);
    w.int('stream_seq', stream_seq);
    w.endRow();
  }
  return s.ledger.length;
}

/**
 * Writes the `claims` row of a settler's output that carries a medical claim split (nothing
 * otherwise; returns whether it wrote one). The insured region is the card's region, the
 * treatment region the terminal's, and the institution the venue.
 * @param personToken the claim's person token (Settlement.personToken). @default ''
 */
export function writeClaim(w: RowWriter, s: Settlement, streamSeq: number, personToken = ''): boolean {
  const claim = s.claim;
  if (!claim) return false;
  w.string('claim_id', claim.claimId);
  w.string('settlement_id', s.settlementId);
  w.string('event_id', s.eventId);
  w.string('status', claim.status);
  w.string('reason', claim.reason);
  writeSplit(w, claim);
  w.string('person_token', personToken);
  w.string('card_token', s.cardToken);
  w.string('insured_region', s.cardRegion);
  w.string('treatment_region', s.terminalRegion);
  w.string('institution_id', s.venueId);
  w.dateTime64('device_time', s.deviceTime);
  w.string('business_day', businessDay(s));
  w.int('stream_seq', seqOf(streamSeq));
  w.endRow();
  return true;
}

/**
 * Maps a settler's output (from the SETTLEMENTS stream message `streamSeq`) to its rows in
 * `settlements`, `ledger` and, for medical claims, `claims`. In a claim row the insured region
 * is the card's region, the treatment region the terminal's, and the institution the venue.
 * @param extra.personToken the claim's person token: a Settlement does not carry it (yet).
 */
export function settlementRows(s: Settlement, streamSeq: number, extra: { personToken?: string } = {}): SettlementRows {
  const rows: SettlementRows = {
    settlement: objectRows(SHAPES.settlements, (w) => writeSettlement(w, s, streamSeq))[0] as SettlementRow,
    ledger: objectRows(SHAPES.ledger, (w) => writeLedger(w, s, streamSeq)) as LedgerRow[],
  };
  const claim = objectRows(SHAPES.claims, (w) => writeClaim(w, s, streamSeq, extra.personToken));
  if (claim.length > 0) rows.claim = claim[0] as ClaimRow;
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
 * Writes the `risk_flags` row of a risk flag from the message `streamSeq` of `sourceStream`:
 * DECISIONS (a flag inside a validator's decision bundle), SETTLEMENTS (inside a settler's
 * settlement bundle) or RISK (a flag alone).
 */
export function writeRiskFlag(w: RowWriter, f: RiskFlag, streamSeq: number, sourceStream: SourceStream = DEFAULT_RISK_FLAG_STREAM): void {
  if (!feeds('risk_flags', sourceStream)) throw new RangeError(`sourceStream ${sourceStream} does not feed risk_flags`);
  w.string('flag_id', f.flagId);
  w.string('event_id', f.eventId);
  w.string('rule_id', f.ruleId);
  w.string('rule_version', f.ruleVersion);
  w.string('severity', f.severity);
  w.string('key_kind', f.keyKind);
  w.string('key', f.key);
  w.string('detail', f.detail);
  w.dateTime64('device_time', f.deviceTime);
  w.dateTime64('flag_time', f.flagTime);
  w.string('region', f.region);
  w.int('stream_seq', seqOf(streamSeq));
  w.string('source_stream', sourceStream);
  w.endRow();
}

/** Maps a risk flag (from the message `streamSeq` of `sourceStream`, RISK unless given). */
export function riskFlagRow(f: RiskFlag, streamSeq: number, sourceStream: SourceStream = DEFAULT_RISK_FLAG_STREAM): RiskFlagRow {
  return objectRows(SHAPES.risk_flags, (w) => writeRiskFlag(w, f, streamSeq, sourceStream))[0] as RiskFlagRow;
}

/**
 * The shape of one table's plain rows: an object with its columns, made by JSON.parse so that V8
 * keeps it in fast mode. Rows start as a copy of it: an object that gets its 20-odd properties
 * one keyed store at a time turns into a slow dictionary (measured ~3× dearer to build and to
 * encode).
 */
interface RowShape {
  template?: Record<string, unknown>;
}

const SHAPES = { decisions: {}, settlements: {}, ledger: {}, claims: {}, risk_flags: {} } satisfies Record<string, RowShape>;

/** Runs a mapping into plain objects: the form of `engine.insert(table, rows)` with objects. */
function objectRows(shape: RowShape, write: (w: RowWriter) => unknown): Record<string, unknown>[] {
  const w = new ObjectRowWriter(shape);
  write(w);
  return w.rows;
}

/** A {@link RowWriter} that makes plain objects, values in the formats of this module's header. */
class ObjectRowWriter implements RowWriter {
  readonly rows: Record<string, unknown>[] = [];
  #row: Record<string, unknown> | undefined;

  constructor(readonly shape: RowShape) {}

  /** The row being written: a copy of the table's shape once it is known. */
  get #current(): Record<string, unknown> {
    return (this.#row ??= this.shape.template ? { ...this.shape.template } : {});
  }

  string(column: string, value: string): void {
    this.#current[column] = value;
  }

  int(column: string, value: number): void {
    if (!Number.isSafeInteger(value)) throw new RangeError(`${column} must be a safe integer, got ${value}`);
    this.#current[column] = value;
  }

  dateTime64(column: string, ms: number): void {
    this.#current[column] = dateTime64(ms, column);
  }

  stringArray(column: string, values: readonly string[]): void {
    this.#current[column] = [...values];
  }

  jsonRecords<K extends string>(column: string, items: readonly Readonly<Record<K, string>>[], keys: readonly K[]): void {
    const picked = items.map((item) => {
      const o: Record<string, string> = {};
      for (const k of keys) {
        const v = item[k];
        if (typeof v !== 'string') throw new RangeError(`${column}: ${k} must be a string, got ${typeof v}`);
        o[k] = v;
      }
      return o;
    });
    this.#current[column] = JSON.stringify(picked);
  }

  endRow(): void {
    const row = this.#current;
    this.rows.push(row);
    this.shape.template ??= JSON.parse(JSON.stringify(Object.fromEntries(Object.keys(row).map((k) => [k, null])))) as Record<string, unknown>;
    this.#row = undefined;
  }
}
