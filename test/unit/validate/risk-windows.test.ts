import { describe, expect, it } from 'vitest';
import type { Decision } from '../../../src/domain/types.js';
import {
  emptyWindowState,
  observeDecision,
  parseRiskRules,
  pruneWindowState,
  windowKeysFor,
  type CardValidationState,
  type WindowState,
} from '../../../src/domain/validate/index.js';
import { CARD_BJ, chipTap, T0, tap, validatorData, decideNew as decideTap } from './fixtures.js';

const HOUR = 3_600_000;

const cardRules = (threshold = 8, version = '1', extra = '') =>
  parseRiskRules(
    `version: r-${version}
rules:
  - id: card-pharmacy-daily
    version: ${version}
    keyKind: card
    filter: { scene: MEDICAL, venuePrefix: "pharmacy:", verdict: ACCEPTED }
    metric: count
    window: 24h
    threshold: ${threshold}
    severity: WARNING
${extra}`,
    'yaml',
  );

/** Pharmacy purchases at the given device times; returns flagged rule ids per tap and the final state. */
function purchases(times: number[], data = validatorData({ riskRules: cardRules() }), start?: CardValidationState, counter0 = 1) {
  let s = start;
  const flagged: string[][] = [];
  const reasons: string[] = [];
  times.forEach((t, i) => {
    const { tap: x, creds } = chipTap({ venue: i % 2 ? 'pharmacy:BJ:p1' : 'pharmacy:BJ:p2', direction: 'SINGLE', t, counter: counter0 + i, amountFen: 2500 });
    const r = decideTap(data, s, x, creds, t);
    flagged.push(r.flags.map((f) => f.ruleId));
    reasons.push(r.decision.reason);
    s = r.state;
  });
  return { flagged, reasons, state: s! };
}

describe('risk windows - card rules in decideTap', () => {
  it('8 pharmacy purchases in a day are fine, the 9th flags', () => {
    const times = Array.from({ length: 9 }, (_, i) => T0 + i * HOUR);
    const r = purchases(times);
    expect(r.reasons.every((x) => x === 'OK')).toBe(true);
    expect(r.flagged.slice(0, 8).flat()).toEqual([]);
    expect(r.flagged[8]).toEqual(['card-pharmacy-daily']);
  });

  it('the flag records rule, version and severity; the decision lists it and its trace names the rule set', () => {
    const data = validatorData({ riskRules: cardRules() });
    const times = Array.from({ length: 8 }, (_, i) => T0 + i * HOUR);
    const { state } = purchases(times, data);
    const { tap: x, creds } = chipTap({ venue: 'pharmacy:BJ:p1', direction: 'SINGLE', t: T0 + 9 * HOUR, counter: 100 });
    const r = decideTap(data, state, x, creds, 42);
    expect(r.flags).toEqual([
      {
        flagId: `${x.eventId}:card-pharmacy-daily`,
        eventId: x.eventId,
        ruleId: 'card-pharmacy-daily',
        ruleVersion: '1',
        severity: 'WARNING',
        keyKind: 'card',
        key: x.cardToken,
        detail: 'count 9 > 8 in 1d',
        deviceTime: x.deviceTime,
        flagTime: 42,
        region: 'BJ',
      },
    ]);
    expect(r.decision.verdict).toBe('ACCEPTED');
    expect(r.decision.riskRules).toEqual(['card-pharmacy-daily']);
    expect(r.decision.trace.at(-1)).toMatchObject({ rule: 'risk-rules', version: 'r-1' });
  });

  it('the window is (t − 24h, t]: a purchase exactly 24 h before no longer counts', () => {
    const first8 = Array.from({ length: 8 }, (_, i) => T0 + i * HOUR);
    expect(purchases([...first8, T0 + 24 * HOUR]).flagged[8]).toEqual([]);
    expect(purchases([...first8, T0 + 24 * HOUR - 1]).flagged[8]).toEqual(['card-pharmacy-daily']);
  });

  it('rejected taps do not count for a rule filtering ACCEPTED', () => {
    const data = validatorData({ riskRules: cardRules(1) });
    const a = purchases([T0], data);
    // A duplicate (rejected) 5 s later, then an accepted one: only 2 accepted in the window.
    const dup = chipTap({ venue: 'pharmacy:BJ:p2', direction: 'SINGLE', t: T0 + 5_000, counter: 50 });
    const r1 = decideTap(data, a.state, dup.tap, dup.creds, T0);
    expect(r1.decision.reason).toBe('DUPLICATE_TAP');
    expect(r1.flags).toEqual([]);
    const ok = chipTap({ venue: 'pharmacy:BJ:p1', direction: 'SINGLE', t: T0 + HOUR, counter: 51 });
    expect(decideTap(data, r1.state, ok.tap, ok.creds, T0).flags.map((f) => f.ruleId)).toEqual(['card-pharmacy-daily']);
  });

  it('a cooldown holds further flags for the card', () => {
    const data = validatorData({ riskRules: cardRules(2, '1', '    cooldown: 2h\n') });
    const r = purchases([T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR], data);
    expect(r.flagged.map((f) => f.length)).toEqual([0, 0, 1, 0, 1, 0]);
  });

  it('a new rule version restarts the window; a removed rule drops its window from the state', () => {
    const times = Array.from({ length: 8 }, (_, i) => T0 + i * HOUR);
    const { state } = purchases(times);
    expect(state.risk['card-pharmacy-daily']!.ev).toHaveLength(8);
    const v2 = validatorData({ riskRules: cardRules(8, '2') });
    const next = purchases([T0 + 9 * HOUR], v2, state, 100);
    expect(next.flagged[0]).toEqual([]);
    expect(next.state.risk['card-pharmacy-daily']).toMatchObject({ ver: '2' });
    const none = purchases([T0 + 10 * HOUR], validatorData(), next.state, 200);
    expect(none.state.risk).toEqual({});
  });

  it('amount_sum sums fen', () => {
    const data = validatorData({
      riskRules: parseRiskRules(
        'version: a\nrules:\n  - { id: amt, version: 1, keyKind: card, filter: { scene: MEDICAL }, metric: amount_sum, window: 24h, threshold: 5000, severity: INFO }\n',
        'yaml',
      ),
    });
    // 2500 fen each: 5000 is not over, 7500 is.
    expect(purchases([T0, T0 + HOUR, T0 + 2 * HOUR], data).flagged).toEqual([[], [], ['amt']]);
  });
});

const TERMINAL_RULES = parseRiskRules(
  `version: t-1
rules:
  - id: terminal-reject-rate
    version: 1
    keyKind: terminal
    metric: reject_rate
    window: 5m
    threshold: 0.3
    minSample: 20
    severity: WARNING
  - id: venue-drop
    version: 1
    keyKind: venue
    metric: reject_rate
    window: 5m
    threshold: 0.5
    minSample: 4
    severity: INFO
    cooldown: 5m
  - id: institution-medical
    version: 1
    keyKind: institution
    filter: { scene: MEDICAL }
    metric: count
    window: 1h
    threshold: 2
    severity: INFO
`,
  'yaml',
);

function decision(t: number, verdict: 'ACCEPTED' | 'REJECTED', spec: Parameters<typeof tap>[0] = {}): Decision {
  const x = tap({ t, terminalId: 'G-9', ...spec });
  return { ...x, decisionTime: t, verdict, reason: verdict === 'ACCEPTED' ? 'OK' : 'VENUE_NOT_LISTED', trace: [], riskRules: [] };
}

function observeAll(ds: Decision[], state: WindowState = emptyWindowState()) {
  const flags: string[][] = [];
  for (const d of ds) {
    const r = observeDecision(TERMINAL_RULES, state, d, d.deviceTime);
    state = r.state;
    flags.push(r.flags.map((f) => f.ruleId));
  }
  return { flags, state };
}

describe('risk windows - terminal, venue and institution rules', () => {
  it('a terminal reject rate of exactly 30% does not flag; above 30% does', () => {
    // 20 decisions within 5 minutes, the first 6 rejected: 30%.
    const ds = Array.from({ length: 20 }, (_, i) => decision(T0 + i * 1000, i < 6 ? 'REJECTED' : 'ACCEPTED', { venue: `bj-subway:v${i}` }));
    const a = observeAll(ds);
    expect(a.flags.flat().filter((f) => f === 'terminal-reject-rate')).toEqual([]);
    // One more rejection: 7 of 21 = 33%.
    const b = observeAll([decision(T0 + 21_000, 'REJECTED', { venue: 'bj-subway:v21' })], a.state);
    expect(b.flags[0]).toContain('terminal-reject-rate');
  });

  it('does not depend on arrival order: the same rejections flag whether they arrive in order or newest first', () => {
    const ds = Array.from({ length: 20 }, (_, i) => decision(T0 + i * 1000, 'REJECTED', { venue: `bj-subway:v${i}` }));
    const count = (xs: Decision[]) => observeAll(xs).flags.flat().filter((f) => f === 'terminal-reject-rate').length;
    expect(count(ds)).toBe(1);
    // The newest first, then the rest in order: every window holding all 20 is checked when the
    // 20th arrives, although it is not the window ending at that decision's own device time.
    expect(count([ds[19]!, ...ds.slice(0, 19)])).toBe(1);
    expect(count([...ds].reverse())).toBe(1);
  });

  it('no flag below the minimum sample, whatever the rate', () => {
    const ds = Array.from({ length: 19 }, (_, i) => decision(T0 + i * 1000, 'REJECTED', { venue: `bj-subway:v${i}` }));
    expect(observeAll(ds).flags.flat().filter((f) => f === 'terminal-reject-rate')).toEqual([]);
  });

  it('decisions older than the window stop counting', () => {
    const old = Array.from({ length: 20 }, (_, i) => decision(T0 + i * 1000, 'REJECTED', { venue: `bj-subway:v${i}` }));
    const a = observeAll(old);
    expect(a.flags.at(-1)).toContain('terminal-reject-rate');
    // 6 minutes later: the old rejections are out of the 5-minute window; 20 fresh accepted decisions.
    const fresh = Array.from({ length: 20 }, (_, i) => decision(T0 + 360_000 + i * 1000, i === 0 ? 'REJECTED' : 'ACCEPTED', { venue: `bj-subway:w${i}` }));
    const b = observeAll(fresh, a.state);
    expect(b.flags.flat().filter((f) => f === 'terminal-reject-rate')).toEqual([]);
  });

  it('keys by venue with a cooldown, and by institution (operator) with a scene filter', () => {
    const at = (i: number, verdict: 'ACCEPTED' | 'REJECTED') => decision(T0 + i * 1000, verdict, { venue: 'museum:BJ:capital-museum', terminalId: `M-${i}` });
    const r = observeAll([at(0, 'REJECTED'), at(1, 'REJECTED'), at(2, 'REJECTED'), at(3, 'REJECTED'), at(4, 'REJECTED')]);
    expect(r.flags.map((f) => f.includes('venue-drop'))).toEqual([false, false, false, true, false]);
    const med = (i: number) => decision(T0 + i * 60_000, 'ACCEPTED', { venue: i % 2 ? 'pharmacy:BJ:p1' : 'pharmacy:BJ:p2', operatorId: 'chain-1', terminalId: `P-${i}` });
    const m = observeAll([med(0), med(1), med(2)]);
    expect(m.flags.map((f) => f.includes('institution-medical'))).toEqual([false, false, true]);
    const fourth = med(3);
    const flag = observeDecision(TERMINAL_RULES, m.state, fourth, 7).flags.find((f) => f.ruleId === 'institution-medical')!;
    expect(flag).toMatchObject({ keyKind: 'institution', key: 'chain-1', ruleVersion: '1', flagTime: 7, flagId: `${fourth.eventId}:institution-medical` });
  });

  it('is pure, and a partial state holding only the touched series gives the same flags', () => {
    const ds = Array.from({ length: 25 }, (_, i) => decision(T0 + i * 1000, i % 2 ? 'REJECTED' : 'ACCEPTED', { venue: `bj-subway:v${i}` }));
    const full = observeAll(ds.slice(0, 24));
    const before = structuredClone(full.state);
    const last = ds[24]!;
    const r1 = observeDecision(TERMINAL_RULES, full.state, last, 1);
    expect(full.state).toEqual(before);
    const keys = windowKeysFor(TERMINAL_RULES, last).map((k) => k.seriesKey);
    const partial: WindowState = { v: 1, series: Object.fromEntries(keys.filter((k) => full.state.series[k]).map((k) => [k, full.state.series[k]!])) };
    expect(observeDecision(TERMINAL_RULES, partial, last, 1).flags).toEqual(r1.flags);
  });

  it('prune drops idle series and series of changed rules', () => {
    const a = observeAll([decision(T0, 'REJECTED')]);
    expect(Object.keys(a.state.series).length).toBeGreaterThan(0);
    expect(pruneWindowState(TERMINAL_RULES, a.state, T0 + 60_000).series).toEqual(a.state.series);
    expect(pruneWindowState(TERMINAL_RULES, a.state, T0 + 2 * HOUR).series).toEqual({});
    const changed = parseRiskRules('version: x\nrules: []\n', 'yaml');
    expect(pruneWindowState(changed, a.state, T0).series).toEqual({});
  });

  it('card rules are not evaluated here', () => {
    const rules = cardRules(0);
    const d = decision(T0, 'ACCEPTED', { venue: 'pharmacy:BJ:p1', card: CARD_BJ });
    expect(observeDecision(rules, emptyWindowState(), d, T0).flags).toEqual([]);
  });
});
