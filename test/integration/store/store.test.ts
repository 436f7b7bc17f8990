/**
 * The storage layer against the real embedded engine (chdb): migrations, the row round trip of
 * every table, deduplicated retries (base tables and materialized views), high-water marks and
 * the read queries. One chdb data directory for this file (chdb binds one per process; vitest
 * runs each file in its own fork); each test gets its own database in it.
 */
import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ClickHouseEngine,
  MIGRATIONS_DIR,
  clearingReport,
  decisionRow,
  highWaterMarks,
  ledgerBalance,
  migrate,
  riskFlagRow,
  settlementRows,
  summary,
} from '../../../src/store/mod.js';
import type { Settlement } from '../../../src/domain/types.js';
import { DAY, T0, claimSplit, decision, fare, riskFlag, testStore } from './fixtures.js';

const { freshDb } = testStore('tapflow-store-');

async function count(engine: ClickHouseEngine, sql: string): Promise<number> {
  const rows = await engine.query<{ n: number }>(sql);
  return rows[0]!.n;
}

const BASE_TABLES = ['decisions', 'settlements', 'ledger', 'risk_flags', 'claims'];
const AGGREGATES = ['venue_entries_per_hour', 'risk_flags_per_minute', 'ledger_per_day'];
const MIGRATIONS = ['0001_base_tables', '0002_dashboard_aggregates', '0003_risk_flag_source_stream', '0004_fewer_views_on_hot_tables', '0005_previous_card_tokens', '0006_alert_aggregates'];
/** 0006's aggregates for the alerts (docs/schema.md): their engines. */
const ALERT_AGGREGATES: Record<string, string> = { venue_decisions_per_5min: 'SummingMergeTree', terminal_last_seen: 'AggregatingMergeTree' };

describe('store - migrations', () => {
  it('applies every migration once, in order, and records it', async () => {
    const engine = await freshDb('tf_migrate', { migrate: false });
    expect(await migrate(engine)).toEqual(MIGRATIONS);
    expect(await migrate(engine)).toEqual([]);

    const recorded = await engine.query<{ version: string; name: string }>('SELECT version, name FROM schema_migrations FINAL ORDER BY version');
    expect(recorded).toEqual(MIGRATIONS.map((name) => ({ version: name.slice(0, 4), name })));
    const tables = await engine.query<{ name: string; engine: string }>(
      'SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name',
    );
    const byName = Object.fromEntries(tables.map((t) => [t.name, t.engine]));
    for (const t of BASE_TABLES) expect(byName[t], t).toBe('MergeTree');
    for (const t of AGGREGATES) {
      expect(byName[t], t).toBe('SummingMergeTree');
      expect(byName[`${t}_mv`], `${t}_mv`).toBe('MaterializedView');
    }
    for (const [t, e] of Object.entries(ALERT_AGGREGATES)) {
      expect(byName[t], t).toBe(e);
      expect(byName[`${t}_mv`], `${t}_mv`).toBe('MaterializedView');
    }
    // 0004: the aggregates nothing read are gone, views and tables.
    expect(Object.keys(byName).filter((t) => /^(taps|fares)_per_minute/.test(t))).toEqual([]);
    expect(Object.values(byName).filter((e) => e === 'MaterializedView')).toHaveLength(AGGREGATES.length + Object.keys(ALERT_AGGREGATES).length);
  });

  it('applies only new files, and refuses an applied file that was edited', async () => {
    const engine = await freshDb('tf_migrate_edit', { migrate: false });
    const dir = mkdtempSync(join(tmpdir(), 'tapflow-migrations-'));
    try {
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      expect(await migrate(engine, { dir })).toHaveLength(MIGRATIONS.length);

      writeFileSync(join(dir, '0999_extra.sql'), '-- a test table;\nCREATE TABLE IF NOT EXISTS extra (x UInt8)\nENGINE = MergeTree ORDER BY x;\n');
      expect(await migrate(engine, { dir })).toEqual(['0999_extra']);
      expect(await migrate(engine, { dir })).toEqual([]);

      appendFileSync(join(dir, '0002_dashboard_aggregates.sql'), '\nSELECT 1;\n');
      await expect(migrate(engine, { dir })).rejects.toMatchObject({ code: 'TF_STORE_MIGRATION', message: expect.stringContaining('0002_dashboard_aggregates') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('store - migrations on an existing store', () => {
  it('0003 to 0006 apply on a store made by 0001 and 0002: its flags came from RISK, the unread aggregates go', async () => {
    const engine = await freshDb('tf_migrate_old', { migrate: false });
    const dir = mkdtempSync(join(tmpdir(), 'tapflow-migrations-'));
    try {
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      for (const name of MIGRATIONS.slice(2)) rmSync(join(dir, `${name}.sql`));
      expect(await migrate(engine, { dir })).toEqual(MIGRATIONS.slice(0, 2));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // What the sink stored before bundles: flags without a source stream, taps counted per minute.
    const { source_stream: _, ...oldFlag } = riskFlagRow(riskFlag(1), 40);
    await engine.insert('risk_flags', [oldFlag], { dedupToken: 'RISK:40-40' });
    // (and decisions without previous_card_tokens, 0005)
    const { previous_card_tokens: _p, ...oldDecision } = decisionRow(decision(1), 12);
    await engine.insert('decisions', [oldDecision], { dedupToken: 'DECISIONS:12-12' });
    expect(await count(engine, 'SELECT sum(taps) AS n FROM taps_per_minute')).toBe(1);

    expect(await migrate(engine)).toEqual(MIGRATIONS.slice(2));
    expect(await engine.query('SELECT event_id, previous_card_tokens FROM decisions')).toEqual([{ event_id: decision(1).eventId, previous_card_tokens: [] }]);
    expect(await engine.query('SELECT flag_id, source_stream, stream_seq FROM risk_flags')).toEqual([{ flag_id: 'flag-1', source_stream: 'RISK', stream_seq: 40 }]);
    const tables = await engine.query<{ name: string }>("SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE '%per_minute%' ORDER BY name");
    expect(tables.map((t) => t.name)).toEqual(['risk_flags_per_minute', 'risk_flags_per_minute_mv']);

    // The sink carries on: a flag from a decision bundle, with a sequence of another stream.
    await engine.insert('risk_flags', [riskFlagRow(riskFlag(2), 7, 'DECISIONS')], { dedupToken: 'risk_flags:DECISIONS:7-7:1' });
    expect(await highWaterMarks(engine)).toMatchObject({ 'risk_flags:RISK': 40, 'risk_flags:DECISIONS': 7, 'risk_flags:SETTLEMENTS': 0, 'decisions:DECISIONS': 12 });
    expect(await count(engine, 'SELECT sum(flags) AS n FROM risk_flags_per_minute')).toBe(2);
    expect(await count(engine, 'SELECT count() AS n FROM decisions')).toBe(1);
  });
});

describe('store - row round trip', () => {
  it('stores a decision column for column, times in Beijing time', async () => {
    const engine = await freshDb('tf_decision');
    const d = decision(7, {
      offline: true,
      amountFen: 300,
      verdict: 'REJECTED',
      reason: 'PASSBACK',
      riskRules: ['PASSBACK', 'VELOCITY'],
      deviceTime: T0 + 1234,
    });
    const row = decisionRow(d, 42);
    await engine.insert('decisions', [row]);

    const [stored] = await engine.query<Record<string, unknown>>(
      `SELECT * EXCEPT (stored_time),
              toUnixTimestamp64Milli(device_time) AS device_ms, toUnixTimestamp64Milli(ingest_time) AS ingest_ms,
              toUnixTimestamp64Milli(decision_time) AS decision_ms, stored_time > device_time AS stored_later
       FROM decisions`,
    );
    expect(stored).toEqual({
      ...row,
      device_time: '2024-05-01 08:00:01.234',
      ingest_time: '2024-05-01 08:00:07.040',
      decision_time: '2024-05-01 08:00:07.055',
      device_ms: d.deviceTime,
      ingest_ms: d.ingestTime,
      decision_ms: d.decisionTime,
      stored_later: 1,
    });
    expect(JSON.parse(stored!['trace'] as string)).toEqual(d.trace);
    expect(stored!['offline']).toBe(1);
    expect(stored!['stream_seq']).toBe(42);
  });

  it('stores a medical settlement with its ledger and claim split', async () => {
    const engine = await freshDb('tf_settlement');
    const s: Settlement = {
      ...fare('clinic-7:1', 1_250, { cardRegion: 'HE', terminalRegion: 'BJ', operatorId: 'hospital:BJ:协和' }),
      settlementId: 'claim:c-1',
      kind: 'MEDICAL',
      scene: 'MEDICAL',
      network: '',
      venueId: 'clinic:BJ:协和',
      entryVenueId: '',
      distanceM: 0,
      claim: claimSplit(),
    };
    const rows = settlementRows(s, 9, { personToken: 'person-tok-1' });
    await engine.insert('settlements', [rows.settlement]);
    await engine.insert('ledger', rows.ledger);
    await engine.insert('claims', [rows.claim!]);

    const [settlement] = await engine.query<Record<string, unknown>>(
      'SELECT * EXCEPT (stored_time, device_time, ingest_time, settle_time), toUnixTimestamp64Milli(settle_time) AS settle_ms FROM settlements',
    );
    const { device_time: _d, ingest_time: _i, settle_time: _s, ...plain } = rows.settlement;
    expect(settlement).toEqual({ ...plain, settle_ms: s.settleTime });
    expect(settlement).toMatchObject({ claim_id: 'c-1', hifp_pay: 7_000, acct_pay: 1_750, cash_payamt: 1_250, business_day: DAY });

    const ledger = await engine.query('SELECT * EXCEPT (stored_time, device_time) FROM ledger ORDER BY entry_id');
    expect(ledger).toEqual(rows.ledger.map(({ device_time: _, ...l }) => l));
    expect(ledger).toHaveLength(4);

    const [claim] = await engine.query<Record<string, unknown>>('SELECT * EXCEPT (stored_time, device_time) FROM claims');
    const { device_time: _cd, ...claimPlain } = rows.claim!;
    expect(claim).toEqual(claimPlain);
    expect(claim).toMatchObject({ insured_region: 'HE', treatment_region: 'BJ', institution_id: 'clinic:BJ:协和', person_token: 'person-tok-1' });
  });

  it('stores a risk flag', async () => {
    const engine = await freshDb('tf_risk');
    const row = riskFlagRow(riskFlag(3, { severity: 'CRITICAL', ruleId: 'IMPOSSIBLE_TRAVEL' }), 5);
    await engine.insert('risk_flags', [row]);
    const stored = await engine.query(
      `SELECT * EXCEPT (stored_time, device_time, flag_time),
              toUnixTimestamp64Milli(device_time) AS device_ms, toUnixTimestamp64Milli(flag_time) AS flag_ms FROM risk_flags`,
    );
    const { device_time: _d, flag_time: _f, ...plain } = row;
    expect(stored).toEqual([{ ...plain, device_ms: T0 + 3000, flag_ms: T0 + 3070 }]);
  });

  it('keeps 64-bit integers beyond 2^53 exact, as strings', async () => {
    const engine = await freshDb('tf_wide');
    const [r] = await engine.query<{ big: unknown; small: unknown; arr: unknown; n: unknown }>(
      'SELECT toInt64(9007199254740993) AS big, toUInt64(5) AS small, [toInt64(1), toInt64(-2)] AS arr, toNullable(toInt64(-7)) AS n',
    );
    expect(r).toEqual({ big: '9007199254740993', small: 5, arr: [1, -2], n: -7 });
  });

  it('binds query parameters server-side', async () => {
    const engine = await freshDb('tf_params');
    await engine.insert('decisions', [decisionRow(decision(1), 1), decisionRow(decision(2, { cardToken: "o'brien" }), 2)]);
    const rows = await engine.query<{ seq: number }>('SELECT seq FROM decisions WHERE card_token = {tok:String}', { tok: "o'brien" });
    expect(rows).toEqual([{ seq: 2 }]);
  });
});

describe('store - deduplicated retries', () => {
  it('drops a repeated insert with the same token, in the table and in its views', async () => {
    const engine = await freshDb('tf_dedup');
    const decisions = Array.from({ length: 50 }, (_, i) =>
      decisionRow(
        decision(i + 1, {
          scene: i % 5 === 0 ? 'CULTURE' : 'RAIL',
          venueId: i % 5 === 0 ? 'museum:BJ:故宫' : 'bj-subway:西直门',
          verdict: i % 7 === 0 ? 'REJECTED' : 'ACCEPTED',
          reason: i % 7 === 0 ? 'HOTLIST_LOST' : 'OK',
          deviceTime: T0 + i * 7_000,
        }),
        100 + i,
      ),
    );
    const settlements = Array.from({ length: 20 }, (_, i) => settlementRows(fare(`e${i}`, 300 + i), 500 + i));
    const flags = Array.from({ length: 5 }, (_, i) => riskFlagRow(riskFlag(i), 900 + i));

    const insertAll = async (suffix: string) => {
      await engine.insert('decisions', decisions, { dedupToken: `DECISIONS:100-149${suffix}` });
      await engine.insert('settlements', settlements.map((s) => s.settlement), { dedupToken: `SETTLEMENTS:500-519${suffix}` });
      await engine.insert('ledger', settlements.flatMap((s) => s.ledger), { dedupToken: `SETTLEMENTS:500-519${suffix}` });
      await engine.insert('risk_flags', flags, { dedupToken: `RISK:900-904${suffix}` });
    };
    const snapshot = async () => ({
      decisions: await count(engine, 'SELECT count() AS n FROM decisions'),
      culture: await count(engine, 'SELECT sum(entries) AS n FROM venue_entries_per_hour'),
      settlements: await count(engine, 'SELECT count() AS n FROM settlements'),
      ledgerRows: await count(engine, 'SELECT count() AS n FROM ledger'),
      ledgerDebits: await count(engine, 'SELECT sum(debit_fen) AS n FROM ledger_per_day'),
      flags: await count(engine, 'SELECT sum(flags) AS n FROM risk_flags_per_minute'),
    });

    await insertAll('');
    const once = await snapshot();
    const fareFen = settlements.reduce((n, s) => n + s.settlement.amount_fen, 0);
    expect(once).toEqual({
      decisions: 50,
      culture: 8, // i % 5 === 0 is a museum entry, minus the two rejected (i = 0, 35)
      settlements: 20,
      ledgerRows: 40,
      ledgerDebits: fareFen,
      flags: 5,
    });

    await insertAll(''); // the sink retrying after a lost response
    expect(await snapshot()).toEqual(once);

    // The token alone decides: the same rows under a new token are a new insert.
    await engine.insert('risk_flags', flags, { dedupToken: 'RISK:900-904:again' });
    expect(await count(engine, 'SELECT count() AS n FROM risk_flags')).toBe(10);
    expect(await count(engine, 'SELECT sum(flags) AS n FROM risk_flags_per_minute')).toBe(10);
  });

  it('aggregates agree with the base tables', async () => {
    const engine = await freshDb('tf_aggregates');
    const rows = Array.from({ length: 300 }, (_, i) =>
      settlementRows(fare(`e${i}`, 100 + (i % 13), { cardRegion: i % 3 === 0 ? 'TJ' : 'BJ', businessDay: i % 2 === 0 ? DAY : '2024-05-02' }), i + 1),
    );
    // Two batches that share days and accounts: the view sums across inserts.
    await engine.insert('ledger', rows.slice(0, 150).flatMap((r) => r.ledger), { dedupToken: 'S:1-150' });
    await engine.insert('ledger', rows.slice(150).flatMap((r) => r.ledger), { dedupToken: 'S:151-300' });
    const fromView = await engine.query(
      `SELECT toString(business_day) AS day, account, sum(entries) AS n, sum(debit_fen) AS debit, sum(credit_fen) AS credit
       FROM ledger_per_day GROUP BY day, account ORDER BY day, account`,
    );
    const fromBase = await engine.query(
      `SELECT toString(business_day) AS day, account, count() AS n, sum(debit_fen) AS debit, sum(credit_fen) AS credit
       FROM ledger GROUP BY day, account ORDER BY day, account`,
    );
    expect(fromView).toEqual(fromBase);
    expect(new Set(fromView.map((r) => (r as { account: string }).account))).toEqual(
      new Set(['card:BJ', 'card:TJ', 'clearing:TJ:BJ', 'receivable:BJ', 'operator:bj-subway']),
    );
    expect(fromView).toHaveLength(10); // 5 accounts on each of 2 days
  });
});

describe('store - high-water marks', () => {
  it('is 0 for empty tables and max(stream_seq) per table and source stream otherwise', async () => {
    const engine = await freshDb('tf_hwm');
    const zero = {
      'decisions:DECISIONS': 0,
      'settlements:SETTLEMENTS': 0,
      'ledger:SETTLEMENTS': 0,
      'claims:SETTLEMENTS': 0,
      'risk_flags:DECISIONS': 0,
      'risk_flags:SETTLEMENTS': 0,
      'risk_flags:RISK': 0,
    };
    expect(await highWaterMarks(engine)).toEqual(zero);

    await engine.insert('decisions', [decisionRow(decision(1), 17), decisionRow(decision(2), 12)]);
    const s = settlementRows(fare('e1', 500), 31);
    await engine.insert('settlements', [s.settlement]);
    await engine.insert('ledger', s.ledger);
    await engine.insert('risk_flags', [riskFlagRow(riskFlag(1), 8)]);
    // a large sequence stays exact
    await engine.insert('risk_flags', [riskFlagRow(riskFlag(2), 2 ** 40 + 3)]);

    expect(await highWaterMarks(engine)).toEqual({
      ...zero,
      'decisions:DECISIONS': 17,
      'settlements:SETTLEMENTS': 31,
      'ledger:SETTLEMENTS': 31,
      'risk_flags:RISK': 2 ** 40 + 3,
    });
  });
});

describe('store - read queries', () => {
  let engine: ClickHouseEngine;

  beforeAll(async () => {
    engine = await freshDb('tf_queries');
    const decisions = [
      ...Array.from({ length: 12 }, (_, i) => decision(i + 1)),
      decision(13, { verdict: 'REJECTED', reason: 'HOTLIST_LOST' }),
      decision(14, { verdict: 'REJECTED', reason: 'HOTLIST_LOST' }),
      decision(15, { verdict: 'REJECTED', reason: 'VENUE_NOT_LISTED' }),
    ];
    await engine.insert('decisions', decisions.map((d, i) => decisionRow(d, i + 1)), { dedupToken: 'D:1-15' });

    const settlements = [
      fare('a', 500), // BJ card, BJ subway
      fare('b', 400, { cardRegion: 'TJ', terminalRegion: 'BJ' }), // TJ owes BJ 400
      fare('c', 300, { cardRegion: 'BJ', terminalRegion: 'TJ', network: 'tj-metro', operatorId: 'tj-metro' }), // BJ owes TJ 300
      fare('d', 200, { cardRegion: 'HE', terminalRegion: 'TJ', network: 'tj-bus', scene: 'BUS', operatorId: 'tj-bus' }), // HE owes TJ 200
      fare('e', 250, { cardRegion: 'TJ', terminalRegion: 'BJ', businessDay: '2024-05-02', ingestTime: T0 }), // another day, ingested first
      { ...fare('f', -100), kind: 'ADJUSTMENT' as const, settlementId: 'adj:f', adjustsEventId: 'a', ledger: [
        { entryId: 'f:1', account: 'operator:bj-subway', debitFen: 100, creditFen: 0 },
        { entryId: 'f:2', account: 'card:BJ', debitFen: 0, creditFen: 100 },
      ] },
    ];
    const rows = settlements.map((s, i) => settlementRows(s, 100 + i));
    await engine.insert('settlements', rows.map((r) => r.settlement), { dedupToken: 'S:100-105' });
    await engine.insert('ledger', rows.flatMap((r) => r.ledger), { dedupToken: 'S:100-105' });
    await engine.insert('risk_flags', [
      riskFlagRow(riskFlag(1), 1),
      riskFlagRow(riskFlag(2), 2),
      riskFlagRow(riskFlag(3, { ruleId: 'QR_REPLAY', severity: 'CRITICAL' }), 3),
    ]);
  });

  it('summary - exact counts and fen sums', async () => {
    expect(await summary(engine)).toEqual({
      taps: 15,
      byVerdict: { ACCEPTED: 12, REJECTED: 3 },
      topReasons: [
        { reason: 'HOTLIST_LOST', taps: 2 },
        { reason: 'VENUE_NOT_LISTED', taps: 1 },
      ],
      fares: [
        { terminalRegion: 'BJ', network: 'bj-subway', settlements: 4, amountFen: 500 + 400 + 250 - 100 },
        { terminalRegion: 'TJ', network: 'tj-bus', settlements: 1, amountFen: 200 },
        { terminalRegion: 'TJ', network: 'tj-metro', settlements: 1, amountFen: 300 },
      ],
      regionParts: [
        { terminalRegion: 'BJ', scene: 'RAIL', kind: 'ADJUSTMENT', settlements: 1, amountFen: -100 },
        { terminalRegion: 'BJ', scene: 'RAIL', kind: 'FARE', settlements: 3, amountFen: 500 + 400 + 250 },
        { terminalRegion: 'TJ', scene: 'BUS', kind: 'FARE', settlements: 1, amountFen: 200 },
        { terminalRegion: 'TJ', scene: 'RAIL', kind: 'FARE', settlements: 1, amountFen: 300 },
      ],
      settlementsByKind: [
        { kind: 'ADJUSTMENT', settlements: 1, amountFen: -100 },
        { kind: 'FARE', settlements: 5, amountFen: 1650 },
      ],
      settlements: 6,
      ledger: { entries: 2 + 4 + 4 + 4 + 4 + 2, debitFen: 500 + 800 + 600 + 400 + 500 + 100, creditFen: 2900 },
      riskFlags: [
        { ruleId: 'VELOCITY', severity: 'WARNING', flags: 2 },
        { ruleId: 'QR_REPLAY', severity: 'CRITICAL', flags: 1 },
      ],
    });
  });

  it('summary since a time - the events ingested since then (one demo run), ledger by their settlements', async () => {
    // Decisions 3..15 (ingested T0 + n s + 40 ms), every settlement but e (ingested at T0), the
    // flags raised since (flag 3 at T0 + 3,070 ms).
    const s = await summary(engine, { sinceMs: T0 + 2_500 });
    expect(s).toMatchObject({
      sinceMs: T0 + 2_500,
      taps: 13,
      byVerdict: { ACCEPTED: 10, REJECTED: 3 },
      fares: [
        { terminalRegion: 'BJ', network: 'bj-subway', settlements: 3, amountFen: 500 + 400 - 100 },
        { terminalRegion: 'TJ', network: 'tj-bus', settlements: 1, amountFen: 200 },
        { terminalRegion: 'TJ', network: 'tj-metro', settlements: 1, amountFen: 300 },
      ],
      settlements: 5,
      ledger: { entries: 2 + 4 + 4 + 4 + 2, debitFen: 500 + 800 + 600 + 400 + 100, creditFen: 2400 },
      riskFlags: [{ ruleId: 'QR_REPLAY', severity: 'CRITICAL', flags: 1 }],
    });
    expect(s.regionParts.filter((p) => p.terminalRegion === 'BJ')).toEqual([
      { terminalRegion: 'BJ', scene: 'RAIL', kind: 'ADJUSTMENT', settlements: 1, amountFen: -100 },
      { terminalRegion: 'BJ', scene: 'RAIL', kind: 'FARE', settlements: 2, amountFen: 900 },
    ]);
    // The boundary is inclusive, to the millisecond.
    expect((await summary(engine, { sinceMs: T0 + 15_040 })).taps).toBe(1);
    expect((await summary(engine, { sinceMs: T0 + 15_041 })).taps).toBe(0);
  });

  it('ledgerBalance - debits equal credits overall, per day and per settlement', async () => {
    expect(await ledgerBalance(engine)).toEqual({
      entries: 20,
      debitFen: 2900,
      creditFen: 2900,
      balanced: true,
      days: [
        { businessDay: '2024-05-01', entries: 16, debitFen: 2400, creditFen: 2400, balanced: true },
        { businessDay: '2024-05-02', entries: 4, debitFen: 500, creditFen: 500, balanced: true },
      ],
      unbalancedSettlements: 0,
    });
    // An unbalanced posting is seen, per settlement and per day.
    const bad = await freshDb('tf_unbalanced');
    const s = settlementRows(fare('x', 100), 1);
    await bad.insert('ledger', [s.ledger[0]!]);
    const balance = await ledgerBalance(bad);
    expect(balance).toMatchObject({ debitFen: 100, creditFen: 0, balanced: false, unbalancedSettlements: 1 });
    expect(balance.days[0]!.balanced).toBe(false);
  });

  it('clearingReport - accounts of the day and net positions between regions', async () => {
    const report = await clearingReport(engine, DAY);
    expect(report.totals).toEqual({ debitFen: 2400, creditFen: 2400, balanced: true });
    expect(report.accounts.find((a) => a.account === 'card:BJ')).toEqual({ account: 'card:BJ', entries: 3, debitFen: 800, creditFen: 100, netFen: 700 });
    expect(report.accounts.find((a) => a.account === 'clearing:TJ:BJ')).toEqual({ account: 'clearing:TJ:BJ', entries: 1, debitFen: 0, creditFen: 400, netFen: -400 });
    // TJ owes BJ 400 and BJ owes TJ 300 → TJ owes BJ 100 net; HE owes TJ 200.
    expect(report.positions).toEqual([
      { debtor: 'TJ', creditor: 'BJ', amountFen: 100 },
      { debtor: 'HE', creditor: 'TJ', amountFen: 200 },
    ]);
    expect(report.regionNet).toEqual({ BJ: 100, TJ: 100, HE: -200 });
    expect(report.unparsedClearingAccounts).toEqual([]);

    const nextDay = await clearingReport(engine, '2024-05-02');
    expect(nextDay.positions).toEqual([{ debtor: 'TJ', creditor: 'BJ', amountFen: 250 }]);
    expect((await clearingReport(engine, '2024-06-01')).accounts).toEqual([]);
    await expect(clearingReport(engine, '1 May')).rejects.toThrow(RangeError);
  });
});
