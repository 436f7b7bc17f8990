import { describe, expect, it } from 'vitest';
import { DataFormatError, matchesFilter, parseRiskRules, riskRuleFromData, type RiskSubject } from '../../../src/domain/validate/index.js';

const base = { id: 'r1', version: 1, keyKind: 'card', metric: 'count', window: '24h', threshold: 8, severity: 'WARNING' };

describe('risk rules - parse', () => {
  it('reads a rule with defaults', () => {
    const r = riskRuleFromData(base);
    expect(r).toMatchObject({ id: 'r1', version: '1', keyKind: 'card', metric: 'count', windowMs: 86_400_000, threshold: 8, severity: 'WARNING', cooldownMs: 0, enabled: true, filter: {} });
  });

  it('reads filters, a single value as a list of one', () => {
    const r = riskRuleFromData({ ...base, filter: { scene: 'MEDICAL', venuePrefix: 'pharmacy:', verdict: 'ACCEPTED', cardRegion: ['TJ', 'HE'], crossRegion: true } });
    expect(r.filter).toEqual({ scenes: ['MEDICAL'], venuePrefixes: ['pharmacy:'], verdict: 'ACCEPTED', cardRegions: ['TJ', 'HE'], crossRegion: true });
  });

  it('reject_rate: threshold is a share, minSample defaults to 10', () => {
    const r = riskRuleFromData({ ...base, keyKind: 'terminal', metric: 'reject_rate', threshold: 0.3, window: '5m' });
    expect(r.minSample).toBe(10);
    expect(r.windowMs).toBe(300_000);
  });

  const cases: [string, Record<string, unknown>, string][] = [
    ['bad id', { ...base, id: 'Bad Id' }, 'rule.id'],
    ['no version', { ...base, version: '' }, 'rule.version'],
    ['bad key kind', { ...base, keyKind: 'person' }, 'rule.keyKind'],
    ['bad metric', { ...base, metric: 'avg' }, 'rule.metric'],
    ['bad window', { ...base, window: '5 minutes' }, 'rule.window'],
    ['zero window', { ...base, window: 0 }, 'rule.window'],
    ['missing window', { ...base, window: undefined }, 'rule.window'],
    ['fractional count threshold', { ...base, threshold: 8.5 }, 'rule.threshold'],
    ['rate threshold of 30', { ...base, metric: 'reject_rate', threshold: 30 }, 'rule.threshold'],
    ['minSample on count', { ...base, minSample: 5 }, 'rule.minSample'],
    ['verdict filter on a reject rate', { ...base, metric: 'reject_rate', threshold: 0.3, filter: { verdict: 'REJECTED' } }, 'rule.filter.verdict'],
    ['bad scene in filter', { ...base, filter: { scene: ['MEDICAL', 'SHOP'] } }, 'rule.filter.scene[1]'],
    ['unknown filter field', { ...base, filter: { venue: 'x' } }, 'rule.filter.venue'],
    ['bad severity', { ...base, severity: 'HIGH' }, 'rule.severity'],
    ['unknown field', { ...base, windw: '5m' }, 'rule.windw'],
    ['bad cooldown', { ...base, cooldown: -1 }, 'rule.cooldown'],
  ];
  it.each(cases)('names the field: %s', (_n, raw, field) => {
    try {
      riskRuleFromData(raw);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DataFormatError);
      expect((err as DataFormatError).field).toBe(field);
    }
  });

  it('a rules file names the rule index; ids must be unique', () => {
    expect(() => parseRiskRules(JSON.stringify({ version: 'v', rules: [base, { ...base, id: 'r2', metric: 'x' }] }), 'json')).toThrow(/^rules\[1\]\.metric/);
    expect(() => parseRiskRules(JSON.stringify({ version: 'v', rules: [base, base] }), 'json')).toThrow('rules[1].id: duplicate of rules[0].id "r1"');
  });

  it('disabled rules are kept but not evaluated', () => {
    const set = parseRiskRules(JSON.stringify({ version: 'v', rules: [{ ...base, enabled: false }, { ...base, id: 'r2', keyKind: 'venue' }] }), 'json');
    expect(set.rules).toHaveLength(2);
    expect(set.cardRules).toHaveLength(0);
    expect(set.otherRules.map((r) => r.id)).toEqual(['r2']);
  });
});

describe('risk rules - filter', () => {
  const d: RiskSubject = {
    eventId: 'e',
    scene: 'MEDICAL',
    venueId: 'pharmacy:BJ:p1',
    verdict: 'ACCEPTED',
    form: 'QR',
    direction: 'SINGLE',
    terminalRegion: 'BJ',
    cardRegion: 'TJ',
    offline: false,
    deviceTime: 0,
    amountFen: 100,
    cardToken: 'c',
    terminalId: 't',
    operatorId: 'o',
  };
  it('every field narrows', () => {
    expect(matchesFilter({}, d)).toBe(true);
    expect(matchesFilter({ scenes: ['MEDICAL'], venuePrefixes: ['clinic:', 'pharmacy:'], crossRegion: true, forms: ['QR'] }, d)).toBe(true);
    expect(matchesFilter({ scenes: ['RAIL'] }, d)).toBe(false);
    expect(matchesFilter({ venuePrefixes: ['clinic:'] }, d)).toBe(false);
    expect(matchesFilter({ verdict: 'REJECTED' }, d)).toBe(false);
    expect(matchesFilter({ crossRegion: false }, d)).toBe(false);
    expect(matchesFilter({ offline: true }, d)).toBe(false);
    expect(matchesFilter({ cardRegions: ['BJ'] }, d)).toBe(false);
    expect(matchesFilter({ terminalRegions: ['BJ'] }, d)).toBe(true);
    expect(matchesFilter({ directions: ['ENTRY'] }, d)).toBe(false);
  });
});
