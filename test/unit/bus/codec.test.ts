/**
 * The bus codec (src/bus/codec.ts): every message that travels on JetStream comes back as it
 * went in (domain value → protobuf → domain value), for hand-picked edge values and for random
 * ones; unknown enum values are refused naming the field.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  claimSplitFromPb,
  claimSplitToPb,
  decodeBusClaim,
  decodeBusTap,
  decodeCredentials,
  decodeDecision,
  decodeRiskFlag,
  decodeSettlement,
  encodeBusClaim,
  encodeBusTap,
  encodeCredentials,
  encodeDecision,
  encodeRiskFlag,
  encodeSettlement,
  enums,
} from '../../../src/bus/codec.js';
import { BusTap as PbBusTap, Settlement as PbSettlement } from '../../../src/gen/tapflow/v1/bus.js';
import {
  CardForms,
  Directions,
  Regions,
  RiderCategories,
  Scenes,
  type ClaimSplit,
  type Decision,
  type MedicalClaimEvent,
  type RiskFlag,
  type Settlement,
  type TapEvent,
} from '../../../src/domain/types.js';

// --- arbitraries of the domain types -------------------------------------------------------

const region = fc.constantFrom(...Regions);
const time = fc.integer({ min: 0, max: 4_102_444_800_000 }); // up to 2100, beyond 2^32
const money = fc.integer({ min: -1_000_000_000, max: 1_000_000_000 });
const text = fc.string({ maxLength: 24 });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const seq = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const trace = fc.array(fc.record({ rule: text, version: text, detail: fc.string({ maxLength: 80 }) }), { maxLength: 4 });

const tapEvent: fc.Arbitrary<TapEvent> = fc.record({
  eventId: text,
  terminalId: text,
  seq,
  terminalRegion: region,
  operatorId: text,
  deviceTime: time,
  ingestTime: time,
  scene: fc.constantFrom(...Scenes),
  venueId: fc.string({ maxLength: 40, unit: 'grapheme' }),
  direction: fc.constantFrom(...Directions),
  cardToken: fc.stringMatching(/^[0-9a-f]{32}$/),
  cardRegion: region,
  form: fc.constantFrom(...CardForms),
  amountFen: fc.nat({ max: 1_000_000 }),
  riderCategory: fc.constantFrom(...RiderCategories),
  offline: fc.boolean(),
  partition: fc.nat({ max: 1023 }),
});

const decision: fc.Arbitrary<Decision> = fc
  .record({
    tap: tapEvent,
    decisionTime: time,
    verdict: fc.constantFrom('ACCEPTED' as const, 'REJECTED' as const),
    reason: text,
    trace,
    riskRules: fc.array(text, { maxLength: 3 }),
  })
  .map(({ tap, ...d }) => ({ ...tap, ...d }));

const claimSplit: fc.Arbitrary<ClaimSplit> = fc.record({
  claimId: text,
  status: fc.constantFrom('SETTLED' as const, 'PENDING' as const, 'REJECTED' as const, 'REVERSED' as const),
  reason: text,
  medfee_sumamt: money,
  fulamt_ownpay_amt: money,
  preselfpay_amt: money,
  inscp_scp_amt: money,
  deductible_amt: money,
  hifp_pay: money,
  acct_pay: money,
  cash_payamt: money,
  over_cap_amt: money,
  policy_version: text,
});

const settlement: fc.Arbitrary<Settlement> = fc
  .record(
    {
      settlementId: text,
      eventId: text,
      kind: fc.constantFrom('FARE' as const, 'ENTRY' as const, 'MEDICAL' as const, 'ADJUSTMENT' as const, 'NO_CHARGE' as const, 'REVERSAL' as const),
      cardToken: text,
      cardRegion: region,
      terminalRegion: region,
      operatorId: text,
      network: text,
      scene: fc.constantFrom(...Scenes),
      venueId: text,
      entryVenueId: text,
      deviceTime: time,
      settleTime: time,
      businessDay: fc.constant('2026-03-10'),
      amountFen: money,
      baseFareFen: money,
      distanceM: u32,
      tariffVersion: text,
      trace,
      ledger: fc.array(fc.record({ entryId: text, account: text, debitFen: fc.nat({ max: 1e9 }), creditFen: fc.nat({ max: 1e9 }) }), { maxLength: 6 }),
      claim: claimSplit,
      adjustsEventId: text,
      partition: fc.nat({ max: 1023 }),
      ingestTime: time,
      personToken: fc.stringMatching(/^[0-9a-f]{32}$/),
    },
    { requiredKeys: ['settlementId', 'eventId', 'kind', 'cardToken', 'cardRegion', 'terminalRegion', 'operatorId', 'network', 'scene', 'venueId', 'entryVenueId', 'deviceTime', 'settleTime', 'businessDay', 'amountFen', 'baseFareFen', 'distanceM', 'tariffVersion', 'trace', 'ledger', 'adjustsEventId', 'partition', 'ingestTime'] },
  );

const busClaim: fc.Arbitrary<MedicalClaimEvent> = fc.record({
  claimId: text,
  terminalId: text,
  institutionId: text,
  institutionLevel: fc.constantFrom('PRIMARY' as const, 'SECONDARY' as const, 'TERTIARY' as const),
  treatment: fc.constantFrom('OUTPATIENT' as const, 'INPATIENT' as const),
  cardToken: text,
  personToken: text,
  insuredRegion: region,
  treatmentRegion: region,
  deviceTime: time,
  ingestTime: time,
  items: fc.array(fc.record({ code: text, name: fc.string({ maxLength: 20, unit: 'grapheme' }), catalogueClass: fc.constantFrom('CLASS_A' as const, 'CLASS_B' as const, 'SELF_PAY' as const), amountFen: fc.nat({ max: 1e9 }) }), { maxLength: 5 }),
  reversesClaimId: text,
  personalAccountBalanceFen: fc.nat({ max: 1e9 }),
  partition: fc.nat({ max: 1023 }),
});

const riskFlag: fc.Arbitrary<RiskFlag> = fc.record({
  flagId: text,
  eventId: text,
  ruleId: text,
  ruleVersion: text,
  severity: fc.constantFrom('INFO' as const, 'WARNING' as const, 'CRITICAL' as const),
  keyKind: fc.constantFrom('card' as const, 'terminal' as const, 'venue' as const, 'institution' as const),
  key: text,
  detail: text,
  deviceTime: time,
  flagTime: time,
  region,
});

// Decoded values carry `claim: undefined` and omit an empty personToken; compare what matters.
const normalise = (s: Settlement) => {
  const { claim, personToken, ...rest } = s;
  return { ...rest, ...(claim && { claim }), ...(personToken && { personToken }) };
};

// --- tests -----------------------------------------------------------------------------------

const sealed = new Uint8Array([1, 2, 3, 250, 0, 255]);

describe('codec - round trips', () => {
  it('BusTap with its sealed credentials', () => {
    fc.assert(
      fc.property(tapEvent, fc.uint8Array({ maxLength: 128 }), (t, s) => {
        const out = decodeBusTap(encodeBusTap(t, s));
        expect(out.tap).toEqual(t);
        expect(Buffer.from(out.sealedCard)).toEqual(Buffer.from(s));
      }),
      { numRuns: 300 },
    );
  });

  it('BusTap from a Uint8Array view into a larger buffer (only the view is sealed data)', () => {
    const big = new Uint8Array([9, 9, ...sealed, 9]);
    const view = big.subarray(2, 2 + sealed.length);
    const t = fc.sample(tapEvent, { numRuns: 1, seed: 1 })[0]!;
    expect(Buffer.from(decodeBusTap(encodeBusTap(t, view)).sealedCard)).toEqual(Buffer.from(sealed));
  });

  it('card credentials, chip and QR', () => {
    const chip = { kind: 'chip' as const, cardNumber: '110000000001', counter: 0xffff_ffff, mac: new Uint8Array(8).fill(0xab) };
    const back = decodeCredentials(encodeCredentials(chip));
    expect(back).toMatchObject({ kind: 'chip', cardNumber: chip.cardNumber, counter: chip.counter });
    expect(Buffer.from((back as typeof chip).mac)).toEqual(Buffer.from(chip.mac));
    const qr = { kind: 'qr' as const, payload: 'TFQR1.eyJjIjoiMTEwIn0.c2ln' };
    expect(decodeCredentials(encodeCredentials(qr))).toEqual(qr);
    expect(decodeCredentials(new Uint8Array())).toBeUndefined();
  });

  it('Decision', () => {
    fc.assert(fc.property(decision, (d) => void expect(decodeDecision(encodeDecision(d))).toEqual(d)), { numRuns: 300 });
  });

  it('Settlement, with and without a claim split and person token (negative deltas included)', () => {
    fc.assert(fc.property(settlement, (s) => void expect(normalise(decodeSettlement(encodeSettlement(s)))).toEqual(normalise(s))), { numRuns: 300 });
  });

  it('BusClaim', () => {
    fc.assert(fc.property(busClaim, (c) => void expect(decodeBusClaim(encodeBusClaim(c))).toEqual(c)), { numRuns: 300 });
  });

  it('RiskFlag', () => {
    fc.assert(fc.property(riskFlag, (f) => void expect(decodeRiskFlag(encodeRiskFlag(f))).toEqual(f)), { numRuns: 300 });
  });

  it('ClaimSplit ↔ ClaimResult (the gRPC answer of SettleClaim)', () => {
    fc.assert(fc.property(claimSplit, (c) => void expect(claimSplitFromPb(claimSplitToPb(c))).toEqual(c)), { numRuns: 300 });
  });

  it('enum converters are inverse for every domain value', () => {
    for (const r of Regions) expect(enums.region(enums.toRegion(r))).toBe(r);
    for (const s of Scenes) expect(enums.scene(enums.toScene(s))).toBe(s);
    for (const d of Directions) expect(enums.direction(enums.toDirection(d))).toBe(d);
    for (const c of RiderCategories) expect(enums.rider(enums.toRider(c))).toBe(c);
    for (const f of CardForms) expect(enums.form(enums.toForm(f))).toBe(f);
  });
});

describe('codec - refusals', () => {
  const t = fc.sample(tapEvent, { numRuns: 1, seed: 7 })[0]!;

  it('names the field of an unspecified or unknown enum value', () => {
    const noRegion = PbBusTap.encode({ ...PbBusTap.decode(encodeBusTap(t, sealed)), terminalRegion: 0 }).finish();
    expect(() => decodeBusTap(noRegion)).toThrow(/^region: unknown or unspecified value 0/);
    const badScene = PbBusTap.encode({ ...PbBusTap.decode(encodeBusTap(t, sealed)), scene: 42 as never }).finish();
    expect(() => decodeBusTap(badScene)).toThrow(/^scene: unknown or unspecified value 42/);
    const s = fc.sample(settlement, { numRuns: 1, seed: 3 })[0]!;
    const noKind = PbSettlement.encode({ ...PbSettlement.decode(encodeSettlement(s)), kind: 0 }).finish();
    expect(() => decodeSettlement(noKind)).toThrow(/^kind: /);
  });

  it('reads an unspecified rider category as ADULT (terminals that read none)', () => {
    const none = PbBusTap.encode({ ...PbBusTap.decode(encodeBusTap({ ...t, riderCategory: 'STUDENT' }, sealed)), riderCategory: 0 }).finish();
    expect(decodeBusTap(none).tap.riderCategory).toBe('ADULT');
  });

  it('refuses bytes that are not the message', () => {
    expect(() => decodeDecision(new Uint8Array([0xff, 0xff, 0xff]))).toThrow();
  });
});
