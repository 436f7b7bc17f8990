/**
 * The domain vocabulary of tapflow, as plain TypeScript: the pure core (decide, price, split,
 * clear) speaks these types and imports nothing from gRPC, NATS, ClickHouse or generated code.
 * Adapters convert protobuf messages to and from them (src/bus/codec.ts).
 */

export const Regions = ['BJ', 'TJ', 'HE'] as const;
/** BJ Beijing, TJ Tianjin, HE Hebei. */
export type Region = (typeof Regions)[number];

export const Scenes = ['RAIL', 'BUS', 'MEDICAL', 'CULTURE', 'SERVICE', 'BENEFIT'] as const;
export type Scene = (typeof Scenes)[number];

export const CardForms = ['CHIP', 'QR'] as const;
export type CardForm = (typeof CardForms)[number];

export const Directions = ['ENTRY', 'EXIT', 'SINGLE'] as const;
export type Direction = (typeof Directions)[number];

export const RiderCategories = ['ADULT', 'STUDENT', 'SENIOR', 'DISABLED'] as const;
/** SENIOR means aged 65 and over. */
export type RiderCategory = (typeof RiderCategories)[number];

/** Money: integer fen (分). Never a float; every function that makes one checks it. */
export type Fen = number;

/** Epoch milliseconds. */
export type EpochMs = number;

/** One step of the reasoning behind an answer: which rule, which data version decided it. */
export interface TraceStep {
  rule: string;
  version: string;
  detail: string;
}

/** Credentials read from the card, as the validator sees them after unsealing. */
export type CardCredentials =
  | { kind: 'chip'; cardNumber: string; counter: number; mac: Uint8Array }
  | { kind: 'qr'; payload: string };

/** A tokenised tap as ingest publishes it and validators decide it. */
export interface TapEvent {
  /** "<terminalId>:<seq>" */
  eventId: string;
  terminalId: string;
  seq: number;
  terminalRegion: Region;
  operatorId: string;
  deviceTime: EpochMs;
  ingestTime: EpochMs;
  scene: Scene;
  venueId: string;
  direction: Direction;
  /** Keyed HMAC token of the card number: the only card identity outside ingest and validators. */
  cardToken: string;
  /**
   * During a token key rotation overlap: the card's tokens under the previous key versions
   * (newest first), under which its state may still be kept (src/domain/card/token-keys.ts).
   */
  previousCardTokens?: string[];
  cardRegion: Region;
  form: CardForm;
  /** Amount the terminal already debited from a purse; 0 when it did not. */
  amountFen: Fen;
  riderCategory: RiderCategory;
  /** Arrived in an offline batch upload. */
  offline: boolean;
  partition: number;
  /**
   * Digest of what the terminal sent for this (terminalId, seq) (src/ingest/digest.ts): a re-send
   * of the same tap has the same digest, a seq reused for another tap a different one.
   */
  contentDigest?: string;
}

export type Verdict = 'ACCEPTED' | 'REJECTED';

/** A validator's answer about one tap. The tap's fields travel with it (minus credentials). */
export interface Decision extends TapEvent {
  decisionTime: EpochMs;
  verdict: Verdict;
  /** Reason code from src/domain/reasons.ts; 'OK' when accepted. */
  reason: string;
  trace: TraceStep[];
  /** Ids of the risk rules that flagged this tap. */
  riskRules: string[];
}

export type Severity = 'INFO' | 'WARNING' | 'CRITICAL';
export type RiskKeyKind = 'card' | 'terminal' | 'venue' | 'institution';

export interface RiskFlag {
  flagId: string;
  eventId: string;
  ruleId: string;
  ruleVersion: string;
  severity: Severity;
  keyKind: RiskKeyKind;
  /** A token or an id, never a raw card number. */
  key: string;
  detail: string;
  deviceTime: EpochMs;
  flagTime: EpochMs;
  region: Region;
}

export type SettlementKind = 'FARE' | 'ENTRY' | 'MEDICAL' | 'ADJUSTMENT' | 'NO_CHARGE' | 'REVERSAL';

/** One line of a double-entry posting. Exactly one of debitFen / creditFen is non-zero. */
export interface LedgerEntry {
  entryId: string;
  /** Account name, see src/domain/settle/accounts.ts (e.g. "card:BJ", "operator:bj-subway"). */
  account: string;
  debitFen: Fen;
  creditFen: Fen;
}

export type CatalogueClass = 'CLASS_A' | 'CLASS_B' | 'SELF_PAY';
export type InstitutionLevel = 'PRIMARY' | 'SECONDARY' | 'TERTIARY';
export type Treatment = 'OUTPATIENT' | 'INPATIENT';

export interface ClaimItem {
  code: string;
  name: string;
  catalogueClass: CatalogueClass;
  amountFen: Fen;
}

/** A medical bill as settlers see it (tokenised). */
export interface MedicalClaimEvent {
  claimId: string;
  terminalId: string;
  institutionId: string;
  institutionLevel: InstitutionLevel;
  treatment: Treatment;
  cardToken: string;
  personToken: string;
  insuredRegion: Region;
  treatmentRegion: Region;
  deviceTime: EpochMs;
  ingestTime: EpochMs;
  items: ClaimItem[];
  /** Set on a reversal: the claim it undoes. */
  reversesClaimId: string;
  personalAccountBalanceFen: Fen;
  /** Partition of the person token: the settler that settles the claim. */
  partition: number;
}

/** A claim as ingest publishes it for the validator of its card's partition. */
export interface ClaimSubmission extends MedicalClaimEvent {
  /** During a token key rotation overlap: the card's and the person's tokens under the previous versions. */
  previousCardTokens?: string[];
  previousPersonTokens?: string[];
  /** Hex SHA-256 prefix of the claim id: names the claim in subjects, KV keys and message ids. */
  claimKey: string;
  /** Partition of the card token: the validator that decides the claim. */
  cardPartition: number;
  form: CardForm;
  /** Issuing region of the card. */
  cardRegion: Region;
}

/**
 * A validator's answer about a claim. `institutionLevel` and `treatmentRegion` are those of the
 * institution's project list item once the claim got that far (the claim's own are not trusted).
 */
export interface ClaimDecision extends ClaimSubmission {
  decisionTime: EpochMs;
  verdict: Verdict;
  /** Reason code from src/domain/reasons.ts; 'OK' when accepted. */
  reason: string;
  trace: TraceStep[];
  riskRules: string[];
}

export type ClaimStatus = 'SETTLED' | 'PENDING' | 'REJECTED' | 'REVERSED';

/** The split of a medical bill, with the national platform's field names. */
export interface ClaimSplit {
  claimId: string;
  status: ClaimStatus;
  reason: string;
  medfee_sumamt: Fen;
  fulamt_ownpay_amt: Fen;
  preselfpay_amt: Fen;
  inscp_scp_amt: Fen;
  deductible_amt: Fen;
  hifp_pay: Fen;
  acct_pay: Fen;
  cash_payamt: Fen;
  over_cap_amt: Fen;
  policy_version: string;
}

/** What a settler emits for one priced event (or one adjustment). */
export interface Settlement {
  /** Unique and deterministic: the Nats-Msg-Id and the ClickHouse key. */
  settlementId: string;
  eventId: string;
  kind: SettlementKind;
  cardToken: string;
  cardRegion: Region;
  terminalRegion: Region;
  operatorId: string;
  network: string;
  scene: Scene;
  venueId: string;
  entryVenueId: string;
  deviceTime: EpochMs;
  settleTime: EpochMs;
  /** YYYY-MM-DD in Asia/Shanghai of deviceTime. */
  businessDay: string;
  /** What the cardholder pays (a delta for ADJUSTMENT). */
  amountFen: Fen;
  baseFareFen: Fen;
  distanceM: number;
  tariffVersion: string;
  trace: TraceStep[];
  ledger: LedgerEntry[];
  claim?: ClaimSplit;
  adjustsEventId: string;
  partition: number;
  ingestTime: EpochMs;
  /** For MEDICAL and REVERSAL: the insured person's token. */
  personToken?: string;
}

/** Asserts an amount is an integer number of fen. */
export function fen(n: number, what = 'amount'): Fen {
  if (!Number.isSafeInteger(n)) throw new RangeError(`${what} must be an integer number of fen, got ${n}`);
  return n;
}

/**
 * A place where cards are tapped: a metro station, a bus stop of a route, a clinic, a museum.
 * Venue ids are stable strings: "<network>:<station>" for rail (e.g. "bj-subway:西直门"),
 * "<network>:<route>:<stop>" for buses, "<kind>:<region>:<name>" for others.
 */
export interface Venue {
  id: string;
  region: Region;
  scene: Scene;
  operatorId: string;
  /** Name for display. */
  name: string;
  /** For RAIL and BUS: the fare network id (tariff data). */
  network?: string;
  /** For RAIL: the station name in the network; for BUS: the stop's distance along the route. */
  station?: string;
  routeKm?: number;
  /** WGS84; absent when unknown (then travel checks skip this venue). */
  lat?: number;
  lon?: number;
}

/** Looks venues up by id; built from data files (networks and sample venues). */
export interface VenueDirectory {
  readonly version: string;
  get(venueId: string): Venue | undefined;
  all(): Iterable<Venue>;
}
