/**
 * The engine seam without a ClickHouse server (none runs here): the server client's options,
 * a clear failure when the server is unreachable, the shared insert settings and wire formats,
 * and chdb's one-data-directory-per-process rule. The pure helpers are tested first.
 */
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@clickhouse/client';
import { afterAll, describe, expect, it } from 'vitest';
import { TapflowError } from '../../../src/domain/reasons.js';
import { dateTime64, insertSettings, loadMigrations, openClickHouse, splitStatements } from '../../../src/store/mod.js';
import { decodeJsonRows } from '../../../src/store/json-result.js';
import { encodeRows } from '../../../src/store/row-encoding.js';
import { IDLE_SOCKET_TTL_MS, redactUrl, serverClientOptions } from '../../../src/store/server-engine.js';

describe('store - pure helpers', () => {
  it('splitStatements - splits at ; ending a line, never inside comments', () => {
    const sql = [
      '-- header; with a semicolon at the end;',
      'CREATE TABLE a (x UInt8)',
      "ENGINE = MergeTree ORDER BY x; ",
      '',
      "SELECT 'a;b' AS s;",
      '-- trailing comment',
    ].join('\r\n');
    expect(splitStatements(sql)).toEqual([
      '-- header; with a semicolon at the end;\nCREATE TABLE a (x UInt8)\nENGINE = MergeTree ORDER BY x',
      "SELECT 'a;b' AS s",
    ]);
    expect(() => splitStatements('SELECT 1;\nSELECT 2')).toThrow(/without a closing ';'/);
  });

  it('loadMigrations - the shipped files are ordered, named, non-empty and idempotent', () => {
    const migrations = loadMigrations();
    expect(migrations.map((m) => m.version)).toEqual(['0001', '0002', '0003', '0004', '0005', '0006']);
    for (const m of migrations) {
      expect(m.checksum).toMatch(/^[0-9a-f]{64}$/);
      for (const s of m.statements) {
        expect(s).toMatch(/^(--[^\n]*\n|\s)*(CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS |ALTER TABLE \w+ ADD COLUMN IF NOT EXISTS |DROP (VIEW|TABLE) IF EXISTS )/);
      }
    }
  });

  it('dateTime64 - epoch ms as "<seconds>.<millis>"', () => {
    expect(dateTime64(1_700_000_000_123)).toBe('1700000000.123');
    expect(dateTime64(1_700_000_000_007)).toBe('1700000000.007');
    expect(dateTime64(0)).toBe('0.000');
    expect(() => dateTime64(1.5)).toThrow(RangeError);
    expect(() => dateTime64(-1)).toThrow(RangeError);
  });

  it('decodeJsonRows - 64-bit integers become numbers only where exact', () => {
    const rows = decodeJsonRows({
      meta: [
        { name: 'a', type: 'UInt64' },
        { name: 'b', type: 'Nullable(Int64)' },
        { name: 'c', type: 'Array(Int64)' },
        { name: 'd', type: 'String' },
        { name: 'e', type: 'UInt32' },
      ],
      data: [{ a: '42', b: null, c: ['1', '9007199254740993'], d: '7', e: 3 }],
    });
    expect(rows).toEqual([{ a: 42, b: null, c: [1, '9007199254740993'], d: '7', e: 3 }]);
  });

  it("encodeRows - plain rows as JSONCompactEachRow in the first row's column order; rows must share their keys", async () => {
    const encoded = await encodeRows([
      { a: 1, b: 'x' },
      { b: 'y"', a: 2 },
    ]);
    expect([encoded.format, encoded.columns]).toEqual(['JSONCompactEachRow', ['a', 'b']]);
    expect(encoded.payload().toString()).toBe('[1,"x"]\n[2,"y\\""]\n');
    await expect(encodeRows([{ a: 1, b: 2 }, { a: 1 }])).rejects.toThrow(/row 1 has no value for column b/);
    await expect(encodeRows([{ a: 1, b: 2 }, { a: 1, b: 2, c: 3 }])).rejects.toThrow(/row 1 has columns the first row has not: c/);
    await expect(encodeRows([{ 'a-b': 1 }])).rejects.toMatchObject({ code: 'TF_STORE_IDENTIFIER' });
  });

  it('insertSettings - synchronous, deduplicated including views, token when given', () => {
    expect(insertSettings()).toEqual({
      async_insert: 0,
      insert_deduplicate: 1,
      deduplicate_blocks_in_dependent_materialized_views: 1,
      date_time_input_format: 'basic',
      format_csv_delimiter: ',',
      format_csv_allow_single_quotes: 0,
      format_csv_allow_double_quotes: 1,
      input_format_csv_detect_header: 0,
      input_format_csv_empty_as_default: 0,
      input_format_parallel_parsing: 0,
    });
    expect(insertSettings('DECISIONS:1-500')).toMatchObject({ insert_deduplication_token: 'DECISIONS:1-500' });
    expect(() => insertSettings('')).toThrow(/dedupToken/);
  });
});

describe('store - server engine (no server here)', () => {
  const cfg = { url: 'http://ch.example:8123', user: 'tapflow', password: 's3cret', database: 'tapflow' };

  it('builds the client options: credentials, database, keep-alive below the server timeout', () => {
    const o = serverClientOptions(cfg);
    expect(o).toMatchObject({
      url: 'http://ch.example:8123',
      username: 'tapflow',
      password: 's3cret',
      database: 'tapflow',
      application: 'tapflow',
      keep_alive: { enabled: true, idle_socket_ttl: IDLE_SOCKET_TTL_MS },
      clickhouse_settings: { output_format_json_quote_64bit_integers: 1, async_insert: 0 },
    });
    // ClickHouse closes idle connections after keep_alive_timeout: 3 s before 23.11, 10 s since.
    expect(IDLE_SOCKET_TTL_MS).toBeLessThan(3_000);
    expect(serverClientOptions(cfg, { bootstrap: true })).not.toHaveProperty('database');
    expect(serverClientOptions({ url: cfg.url, database: 'x' })).not.toHaveProperty('username');
  });

  it('the options construct a client (no request is sent until used)', async () => {
    const client = createClient(serverClientOptions(cfg));
    await client.close();
  });

  it('an unreachable server fails retryably, naming the URL without its credentials', async () => {
    // A port that was free a moment ago: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const url = `http://tapflow:s3cret@127.0.0.1:${port}`;
    const err = await openClickHouse({ url, database: 'tapflow' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TapflowError);
    expect(err).toMatchObject({ code: 'TF_STORE_FAILED', retryable: true });
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect((err as Error).message).not.toContain('s3cret');
    expect(redactUrl(url)).toBe(`http://127.0.0.1:${port}/`);
  });
});

describe('store - chdb: one data directory per process', () => {
  const dirs = [mkdtempSync(join(tmpdir(), 'tapflow-a-')), mkdtempSync(join(tmpdir(), 'tapflow-b-'))] as const;
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('shares a directory between handles, refuses a second one, and frees it on close', async () => {
    const a1 = await openClickHouse({ dataDir: dirs[0] });
    const a2 = await openClickHouse({ dataDir: join(dirs[0], '.') }); // same directory, other spelling
    expect(a1.kind).toBe('chdb');
    await a1.exec('CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = MergeTree ORDER BY x');
    await a1.insert('t', [{ x: 1 }]);
    expect(await a2.query('SELECT x FROM t')).toEqual([{ x: 1 }]);

    await expect(openClickHouse({ dataDir: dirs[1] })).rejects.toMatchObject({
      code: 'TF_STORE_CHDB_DIR_IN_USE',
      message: expect.stringContaining(dirs[0]),
    });

    await a1.close();
    await a1.close(); // idempotent
    await expect(a1.query('SELECT 1')).rejects.toMatchObject({ code: 'TF_STORE_FAILED' });
    expect(await a2.query('SELECT count() AS n FROM t')).toEqual([{ n: 1 }]); // the other handle still works
    await expect(openClickHouse({ dataDir: dirs[1] })).rejects.toMatchObject({ code: 'TF_STORE_CHDB_DIR_IN_USE' });
    await a2.close();

    const b = await openClickHouse({ dataDir: dirs[1], database: 'other' });
    expect(await b.query('SELECT currentDatabase() AS db')).toEqual([{ db: 'other' }]);
    await b.close();
  });
});
