import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadVenueDirectory } from '../../../src/domain/network/index.js';
import { lookupProject, parseProjectList, parseRiskRules, projectListCoverage } from '../../../src/domain/validate/index.js';

describe('data files - sample project list and risk rules', () => {
  const projects = parseProjectList(readFileSync('data/projects/default.yaml', 'utf8'), 'yaml');

  it('the project list covers every venue of the venue directory, and every item matches a venue', () => {
    const venues = loadVenueDirectory('data');
    const cov = projectListCoverage(projects, venues.all());
    expect(cov.uncoveredVenues).toEqual([]);
    expect(cov.unmatchedItems).toEqual([]);
  });

  it('carries the documented samples: QR not accepted on Shijiazhuang buses, a scheduled item', () => {
    const now = Date.parse('2026-11-29T10:00:00+08:00');
    expect(lookupProject(projects, 'sjz-bus:1:0', 'BUS', 'QR', now)).toMatchObject({ ok: false, reason: 'FORM_NOT_ACCEPTED' });
    expect(lookupProject(projects, 'sjz-bus:1:0', 'BUS', 'CHIP', now)).toMatchObject({ ok: true });
    expect(lookupProject(projects, 'scenic:HE:shanhaiguan', 'CULTURE', 'CHIP', now)).toMatchObject({ ok: false, reason: 'ITEM_NOT_YET_VALID' });
  });

  it('the sample risk rules parse and split into card and other rules', () => {
    const rules = parseRiskRules(readFileSync('data/risk-rules/default.yaml', 'utf8'), 'yaml');
    expect(rules.cardRules.map((r) => r.id)).toContain('card-pharmacy-daily');
    expect(rules.otherRules.map((r) => r.id)).toContain('terminal-reject-rate');
    expect(rules.rules.every((r) => r.version === '1')).toBe(true);
  });
});
