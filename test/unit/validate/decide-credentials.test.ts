import { describe, expect, it } from 'vitest';
import type { CardCredentials } from '../../../src/domain/types.js';
import { emptyCardState, Hotlist, type CardValidationState } from '../../../src/domain/validate/index.js';
import {
  CARD_BJ,
  CARD_HE,
  CARD_TJ,
  chipCreds,
  chipTap,
  qrCreds,
  qrPayload,
  qrTap,
  T0,
  tap,
  tokenOf,
  TRUST,
  validatorData,
  decideNew as decideTap,
} from './fixtures.js';

const data = validatorData();

describe('decide - credentials', () => {
  it('unreadable sealed credentials are rejected', () => {
    const r = decideTap(data, undefined, tap(), undefined, T0);
    expect(r.decision).toMatchObject({ verdict: 'REJECTED', reason: 'CREDENTIALS_UNREADABLE', decisionTime: T0 });
    expect(r.flags).toEqual([]);
  });

  it('credentials of the other form are rejected', () => {
    const t = tap({ form: 'QR' });
    const r = decideTap(data, undefined, t, chipCreds(tap(), CARD_BJ, 1), T0);
    expect(r.decision.reason).toBe('CREDENTIALS_UNREADABLE');
  });
});

describe('decide - chip', () => {
  it('a genuine chip tap at a listed venue is accepted, with a trace naming every data version', () => {
    const { tap: t, creds } = chipTap({ counter: 1 });
    const r = decideTap(data, undefined, t, creds, T0 + 100);
    expect(r.decision).toMatchObject({ verdict: 'ACCEPTED', reason: 'OK', decisionTime: T0 + 100, eventId: t.eventId, cardToken: t.cardToken });
    expect(r.decision.trace.map((s) => [s.rule, s.version])).toEqual([
      ['chip-mac', 'keys-test-1'],
      ['hotlist', 'hotlist-empty'],
      ['project-list', 'projects-test-1'],
      ['chip-counter', 'defaults-1'],
      ['behaviour', 'defaults-1/venues-test-1'],
    ]);
    expect(r.state.chip).toEqual([{ n: 1, t: T0 }]);
  });

  it('cards of all three regions verify with their own issuer key (mutual recognition)', () => {
    for (const card of [CARD_BJ, CARD_TJ, CARD_HE]) {
      const { tap: t, creds } = chipTap({ card, counter: 7 });
      expect(decideTap(data, undefined, t, creds, T0).decision.reason).toBe('OK');
    }
  });

  it('an issuer without a configured master key is unknown', () => {
    const trust = { ...TRUST, chipMasterKeys: { BJ: TRUST.chipMasterKeys.BJ! } };
    const { tap: t, creds } = chipTap({ card: CARD_TJ, counter: 1 });
    expect(decideTap(validatorData({ trust }), undefined, t, creds, T0).decision.reason).toBe('CHIP_UNKNOWN_ISSUER');
    const foreign = { kind: 'chip', cardNumber: '310000000001', counter: 1, mac: new Uint8Array(8) } as const;
    expect(decideTap(data, undefined, tap(), foreign, T0).decision.reason).toBe('CHIP_UNKNOWN_ISSUER');
  });

  it('a tampered MAC, or a MAC for other tap fields, is rejected with a critical flag', () => {
    const { tap: t, creds } = chipTap({ counter: 1 });
    const mac = Buffer.from((creds as Extract<CardCredentials, { kind: 'chip' }>).mac);
    mac[0]! ^= 0x80;
    const r = decideTap(data, undefined, t, { ...(creds as any), mac }, T0);
    expect(r.decision.reason).toBe('CHIP_MAC_INVALID');
    expect(r.flags).toMatchObject([{ ruleId: 'builtin:CHIP_MAC_INVALID', ruleVersion: '1', severity: 'CRITICAL', keyKind: 'card', key: t.cardToken, flagId: `${t.eventId}:builtin:CHIP_MAC_INVALID` }]);
    expect(r.decision.riskRules).toEqual(['builtin:CHIP_MAC_INVALID']);
    // Amount changed after the card computed its MAC.
    expect(decideTap(data, undefined, { ...t, amountFen: 999 }, creds, T0).decision.reason).toBe('CHIP_MAC_INVALID');
    // Counter changed.
    expect(decideTap(data, undefined, t, { ...(creds as any), counter: 2 }, T0).decision.reason).toBe('CHIP_MAC_INVALID');
  });

  it('a repeated counter is a replay, a lower counter at a later time goes backwards; both flag', () => {
    let s: CardValidationState | undefined;
    const a = chipTap({ counter: 10, t: T0 });
    s = decideTap(data, s, a.tap, a.creds, T0).state;
    const replay = chipTap({ counter: 10, t: T0 + 3_600_000, venue: 'bj-subway:国贸' });
    const r1 = decideTap(data, s, replay.tap, replay.creds, T0);
    expect(r1.decision.reason).toBe('CHIP_COUNTER_REPLAY');
    expect(r1.flags.map((f) => f.ruleId)).toEqual(['builtin:CHIP_COUNTER_REPLAY']);
    const back = chipTap({ counter: 9, t: T0 + 3_600_000, venue: 'bj-subway:国贸' });
    const r2 = decideTap(data, r1.state, back.tap, back.creds, T0);
    expect(r2.decision.reason).toBe('CHIP_COUNTER_BACKWARDS');
    expect(r2.flags[0]).toMatchObject({ ruleId: 'builtin:CHIP_COUNTER_BACKWARDS', severity: 'CRITICAL' });
    // The clone's counter is not remembered: the genuine card's next counter is still fine.
    const next = chipTap({ counter: 11, t: T0 + 3_700_000, venue: 'bj-subway:国贸' });
    expect(decideTap(data, r2.state, next.tap, next.creds, T0).decision.reason).toBe('OK');
  });

  it('a tap refused by a behaviour rule still spends its counter (the card produced it)', () => {
    const a = chipTap({ counter: 1, t: T0 });
    const s1 = decideTap(data, undefined, a.tap, a.creds, T0).state;
    const pb = chipTap({ counter: 2, t: T0 + 60_000 });
    const r = decideTap(data, s1, pb.tap, pb.creds, T0);
    expect(r.decision.reason).toBe('PASSBACK');
    expect(r.state.chip.map((c) => c.n)).toEqual([1, 2]);
    const resent = chipTap({ counter: 2, t: T0 + 60_000, seq: 999_001 });
    expect(decideTap(data, r.state, resent.tap, resent.creds, T0).decision.reason).toBe('CHIP_COUNTER_REPLAY');
  });

  it('a higher counter at an earlier device time goes backwards too', () => {
    const a = chipTap({ counter: 10, t: T0 });
    const s = decideTap(data, undefined, a.tap, a.creds, T0).state;
    const b = chipTap({ counter: 12, t: T0 - 3_600_000, venue: 'bj-subway:国贸', offline: true });
    expect(decideTap(data, s, b.tap, b.creds, T0).decision.reason).toBe('CHIP_COUNTER_BACKWARDS');
  });

  it('an offline tap with a lower counter at an earlier device time is consistent', () => {
    const a = chipTap({ counter: 10, t: T0 });
    const s = decideTap(data, undefined, a.tap, a.creds, T0).state;
    const b = chipTap({ counter: 8, t: T0 - 3_600_000, venue: 'bj-subway:国贸', offline: true });
    const r = decideTap(data, s, b.tap, b.creds, T0);
    expect(r.decision.reason).toBe('OK');
    expect(r.state.chip.map((c) => c.n)).toEqual([8, 10]);
    // ...and a counter between two known ones must lie between them in device time.
    const c = chipTap({ counter: 9, t: T0 - 1_800_000, venue: 'bj-subway:国贸', offline: true });
    expect(decideTap(data, r.state, c.tap, c.creds, T0).decision.reason).toBe('OK');
    const d = chipTap({ counter: 9, t: T0 - 7_200_000, venue: 'bj-subway:国贸', offline: true });
    expect(decideTap(data, r.state, d.tap, d.creds, T0).decision.reason).toBe('CHIP_COUNTER_BACKWARDS');
  });
});

describe('decide - QR', () => {
  const skew = data.settings.qrSkewMs;

  it('a level-2 code is accepted and its nonce remembered until expiry + skew', () => {
    const { tap: t, creds } = qrTap({ nonce: 'n-accept', age: 5_000 });
    const r = decideTap(data, undefined, t, creds, T0);
    expect(r.decision.reason).toBe('OK');
    expect(r.decision.trace.map((s) => s.rule)).toEqual(['qr-signature', 'qr-validity', 'hotlist', 'project-list', 'qr-nonce', 'behaviour']);
    expect(r.state.nonces).toEqual([{ n: 'n-accept', until: t.deviceTime - 5_000 + 60_000 + skew }]);
  });

  it('expiry boundaries: exactly 60 s old is valid; exp + skew is valid; one ms later is expired', () => {
    const issued = T0 - 60_000;
    const at = (deviceTime: number, nonce: string) => {
      const t = tap({ form: 'QR', t: deviceTime });
      return decideTap(data, undefined, t, qrCreds(qrPayload(CARD_BJ, issued, { nonce })), T0).decision.reason;
    };
    expect(at(issued + 60_000, 'e1')).toBe('OK');
    expect(at(issued + 60_000 + skew, 'e2')).toBe('OK');
    expect(at(issued + 60_000 + skew + 1, 'e3')).toBe('QR_EXPIRED');
  });

  it('issue-time boundaries: issued skew ms after the tap is valid; one ms more is not yet valid', () => {
    const at = (issuedAt: number, nonce: string) => {
      const t = tap({ form: 'QR', t: T0 });
      return decideTap(data, undefined, t, qrCreds(qrPayload(CARD_BJ, issuedAt, { nonce })), T0);
    };
    expect(at(T0 + skew, 'f1').decision.reason).toBe('OK');
    const r = at(T0 + skew + 1, 'f2');
    expect(r.decision.reason).toBe('QR_NOT_YET_VALID');
    expect(r.flags[0]).toMatchObject({ ruleId: 'builtin:QR_NOT_YET_VALID', severity: 'WARNING' });
  });

  it('a code valid exactly 60 s is fine; a signed code valid longer is malformed', () => {
    const t = tap({ form: 'QR', t: T0 });
    expect(decideTap(data, undefined, t, qrCreds(qrPayload(CARD_BJ, T0 - 1000, { validityMs: 60_000, nonce: 'g1' })), T0).decision.reason).toBe('OK');
    expect(decideTap(data, undefined, t, qrCreds(qrPayload(CARD_BJ, T0 - 1000, { validityMs: 60_001, nonce: 'g2' })), T0).decision.reason).toBe('QR_MALFORMED');
    expect(decideTap(data, undefined, t, qrCreds(qrPayload(CARD_BJ, T0 - 1000, { validityMs: 0, nonce: 'g3' })), T0).decision.reason).toBe('QR_MALFORMED');
  });

  it('the skew allowance is a setting', () => {
    const strict = validatorData({ settingsInput: { qrSkewMs: '0s' } });
    const t = tap({ form: 'QR', t: T0 + 60_001 });
    expect(decideTap(strict, undefined, t, qrCreds(qrPayload(CARD_BJ, T0, { nonce: 'h1' })), T0).decision.reason).toBe('QR_EXPIRED');
  });

  it('a forged code, an untrusted issuer, and garbage are rejected with their own reasons', () => {
    const t = tap({ form: 'QR' });
    const forged = qrPayload(CARD_BJ, T0 - 1000, { signer: 'TJ' });
    expect(decideTap(data, undefined, t, qrCreds(forged), T0).decision.reason).toBe('QR_BAD_SIGNATURE');
    const trust = { ...TRUST, qrPublicKeys: { TJ: TRUST.qrPublicKeys.TJ! } };
    expect(decideTap(validatorData({ trust }), undefined, t, qrCreds(qrPayload(CARD_BJ, T0 - 1000)), T0).decision.reason).toBe('QR_UNKNOWN_ISSUER');
    expect(decideTap(data, undefined, t, qrCreds('TFQR1.e30.AA'), T0).decision.reason).toBe('QR_MALFORMED');
  });

  it('a nonce is single use: the same code again is replayed, even at another venue', () => {
    const payload = qrPayload(CARD_BJ, T0 - 1000, { nonce: 'once' });
    const a = tap({ form: 'QR', t: T0 });
    const r1 = decideTap(data, undefined, a, qrCreds(payload), T0);
    expect(r1.decision.reason).toBe('OK');
    const b = tap({ form: 'QR', t: T0 + 20_000, venue: 'museum:BJ:capital-museum' });
    const r2 = decideTap(data, r1.state, b, qrCreds(payload), T0);
    expect(r2.decision.reason).toBe('QR_REPLAYED');
    expect(r2.flags[0]).toMatchObject({ ruleId: 'builtin:QR_REPLAYED', severity: 'CRITICAL' });
  });

  it('level 1 may be used for identity (SERVICE) only', () => {
    const pay = qrTap({ level: 1, nonce: 'l1' });
    expect(decideTap(data, undefined, pay.tap, pay.creds, T0).decision.reason).toBe('QR_LEVEL_TOO_LOW');
    const id = qrTap({ level: 1, nonce: 'l2', venue: 'service:BJ:s1', direction: 'SINGLE' });
    expect(decideTap(data, undefined, id.tap, id.creds, T0).decision.reason).toBe('OK');
  });

  it('a level-1 code refused for paying is spent all the same', () => {
    const payload = qrPayload(CARD_BJ, T0 - 1000, { level: 1, nonce: 'spent' });
    const r1 = decideTap(data, undefined, tap({ form: 'QR' }), qrCreds(payload), T0);
    expect(r1.decision.reason).toBe('QR_LEVEL_TOO_LOW');
    const r2 = decideTap(data, r1.state, tap({ form: 'QR', venue: 'service:BJ:s1', direction: 'SINGLE' }), qrCreds(payload), T0);
    expect(r2.decision.reason).toBe('QR_REPLAYED');
  });
});

describe('decide - hotlist', () => {
  const since = T0 - 60_000;
  const hotlist = (reason: 'LOST' | 'FROZEN' | 'CANCELLED') => new Hotlist([{ cardToken: tokenOf(CARD_BJ), reason, since }], 'hot-7');

  it.each([
    ['LOST', 'HOTLIST_LOST'],
    ['FROZEN', 'HOTLIST_FROZEN'],
    ['CANCELLED', 'HOTLIST_CANCELLED'],
  ] as const)('%s blocks the chip card and its QR codes', (reason, code) => {
    const d = validatorData({ hotlist: hotlist(reason) });
    const chip = chipTap({ counter: 1 });
    const qr = qrTap({ nonce: `hot-${reason}` });
    const r1 = decideTap(d, undefined, chip.tap, chip.creds, T0);
    const r2 = decideTap(d, undefined, qr.tap, qr.creds, T0);
    expect(r1.decision.reason).toBe(code);
    expect(r2.decision.reason).toBe(code);
    expect(r2.decision.trace.at(-1)).toMatchObject({ rule: 'hotlist', version: 'hot-7' });
    expect(r2.flags[0]).toMatchObject({ ruleId: `builtin:${code}`, severity: 'WARNING' });
    // Another card is not affected.
    const other = chipTap({ card: CARD_TJ, counter: 1 });
    expect(decideTap(d, undefined, other.tap, other.creds, T0).decision.reason).toBe('OK');
  });

  it('applies from `since` in device time: an offline tap made before the report is judged as it was', () => {
    const d = validatorData({ hotlist: hotlist('LOST') });
    const before = chipTap({ counter: 1, t: since - 1, offline: true });
    expect(decideTap(d, undefined, before.tap, before.creds, T0).decision.reason).toBe('OK');
    const at = chipTap({ counter: 2, t: since });
    expect(decideTap(d, undefined, at.tap, at.creds, T0).decision.reason).toBe('HOTLIST_LOST');
  });

  it('a forged code naming a hotlisted card is reported as forged', () => {
    const d = validatorData({ hotlist: hotlist('LOST') });
    const r = decideTap(d, undefined, tap({ form: 'QR' }), qrCreds(qrPayload(CARD_BJ, T0 - 1000, { signer: 'HE' })), T0);
    expect(r.decision.reason).toBe('QR_BAD_SIGNATURE');
  });
});

describe('decide - project list', () => {
  it('unlisted venue, unlisted scene and unaccepted form are rejected; counters are not consumed', () => {
    const a = chipTap({ counter: 1, venue: 'museum:BJ:other', scene: 'CULTURE' });
    const r = decideTap(data, undefined, a.tap, a.creds, T0);
    expect(r.decision.reason).toBe('VENUE_NOT_LISTED');
    expect(r.decision.trace.at(-1)).toMatchObject({ rule: 'project-list', version: 'projects-test-1' });
    expect(r.state.chip).toEqual([]);
    const b = chipTap({ counter: 2, venue: 'bj-subway:国贸', scene: 'CULTURE' });
    expect(decideTap(data, undefined, b.tap, b.creds, T0).decision.reason).toBe('SCENE_NOT_LISTED');
  });

  it('a form the item does not accept is rejected', async () => {
    const { parseProjectList } = await import('../../../src/domain/validate/index.js');
    const chipOnly = parseProjectList(
      'version: co\nitems:\n  - { venue: "bj-subway:*", scene: RAIL, forms: [CHIP], operator: o, region: BJ, validFrom: 0 }\n',
      'yaml',
    );
    const q = qrTap({ nonce: 'form' });
    expect(decideTap(validatorData({ projectList: chipOnly }), undefined, q.tap, q.creds, T0).decision.reason).toBe('FORM_NOT_ACCEPTED');
  });
});

describe('decide - purity', () => {
  it('does not modify the state it is given', () => {
    const a = chipTap({ counter: 1 });
    const s = decideTap(data, emptyCardState(), a.tap, a.creds, T0).state;
    const copy = structuredClone(s);
    const b = chipTap({ counter: 2, t: T0 + 3_600_000, venue: 'bj-subway:国贸' });
    decideTap(data, s, b.tap, b.creds, T0);
    expect(s).toEqual(copy);
  });
});
