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
  decodeClaimDecision,
  decodeCredentials,
  decodeDecision,
  decodeRiskFlag,
  decodeSettlement,
  encodeBusClaim,
  encodeBusTap,
  encodeClaimDecision,
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
  type ClaimDecision,
  type ClaimSplit,
  type ClaimSubmission,
  type Decision,
  type RiskFlag,
  type Settlement,
  type TapEvent,
} from '../../../src/domain/types.js';
import { MAX_DEVICE_TIME, MIN_DEVICE_TIME } from '../../../src/domain/limits.js';
import { TapflowError } from '../../../src/domain/reasons.js';

// --- arbitraries of the domain types -------------------------------------------------------

const region = fc.constantFrom(...Regions);
const time = fc.integer({ min: 0, max: 4_102_444_800_000 }); // up to 2100, beyond 2^32
const deviceTime = fc.integer({ min: MIN_DEVICE_TIME, max: MAX_DEVICE_TIME });
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
  deviceTime,
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
  contentDigest: fc.stringMatching(/^[0-9a-f]{16}$/),
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
  // A decision does not carry the tap's content digest (only the validator's state keeps it).
  .map(({ tap: { contentDigest: _digest, ...tap }, ...d }) => ({ ...tap, ...d }));

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

const busClaim: fc.Arbitrary<ClaimSubmission> = fc.record({
  claimId: text,
  claimKey: fc.stringMatching(/^[0-9a-f]{40}$/),
  terminalId: text,
  institutionId: text,
  institutionLevel: fc.constantFrom('PRIMARY' as const, 'SECONDARY' as const, 'TERTIARY' as const),
  treatment: fc.constantFrom('OUTPATIENT' as const, 'INPATIENT' as const),
  cardToken: text,
  personToken: text,
  insuredRegion: region,
  treatmentRegion: region,
  deviceTime,
  ingestTime: time,
  items: fc.array(fc.record({ code: text, name: fc.string({ maxLength: 20, unit: 'grapheme' }), catalogueClass: fc.constantFrom('CLASS_A' as const, 'CLASS_B' as const, 'SELF_PAY' as const), amountFen: fc.nat({ max: 1e8 }) }), { maxLength: 5 }),
  reversesClaimId: text,
  personalAccountBalanceFen: fc.nat({ max: 1e9 }),
  partition: fc.nat({ max: 1023 }),
  cardPartition: fc.nat({ max: 1023 }),
  form: fc.constantFrom(...CardForms),
  cardRegion: region,
});

const claimDecision: fc.Arbitrary<ClaimDecision> = fc
  .tuple(busClaim, time, fc.constantFrom('ACCEPTED' as const, 'REJECTED' as const), text, trace, fc.array(text, { maxLength: 3 }))
  .map(([c, decisionTime, verdict, reason, tr, riskRules]) => ({ ...c, decisionTime, verdict, reason, trace: tr, riskRules }));

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

  it('BusClaim, with its sealed credentials', () => {
    fc.assert(
      fc.property(busClaim, (c) => {
        const out = decodeBusClaim(encodeBusClaim(c, sealed));
        expect(out.claim).toEqual(c);
        expect(Buffer.from(out.sealedCard)).toEqual(Buffer.from(sealed));
      }),
      { numRuns: 300 },
    );
  });

  it('ClaimDecision', () => {
    fc.assert(fc.property(claimDecision, (d) => void expect(decodeClaimDecision(encodeClaimDecision(d))).toEqual(d)), { numRuns: 300 });
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

  it('refuses values out of range as data errors (TF_EVENT_INVALID) naming the field', () => {
    const base = PbBusTap.decode(encodeBusTap(t, sealed));
    const cases: [string, Partial<typeof base>][] = [
      ['seq', { seq: 0 }],
      ['device_time', { deviceTime: MIN_DEVICE_TIME - 1 }],
      ['device_time', { deviceTime: MAX_DEVICE_TIME + 1 }],
      ['amount_fen', { amountFen: -5 }],
      ['amount_fen', { amountFen: 1_000_001 }],
    ];
    for (const [field, over] of cases) {
      const bytes = PbBusTap.encode({ ...base, ...over }).finish();
      expect(() => decodeBusTap(bytes), field).toThrow(TapflowError);
      try {
        decodeBusTap(bytes);
      } catch (err) {
        expect((err as TapflowError).code).toBe('TF_EVENT_INVALID');
        expect((err as TapflowError).message.startsWith(`${field}: `)).toBe(true);
      }
    }
    const c = fc.sample(busClaim, { numRuns: 1, seed: 5 })[0]!;
    const huge = { ...c, items: Array.from({ length: 11 }, (_, i) => ({ code: `I${i}`, name: '', catalogueClass: 'CLASS_A' as const, amountFen: 100_000_000 })) };
    expect(() => decodeBusClaim(encodeBusClaim(huge, sealed))).toThrow(/^items: total 1100000000 fen is above 1000000000/);
    const item = { ...c, items: [{ code: 'X', name: '', catalogueClass: 'CLASS_A' as const, amountFen: 100_000_001 }] };
    expect(() => decodeBusClaim(encodeBusClaim(item, sealed))).toThrow(/^items\[0\]\.amount_fen: /);
  });
});
