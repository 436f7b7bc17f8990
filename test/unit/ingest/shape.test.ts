/**
 * Shape checks of what terminals send (src/ingest/shape.ts): every field error is named, 64-bit
 * values are range-checked without loss, and a good tap comes back with its domain values.
 */
import { describe, expect, it } from 'vitest';
import { checkCard, checkClaim, checkTap, deviceTimeProblem, ID_NUMBER_PATTERN, MAX_AMOUNT_FEN, MIN_DEVICE_TIME, wireClaimOf } from '../../../src/ingest/shape.js';
import type { WireTap } from '../../../src/ingest/wire.js';
import { CatalogueClass, Direction, InstitutionLevel, Region, RiderCategory, Scene, Treatment, type MedicalClaim } from '../../../src/gen/tapflow/v1/ingest.js';
import { encodeQrBody, formatQrPayload } from '../../../src/domain/card/qr.js';

const TERMINAL = 'BJ-RAIL-0001';

function tap(over: Partial<WireTap> = {}): WireTap {
  return {
    terminalId: TERMINAL,
    seq: 7n,
    deviceTime: BigInt(Date.UTC(2026, 2, 10, 2, 0)),
    scene: Scene.RAIL,
    venueId: 'bj-subway:西直门',
    direction: Direction.ENTRY,
    card: { $case: 'chip', value: { cardNumber: '110000000001', counter: 3, mac: Buffer.alloc(8, 1) } },
    amountFen: 0n,
    riderCategory: RiderCategory.STUDENT,
    ...over,
  };
}

function qr(body: Record<string, unknown>, signature = Buffer.alloc(64, 2)): string {
  return `TFQR1.${Buffer.from(JSON.stringify(body)).toString('base64url')}.${signature.toString('base64url')}`;
}

/** The field a bad tap is refused for (or 'ok'). */
function fieldOf(t: WireTap, terminal = TERMINAL): string {
  const r = checkTap(t, terminal);
  return r.ok ? 'ok' : r.error.field;
}

describe('shape - checkTap', () => {
  it('accepts a good chip tap and converts its enums', () => {
    const r = checkTap(tap(), TERMINAL);
    expect(r).toEqual({
      ok: true,
      tap: {
        tap: { ...tap(), seq: 7, deviceTime: Date.UTC(2026, 2, 10, 2, 0), amountFen: 0 },
        scene: 'RAIL',
        direction: 'ENTRY',
        riderCategory: 'STUDENT',
        credentials: { kind: 'chip', cardNumber: '110000000001', counter: 3, mac: Buffer.alloc(8, 1) },
        cardNumber: '110000000001',
        cardRegion: 'BJ',
      },
    });
  });

  it('reads an unspecified rider category as ADULT', () => {
    const r = checkTap(tap({ riderCategory: RiderCategory.RIDER_CATEGORY_UNSPECIFIED }), TERMINAL);
    expect(r.ok && r.tap.riderCategory).toBe('ADULT');
  });

  it('takes an empty terminal_id as the authenticated terminal', () => {
    const r = checkTap(tap({ terminalId: '' }), TERMINAL);
    expect(r.ok && r.tap.tap.terminalId).toBe(TERMINAL);
  });

  it.each([
    ['terminal_id', tap({ terminalId: 'BJ RAIL 1' })],
    ['terminal_id', tap({ terminalId: 'BJ-RAIL-0002' })], // not the authenticated terminal
    ['seq', tap({ seq: 0n })],
    ['seq', tap({ seq: 2n ** 53n })],
    ['seq', tap({ seq: 2n ** 64n - 1n })],
    ['device_time', tap({ deviceTime: 0n })],
    ['device_time', tap({ deviceTime: BigInt(MIN_DEVICE_TIME - 1) })],
    ['device_time', tap({ deviceTime: BigInt(Date.UTC(2100, 0, 1) + 1) })],
    ['device_time', tap({ deviceTime: 2n ** 63n - 1n })],
    ['device_time', tap({ deviceTime: -(2n ** 63n) })],
    ['scene', tap({ scene: Scene.SCENE_UNSPECIFIED })],
    ['scene', tap({ scene: 99 as Scene })],
    ['venue_id', tap({ venueId: '' })],
    ['venue_id', tap({ venueId: 'x'.repeat(129) })],
    ['direction', tap({ direction: Direction.DIRECTION_UNSPECIFIED })],
    ['direction', tap({ direction: 7 as Direction })],
    ['rider_category', tap({ riderCategory: 42 as RiderCategory })],
    // −1 is what a 10-byte varint reads as, and ts-proto's UNRECOGNIZED: not a value to accept.
    ['scene', tap({ scene: Scene.UNRECOGNIZED })],
    ['direction', tap({ direction: Direction.UNRECOGNIZED })],
    ['rider_category', tap({ riderCategory: RiderCategory.UNRECOGNIZED })],
    ['amount_fen', tap({ amountFen: -1n })],
    ['amount_fen', tap({ amountFen: BigInt(MAX_AMOUNT_FEN + 1) })],
    ['amount_fen', tap({ amountFen: 2n ** 62n })],
    ['card', tap({ card: undefined })],
    ['card.chip.card_number', tap({ card: { $case: 'chip', value: { cardNumber: '990000000001', counter: 1, mac: Buffer.alloc(8) } } })],
    ['card.chip.card_number', tap({ card: { $case: 'chip', value: { cardNumber: '11abc', counter: 1, mac: Buffer.alloc(8) } } })],
    ['card.chip.mac', tap({ card: { $case: 'chip', value: { cardNumber: '110000000001', counter: 1, mac: Buffer.alloc(4) } } })],
    ['card.qr.payload', tap({ card: { $case: 'qr', value: { payload: 'not a qr code' } } })],
  ])('names %s', (field, t) => {
    expect(fieldOf(t)).toBe(field);
  });

  it('accepts the edges of the ranges', () => {
    expect(fieldOf(tap({ deviceTime: BigInt(MIN_DEVICE_TIME) }))).toBe('ok');
    expect(fieldOf(tap({ amountFen: BigInt(MAX_AMOUNT_FEN) }))).toBe('ok');
    expect(fieldOf(tap({ seq: 2n ** 53n - 1n }))).toBe('ok');
    expect(fieldOf(tap({ venueId: 'x'.repeat(128) }))).toBe('ok');
    expect(fieldOf(tap({ terminalId: 'B'.repeat(64) }), 'B'.repeat(64))).toBe('ok');
  });

  it('says whether an enum is missing or holds an unknown value', () => {
    const problem = (t: WireTap) => {
      const r = checkTap(t, TERMINAL);
      return r.ok ? 'ok' : `${r.error.field}: ${r.error.message}`;
    };
    expect(problem(tap({ scene: Scene.SCENE_UNSPECIFIED }))).toBe('scene: required (RAIL, BUS, MEDICAL, CULTURE, SERVICE, BENEFIT)');
    expect(problem(tap({ scene: 99 as Scene }))).toBe('scene: unknown value 99 (RAIL, BUS, MEDICAL, CULTURE, SERVICE, BENEFIT)');
    expect(problem(tap({ direction: -1 as Direction }))).toBe('direction: unknown value -1 (ENTRY, EXIT, SINGLE)');
  });

  it('gives a message with each error', () => {
    const r = checkTap(tap({ terminalId: 'BJ-RAIL-0002' }), TERMINAL);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toContain(TERMINAL);
  });
});

describe('shape - checkCard', () => {
  const body = { c: '120000000042', r: 'TJ', iat: 1_773_000_000_000, exp: 1_773_000_060_000, n: 'bm9uY2U', l: 2 };

  it('takes the card number and issuer of a QR code from its body (not verified here)', () => {
    const payload = formatQrPayload(encodeQrBody({ cardNumber: '120000000042', issuer: 'TJ', issuedAt: body.iat, expiresAt: body.exp, nonce: body.n, level: 2 }), Buffer.alloc(64));
    expect(checkCard({ $case: 'qr', value: { payload } }, 'card')).toEqual({
      ok: true,
      card: { credentials: { kind: 'qr', payload }, cardNumber: '120000000042', cardRegion: 'TJ' },
    });
  });

  it.each([
    ['wrong prefix', 'TFQR2.e30.AA', 'expected'],
    ['body not JSON', `TFQR1.${Buffer.from('{').toString('base64url')}.AA`, 'not JSON'],
    ['no card number', qr({ ...body, c: '' }), 'body.c'],
    ['unknown issuer', qr({ ...body, r: 'SH' }), 'body.r'],
    ['level 3', qr({ ...body, l: 3 }), 'body.l'],
    ['no signature', qr(body, Buffer.alloc(0)), 'signature'],
    // Node's base64 decoder would skip these characters: the payload would parse.
    ['three-byte characters in its signature', `${qr(body)}${'国'.repeat(100)}`, 'base64url'],
    ['padding', `${qr(body)}==`, 'base64url'],
    ['malformed card number', qr({ ...body, c: '99x' }), 'malformed card number'],
  ])('refuses a QR code with %s, naming card.qr.payload', (_what, payload, message) => {
    const r = checkCard({ $case: 'qr', value: { payload } }, 'card');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.field).toBe('card.qr.payload');
      expect(r.error.message).toContain(message);
    }
  });

  it('prefixes the field name it is given', () => {
    const r = checkCard(undefined, 'claim.card');
    expect(r.ok ? '' : r.error.field).toBe('claim.card');
  });

  it('derives the card region from the province code', () => {
    for (const [n, region] of [['110000000001', 'BJ'], ['120000000001', 'TJ'], ['13ABCDEFG12', 'HE']] as const) {
      const r = checkCard({ $case: 'chip', value: { cardNumber: n, counter: 0, mac: Buffer.alloc(8) } }, 'card');
      expect(r.ok && r.card.cardRegion).toBe(region);
    }
  });
});

describe('shape - device time around ingest time', () => {
  const now = Date.UTC(2026, 10, 30, 12, 0);
  const H = 3_600_000;
  const DAY = 24 * H;
  const bounds = { liveMs: DAY, uploadAgeMs: 30 * DAY };

  it('accepts a live tap within the bound either way, a stored one from 30 days before to a day after', () => {
    for (const t of [now, now - DAY, now + DAY, now - 5 * 60_000]) expect(deviceTimeProblem(t, now, false, bounds), `live ${t - now}`).toBeUndefined();
    for (const t of [now, now - 30 * DAY, now + DAY, now - 2 * DAY]) expect(deviceTimeProblem(t, now, true, bounds), `stored ${t - now}`).toBeUndefined();
  });

  it.each([
    ['a live tap years in the past', now - 7 * 365 * DAY, false, /^2019-.* is 7\.0 years before ingest time; a live tap may be at most 24 h behind it \(TAPFLOW_LIVE_TIME_BOUND_MS\): send taps held longer with UploadBatch/],
    ['a live tap a day and a minute old', now - DAY - 60_000, false, /is 24 h before ingest time; a live tap may be at most 24 h behind it/],
    ['a live tap years in the future', now + 3 * 365 * DAY, false, /^2029-.* is 3\.0 years after ingest time; a live tap may be at most 24 h ahead of it .*check the terminal's clock/],
    ['a stored tap of two months ago', now - 60 * DAY, true, /is 60 days before ingest time; a stored tap may be at most 30 days old \(TAPFLOW_UPLOAD_MAX_AGE_MS\)$/],
    ['a stored tap two days ahead', now + 2 * DAY, true, /is 2 days after ingest time; a stored tap may be at most 24 h ahead of it/],
  ])('refuses %s, saying by how much and which bound', (_what, t, offline, problem) => {
    expect(deviceTimeProblem(t, now, offline, bounds)).toMatch(problem);
  });
});

describe('shape - checkClaim enums', () => {
  const claim = (over: Partial<MedicalClaim>): MedicalClaim => ({
    claimId: 'C-1',
    terminalId: '',
    institutionId: 'hospital:TJ:tmu-general-hospital',
    institutionLevel: InstitutionLevel.INSTITUTION_LEVEL_UNSPECIFIED,
    treatment: Treatment.OUTPATIENT,
    card: { $case: 'chip', value: { cardNumber: '110000000001', counter: 1, mac: Buffer.alloc(8) } },
    idNumber: '11010519800101001X',
    insuredRegion: Region.BJ,
    deviceTime: Date.UTC(2026, 2, 10),
    items: [{ code: 'A1', name: 'a', catalogueClass: CatalogueClass.CLASS_A, amountFen: 100 }],
    reversesClaimId: '',
    personalAccountBalanceFen: 0,
    ...over,
  });
  const problem = (c: MedicalClaim) => {
    const r = checkClaim(wireClaimOf(c), { id: 'TJ-CLINIC-1', region: 'TJ' }, { tokenKey: new Uint8Array(32), partitions: 4, ingestTime: 0 });
    return r.ok ? 'ok' : `${r.error.field}: ${r.error.message}`;
  };

  it('accepts a claim with every enum known (an unspecified level is allowed)', () => {
    expect(problem(claim({}))).toBe('ok');
  });

  it.each([
    ['insured_region', { insuredRegion: Region.UNRECOGNIZED }, 'unknown value -1'],
    ['insured_region', { insuredRegion: Region.REGION_UNSPECIFIED }, 'required'],
    ['treatment', { treatment: Treatment.UNRECOGNIZED }, 'unknown value -1'],
    ['treatment', { treatment: 9 as Treatment }, 'unknown value 9'],
    ['institution_level', { institutionLevel: InstitutionLevel.UNRECOGNIZED }, 'unknown value -1'],
    ['items[0].catalogue_class', { items: [{ code: 'A1', name: 'a', catalogueClass: CatalogueClass.UNRECOGNIZED, amountFen: 1 }] }, 'unknown value -1'],
  ])('refuses %s %j', (field, over, message) => {
    expect(problem(claim(over as Partial<MedicalClaim>))).toMatch(new RegExp(`^${field.replace(/[[\]]/g, '\\$&')}: ${message}`));
  });
});

describe('shape - ID numbers', () => {
  it('accepts 17 digits and a check character', () => {
    expect(ID_NUMBER_PATTERN.test('11010519491231002X')).toBe(true);
    expect(ID_NUMBER_PATTERN.test('110105194912310021')).toBe(true);
    for (const bad of ['11010519491231002x', '1101051949123100', '1101051949123100211', 'A10105194912310021']) expect(ID_NUMBER_PATTERN.test(bad)).toBe(false);
  });
});
