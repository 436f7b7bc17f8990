/**
 * The CSV insert payload through ClickHouse and back (real chdb): edge values stay exact on both
 * paths (rows.ts writers into an InsertBatch, and plain row objects), a retried insert with the
 * same token is dropped with this format (table and views), a bundle's rows share their
 * message's stream_seq, and the server engine's insert — @clickhouse/client sending the same
 * bytes — works, run here on chdb's in-process connection for want of a server.
 */
import { type ClickHouseClientConfigOptions, createClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import { describe, expect, it } from 'vitest';
import type { Decision, Settlement } from '../../../src/domain/types.js';
import {
  type ClickHouseEngine,
  InsertBatch,
  decisionRow,
  dedupToken,
  highWaterMarks,
  riskFlagRow,
  settlementRows,
  writeClaim,
  writeDecision,
  writeLedger,
  writeRiskFlag,
  writeSettlement,
} from '../../../src/store/mod.js';
import { serverClientOptions, serverEngineOnClient } from '../../../src/store/server-engine.js';
import { T0, claimSplit, decision, fare, riskFlag, testStore } from './fixtures.js';

const { freshDb, dataDir } = testStore('tapflow-encoding-');

/** Strings that break naive encoders: quotes, separators, escapes, blanks, NULL spellings, scripts. */
const NASTY = ['', ' lead and trail ', 'a,b', 'say "hi"', '""', "it's", 'back\\slash\\', '\\N', 'NULL', 'line\nbreak', 'cr\r\nlf', 'tab\there', 'nul\0byte', '[1]', "['x']", '西直门', '😀 emoji', '\u2028'];

/** Decisions whose every column takes edge values. */
function edgeDecisions(): Decision[] {
  return NASTY.map((s, i) =>
    decision(i + 1, {
      eventId: `ev-${i}:${s}`,
      terminalId: `t-${s}`,
      seq: i === 0 ? 0 : Number.MAX_SAFE_INTEGER - i,
      operatorId: s,
      venueId: `bj-subway:西直门${s}`,
      cardToken: s,
      amountFen: [0, -1, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 250][i % 5]!,
      deviceTime: [0, 1, 999, 1_700_000_000_007, 1_714_521_600_999, 4_102_444_799_999][i % 6]!,
      ingestTime: T0 + i,
      decisionTime: T0 + 1000 + i,
      offline: i % 2 === 0,
      partition: 4_294_967_295 - i,
      reason: s,
      trace: i % 3 === 0 ? [] : [{ rule: `r${s}`, version: s, detail: `detail ${s} "quoted" \\ ${s}` }, { rule: 'hotlist', version: 'v1', detail: 'not listed' }],
      riskRules: i % 4 === 0 ? [] : [s, `rule-${i}`, 'a"b\'c\\d'],
    }),
  );
}

const DECISION_READBACK = `SELECT * EXCEPT (stored_time, device_time, ingest_time, decision_time),
  toUnixTimestamp64Milli(device_time) AS device_ms, toUnixTimestamp64Milli(ingest_time) AS ingest_ms,
  toUnixTimestamp64Milli(decision_time) AS decision_ms
FROM decisions ORDER BY stream_seq, event_id`;

/** What a stored decision must read back as. */
function expectedDecision(d: Decision, streamSeq: number): Record<string, unknown> {
  const { device_time: _d, ingest_time: _i, decision_time: _t, ...plain } = decisionRow(d, streamSeq);
  return { ...plain, device_ms: d.deviceTime, ingest_ms: d.ingestTime, decision_ms: d.decisionTime };
}

describe('store - CSV payload round trip', () => {
  it('decisions with edge values come back exact, from a batch and from row objects alike', async () => {
    const viaBatch = await freshDb('enc_batch');
    const viaObjects = await freshDb('enc_objects');
    const ds = edgeDecisions();
    const batch = new InsertBatch();
    ds.forEach((d, i) => writeDecision(batch, d, i === 0 ? 0 : Number.MAX_SAFE_INTEGER - i));
    await viaBatch.insert('decisions', batch, { dedupToken: 'edge' });
    await viaObjects.insert('decisions', ds.map((d, i) => decisionRow(d, i === 0 ? 0 : Number.MAX_SAFE_INTEGER - i)), { dedupToken: 'edge' });

    const stored = await viaBatch.query<Record<string, unknown>>(DECISION_READBACK);
    const expected = ds.map((d, i) => expectedDecision(d, i === 0 ? 0 : Number.MAX_SAFE_INTEGER - i));
    const byEvent = (rows: Record<string, unknown>[]) => [...rows].sort((a, b) => String(a['event_id']).localeCompare(String(b['event_id'])));
    expect(byEvent(stored)).toEqual(byEvent(expected));
    expect(await viaObjects.query(DECISION_READBACK)).toEqual(stored);
    for (const row of stored) {
      const d = ds.find((x) => x.eventId === row['event_id'])!;
      expect(JSON.parse(String(row['trace']))).toEqual(d.trace);
    }
  });

  it('settlements, ledger, claims and risk flags come back exact from a batch', async () => {
    const engine = await freshDb('enc_settle');
    const s: Settlement = {
      ...fare('clinic "7":1', -Number.MAX_SAFE_INTEGER, { cardRegion: 'HE', terminalRegion: 'BJ', operatorId: 'hospital:BJ:协和', deviceTime: 1_714_521_600_001 }),
      kind: 'MEDICAL',
      scene: 'MEDICAL',
      distanceM: 12.6,
      trace: [{ rule: 'split', version: 'HE-2024', detail: 'deductible "met"\\n' }],
      claim: claimSplit({ claimId: 'c-1,"x"', medfee_sumamt: Number.MAX_SAFE_INTEGER, fulamt_ownpay_amt: 0, preselfpay_amt: -5 }),
    };
    const f = riskFlag(1, { detail: 'a,"b"\n西', key: '\\N' });
    const batches = { settlements: new InsertBatch(), ledger: new InsertBatch(), claims: new InsertBatch(), risk_flags: new InsertBatch() };
    writeSettlement(batches.settlements, s, 2 ** 53 - 1);
    expect(writeLedger(batches.ledger, s, 2 ** 53 - 1)).toBe(4);
    expect(writeClaim(batches.claims, s, 2 ** 53 - 1, 'person "1"')).toBe(true);
    writeRiskFlag(batches.risk_flags, f, 7, 'SETTLEMENTS');
    for (const [table, b] of Object.entries(batches)) await engine.insert(table, b, { dedupToken: `t:${table}` });

    const rows = settlementRows(s, 2 ** 53 - 1, { personToken: 'person "1"' });
    const drop = <T extends Record<string, unknown>>(r: T, ...cols: string[]) => Object.fromEntries(Object.entries(r).filter(([k]) => !cols.includes(k)));
    expect(await engine.query('SELECT * EXCEPT (stored_time, device_time, ingest_time, settle_time) FROM settlements')).toEqual([
      drop(rows.settlement, 'device_time', 'ingest_time', 'settle_time'),
    ]);
    expect(await engine.query('SELECT * EXCEPT (stored_time) FROM ledger ORDER BY entry_id')).toEqual(
      rows.ledger.map((l) => ({ ...l, device_time: '2024-05-01 08:00:00.001' })),
    );
    expect(await engine.query('SELECT * EXCEPT (stored_time, device_time) FROM claims')).toEqual([drop(rows.claim!, 'device_time')]);
    expect(await engine.query('SELECT * EXCEPT (stored_time, device_time, flag_time) FROM risk_flags')).toEqual([
      drop(riskFlagRow(f, 7, 'SETTLEMENTS'), 'device_time', 'flag_time'),
    ]);
  });

  it('plain rows: 64-bit values as decimal strings, NULL, booleans, floats, nested arrays, dates', async () => {
    const engine = await freshDb('enc_generic');
    await engine.exec(
      `CREATE TABLE generic (u UInt64, i Int64, n Nullable(String), b Bool, flag UInt8, x Float64, nested Array(Array(Int64)),
         day Date, t DateTime64(3, 'Asia/Shanghai'), d String DEFAULT 'dflt') ENGINE = MergeTree ORDER BY u`,
    );
    await engine.insert('generic', [
      { u: '18446744073709551615', i: '-9223372036854775808', n: null, b: true, flag: 0, x: 0.1, nested: [[1, -2], []], day: '2024-02-29', t: '0.001', d: null },
      { u: 0, i: Number.MIN_SAFE_INTEGER, n: 'x', b: false, flag: 1, x: -1.5e-7, nested: [], day: '1970-01-01', t: '1714521600.999', d: 'given' },
    ]);
    expect(
      await engine.query(
        "SELECT toString(u) AS u, toString(i) AS i, n, b, flag, x, nested, toString(day) AS day, toUnixTimestamp64Milli(t) AS ms, d FROM generic ORDER BY u DESC",
      ),
    ).toEqual([
      { u: '18446744073709551615', i: '-9223372036854775808', n: null, b: true, flag: 0, x: 0.1, nested: [[1, -2], []], day: '2024-02-29', ms: 1, d: 'dflt' },
      { u: '0', i: String(Number.MIN_SAFE_INTEGER), n: 'x', b: false, flag: 1, x: -1.5e-7, nested: [], day: '1970-01-01', ms: 1_714_521_600_999, d: 'given' },
    ]);
  });
});

describe('store - deduplicated retries of a batch', () => {
  it('drops a retried insert with the same token, in the table and in its views', async () => {
    const engine = await freshDb('enc_dedup');
    // One DECISIONS message (a bundle) of 30 decisions, a museum entry among every third, and
    // risk flags inside it; one SETTLEMENTS bundle; flags alone on RISK with overlapping seqs.
    const bundle = Array.from({ length: 30 }, (_, i) =>
      decision(i + 1, { scene: i % 3 === 0 ? 'CULTURE' : 'RAIL', venueId: i % 3 === 0 ? 'museum:BJ:故宫' : 'bj-subway:西直门', direction: 'SINGLE' }),
    );
    const settlements = Array.from({ length: 10 }, (_, i) => fare(`e${i}`, 300 + i));
    const insertAll = async () => {
      const b = { decisions: new InsertBatch(), flagsD: new InsertBatch(), settlements: new InsertBatch(), ledger: new InsertBatch(), flagsS: new InsertBatch(), flagsR: new InsertBatch() };
      for (const d of bundle) writeDecision(b.decisions, d, 500);
      for (let i = 0; i < 4; i++) writeRiskFlag(b.flagsD, riskFlag(i, { flagId: `d${i}` }), 500, 'DECISIONS');
      for (const s of settlements) {
        writeSettlement(b.settlements, s, 500);
        writeLedger(b.ledger, s, 500);
      }
      writeRiskFlag(b.flagsS, riskFlag(9, { flagId: 's9' }), 500, 'SETTLEMENTS');
      for (let i = 0; i < 3; i++) writeRiskFlag(b.flagsR, riskFlag(i, { flagId: `r${i}` }), 499 + i, 'RISK');
      await engine.insert('decisions', b.decisions, { dedupToken: dedupToken('decisions', 'DECISIONS', 500, 500, b.decisions.rows) });
      await engine.insert('risk_flags', b.flagsD, { dedupToken: dedupToken('risk_flags', 'DECISIONS', 500, 500, b.flagsD.rows) });
      await engine.insert('settlements', b.settlements, { dedupToken: dedupToken('settlements', 'SETTLEMENTS', 500, 500, b.settlements.rows) });
      await engine.insert('ledger', b.ledger, { dedupToken: dedupToken('ledger', 'SETTLEMENTS', 500, 500, b.ledger.rows) });
      await engine.insert('risk_flags', b.flagsS, { dedupToken: dedupToken('risk_flags', 'SETTLEMENTS', 500, 500, b.flagsS.rows) });
      await engine.insert('risk_flags', b.flagsR, { dedupToken: dedupToken('risk_flags', 'RISK', 499, 501, b.flagsR.rows) });
    };
    const snapshot = async () =>
      engine.query(
        `SELECT (SELECT count() FROM decisions) AS decisions, (SELECT sum(entries) FROM venue_entries_per_hour) AS entries,
                (SELECT count() FROM settlements) AS settlements, (SELECT count() FROM ledger) AS ledger,
                (SELECT sum(debit_fen) FROM ledger_per_day) AS debits, (SELECT count() FROM risk_flags) AS flags,
                (SELECT sum(flags) FROM risk_flags_per_minute) AS flag_aggregate`,
      );
    await insertAll();
    const once = await snapshot();
    const fen = settlements.reduce((n, s) => n + s.amountFen, 0);
    // The three streams' flag tokens share sequences, not tokens: all 8 flags are stored.
    expect(once).toEqual([{ decisions: 30, entries: 10, settlements: 10, ledger: 20, debits: fen, flags: 8, flag_aggregate: 8 }]);
    await insertAll(); // the sink retrying after a lost answer
    expect(await snapshot()).toEqual(once);

    const marks = await highWaterMarks(engine);
    expect(marks).toEqual({
      'decisions:DECISIONS': 500,
      'settlements:SETTLEMENTS': 500,
      'ledger:SETTLEMENTS': 500,
      'claims:SETTLEMENTS': 0,
      'risk_flags:DECISIONS': 500,
      'risk_flags:SETTLEMENTS': 500,
      'risk_flags:RISK': 501,
    });
  });
});

describe('store - server engine insert (through @clickhouse/client on chdb)', () => {
  it('sends the batch and plain rows as CSV with the settings, and reads them back', async () => {
    // chdb's @clickhouse/client connection runs the client's requests in process; it applies
    // settings with SET on its own session and has no notion of the client's database, so this
    // runs in `default` and each insert has its own token.
    const engine = await freshDb('default');
    // chdb types the connection against its own copy of @clickhouse/client-common.
    const connection = createChdbConnection({ path: dataDir() }) as unknown as ClickHouseClientConfigOptions['connection'];
    const client = createClient({ ...serverClientOptions({ url: 'http://chdb.invalid:8123', database: 'default' }), connection });
    const server = serverEngineOnClient(client, 'chdb connection');
    try {
      const ds = edgeDecisions().filter((d) => !d.eventId.includes('\0')); // the connection passes the body as SQL text
      const batch = new InsertBatch();
      ds.forEach((d, i) => writeDecision(batch, d, 10 + i));
      await server.insert('decisions', batch, { dedupToken: 'server:batch' });
      await server.insert('risk_flags', [riskFlagRow(riskFlag(1), 3, 'DECISIONS')], { dedupToken: 'server:objects' });
      const stored = await server.query<Record<string, unknown>>(DECISION_READBACK);
      expect(stored).toEqual(ds.map((d, i) => expectedDecision(d, 10 + i)).sort((a, b) => Number(a['stream_seq']) - Number(b['stream_seq'])));
      expect(await engine.query('SELECT flag_id, source_stream, stream_seq FROM risk_flags')).toEqual([{ flag_id: 'flag-1', source_stream: 'DECISIONS', stream_seq: 3 }]);
    } finally {
      await server.close();
    }
  });
});
