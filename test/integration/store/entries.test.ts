/** Culture entries per venue and hour, from the materialized aggregate (real chdb). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decisionRow, migrate, openClickHouse, venueEntries, type ClickHouseEngine } from '../../../src/store/mod.js';
import { DAY, T0, decision } from './fixtures.js';

let dataDir: string;
let engine: ClickHouseEngine;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tapflow-entries-'));
  engine = await openClickHouse({ dataDir, database: 'entries_test' });
  await migrate(engine);
});

afterAll(async () => {
  await engine?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('store - venue entries per hour', () => {
  it('counts accepted culture entries per venue and hour, and the cross-region ones', async () => {
    const museum = 'museum:BJ:capital-museum';
    const rows = [
      decision(1, { scene: 'CULTURE', venueId: museum, direction: 'SINGLE', deviceTime: T0 + 60_000 }),
      decision(2, { scene: 'CULTURE', venueId: museum, direction: 'SINGLE', deviceTime: T0 + 120_000, cardRegion: 'TJ' }),
      decision(3, { scene: 'CULTURE', venueId: museum, direction: 'SINGLE', deviceTime: T0 + 3_600_000 + 5 }),
      // Rejected and non-culture taps are not entries.
      decision(4, { scene: 'CULTURE', venueId: museum, direction: 'SINGLE', deviceTime: T0 + 90_000, verdict: 'REJECTED', reason: 'HOTLIST_LOST' }),
      decision(5, { scene: 'RAIL', venueId: 'bj-subway:西直门', direction: 'ENTRY', deviceTime: T0 + 90_000 }),
    ].map((d, i) => decisionRow({ ...d, terminalRegion: 'BJ' }, i + 1));
    await engine.insert('decisions', rows);
    const got = await venueEntries(engine, DAY);
    expect(got).toEqual([
      { hour: '2024-05-01 08:00', venueId: museum, entries: 2, crossRegion: 1 },
      { hour: '2024-05-01 09:00', venueId: museum, entries: 1, crossRegion: 0 },
    ]);
    expect(await venueEntries(engine, '2024-05-02')).toEqual([]);
    await expect(venueEntries(engine, 'yesterday')).rejects.toThrow(/YYYY-MM-DD/);
  });
});
