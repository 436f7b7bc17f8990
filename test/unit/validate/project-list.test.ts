import { describe, expect, it } from 'vitest';
import { DataFormatError, diffProjectLists, lookupProject, parseProjectList, projectListCoverage } from '../../../src/domain/validate/index.js';

const T = Date.parse('2026-03-02T09:00:00+08:00');

const LIST = parseProjectList(
  `
version: p-1
items:
  - { venue: "bj-subway:*", scene: RAIL, forms: [CHIP, QR], operator: bj-subway, region: BJ, validFrom: "2024-01-01" }
  - { venue: "bj-subway:西直门", scene: RAIL, forms: CHIP, operator: bj-subway, region: BJ, validFrom: "2024-01-01" }
  - { venue: "bj-subway:西直门", scene: SERVICE, forms: [QR], operator: hr, region: BJ, validFrom: "2024-01-01" }
  - { venue: "bj-subway:新站", scene: RAIL, forms: [CHIP, QR], operator: bj-subway, region: BJ, validFrom: "2026-03-02T09:00:00+08:00" }
  - { venue: "bj-subway:旧站", scene: RAIL, forms: [CHIP, QR], operator: bj-subway, region: BJ, validFrom: "2024-01-01", validTo: "2026-03-02T09:00:00+08:00" }
  - { venue: "clinic:*", scene: MEDICAL, forms: [CHIP, QR], operator: any, region: BJ, validFrom: 0 }
  - { venue: "clinic:TJ:*", scene: MEDICAL, forms: [QR], operator: tj, region: TJ, validFrom: 0 }
`,
  'yaml',
);

describe('project list - lookup', () => {
  it('a prefix item lists every venue of a network', () => {
    expect(lookupProject(LIST, 'bj-subway:国贸', 'RAIL', 'QR', T)).toMatchObject({ ok: true, item: { venue: 'bj-subway:*' } });
  });

  it('an exact item overrides the prefix for its scene', () => {
    expect(lookupProject(LIST, 'bj-subway:西直门', 'RAIL', 'CHIP', T)).toMatchObject({ ok: true, item: { venue: 'bj-subway:西直门' } });
    expect(lookupProject(LIST, 'bj-subway:西直门', 'RAIL', 'QR', T)).toMatchObject({ ok: false, reason: 'FORM_NOT_ACCEPTED' });
  });

  it('the longest prefix wins', () => {
    expect(lookupProject(LIST, 'clinic:TJ:x', 'MEDICAL', 'CHIP', T)).toMatchObject({ ok: false, reason: 'FORM_NOT_ACCEPTED' });
    expect(lookupProject(LIST, 'clinic:BJ:x', 'MEDICAL', 'CHIP', T)).toMatchObject({ ok: true });
  });

  it('unlisted venue and unlisted scene', () => {
    expect(lookupProject(LIST, 'museum:BJ:x', 'CULTURE', 'CHIP', T)).toMatchObject({ ok: false, reason: 'VENUE_NOT_LISTED' });
    expect(lookupProject(LIST, 'bj-subway:国贸', 'CULTURE', 'CHIP', T)).toMatchObject({ ok: false, reason: 'SCENE_NOT_LISTED' });
    // The exact item is for SERVICE; RAIL falls back to the prefix item.
    expect(lookupProject(LIST, 'bj-subway:西直门', 'SERVICE', 'QR', T)).toMatchObject({ ok: true });
  });

  it('validFrom is inclusive, validTo exclusive', () => {
    expect(lookupProject(LIST, 'bj-subway:新站', 'RAIL', 'CHIP', T - 1)).toMatchObject({ ok: false, reason: 'ITEM_NOT_YET_VALID' });
    expect(lookupProject(LIST, 'bj-subway:新站', 'RAIL', 'CHIP', T)).toMatchObject({ ok: true });
    expect(lookupProject(LIST, 'bj-subway:旧站', 'RAIL', 'CHIP', T - 1)).toMatchObject({ ok: true });
    expect(lookupProject(LIST, 'bj-subway:旧站', 'RAIL', 'CHIP', T)).toMatchObject({ ok: false, reason: 'ITEM_EXPIRED' });
  });

  it('a date means 00:00 China time', () => {
    const midnight = Date.parse('2024-01-01T00:00:00+08:00');
    expect(LIST.items[0]!.validFrom).toBe(midnight);
  });
});

describe('project list - parse errors name the item and field', () => {
  const item = { venue: 'bj-subway:*', scene: 'RAIL', forms: ['CHIP'], operator: 'o', region: 'BJ', validFrom: '2024-01-01' };
  const cases: [string, unknown, string][] = [
    ['bad form', { version: 'v', items: [item, { ...item, venue: 'x:*', forms: ['CHIP', 'NFC'] }] }, 'items[1].forms[1]'],
    ['empty forms', { version: 'v', items: [{ ...item, forms: [] }] }, 'items[0].forms'],
    ['bad scene', { version: 'v', items: [{ ...item, scene: 'SHOP' }] }, 'items[0].scene'],
    ['bad region', { version: 'v', items: [{ ...item, region: 'SH' }] }, 'items[0].region'],
    ['star in the middle', { version: 'v', items: [{ ...item, venue: 'bj-*:x' }] }, 'items[0].venue'],
    ['star alone', { version: 'v', items: [{ ...item, venue: '*' }] }, 'items[0].venue'],
    ['no zone', { version: 'v', items: [{ ...item, validFrom: '2024-01-01T00:00:00' }] }, 'items[0].validFrom'],
    ['missing validFrom', { version: 'v', items: [{ ...item, validFrom: undefined }] }, 'items[0].validFrom'],
    ['validTo before validFrom', { version: 'v', items: [{ ...item, validTo: '2023-01-01' }] }, 'items[0].validTo'],
    ['unknown field', { version: 'v', items: [{ ...item, valid_to: '2030-01-01' }] }, 'items[0].valid_to'],
    ['missing operator', { version: 'v', items: [{ ...item, operator: '' }] }, 'items[0].operator'],
    ['duplicate venue and scene', { version: 'v', items: [item, item] }, 'items[1]'],
    ['missing version', { items: [item] }, 'version'],
    ['items not a list', { version: 'v', items: {} }, 'items'],
  ];
  it.each(cases)('%s', (_name, data, field) => {
    try {
      parseProjectList(JSON.stringify(data), 'json');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DataFormatError);
      expect((err as DataFormatError).field).toBe(field);
    }
  });

  it('a YAML syntax error is a DataFormatError', () => {
    expect(() => parseProjectList('items: [', 'yaml')).toThrow(DataFormatError);
  });

  it('JSON and YAML of the same list parse alike, and toJSON round-trips', () => {
    const again = parseProjectList(JSON.stringify(LIST.toJSON()), 'json');
    expect(again.items).toEqual(LIST.items);
    expect(again.version).toBe('p-1');
  });
});

describe('project list - diff and coverage', () => {
  it('reports added, removed and changed items by venue and scene', () => {
    const a = parseProjectList(
      `version: a
items:
  - { venue: "a:*", scene: RAIL, forms: [CHIP], operator: o, region: BJ, validFrom: "2024-01-01" }
  - { venue: "b:1", scene: CULTURE, forms: [CHIP], operator: o, region: BJ, validFrom: "2024-01-01" }
  - { venue: "c:1", scene: MEDICAL, forms: [CHIP], operator: o, region: BJ, validFrom: "2024-01-01" }
`,
      'yaml',
    );
    const b = parseProjectList(
      `version: b
items:
  - { venue: "a:*", scene: RAIL, forms: [CHIP], operator: o, region: BJ, validFrom: "2024-01-01" }
  - { venue: "b:1", scene: CULTURE, forms: [CHIP, QR], operator: o, region: BJ, validFrom: "2024-01-01" }
  - { venue: "d:1", scene: SERVICE, forms: [QR], operator: o, region: TJ, validFrom: "2024-01-01" }
`,
      'yaml',
    );
    const d = diffProjectLists(a, b);
    expect(d.added.map((i) => i.venue)).toEqual(['d:1']);
    expect(d.removed.map((i) => i.venue)).toEqual(['c:1']);
    expect(d.changed).toHaveLength(1);
    expect(d.changed[0]!.before.forms).toEqual(['CHIP']);
    expect(d.changed[0]!.after.forms).toEqual(['CHIP', 'QR']);
    expect(diffProjectLists(a, a)).toEqual({ added: [], removed: [], changed: [] });
  });

  it('finds venues no item covers and items no venue matches', () => {
    const cov = projectListCoverage(LIST, [
      { id: 'bj-subway:国贸', scene: 'RAIL' },
      { id: 'museum:BJ:x', scene: 'CULTURE' },
    ]);
    expect(cov.uncoveredVenues).toEqual(['museum:BJ:x']);
    expect(cov.unmatchedItems.map((i) => i.venue)).toContain('clinic:*');
    expect(cov.unmatchedItems.map((i) => i.venue)).not.toContain('bj-subway:*');
  });
});
