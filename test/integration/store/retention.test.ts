/**
 * Retention (src/store/retention.ts, TAPFLOW_STORE_RETENTION_DAYS) on the real embedded engine:
 * the TTL the setting gives the five base tables, set once and changed only when it differs;
 * expired rows deleted while recent rows and the aggregates stay; and the statements that
 * docs/schema.md gives operators for the aggregates.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type ClickHouseEngine, RETAINED_TABLES, applyRetention, dateTime64, retentionTtl, settlementRows, tableTtl } from '../../../src/store/mod.js';
import { fare, testStore } from './fixtures.js';

const { freshDb } = testStore('tapflow-retention-');

const AGGREGATES = ['venue_entries_per_hour', 'risk_flags_per_minute', 'ledger_per_day', 'venue_decisions_per_5min'];
const DAY_MS = 86_400_000;

/** The table TTL of each table of the engine's database (undefined: none). */
async function ttls(engine: ClickHouseEngine): Promise<Record<string, string | undefined>> {
  const rows = await engine.query<{ name: string; engine_full: string }>('SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()');
  return Object.fromEntries(rows.map((r) => [r.name, tableTtl(r.engine_full)]));
}

async function mutations(engine: ClickHouseEngine): Promise<number> {
  const [row] = await engine.query<{ n: number }>('SELECT count() AS n FROM system.mutations WHERE database = currentDatabase()');
  return row!.n;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The ```sql blocks of docs/schema.md's "Retention" section, split into statements. */
function retentionStatements(): string[] {
  const doc = readFileSync(new URL('../../../docs/schema.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Retention'));
  return [...section.matchAll(/```sql\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1]!
      .split(';')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

describe('store - retention expressions', () => {
  it('retentionTtl - days as ClickHouse prints the TTL; 0 is none; anything else refused', () => {
    expect(retentionTtl(0)).toBeUndefined();
    expect(retentionTtl(30)).toBe('toDateTime(stored_time) + toIntervalDay(30)');
    for (const bad of [-1, 1.5, 36_501, Number.NaN]) expect(() => retentionTtl(bad), String(bad)).toThrow(/whole number of days/);
  });

  it('tableTtl - the TTL clause of an engine_full, or undefined', () => {
    expect(tableTtl('MergeTree PARTITION BY toYYYYMM(stored_time) ORDER BY (a, b) TTL toDateTime(stored_time) + toIntervalDay(7) SETTINGS index_granularity = 8192')).toBe(
      'toDateTime(stored_time) + toIntervalDay(7)',
    );
    expect(tableTtl('MergeTree ORDER BY a TTL d + toIntervalYear(1)')).toBe('d + toIntervalYear(1)');
    expect(tableTtl('MergeTree PARTITION BY toYYYYMM(stored_time) ORDER BY (a, b) SETTINGS index_granularity = 8192')).toBeUndefined();
  });
});

describe('store - retention on the embedded engine', () => {
  it('the default (0) keeps everything: no TTL, nothing altered', async () => {
    const engine = await freshDb('tf_retention_default');
    expect(await applyRetention(engine, 0)).toEqual([]);
    expect(Object.values(await ttls(engine)).filter(Boolean)).toEqual([]);
    expect(await mutations(engine)).toBe(0);
  });

  it('N days puts the TTL on the five base tables only, changes it once, and 0 removes it', async () => {
    const engine = await freshDb('tf_retention_set');
    expect([...RETAINED_TABLES].sort()).toEqual(['claims', 'decisions', 'ledger', 'risk_flags', 'settlements']);

    const set = await applyRetention(engine, 30);
    expect(set).toEqual(RETAINED_TABLES.map((table) => ({ table, from: undefined, to: 'toDateTime(stored_time) + toIntervalDay(30)' })));
    const after = await ttls(engine);
    for (const t of RETAINED_TABLES) expect(after[t], t).toBe('toDateTime(stored_time) + toIntervalDay(30)');
    for (const t of [...AGGREGATES, 'schema_migrations']) expect(after[t], t).toBeUndefined();
    const materialized = await mutations(engine); // MATERIALIZE TTL, one per table changed
    expect(materialized).toBe(RETAINED_TABLES.length);

    // A restart with the same setting changes nothing and rewrites nothing.
    expect(await applyRetention(engine, 30)).toEqual([]);
    expect(await mutations(engine)).toBe(materialized);

    const shorter = await applyRetention(engine, 7);
    expect(shorter.map((c) => [c.table, c.from, c.to])).toEqual(
      RETAINED_TABLES.map((t) => [t, 'toDateTime(stored_time) + toIntervalDay(30)', 'toDateTime(stored_time) + toIntervalDay(7)']),
    );

    expect((await applyRetention(engine, 0)).map((c) => c.to)).toEqual(RETAINED_TABLES.map(() => undefined));
    expect(Object.values(await ttls(engine)).filter(Boolean)).toEqual([]);
  });

  it('a TTL set by hand on a base table is replaced by the setting', async () => {
    const engine = await freshDb('tf_retention_hand');
    await engine.exec('ALTER TABLE claims MODIFY TTL toDateTime(stored_time) + INTERVAL 1 YEAR');
    expect(await applyRetention(engine, 0)).toEqual([{ table: 'claims', from: 'toDateTime(stored_time) + toIntervalYear(1)', to: undefined }]);
    expect((await ttls(engine)).claims).toBeUndefined();
  });

  it('expired rows go at the TTL merge; recent rows, the ledger balance and the aggregates stay', async () => {
    const engine = await freshDb('tf_retention_rows');
    const now = Date.now();
    const stored = (s: ReturnType<typeof fare>, storedMs: number, seq: number) =>
      settlementRows(s, seq).ledger.map((r) => ({ ...r, stored_time: dateTime64(storedMs) }));
    // Two settlements of the same business day: one stored 100 days ago, one now.
    await engine.insert('ledger', stored(fare('old', 500), now - 100 * DAY_MS, 1));
    await engine.insert('ledger', stored(fare('new', 300, { cardRegion: 'TJ' }), now, 2));
    expect(await engine.query('SELECT count() AS n FROM ledger')).toEqual([{ n: 6 }]);

    const retain = async (days: number) => {
      await applyRetention(engine, days);
      await waitFor('the MATERIALIZE TTL mutation', async () => (await engine.query<{ n: number }>('SELECT count() AS n FROM system.mutations WHERE database = currentDatabase() AND is_done = 0'))[0]!.n === 0);
      await engine.exec('OPTIMIZE TABLE ledger FINAL');
    };
    // 200 days keeps both; 30 days expires the one stored 100 days ago.
    await retain(200);
    expect(await engine.query('SELECT count() AS n FROM ledger')).toEqual([{ n: 6 }]);
    await retain(30);

    const left = await engine.query<{ settlement_id: string; debit: number; credit: number }>(
      'SELECT settlement_id, sum(debit_fen) AS debit, sum(credit_fen) AS credit FROM ledger GROUP BY settlement_id',
    );
    expect(left).toEqual([{ settlement_id: 'fare:new', debit: 600, credit: 600 }]);
    // The daily aggregate still has both settlements: 2 + 4 entries, 800 fen through the cards.
    const perDay = await engine.query<{ entries: number; debit: number; credit: number }>(
      'SELECT sum(entries) AS entries, sum(debit_fen) AS debit, sum(credit_fen) AS credit FROM ledger_per_day',
    );
    expect(perDay).toEqual([{ entries: 6, debit: 1100, credit: 1100 }]);
  });

  it('the statements docs/schema.md gives operators run, and the setting leaves the aggregates alone', async () => {
    const engine = await freshDb('tf_retention_doc');
    const statements = retentionStatements();
    const base = statements.filter((s) => s.includes('stored_time'));
    const aggregates = statements.filter((s) => !s.includes('stored_time'));
    expect(base).toHaveLength(1);
    expect(aggregates.map((s) => /^ALTER TABLE (\w+) MODIFY TTL /.exec(s)?.[1]).sort()).toEqual([...AGGREGATES].sort());

    // The base-table example is what the setting runs.
    await engine.exec(base[0]!.replace('<days>', '30'));
    expect((await ttls(engine)).decisions).toBe(retentionTtl(30));
    expect((await applyRetention(engine, 30)).map((c) => c.table)).not.toContain('decisions');

    for (const s of aggregates) await engine.exec(s);
    const byHand = await ttls(engine);
    expect(byHand).toMatchObject({
      venue_entries_per_hour: 'hour + toIntervalDay(400)',
      risk_flags_per_minute: 'minute + toIntervalDay(400)',
      ledger_per_day: 'business_day + toIntervalYear(10)',
    });
    await applyRetention(engine, 7);
    await applyRetention(engine, 0);
    const kept = await ttls(engine);
    for (const t of AGGREGATES) expect(kept[t], t).toBe(byHand[t]);

    const doc = readFileSync(new URL('../../../docs/schema.md', import.meta.url), 'utf8');
    expect(doc).toContain('`ALTER TABLE <table> REMOVE TTL;`');
    for (const t of AGGREGATES) await engine.exec(`ALTER TABLE ${t} REMOVE TTL`);
    for (const t of AGGREGATES) expect((await ttls(engine))[t], t).toBeUndefined();
  });
});
