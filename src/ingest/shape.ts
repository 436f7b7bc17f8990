/**
 * Shape checks of what terminals send: pure functions that name the offending field. A tap that
 * fails is answered INVALID (reason "<field>: <problem>") and nothing is published.
 */
import { CARD_NUMBER_PATTERN, partitionOf, regionOfCardNumber, tokenize } from '../domain/card/token.js';
import { parseQrPayload } from '../domain/card/qr.js';
import type { CardCredentials, CatalogueClass, Direction, MedicalClaimEvent, Region, RiderCategory, Scene } from '../domain/types.js';
import {
  CatalogueClass as PbClass,
  Direction as PbDirection,
  InstitutionLevel as PbLevel,
  RiderCategory as PbRider,
  Scene as PbScene,
  Treatment as PbTreatment,
  type MedicalClaim,
  type Tap,
} from '../gen/tapflow/v1/ingest.js';
import { enums } from '../bus/codec.js';
import { TERMINAL_ID_PATTERN } from './terminals.js';

export interface ShapeError {
  field: string;
  message: string;
}

export interface CheckedTap {
  scene: Scene;
  direction: Direction;
  riderCategory: RiderCategory;
  credentials: CardCredentials;
  cardNumber: string;
  cardRegion: Region;
}

/** Earliest device time accepted (2015-01-01): older means a terminal clock never set. */
export const MIN_DEVICE_TIME = Date.UTC(2015, 0, 1);
/** A purse debit larger than this (10,000 yuan) is not a tap. */
export const MAX_AMOUNT_FEN = 1_000_000;

function fail(field: string, message: string): { ok: false; error: ShapeError } {
  return { ok: false, error: { field, message } };
}

export function checkTap(t: Tap, authenticatedTerminal: string): { ok: true; tap: CheckedTap } | { ok: false; error: ShapeError } {
  if (!t.terminalId) return fail('terminal_id', 'required');
  if (!TERMINAL_ID_PATTERN.test(t.terminalId)) return fail('terminal_id', 'must be 1-64 of [A-Za-z0-9._-]');
  if (t.terminalId !== authenticatedTerminal) return fail('terminal_id', `does not match the authenticated terminal ${authenticatedTerminal}`);
  if (!Number.isSafeInteger(t.seq) || t.seq <= 0) return fail('seq', 'must be a positive integer');
  if (!Number.isSafeInteger(t.deviceTime) || t.deviceTime < MIN_DEVICE_TIME) return fail('device_time', 'must be epoch milliseconds after 2015-01-01');
  if (!(t.scene in PbScene) || t.scene === PbScene.SCENE_UNSPECIFIED) return fail('scene', 'required (RAIL, BUS, MEDICAL, CULTURE, SERVICE, BENEFIT)');
  if (!t.venueId) return fail('venue_id', 'required');
  if (t.venueId.length > 128) return fail('venue_id', 'at most 128 characters');
  if (!(t.direction in PbDirection) || t.direction === PbDirection.DIRECTION_UNSPECIFIED) return fail('direction', 'required (ENTRY, EXIT, SINGLE)');
  if (!(t.riderCategory in PbRider)) return fail('rider_category', 'unknown value');
  if (!Number.isSafeInteger(t.amountFen) || t.amountFen < 0 || t.amountFen > MAX_AMOUNT_FEN) return fail('amount_fen', `must be an integer from 0 to ${MAX_AMOUNT_FEN}`);
  const card = checkCard(t.card, 'card');
  if (!card.ok) return card;
  return {
    ok: true,
    tap: {
      scene: enums.scene(t.scene),
      direction: enums.direction(t.direction),
      riderCategory: enums.rider(t.riderCategory),
      ...card.card,
    },
  };
}

export function checkCard(
  card: Tap['card'] | MedicalClaim['card'],
  field: string,
): { ok: true; card: { credentials: CardCredentials; cardNumber: string; cardRegion: Region } } | { ok: false; error: ShapeError } {
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
  const parsed = parseQrPayload(card.value.payload);
  if (!parsed.ok) return fail(`${field}.qr.payload`, parsed.error);
  const number = parsed.qr.body.cardNumber;
  if (!CARD_NUMBER_PATTERN.test(number)) return fail(`${field}.qr.payload`, 'names a malformed card number');
  return { ok: true, card: { credentials: { kind: 'qr', payload: card.value.payload }, cardNumber: number, cardRegion: parsed.qr.body.issuer } };
}

/** Mainland resident ID numbers: 17 digits and a check character. */
export const ID_NUMBER_PATTERN = /^[0-9]{17}[0-9X]$/;

/**
 * The tokenised claim ingest publishes for a checked MedicalClaim (also what the bench expects
 * the settlers to see). `cardNumber` is the card's number as read by checkCard.
 */
export function claimEvent(
  c: MedicalClaim,
  o: { cardNumber: string; treatmentRegion: Region; tokenKey: Uint8Array; partitions: number; ingestTime: number },
): MedicalClaimEvent {
  const personToken = tokenize(o.tokenKey, 'person', c.idNumber);
  return {
    claimId: c.claimId,
    terminalId: c.terminalId,
    institutionId: c.institutionId,
    institutionLevel: PbLevel[c.institutionLevel] as MedicalClaimEvent['institutionLevel'],
    treatment: PbTreatment[c.treatment] as MedicalClaimEvent['treatment'],
    cardToken: tokenize(o.tokenKey, 'card', o.cardNumber),
    personToken,
    insuredRegion: enums.region(c.insuredRegion),
    treatmentRegion: o.treatmentRegion,
    deviceTime: c.deviceTime,
    ingestTime: o.ingestTime,
    items: c.items.map((i) => ({ code: i.code, name: i.name, catalogueClass: PbClass[i.catalogueClass] as CatalogueClass, amountFen: i.amountFen })),
    reversesClaimId: c.reversesClaimId,
    personalAccountBalanceFen: c.personalAccountBalanceFen,
    partition: partitionOf(personToken, o.partitions),
  };
}
