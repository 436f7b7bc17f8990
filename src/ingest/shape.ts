/**
 * Shape checks of what terminals send: pure functions over what src/ingest/wire.ts read (64-bit
 * integers still as bigint), naming the offending field. A tap that fails is answered INVALID
 * (reason "<field>: <problem>") and nothing is published; a claim that fails is refused with
 * INVALID_ARGUMENT. The bounds are those of src/domain/limits.ts.
 */
import { CARD_NUMBER_PATTERN, regionOfCardNumber } from '../domain/card/token.js';
import { tokenKeySet, tokensOf, type TokenKeySet } from '../domain/card/token-keys.js';
import { parseQrPayload } from '../domain/card/qr.js';
import { claimKey } from '../domain/claim-key.js';
import {
  MAX_ACCOUNT_BALANCE_FEN,
  MAX_CLAIM_ITEM_FEN,
  MAX_CLAIM_ITEMS,
  MAX_CLAIM_TOTAL_FEN,
  MAX_DEVICE_TIME,
  MAX_ID_LENGTH,
  MAX_ITEM_TEXT_LENGTH,
  MAX_QR_PAYLOAD_LENGTH,
  MAX_SEQ,
  MAX_TAP_AMOUNT_FEN,
  MIN_DEVICE_TIME,
  inRange,
} from '../domain/limits.js';
import type { CardCredentials, CatalogueClass, ClaimSubmission, Direction, Region, RiderCategory, Scene } from '../domain/types.js';
import {
  CatalogueClass as PbClass,
  Direction as PbDirection,
  InstitutionLevel as PbLevel,
  Region as PbRegion,
  RiderCategory as PbRider,
  Scene as PbScene,
  Treatment as PbTreatment,
  type MedicalClaim,
  type Tap,
} from '../gen/tapflow/v1/ingest.js';
import { enums } from '../bus/codec.js';
import { TERMINAL_ID_PATTERN } from './terminals.js';
import type { WireClaim, WireTap } from './wire.js';

export interface ShapeError {
  field: string;
  message: string;
}

export interface CheckedTap {
  /** The tap with range-checked numbers and the authenticated terminal id: what was received. */
  tap: Tap;
  scene: Scene;
  direction: Direction;
  riderCategory: RiderCategory;
  credentials: CardCredentials;
  cardNumber: string;
  cardRegion: Region;
}

export { MIN_DEVICE_TIME, MAX_TAP_AMOUNT_FEN as MAX_AMOUNT_FEN } from '../domain/limits.js';

type Checked<T> = { ok: true } & T;
type Failed = { ok: false; error: ShapeError };

function fail(field: string, message: string): Failed {
  return { ok: false, error: { field, message } };
}

/**
 * The values of a generated enum a terminal may send: its named values, without ts-proto's
 * UNRECOGNIZED (−1, which a 10-byte varint reads as) and, unless `unspecified`, without 0.
 */
function knownValues(e: Record<string, string | number>, unspecified = false): ReadonlySet<number> {
  return new Set(Object.values(e).filter((v): v is number => typeof v === 'number' && v >= (unspecified ? 0 : 1)));
}
const SCENES = knownValues(PbScene);
const DIRECTIONS = knownValues(PbDirection);
const RIDERS = knownValues(PbRider, true);
const LEVELS = knownValues(PbLevel, true);
const TREATMENTS = knownValues(PbTreatment);
const REGIONS = knownValues(PbRegion);
const CLASSES = knownValues(PbClass);

/** The problem of an enum value outside `known`: required when 0, else unknown. */
function enumProblem(v: number, names: string): string {
  return v === 0 ? `required (${names})` : `unknown value ${v} (${names})`;
}

/** Characters no id may contain: controls and separators that would corrupt logs and keys. */
const CONTROL = /[\u0000-\u001f\u007f\u2028\u2029]/;

function checkId(value: string, field: string): Failed | undefined {
  if (!value) return fail(field, 'required');
  if (value.length > MAX_ID_LENGTH) return fail(field, `at most ${MAX_ID_LENGTH} characters, got ${value.length}`);
  if (CONTROL.test(value) || value.trim() !== value) return fail(field, 'no control characters or surrounding spaces');
  return undefined;
}

/**
 * The terminal id of a message: empty means the authenticated terminal; anything else must be
 * it (the same rule in StreamTaps, UploadBatch and SettleClaim).
 */
export function terminalIdOf(given: string, authenticated: string, field = 'terminal_id'): { ok: true; id: string } | Failed {
  if (given === '') return { ok: true, id: authenticated };
  if (!TERMINAL_ID_PATTERN.test(given)) return fail(field, 'must be 1-64 of [A-Za-z0-9._-]');
  if (given !== authenticated) return fail(field, `does not match the authenticated terminal ${authenticated}`);
  return { ok: true, id: given };
}

const timeProblem = `must be epoch milliseconds from 2015-01-01 to 2100-01-01`;

export function checkTap(t: WireTap, authenticatedTerminal: string): Checked<{ tap: CheckedTap }> | Failed {
  const terminal = terminalIdOf(t.terminalId, authenticatedTerminal);
  if (!terminal.ok) return terminal;
  if (!inRange(t.seq, 1, MAX_SEQ)) return fail('seq', `must be an integer from 1 to 2^53-1, got ${t.seq}`);
  if (!inRange(t.deviceTime, MIN_DEVICE_TIME, MAX_DEVICE_TIME)) return fail('device_time', `${timeProblem}, got ${t.deviceTime}`);
  if (!SCENES.has(t.scene)) return fail('scene', enumProblem(t.scene, 'RAIL, BUS, MEDICAL, CULTURE, SERVICE, BENEFIT'));
  const venue = checkId(t.venueId, 'venue_id');
  if (venue) return venue;
  if (!DIRECTIONS.has(t.direction)) return fail('direction', enumProblem(t.direction, 'ENTRY, EXIT, SINGLE'));
  if (!RIDERS.has(t.riderCategory)) return fail('rider_category', enumProblem(t.riderCategory, 'ADULT, STUDENT, SENIOR, DISABLED, or none'));
  if (!inRange(t.amountFen, 0, MAX_TAP_AMOUNT_FEN)) return fail('amount_fen', `must be an integer from 0 to ${MAX_TAP_AMOUNT_FEN}, got ${t.amountFen}`);
  const card = checkCard(t.card, 'card');
  if (!card.ok) return card;
  const tap: Tap = { ...t, terminalId: terminal.id, seq: Number(t.seq), deviceTime: Number(t.deviceTime), amountFen: Number(t.amountFen) };
  return {
    ok: true,
    tap: {
      tap,
      scene: enums.scene(t.scene),
      direction: enums.direction(t.direction),
      riderCategory: enums.rider(t.riderCategory),
      ...card.card,
    },
  };
}

/** How far a tap's device time may lie from ingest time (ms): TAPFLOW_LIVE_TIME_BOUND_MS and TAPFLOW_UPLOAD_MAX_AGE_MS. */
export interface TimeBounds {
  /** A live tap, before or after ingest time; a stored tap, after it. */
  liveMs: number;
  /** A stored tap (UploadBatch), before ingest time. */
  uploadAgeMs: number;
}

/**
 * What is wrong with a device time received at `now` (epoch ms), or undefined when it lies in
 * the window: within `liveMs` of `now` for a live tap; from `uploadAgeMs` before to `liveMs`
 * after it for a stored one. Nothing is allocated for a time in the window.
 */
export function deviceTimeProblem(deviceTime: number, now: number, offline: boolean, b: TimeBounds): string | undefined {
  const ahead = deviceTime - now;
  if (ahead > b.liveMs) {
    return `${new Date(deviceTime).toISOString()} is ${span(ahead)} after ingest time; a ${offline ? 'stored' : 'live'} tap may be at most ${span(b.liveMs)} ahead of it (TAPFLOW_LIVE_TIME_BOUND_MS): check the terminal's clock`;
  }
  if (offline && -ahead > b.uploadAgeMs) {
    return `${new Date(deviceTime).toISOString()} is ${span(-ahead)} before ingest time; a stored tap may be at most ${span(b.uploadAgeMs)} old (TAPFLOW_UPLOAD_MAX_AGE_MS)`;
  }
  if (!offline && -ahead > b.liveMs) {
    return `${new Date(deviceTime).toISOString()} is ${span(-ahead)} before ingest time; a live tap may be at most ${span(b.liveMs)} behind it (TAPFLOW_LIVE_TIME_BOUND_MS): send taps held longer with UploadBatch, and check the terminal's clock`;
  }
  return undefined;
}

/** A duration for a message: minutes, hours, days or years. */
function span(ms: number): string {
  const h = ms / 3_600_000;
  if (h < 2) return `${Math.round(ms / 60_000)} min`;
  if (h < 48) return `${Math.round(h)} h`;
  if (h < 730 * 24) return `${Math.round(h / 24)} days`;
  return `${(h / (365.25 * 24)).toFixed(1)} years`;
}

export function checkCard(card: Tap['card'], field: string): Checked<{ card: { credentials: CardCredentials; cardNumber: string; cardRegion: Region } }> | Failed {
  if (!card) return fail(field, 'required: chip or qr');
  if (card.$case === 'chip') {
    const c = card.value;
    if (!CARD_NUMBER_PATTERN.test(c.cardNumber)) return fail(`${field}.chip.card_number`, 'must be a province code 11, 12 or 13 followed by 7-16 digits or capital letters');
    if (c.mac.length !== 8) return fail(`${field}.chip.mac`, 'must be 8 bytes');
    return {
      ok: true,
      card: { credentials: { kind: 'chip', cardNumber: c.cardNumber, counter: c.counter, mac: c.mac }, cardNumber: c.cardNumber, cardRegion: regionOfCardNumber(c.cardNumber)! },
    };
  }
  if (card.value.payload.length > MAX_QR_PAYLOAD_LENGTH) return fail(`${field}.qr.payload`, `at most ${MAX_QR_PAYLOAD_LENGTH} characters`);
  const parsed = parseQrPayload(card.value.payload);
  if (!parsed.ok) return fail(`${field}.qr.payload`, parsed.error);
  const number = parsed.qr.body.cardNumber;
  if (!CARD_NUMBER_PATTERN.test(number)) return fail(`${field}.qr.payload`, 'names a malformed card number');
  return { ok: true, card: { credentials: { kind: 'qr', payload: card.value.payload }, cardNumber: number, cardRegion: parsed.qr.body.issuer } };
}

/** Mainland resident ID numbers: 17 digits and a check character. */
export const ID_NUMBER_PATTERN = /^[0-9]{17}[0-9X]$/;

export interface CheckedClaim {
  claim: ClaimSubmission;
  credentials: CardCredentials;
}

/**
 * Checks a MedicalClaim and turns it into the tokenised claim ingest publishes (also what the
 * bench expects the validators to see). The treating region is the terminal's; level and region
 * of the institution are decided later from the project list.
 */
export function checkClaim(
  c: WireClaim,
  terminal: { id: string; region: Region },
  o: { tokenKey: Uint8Array | TokenKeySet; partitions: number; ingestTime: number },
): Checked<CheckedClaim> | Failed {
  const id = checkId(c.claimId, 'claim_id');
  if (id) return id;
  const term = terminalIdOf(c.terminalId, terminal.id);
  if (!term.ok) return term;
  const inst = checkId(c.institutionId, 'institution_id');
  if (inst) return inst;
  if (!LEVELS.has(c.institutionLevel)) return fail('institution_level', enumProblem(c.institutionLevel, 'PRIMARY, SECONDARY, TERTIARY, or none'));
  if (!TREATMENTS.has(c.treatment)) return fail('treatment', enumProblem(c.treatment, 'OUTPATIENT, INPATIENT'));
  if (!ID_NUMBER_PATTERN.test(c.idNumber)) return fail('id_number', 'must be 17 digits and a check character');
  if (!REGIONS.has(c.insuredRegion)) return fail('insured_region', enumProblem(c.insuredRegion, 'BJ, TJ, HE'));
  if (!inRange(c.deviceTime, MIN_DEVICE_TIME, MAX_DEVICE_TIME)) return fail('device_time', `${timeProblem}, got ${c.deviceTime}`);
  if (!inRange(c.personalAccountBalanceFen, 0, MAX_ACCOUNT_BALANCE_FEN)) return fail('personal_account_balance_fen', `must be an integer from 0 to ${MAX_ACCOUNT_BALANCE_FEN}, got ${c.personalAccountBalanceFen}`);
  if (c.reversesClaimId) {
    const rev = checkId(c.reversesClaimId, 'reverses_claim_id');
    if (rev) return rev;
  }
  if (!c.reversesClaimId && c.items.length === 0) return fail('items', 'at least one item');
  if (c.items.length > MAX_CLAIM_ITEMS) return fail('items', `at most ${MAX_CLAIM_ITEMS} items, got ${c.items.length}`);
  let total = 0;
  for (const [i, it] of c.items.entries()) {
    if (!it.code) return fail(`items[${i}].code`, 'required');
    if (it.code.length > MAX_ITEM_TEXT_LENGTH || it.name.length > MAX_ITEM_TEXT_LENGTH) return fail(`items[${i}].${it.code.length > MAX_ITEM_TEXT_LENGTH ? 'code' : 'name'}`, `at most ${MAX_ITEM_TEXT_LENGTH} characters`);
    if (!CLASSES.has(it.catalogueClass)) return fail(`items[${i}].catalogue_class`, enumProblem(it.catalogueClass, 'CLASS_A, CLASS_B, SELF_PAY'));
    if (!inRange(it.amountFen, 0, MAX_CLAIM_ITEM_FEN)) return fail(`items[${i}].amount_fen`, `must be an integer from 0 to ${MAX_CLAIM_ITEM_FEN}, got ${it.amountFen}`);
    // Each item is below 10^8 and there are at most 10^3: the running total stays exact.
    total += Number(it.amountFen);
  }
  if (total > MAX_CLAIM_TOTAL_FEN) return fail('items', `the items add up to ${total} fen, at most ${MAX_CLAIM_TOTAL_FEN}`);
  const card = checkCard(c.card, 'card');
  if (!card.ok) return card;

  // A bare key is version 1 alone (tests, the bench); a key set may hold a rotation overlap.
  const keys = o.tokenKey instanceof Uint8Array ? tokenKeySet({ version: 1, key: o.tokenKey }, []) : o.tokenKey;
  const person = tokensOf(keys, 'person', c.idNumber, o.partitions);
  const cardTokens = tokensOf(keys, 'card', card.card.cardNumber, o.partitions);
  const personToken = person.token;
  const cardToken = cardTokens.token;
  const claim: ClaimSubmission = {
    claimId: c.claimId,
    claimKey: claimKey(c.claimId),
    terminalId: term.id,
    institutionId: c.institutionId,
    // The claim's own level is informational (the project list's decides); PRIMARY when unset.
    institutionLevel: c.institutionLevel === PbLevel.INSTITUTION_LEVEL_UNSPECIFIED ? 'PRIMARY' : (PbLevel[c.institutionLevel] as ClaimSubmission['institutionLevel']),
    treatment: PbTreatment[c.treatment] as ClaimSubmission['treatment'],
    cardToken,
    personToken,
    ...(cardTokens.previous.length > 0 && { previousCardTokens: cardTokens.previous }),
    ...(person.previous.length > 0 && { previousPersonTokens: person.previous }),
    insuredRegion: enums.region(c.insuredRegion),
    treatmentRegion: terminal.region,
    deviceTime: Number(c.deviceTime),
    ingestTime: o.ingestTime,
    items: c.items.map((i) => ({ code: i.code, name: i.name, catalogueClass: PbClass[i.catalogueClass] as CatalogueClass, amountFen: Number(i.amountFen) })),
    reversesClaimId: c.reversesClaimId,
    personalAccountBalanceFen: Number(c.personalAccountBalanceFen),
    partition: person.partition,
    cardPartition: cardTokens.partition,
    form: card.card.credentials.kind === 'chip' ? 'CHIP' : 'QR',
    cardRegion: card.card.cardRegion,
  };
  return { ok: true, claim, credentials: card.card.credentials };
}

/** A MedicalClaim as the generated types hold it (numbers), as the wire reader gives it. */
export function wireClaimOf(c: MedicalClaim): WireClaim {
  return {
    ...c,
    deviceTime: BigInt(c.deviceTime),
    personalAccountBalanceFen: BigInt(c.personalAccountBalanceFen),
    items: c.items.map((i) => ({ ...i, amountFen: BigInt(i.amountFen) })),
  };
}

/** A Tap as the generated types hold it (numbers), as the wire reader gives it. */
export function wireTapOf(t: Tap): WireTap {
  return { ...t, seq: BigInt(t.seq), deviceTime: BigInt(t.deviceTime), amountFen: BigInt(t.amountFen) };
}
