/**
 * decideClaim (src/domain/validate/decide-claim.ts): a medical claim is checked like a tap —
 * credentials, hotlist, project list, single use — and the institution's level and region come
 * from the list. Pure: same inputs, same answer; a redelivered claim gets its first decision.
 */
import { describe, expect, it } from 'vitest';
import { computeChipMac } from '../../../src/domain/card/chip.js';
import { claimKey } from '../../../src/domain/claim-key.js';
import type { CardCredentials, ClaimSubmission } from '../../../src/domain/types.js';
import { Hotlist, claimRiskSubject, decideClaim as decideClaimAny, decideTap as decideAny, parseProjectList, type CardValidationState } from '../../../src/domain/validate/index.js';
import { makeRiskRuleSet, riskRuleFromData } from '../../../src/domain/validate/risk-rules.js';
import { emptyWindowState, observeDecision } from '../../../src/domain/validate/risk-windows.js';
import { CARD_BJ, KEYS, PROJECTS_YAML, T0, TRUST, chipTap, qrCreds, qrPayload, tokenOf, validatorData, decideNew as decideTap, decideClaimNew as decideClaim } from './fixtures.js';

const LIST = parseProjectList(
  PROJECTS_YAML.replace(
    '  - { venue: "pharmacy:BJ:*", scene: MEDICAL, forms: [CHIP, QR], operator: pharmacies, region: BJ, validFrom: "2024-01-01" }',
    [
      '  - { venue: "pharmacy:BJ:*", scene: MEDICAL, forms: [CHIP, QR], operator: pharmacies, region: BJ, validFrom: "2024-01-01", level: PRIMARY }',
      '  - { venue: "hospital:BJ:h1", scene: MEDICAL, forms: [CHIP, QR], operator: h1, region: BJ, validFrom: "2024-01-01", level: TERTIARY }',
      '  - { venue: "hospital:TJ:t1", scene: MEDICAL, forms: [CHIP, QR], operator: t1, region: TJ, validFrom: "2024-01-01", level: SECONDARY }',
      '  - { venue: "clinic:BJ:ungraded", scene: MEDICAL, forms: [CHIP], operator: c, region: BJ, validFrom: "2024-01-01" }',
    ].join('\n'),
  ),
  'yaml',
);
const data = validatorData({ projectList: LIST });

let n = 0;
function submission(over: Partial<ClaimSubmission> = {}): ClaimSubmission {
  const id = `claim-${++n}`;
  return {
    claimId: id,
    claimKey: claimKey(id),
    terminalId: 'BJ-CLINIC-1',
    institutionId: 'hospital:BJ:h1',
    institutionLevel: 'PRIMARY',
    treatment: 'OUTPATIENT',
    cardToken: tokenOf(CARD_BJ),
    personToken: 'person-1',
    insuredRegion: 'BJ',
    treatmentRegion: 'BJ',
    deviceTime: T0,
    ingestTime: T0 + 100,
    items: [{ code: 'A1', name: 'a', catalogueClass: 'CLASS_A', amountFen: 12_345 }],
    reversesClaimId: '',
    personalAccountBalanceFen: 0,
    partition: 3,
    cardPartition: 1,
    form: 'CHIP',
    cardRegion: 'BJ',
    ...over,
  };
}

/** Chip credentials as a genuine card computes them for a claim: amount = total, venue = institution. */
function chip(c: ClaimSubmission, counter: number, amountFen = c.items.reduce((s, i) => s + i.amountFen, 0)): CardCredentials {
  const mac = computeChipMac(TRUST.mac, KEYS.regions.BJ!.chipMasterKey!, { cardNumber: CARD_BJ, counter, terminalId: c.terminalId, deviceTime: c.deviceTime, amountFen, venueId: c.institutionId });
  return { kind: 'chip', cardNumber: CARD_BJ, counter, mac };
}

const verdictOf = (r: ReturnType<typeof decideClaim>) => [r.decision.verdict, r.decision.reason];

describe('decideClaim - the card', () => {
  it('accepts a genuine chip claim and takes level and region from the list', () => {
    const c = submission();
    const r = decideClaim(data, undefined, c, chip(c, 1), T0 + 200);
    expect(verdictOf(r)).toEqual(['ACCEPTED', 'OK']);
    expect([r.decision.institutionLevel, r.decision.treatmentRegion]).toEqual(['TERTIARY', 'BJ']);
    expect(r.decision.trace.map((s) => s.rule)).toEqual(['chip-mac', 'hotlist', 'project-list', 'chip-counter', 'institution-level']);
    expect(r.state.chip).toEqual([{ n: 1, t: T0 }]);
  });

  it('refuses a MAC over another amount (the bill was changed): CHIP_MAC_INVALID, flagged', () => {
    const c = submission();
    const r = decideClaim(data, undefined, c, chip(c, 1, 100), T0);
    expect(verdictOf(r)).toEqual(['REJECTED', 'CHIP_MAC_INVALID']);
    expect(r.flags.map((f) => [f.ruleId, f.severity, f.keyKind])).toEqual([['builtin:CHIP_MAC_INVALID', 'CRITICAL', 'card']]);
    expect(r.state.chip).toEqual([]); // nothing spent
  });

  it('refuses a counter already used by a tap: CHIP_COUNTER_REPLAY', () => {
    const t = chipTap({ counter: 4, t: T0 - 60_000 });
    const after = decideTap(data, undefined, t.tap, t.creds, T0).state;
    const c = submission();
    expect(verdictOf(decideClaim(data, after, c, chip(c, 4), T0))).toEqual(['REJECTED', 'CHIP_COUNTER_REPLAY']);
    expect(verdictOf(decideClaim(data, after, c, chip(c, 5), T0))).toEqual(['ACCEPTED', 'OK']);
  });

  it('refuses an expired QR code, and a code used once already', () => {
    const expired = submission({ form: 'QR' });
    expect(verdictOf(decideClaim(data, undefined, expired, qrCreds(qrPayload(CARD_BJ, T0 - 3_600_000)), T0))).toEqual(['REJECTED', 'QR_EXPIRED']);
    const c = submission({ form: 'QR' });
    const creds = qrCreds(qrPayload(CARD_BJ, T0 - 1000, { nonce: 'n-claim-1' }));
    const first = decideClaim(data, undefined, c, creds, T0);
    expect(verdictOf(first)).toEqual(['ACCEPTED', 'OK']);
    expect(verdictOf(decideClaim(data, first.state, submission({ form: 'QR' }), creds, T0))).toEqual(['REJECTED', 'QR_REPLAYED']);
  });

  it('refuses a hotlisted card', () => {
    const d = validatorData({ projectList: LIST, hotlist: new Hotlist([{ cardToken: tokenOf(CARD_BJ), reason: 'FROZEN', since: T0 - 1000 }], 'hot-1') });
    const c = submission();
    expect(verdictOf(decideClaim(d, undefined, c, chip(c, 1), T0))).toEqual(['REJECTED', 'HOTLIST_FROZEN']);
  });
});

describe('decideClaim - the institution', () => {
  it.each([
    ['not listed', { institutionId: 'hospital:BJ:nowhere' }, 'VENUE_NOT_LISTED'],
    ['listed for another scene (a metro station)', { institutionId: 'bj-subway:西直门' }, 'SCENE_NOT_LISTED'],
    ['listed in another region than the terminal', { institutionId: 'hospital:TJ:t1' }, 'INSTITUTION_NOT_IN_REGION'],
    ['listed without a level', { institutionId: 'clinic:BJ:ungraded' }, 'INSTITUTION_LEVEL_UNKNOWN'],
  ])('refuses an institution %s', (_what, over, reason) => {
    const c = submission(over);
    const r = decideClaim(data, undefined, c, chip(c, 1), T0);
    expect(verdictOf(r)).toEqual(['REJECTED', reason]);
    expect(r.state.chip).toEqual([]);
  });
});

describe('decideClaim - idempotence', () => {
  it('answers a redelivered claim "already", with the state unchanged', () => {
    const c = submission();
    const first = decideClaim(data, undefined, c, chip(c, 1), T0);
    const again = decideClaimAny(data, first.state, c, chip(c, 1), T0 + 5000);
    expect(again).toEqual({ already: true, state: first.state });
  });

  it('is pure: the same inputs give the same answer and the input state is untouched', () => {
    const c = submission();
    const state: CardValidationState | undefined = undefined;
    expect(decideClaim(data, state, c, chip(c, 1), T0)).toEqual(decideClaim(data, state, c, chip(c, 1), T0));
  });
});

describe('decideTap - a seq reused for another tap', () => {
  it('answers "already" (the first tap counts), leaves the state, and flags the terminal', () => {
    const t = chipTap({ counter: 1, terminalId: 'T-REUSE', seq: 9 });
    const first = decideTap(data, undefined, { ...t.tap, contentDigest: 'aaaaaaaaaaaaaaaa' }, t.creds, T0);
    const same = decideAny(data, first.state, { ...t.tap, contentDigest: 'aaaaaaaaaaaaaaaa' }, t.creds, T0 + 1);
    expect(same).toEqual({ already: true, state: first.state });
    const other = decideAny(data, first.state, { ...t.tap, venueId: 'bj-subway:国贸', contentDigest: 'bbbbbbbbbbbbbbbb' }, t.creds, T0 + 2);
    expect(other.already).toBe(true);
    expect(other.state).toBe(first.state);
    expect(other.already && other.seqReused).toMatchObject({ ruleId: 'builtin:SEQ_REUSED', keyKind: 'terminal', key: 'T-REUSE', severity: 'WARNING', eventId: 'T-REUSE:9' });
  });
});

describe('claimRiskSubject - a claim as the risk rules see it', () => {
  it('a MEDICAL event at the institution (venue and operator), of the bill total, by its terminal in the treatment region', () => {
    const c = submission({ items: [{ code: 'A1', name: 'a', catalogueClass: 'CLASS_A', amountFen: 10_000 }, { code: 'S1', name: 's', catalogueClass: 'SELF_PAY', amountFen: 2_500 }], treatmentRegion: 'TJ', institutionId: 'hospital:TJ:x' });
    expect(claimRiskSubject(c, 'ACCEPTED')).toEqual({
      eventId: `claim:${c.claimKey}`,
      scene: 'MEDICAL',
      venueId: 'hospital:TJ:x',
      operatorId: 'hospital:TJ:x',
      verdict: 'ACCEPTED',
      form: 'CHIP',
      direction: 'SINGLE',
      terminalRegion: 'TJ',
      cardRegion: 'BJ',
      offline: false,
      deviceTime: T0,
      amountFen: 12_500,
      cardToken: tokenOf(CARD_BJ),
      terminalId: 'BJ-CLINIC-1',
    });
  });

  it('two claims at one institution add up in an institution rule; another institution keeps its own series', () => {
    const rules = makeRiskRuleSet('t', [riskRuleFromData({ id: 'inst', version: 1, keyKind: 'institution', filter: { scene: 'MEDICAL', verdict: 'ACCEPTED' }, metric: 'amount_sum', window: '1h', threshold: 15_000, severity: 'WARNING' })]);
    let state = emptyWindowState();
    const see = (c: ClaimSubmission, verdict: 'ACCEPTED' | 'REJECTED' = 'ACCEPTED') => {
      const r = observeDecision(rules, state, claimRiskSubject(c, verdict), T0);
      state = r.state;
      return r.flags.map((f) => [f.ruleId, f.keyKind, f.key, f.eventId]);
    };
    const big = [{ code: 'A1', name: 'a', catalogueClass: 'CLASS_A' as const, amountFen: 10_000 }];
    expect(see(submission({ items: big }))).toEqual([]);
    expect(see(submission({ items: big }), 'REJECTED')).toEqual([]);
    expect(see(submission({ items: big, institutionId: 'hospital:BJ:h2' }))).toEqual([]);
    const third = submission({ items: big });
    expect(see(third)).toEqual([['inst', 'institution', 'hospital:BJ:h1', `claim:${third.claimKey}`]]);
  });
});
