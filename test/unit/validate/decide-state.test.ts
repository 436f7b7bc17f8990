import { describe, expect, it } from 'vitest';
import type { CardCredentials, TapEvent } from '../../../src/domain/types.js';
import {
  cardStateFromData,
  Hotlist,
  parseRiskRules,
  decideTap as decideAny,
  type CardValidationState,
} from '../../../src/domain/validate/index.js';
import { CARD_BJ, CARD_HE, CARD_TJ, chipCreds, qrCreds, qrPayload, T0, tap, tokenOf, validatorData, decideNew as decideTap } from './fixtures.js';

const rules = parseRiskRules(
  `version: r-1
rules:
  - { id: card-pharmacy, version: 1, keyKind: card, filter: { scene: MEDICAL, verdict: ACCEPTED }, metric: count, window: 24h, threshold: 2, severity: WARNING }
`,
  'yaml',
);
const data = validatorData({
  riskRules: rules,
  hotlist: new Hotlist([{ cardToken: tokenOf(CARD_HE), reason: 'FROZEN', since: 0 }], 'hot-1'),
});

interface Step {
  tap: TapEvent;
  creds: CardCredentials | undefined;
}

/** A scripted stream mixing every rule, for three cards; seq numbers are fixed so event ids repeat. */
function script(): Step[] {
  const steps: Step[] = [];
  let seq = 0;
  const chip = (card: string, counter: number, spec: Parameters<typeof tap>[0]) => {
    const t = tap({ ...spec, card, form: 'CHIP', seq: ++seq, terminalId: 'S-1' });
    steps.push({ tap: t, creds: chipCreds(t, card, counter) });
  };
  const qr = (card: string, issuedAt: number, nonce: string, spec: Parameters<typeof tap>[0], level: 1 | 2 = 2) => {
    const t = tap({ ...spec, card, form: 'QR', seq: ++seq, terminalId: 'S-1' });
    steps.push({ tap: t, creds: qrCreds(qrPayload(card, issuedAt, { nonce, level })) });
  };
  chip(CARD_BJ, 1, { t: T0, venue: 'bj-subway:西直门' });
  chip(CARD_BJ, 2, { t: T0 + 5_000, venue: 'bj-subway:西直门' }); // duplicate
  chip(CARD_BJ, 3, { t: T0 + 120_000, venue: 'bj-subway:西直门' }); // passback
  chip(CARD_BJ, 4, { t: T0 + 1_200_000, venue: 'bj-subway:国贸', direction: 'EXIT' });
  chip(CARD_BJ, 4, { t: T0 + 1_300_000, venue: 'bj-subway:国贸' }); // counter replay
  chip(CARD_BJ, 5, { t: T0 + 1_400_000, venue: 'sjz-metro:北国商城' }); // impossible travel
  qr(CARD_TJ, T0 - 1_000, 'a', { t: T0, venue: 'pharmacy:BJ:p1', direction: 'SINGLE', amountFen: 1200 });
  qr(CARD_TJ, T0 + 60_000, 'b', { t: T0 + 65_000, venue: 'pharmacy:BJ:p2', direction: 'SINGLE', amountFen: 800 });
  qr(CARD_TJ, T0 + 200_000, 'c', { t: T0 + 205_000, venue: 'pharmacy:BJ:p1', direction: 'SINGLE', amountFen: 500 }); // 3rd: flags
  qr(CARD_TJ, T0 + 200_000, 'c', { t: T0 + 215_000, venue: 'service:BJ:s1', direction: 'SINGLE' }); // replayed nonce
  qr(CARD_TJ, T0 - 200_000, 'd', { t: T0 + 300_000, venue: 'service:BJ:s1', direction: 'SINGLE' }); // expired
  qr(CARD_TJ, T0 + 400_000, 'e', { t: T0 + 400_000, venue: 'bj-subway:国贸' }, 1); // level 1
  chip(CARD_HE, 1, { t: T0, venue: 'bj-subway:国贸' }); // frozen
  steps.push({ tap: tap({ card: CARD_BJ, seq: ++seq, terminalId: 'S-1', t: T0 + 7_200_000 }), creds: undefined }); // unreadable
  chip(CARD_BJ, 0, { t: T0 - 3_600_000, venue: 'bj-subway:国贸', direction: 'EXIT', offline: true }); // offline, before all
  return steps;
}

/** Runs a stream; per card state in a map, optionally through JSON as the KV would store it. */
function play(steps: Step[], viaJson: boolean, nowMs = (i: number) => T0 + 10_000_000 + i): ReturnType<typeof decideTap>[] {
  const states = new Map<string, string | CardValidationState>();
  return steps.map((s, i) => {
    const stored = states.get(s.tap.cardToken);
    const state = stored === undefined ? undefined : typeof stored === 'string' ? cardStateFromData(JSON.parse(stored)) : stored;
    const r = decideTap(data, state, s.tap, s.creds, nowMs(i));
    states.set(s.tap.cardToken, viaJson ? JSON.stringify(r.state) : r.state);
    return r;
  });
}

const summary = (rs: ReturnType<typeof decideTap>[]) => rs.map((r) => `${r.decision.eventId} ${r.decision.verdict} ${r.decision.reason} [${r.decision.riskRules.join(',')}]`);

describe('decide - determinism and idempotence', () => {
  it('the scripted stream gets the expected decisions', () => {
    expect(summary(play(script(), false))).toEqual([
      'S-1:1 ACCEPTED OK []',
      'S-1:2 REJECTED DUPLICATE_TAP []',
      'S-1:3 REJECTED PASSBACK [builtin:PASSBACK]',
      'S-1:4 ACCEPTED OK []',
      'S-1:5 REJECTED CHIP_COUNTER_REPLAY [builtin:CHIP_COUNTER_REPLAY]',
      'S-1:6 REJECTED IMPOSSIBLE_TRAVEL [builtin:IMPOSSIBLE_TRAVEL]',
      'S-1:7 ACCEPTED OK []',
      'S-1:8 ACCEPTED OK []',
      'S-1:9 ACCEPTED OK [card-pharmacy]',
      'S-1:10 REJECTED QR_REPLAYED [builtin:QR_REPLAYED]',
      'S-1:11 REJECTED QR_EXPIRED []',
      'S-1:12 REJECTED QR_LEVEL_TOO_LOW []',
      'S-1:13 REJECTED HOTLIST_FROZEN [builtin:HOTLIST_FROZEN]',
      'S-1:14 REJECTED CREDENTIALS_UNREADABLE []',
      'S-1:15 ACCEPTED OK []',
    ]);
  });

  it('the same stream twice gives identical decisions, flags and states, with or without JSON state', () => {
    const a = play(script(), false);
    const b = play(script(), false);
    const c = play(script(), true);
    expect(b).toEqual(a);
    expect(c.map((r) => [r.decision, r.flags])).toEqual(a.map((r) => [r.decision, r.flags]));
    expect(JSON.parse(JSON.stringify(c.at(-1)!.state))).toEqual(JSON.parse(JSON.stringify(a.at(-1)!.state)));
  });

  it('flag ids derive from the event and the rule', () => {
    const flags = play(script(), false).flatMap((r) => r.flags);
    for (const f of flags) expect(f.flagId).toBe(`${f.eventId}:${f.ruleId}`);
    expect(flags.find((f) => f.ruleId === 'card-pharmacy')).toMatchObject({ ruleVersion: '1', severity: 'WARNING', keyKind: 'card', key: tokenOf(CARD_TJ) });
  });

  it('redelivering every tap right after it was applied is answered "already", with the state alone', () => {
    const states = new Map<string, CardValidationState>();
    for (const [i, s] of script().entries()) {
      const first = decideTap(data, states.get(s.tap.cardToken), s.tap, s.creds, T0 + i);
      const again = decideAny(data, first.state, s.tap, s.creds, T0 + 99_999);
      expect(again).toEqual({ already: true, state: first.state });
      expect(again.state).toBe(first.state);
      states.set(s.tap.cardToken, first.state);
    }
  });

  it('a redelivery after later taps is still recognised (not taken for a duplicate tap of itself)', () => {
    const steps = script();
    const rs = play(steps, false);
    // Card BJ's first tap, redelivered with the card's final state.
    const last = [...rs].reverse().find((r) => r.decision.cardToken === tokenOf(CARD_BJ))!;
    const again = decideAny(data, last.state, steps[3]!.tap, steps[3]!.creds, 0);
    expect(again.already).toBe(true);
  });
});

describe('decide - bounded state', () => {
  it('stays within the memory limits over a long stream', () => {
    let s: CardValidationState | undefined;
    const { memory } = data.settings;
    for (let i = 0; i < 300; i++) {
      const venue = i % 2 === 0 ? 'bj-subway:西直门' : 'bj-subway:国贸';
      const t = tap({ t: T0 + i * 3_600_000, venue, direction: i % 2 === 0 ? 'ENTRY' : 'EXIT', seq: 10_000 + i });
      const form = i % 3 === 0 ? 'QR' : 'CHIP';
      const creds = form === 'QR' ? qrCreds(qrPayload(CARD_BJ, t.deviceTime - 1000, { nonce: `n${i}` })) : chipCreds(t, CARD_BJ, i);
      const r = decideTap(data, s, { ...t, form }, creds, T0);
      expect(r.decision.reason).toBe('OK');
      s = r.state;
    }
    expect(s!.taps.length).toBeLessThanOrEqual(memory.taps);
    expect(s!.chip.length).toBeLessThanOrEqual(memory.chipCounters);
    expect(s!.nonces.length).toBeLessThanOrEqual(memory.nonces);
    // Applied events within the state horizon (24 h of device time: 24 hourly taps), at most memory.decided.
    expect(s!.decided.length).toBe(Math.min(memory.decided, 25));
    // The chip high-water mark survives trimming.
    expect(s!.chip.at(-1)!.n).toBe(299);
    expect(JSON.stringify(s).length).toBeLessThan(8_000);
  });

  it('keeps a QR nonce past its expiry, so a late offline replay is still caught', () => {
    const payload = qrPayload(CARD_BJ, T0, { nonce: 'late' });
    const first = decideTap(data, undefined, tap({ form: 'QR', t: T0 + 1_000 }), qrCreds(payload), T0);
    const later = decideTap(data, first.state, tap({ t: T0 + 7_200_000, venue: 'bj-subway:国贸' }), chipCreds(tap({ t: T0 + 7_200_000, venue: 'bj-subway:国贸', seq: 77 }), CARD_BJ, 1), T0);
    const t = tap({ form: 'QR', t: T0 + 2_000, venue: 'museum:BJ:capital-museum', offline: true });
    expect(decideTap(data, later.state, t, qrCreds(payload), T0).decision.reason).toBe('QR_REPLAYED');
  });

  it('refuses a stored state of another version', () => {
    expect(() => cardStateFromData({ v: 2 })).toThrow(/cardState.v/);
  });
});
