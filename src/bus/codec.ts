/**
 * Conversions between the protobuf messages on the bus (src/gen) and the domain types the pure
 * core speaks (src/domain/types.ts). Proto enums are numbers; domain enums are their names.
 */
import {
  BusClaim as PbBusClaim,
  BusTap as PbBusTap,
  ClaimDecision as PbClaimDecision,
  CardCredentials as PbCardCredentials,
  CardForm as PbCardForm,
  Decision as PbDecision,
  RiskFlag as PbRiskFlag,
  Settlement as PbSettlement,
  SettlementKind as PbSettlementKind,
  Severity as PbSeverity,
  Verdict as PbVerdict,
} from '../gen/tapflow/v1/bus.js';
import {
  CatalogueClass as PbCatalogueClass,
  ClaimResult as PbClaimResult,
  ClaimStatus as PbClaimStatus,
  Direction as PbDirection,
  InstitutionLevel as PbInstitutionLevel,
  Region as PbRegion,
  RiderCategory as PbRiderCategory,
  Scene as PbScene,
  Treatment as PbTreatment,
} from '../gen/tapflow/v1/ingest.js';
import type {
  CardCredentials,
  CardForm,
  ClaimDecision,
  ClaimItem,
  ClaimSubmission,
  ClaimSplit,
  ClaimStatus,
  Decision,
  Direction,
  Region,
  RiderCategory,
  RiskFlag,
  Scene,
  Settlement,
  SettlementKind,
  Severity,
  TapEvent,
} from '../domain/types.js';
import { MAX_ACCOUNT_BALANCE_FEN, MAX_CLAIM_ITEM_FEN, MAX_CLAIM_ITEMS, MAX_CLAIM_TOTAL_FEN, MAX_DEVICE_TIME, MAX_SEQ, MAX_TAP_AMOUNT_FEN, MIN_DEVICE_TIME, inRange } from '../domain/limits.js';
import { TapflowError } from '../domain/reasons.js';

/**
 * Range checks of what a decoder produced: the pure core relies on them (integer fen whose sums
 * stay exact, plausible times). A message outside them is a data error (TF_EVENT_INVALID): it is
 * dead-lettered, never retried. Ingest refuses such values from terminals, so on the bus they
 * mean a corrupt or forged message.
 */
function need(ok: boolean, field: string, what: string): void {
  if (!ok) throw new TapflowError('TF_EVENT_INVALID', `${field}: ${what}`);
}

function checkTapFields(t: { seq: number; deviceTime: number; ingestTime: number; amountFen: number }): void {
  need(inRange(t.seq, 1, MAX_SEQ), 'seq', `${t.seq} is not an integer from 1 to 2^53-1`);
  need(inRange(t.deviceTime, MIN_DEVICE_TIME, MAX_DEVICE_TIME), 'device_time', `${t.deviceTime} is not epoch ms from 2015 to 2100`);
  need(inRange(t.ingestTime, 0, MAX_DEVICE_TIME), 'ingest_time', `${t.ingestTime} is not epoch ms`);
  need(inRange(t.amountFen, 0, MAX_TAP_AMOUNT_FEN), 'amount_fen', `${t.amountFen} is not an integer from 0 to ${MAX_TAP_AMOUNT_FEN}`);
}

function checkClaimFields(c: { deviceTime: number; ingestTime: number; personalAccountBalanceFen: number; items: { amountFen: number }[] }): void {
  need(inRange(c.deviceTime, MIN_DEVICE_TIME, MAX_DEVICE_TIME), 'device_time', `${c.deviceTime} is not epoch ms from 2015 to 2100`);
  need(inRange(c.ingestTime, 0, MAX_DEVICE_TIME), 'ingest_time', `${c.ingestTime} is not epoch ms`);
  need(inRange(c.personalAccountBalanceFen, 0, MAX_ACCOUNT_BALANCE_FEN), 'personal_account_balance_fen', `${c.personalAccountBalanceFen} is not an integer from 0 to ${MAX_ACCOUNT_BALANCE_FEN}`);
  need(c.items.length <= MAX_CLAIM_ITEMS, 'items', `${c.items.length} items, at most ${MAX_CLAIM_ITEMS}`);
  let total = 0;
  c.items.forEach((it, i) => {
    need(inRange(it.amountFen, 0, MAX_CLAIM_ITEM_FEN), `items[${i}].amount_fen`, `${it.amountFen} is not an integer from 0 to ${MAX_CLAIM_ITEM_FEN}`);
    total += it.amountFen;
  });
  need(total <= MAX_CLAIM_TOTAL_FEN, 'items', `total ${total} fen is above ${MAX_CLAIM_TOTAL_FEN}`);
}

/** Name of a proto enum value, or throws naming the field when it is not a known value. */
function nameOf<T extends string>(e: Record<number, string>, v: number, field: string, strip = ''): T {
  const n = e[v];
  // UNRECOGNIZED is ts-proto's name for −1, not a value of the contract.
  if (n === undefined || n === 'UNRECOGNIZED' || n.endsWith('_UNSPECIFIED')) throw new Error(`${field}: unknown or unspecified value ${v}`);
  return (strip && n.startsWith(strip) ? n.slice(strip.length) : n) as T;
}
function valueOf(e: Record<string, number | string>, name: string, prefix = ''): number {
  const v = e[prefix + name];
  if (typeof v !== 'number') throw new Error(`no enum value ${prefix + name}`);
  return v;
}

export const enums = {
  region: (v: PbRegion) => nameOf<Region>(PbRegion, v, 'region'),
  toRegion: (r: Region) => valueOf(PbRegion, r) as PbRegion,
  scene: (v: PbScene) => nameOf<Scene>(PbScene, v, 'scene'),
  toScene: (s: Scene) => valueOf(PbScene, s) as PbScene,
  direction: (v: PbDirection) => nameOf<Direction>(PbDirection, v, 'direction'),
  toDirection: (d: Direction) => valueOf(PbDirection, d) as PbDirection,
  rider: (v: PbRiderCategory): RiderCategory => (v === PbRiderCategory.RIDER_CATEGORY_UNSPECIFIED ? 'ADULT' : nameOf<RiderCategory>(PbRiderCategory, v, 'rider_category')),
  toRider: (r: RiderCategory) => valueOf(PbRiderCategory, r) as PbRiderCategory,
  form: (v: PbCardForm) => nameOf<CardForm>(PbCardForm, v, 'form'),
  toForm: (f: CardForm) => valueOf(PbCardForm, f) as PbCardForm,
};

export function encodeBusTap(t: TapEvent, sealedCard: Uint8Array): Uint8Array {
  return PbBusTap.encode({
    eventId: t.eventId,
    terminalId: t.terminalId,
    seq: t.seq,
    terminalRegion: enums.toRegion(t.terminalRegion),
    operatorId: t.operatorId,
    deviceTime: t.deviceTime,
    ingestTime: t.ingestTime,
    scene: enums.toScene(t.scene),
    venueId: t.venueId,
    direction: enums.toDirection(t.direction),
    cardToken: t.cardToken,
    cardRegion: enums.toRegion(t.cardRegion),
    form: enums.toForm(t.form),
    sealedCard: Buffer.isBuffer(sealedCard) ? sealedCard : Buffer.from(sealedCard.buffer, sealedCard.byteOffset, sealedCard.byteLength),
    amountFen: t.amountFen,
    riderCategory: enums.toRider(t.riderCategory),
    offline: t.offline,
    partition: t.partition,
    contentDigest: t.contentDigest ?? '',
    previousCardTokens: t.previousCardTokens ?? [],
  }).finish();
}

/** Decodes a BusTap; throws TF_EVENT_INVALID naming the field when a value is out of range. */
export function decodeBusTap(data: Uint8Array): { tap: TapEvent; sealedCard: Uint8Array } {
  const m = PbBusTap.decode(data);
  checkTapFields(m);
  return {
    tap: {
      eventId: m.eventId,
      terminalId: m.terminalId,
      seq: m.seq,
      terminalRegion: enums.region(m.terminalRegion),
      operatorId: m.operatorId,
      deviceTime: m.deviceTime,
      ingestTime: m.ingestTime,
      scene: enums.scene(m.scene),
      venueId: m.venueId,
      direction: enums.direction(m.direction),
      cardToken: m.cardToken,
      cardRegion: enums.region(m.cardRegion),
      form: enums.form(m.form),
      amountFen: m.amountFen,
      riderCategory: enums.rider(m.riderCategory),
      offline: m.offline,
      partition: m.partition,
      ...(m.contentDigest && { contentDigest: m.contentDigest }),
      ...(m.previousCardTokens.length > 0 && { previousCardTokens: m.previousCardTokens }),
    },
    sealedCard: m.sealedCard,
  };
}

export function encodeCredentials(c: CardCredentials): Uint8Array {
  return PbCardCredentials.encode({
    card: c.kind === 'chip' ? { $case: 'chip', value: { cardNumber: c.cardNumber, counter: c.counter, mac: Buffer.from(c.mac) } } : { $case: 'qr', value: { payload: c.payload } },
  }).finish();
}

export function decodeCredentials(data: Uint8Array): CardCredentials | undefined {
  const m = PbCardCredentials.decode(data);
  if (m.card?.$case === 'chip') return { kind: 'chip', cardNumber: m.card.value.cardNumber, counter: m.card.value.counter, mac: m.card.value.mac };
  if (m.card?.$case === 'qr') return { kind: 'qr', payload: m.card.value.payload };
  return undefined;
}

export function encodeDecision(d: Decision): Uint8Array {
  return PbDecision.encode({
    eventId: d.eventId,
    terminalId: d.terminalId,
    seq: d.seq,
    terminalRegion: enums.toRegion(d.terminalRegion),
    operatorId: d.operatorId,
    deviceTime: d.deviceTime,
    ingestTime: d.ingestTime,
    decisionTime: d.decisionTime,
    scene: enums.toScene(d.scene),
    venueId: d.venueId,
    direction: enums.toDirection(d.direction),
    cardToken: d.cardToken,
    cardRegion: enums.toRegion(d.cardRegion),
    form: enums.toForm(d.form),
    amountFen: d.amountFen,
    riderCategory: enums.toRider(d.riderCategory),
    offline: d.offline,
    partition: d.partition,
    verdict: d.verdict === 'ACCEPTED' ? PbVerdict.VERDICT_ACCEPTED : PbVerdict.VERDICT_REJECTED,
    reason: d.reason,
    trace: d.trace,
    riskRules: d.riskRules,
    previousCardTokens: d.previousCardTokens ?? [],
  }).finish();
}

export function decodeDecision(data: Uint8Array): Decision {
  const m = PbDecision.decode(data);
  checkTapFields(m);
  return {
    eventId: m.eventId,
    terminalId: m.terminalId,
    seq: m.seq,
    terminalRegion: enums.region(m.terminalRegion),
    operatorId: m.operatorId,
    deviceTime: m.deviceTime,
    ingestTime: m.ingestTime,
    decisionTime: m.decisionTime,
    scene: enums.scene(m.scene),
    venueId: m.venueId,
    direction: enums.direction(m.direction),
    cardToken: m.cardToken,
    cardRegion: enums.region(m.cardRegion),
    form: enums.form(m.form),
    amountFen: m.amountFen,
    riderCategory: enums.rider(m.riderCategory),
    offline: m.offline,
    partition: m.partition,
    verdict: m.verdict === PbVerdict.VERDICT_ACCEPTED ? 'ACCEPTED' : 'REJECTED',
    reason: m.reason,
    trace: m.trace,
    riskRules: m.riskRules,
    ...(m.previousCardTokens.length > 0 && { previousCardTokens: m.previousCardTokens }),
  };
}

function encodeClaimSplit(c: ClaimSplit): PbClaimResult {
  return {
    claimId: c.claimId,
    status: valueOf(PbClaimStatus, c.status) as PbClaimStatus,
    reason: c.reason,
    medfeeSumamt: c.medfee_sumamt,
    fulamtOwnpayAmt: c.fulamt_ownpay_amt,
    preselfpayAmt: c.preselfpay_amt,
    inscpScpAmt: c.inscp_scp_amt,
    deductibleAmt: c.deductible_amt,
    hifpPay: c.hifp_pay,
    acctPay: c.acct_pay,
    cashPayamt: c.cash_payamt,
    overCapAmt: c.over_cap_amt,
    policyVersion: c.policy_version,
  };
}

export function claimSplitFromPb(r: PbClaimResult): ClaimSplit {
  return {
    claimId: r.claimId,
    status: nameOf<ClaimStatus>(PbClaimStatus, r.status, 'status'),
    reason: r.reason,
    medfee_sumamt: r.medfeeSumamt,
    fulamt_ownpay_amt: r.fulamtOwnpayAmt,
    preselfpay_amt: r.preselfpayAmt,
    inscp_scp_amt: r.inscpScpAmt,
    deductible_amt: r.deductibleAmt,
    hifp_pay: r.hifpPay,
    acct_pay: r.acctPay,
    cash_payamt: r.cashPayamt,
    over_cap_amt: r.overCapAmt,
    policy_version: r.policyVersion,
  };
}

export { encodeClaimSplit as claimSplitToPb };

export function encodeSettlement(s: Settlement): Uint8Array {
  return PbSettlement.encode({
    settlementId: s.settlementId,
    eventId: s.eventId,
    kind: valueOf(PbSettlementKind, s.kind, 'SETTLEMENT_KIND_') as PbSettlementKind,
    cardToken: s.cardToken,
    cardRegion: enums.toRegion(s.cardRegion),
    terminalRegion: enums.toRegion(s.terminalRegion),
    operatorId: s.operatorId,
    network: s.network,
    scene: enums.toScene(s.scene),
    venueId: s.venueId,
    entryVenueId: s.entryVenueId,
    deviceTime: s.deviceTime,
    settleTime: s.settleTime,
    businessDay: s.businessDay,
    amountFen: s.amountFen,
    baseFareFen: s.baseFareFen,
    distanceM: s.distanceM,
    tariffVersion: s.tariffVersion,
    trace: s.trace,
    ledger: s.ledger,
    claim: s.claim ? encodeClaimSplit(s.claim) : undefined,
    adjustsEventId: s.adjustsEventId,
    partition: s.partition,
    ingestTime: s.ingestTime,
    personToken: s.personToken ?? '',
  }).finish();
}

export function decodeSettlement(data: Uint8Array): Settlement {
  const m = PbSettlement.decode(data);
  return {
    settlementId: m.settlementId,
    eventId: m.eventId,
    kind: nameOf<SettlementKind>(PbSettlementKind, m.kind, 'kind', 'SETTLEMENT_KIND_'),
    cardToken: m.cardToken,
    cardRegion: enums.region(m.cardRegion),
    terminalRegion: enums.region(m.terminalRegion),
    operatorId: m.operatorId,
    network: m.network,
    scene: enums.scene(m.scene),
    venueId: m.venueId,
    entryVenueId: m.entryVenueId,
    deviceTime: m.deviceTime,
    settleTime: m.settleTime,
    businessDay: m.businessDay,
    amountFen: m.amountFen,
    baseFareFen: m.baseFareFen,
    distanceM: m.distanceM,
    tariffVersion: m.tariffVersion,
    trace: m.trace,
    ledger: m.ledger,
    claim: m.claim ? claimSplitFromPb(m.claim) : undefined,
    adjustsEventId: m.adjustsEventId,
    partition: m.partition,
    ingestTime: m.ingestTime,
    ...(m.personToken && { personToken: m.personToken }),
  };
}

export function encodeRiskFlag(f: RiskFlag): Uint8Array {
  return PbRiskFlag.encode({ ...f, severity: valueOf(PbSeverity, f.severity) as PbSeverity, region: enums.toRegion(f.region) }).finish();
}

export function decodeRiskFlag(data: Uint8Array): RiskFlag {
  const m = PbRiskFlag.decode(data);
  return { ...m, severity: nameOf<Severity>(PbSeverity, m.severity, 'severity'), keyKind: m.keyKind as RiskFlag['keyKind'], region: enums.region(m.region) };
}

function itemsToPb(items: ClaimItem[]) {
  return items.map((i) => ({ code: i.code, name: i.name, catalogueClass: valueOf(PbCatalogueClass, i.catalogueClass) as PbCatalogueClass, amountFen: i.amountFen }));
}

function itemsFromPb(items: { code: string; name: string; catalogueClass: PbCatalogueClass; amountFen: number }[]): ClaimItem[] {
  return items.map((i, n) => ({ code: i.code, name: i.name, catalogueClass: nameOf(PbCatalogueClass, i.catalogueClass, `items[${n}].catalogue_class`), amountFen: i.amountFen }));
}

/** The fields a BusClaim and a ClaimDecision share. */
function claimToPb(c: ClaimSubmission) {
  return {
    claimId: c.claimId,
    claimKey: c.claimKey,
    terminalId: c.terminalId,
    institutionId: c.institutionId,
    institutionLevel: valueOf(PbInstitutionLevel, c.institutionLevel) as PbInstitutionLevel,
    treatment: valueOf(PbTreatment, c.treatment) as PbTreatment,
    cardToken: c.cardToken,
    personToken: c.personToken,
    insuredRegion: enums.toRegion(c.insuredRegion),
    treatmentRegion: enums.toRegion(c.treatmentRegion),
    deviceTime: c.deviceTime,
    ingestTime: c.ingestTime,
    items: itemsToPb(c.items),
    reversesClaimId: c.reversesClaimId,
    personalAccountBalanceFen: c.personalAccountBalanceFen,
    partition: c.partition,
    cardPartition: c.cardPartition,
    form: enums.toForm(c.form),
    cardRegion: enums.toRegion(c.cardRegion),
    previousCardTokens: c.previousCardTokens ?? [],
    previousPersonTokens: c.previousPersonTokens ?? [],
  };
}

function claimFromPb(m: ReturnType<typeof claimToPb>): ClaimSubmission {
  checkClaimFields(m);
  return {
    claimId: m.claimId,
    claimKey: m.claimKey,
    terminalId: m.terminalId,
    institutionId: m.institutionId,
    institutionLevel: nameOf(PbInstitutionLevel, m.institutionLevel, 'institution_level'),
    treatment: nameOf(PbTreatment, m.treatment, 'treatment'),
    cardToken: m.cardToken,
    personToken: m.personToken,
    insuredRegion: enums.region(m.insuredRegion),
    treatmentRegion: enums.region(m.treatmentRegion),
    deviceTime: m.deviceTime,
    ingestTime: m.ingestTime,
    items: itemsFromPb(m.items),
    reversesClaimId: m.reversesClaimId,
    personalAccountBalanceFen: m.personalAccountBalanceFen,
    partition: m.partition,
    cardPartition: m.cardPartition,
    form: enums.form(m.form),
    cardRegion: enums.region(m.cardRegion),
    ...(m.previousCardTokens.length > 0 && { previousCardTokens: m.previousCardTokens }),
    ...(m.previousPersonTokens.length > 0 && { previousPersonTokens: m.previousPersonTokens }),
  };
}

/** A claim for the validators, with its card's credentials sealed. */
export function encodeBusClaim(c: ClaimSubmission, sealedCard: Uint8Array): Uint8Array {
  return PbBusClaim.encode({ ...claimToPb(c), sealedCard: Buffer.isBuffer(sealedCard) ? sealedCard : Buffer.from(sealedCard) }).finish();
}

/** Decodes a BusClaim; throws TF_EVENT_INVALID naming the field when a value is out of range. */
export function decodeBusClaim(data: Uint8Array): { claim: ClaimSubmission; sealedCard: Uint8Array } {
  const m = PbBusClaim.decode(data);
  return { claim: claimFromPb(m), sealedCard: m.sealedCard };
}

export function encodeClaimDecision(d: ClaimDecision): Uint8Array {
  return PbClaimDecision.encode({
    ...claimToPb(d),
    decisionTime: d.decisionTime,
    verdict: d.verdict === 'ACCEPTED' ? PbVerdict.VERDICT_ACCEPTED : PbVerdict.VERDICT_REJECTED,
    reason: d.reason,
    trace: d.trace,
    riskRules: d.riskRules,
  }).finish();
}

/** Decodes a ClaimDecision; throws TF_EVENT_INVALID naming the field when a value is out of range. */
export function decodeClaimDecision(data: Uint8Array): ClaimDecision {
  const m = PbClaimDecision.decode(data);
  return {
    ...claimFromPb(m),
    decisionTime: m.decisionTime,
    verdict: m.verdict === PbVerdict.VERDICT_ACCEPTED ? 'ACCEPTED' : 'REJECTED',
    reason: m.reason,
    trace: m.trace,
    riskRules: m.riskRules,
  };
}

// --- Bundles -----------------------------------------------------------------------------------
// A bundle is a message whose fields are repeated sub-messages (TapBundle.taps = 1;
// DecisionBundle.decisions = 1, flags = 2; SettlementBundle.settlements = 1, flags = 2). They are
// written by concatenating the encoded sub-messages with their tags (no second encoding pass) and
// read by splitting them apart, so that one bad sub-message can be set aside while the rest of
// the bundle is processed.

function varintBytes(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

/** Encodes length-delimited fields: each part under its field number, in the order given. */
export function encodeFields(fields: [fieldNo: number, parts: readonly Uint8Array[]][]): Uint8Array {
  let size = 0;
  const heads: number[][][] = fields.map(([no, parts]) =>
    parts.map((p) => {
      const head = [...varintBytes((no << 3) | 2), ...varintBytes(p.length)];
      size += head.length + p.length;
      return head;
    }),
  );
  const out = new Uint8Array(size);
  let o = 0;
  fields.forEach(([, parts], f) => {
    parts.forEach((p, i) => {
      const head = heads[f]![i]!;
      out.set(head, o);
      o += head.length;
      out.set(p, o);
      o += p.length;
    });
  });
  return out;
}

/**
 * The length-delimited fields of a bundle, by field number (sub-views of `data`, no copy). Throws
 * TF_DECODE_FAILED when the bytes are not a bundle (another wire type, a length beyond the end).
 */
export function splitFields(data: Uint8Array): Map<number, Uint8Array[]> {
  const out = new Map<number, Uint8Array[]>();
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (pos >= data.length) throw new TapflowError('TF_DECODE_FAILED', 'bundle: premature end of a varint');
      const b = data[pos++]!;
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    throw new TapflowError('TF_DECODE_FAILED', 'bundle: varint too long');
  };
  while (pos < data.length) {
    const tag = varint();
    const no = Math.floor(tag / 8);
    if (tag % 8 !== 2 || no === 0) throw new TapflowError('TF_DECODE_FAILED', `bundle: field ${no} with wire type ${tag % 8}, expected length-delimited sub-messages`);
    const len = varint();
    if (pos + len > data.length) throw new TapflowError('TF_DECODE_FAILED', `bundle: field ${no} of ${len} bytes beyond the end`);
    let list = out.get(no);
    if (!list) out.set(no, (list = []));
    list.push(data.subarray(pos, pos + len));
    pos += len;
  }
  return out;
}

/** A TapBundle of already encoded BusTaps. */
export function encodeTapBundle(busTaps: readonly Uint8Array[]): Uint8Array {
  return encodeFields([[1, busTaps]]);
}

/** The encoded BusTaps of a TapBundle (decode each with {@link decodeBusTap}). */
export function splitTapBundle(data: Uint8Array): Uint8Array[] {
  return splitFields(data).get(1) ?? [];
}

export function encodeDecisionBundle(decisions: readonly Decision[], flags: readonly RiskFlag[]): Uint8Array {
  return encodeFields([
    [1, decisions.map(encodeDecision)],
    [2, flags.map(encodeRiskFlag)],
  ]);
}

/** The encoded decisions and flags of a DecisionBundle. */
export function splitDecisionBundle(data: Uint8Array): { decisions: Uint8Array[]; flags: Uint8Array[] } {
  const f = splitFields(data);
  return { decisions: f.get(1) ?? [], flags: f.get(2) ?? [] };
}

export function encodeSettlementBundle(settlements: readonly Settlement[], flags: readonly RiskFlag[]): Uint8Array {
  return encodeFields([
    [1, settlements.map(encodeSettlement)],
    [2, flags.map(encodeRiskFlag)],
  ]);
}

/** The encoded settlements and flags of a SettlementBundle. */
export function splitSettlementBundle(data: Uint8Array): { settlements: Uint8Array[]; flags: Uint8Array[] } {
  const f = splitFields(data);
  return { settlements: f.get(1) ?? [], flags: f.get(2) ?? [] };
}
