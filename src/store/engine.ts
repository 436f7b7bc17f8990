/**
 * The ClickHouse engine seam: one interface, two implementations running the same SQL.
 *
 * - embedded (`kind: 'chdb'`): npm `chdb`, ClickHouse in process, used when no server URL is
 *   configured. Its async calls run on the libuv thread pool, so queries and inserts do not block
 *   the event loop (only the encoding of an insert batch runs on the main thread).
 * - server (`kind: 'server'`): `@clickhouse/client` over HTTP when `url` (CLICKHOUSE_URL) is set.
 *
 * Each implementation is loaded with a dynamic import, so a process talking to a server never
 * loads the native chdb library, and the embedded path never loads the HTTP client.
 */
import { StoreConfigError } from './errors.js';
import type { InsertBatch } from './row-encoding.js';

/** A ClickHouse database, embedded or remote. Names in SQL are unqualified: the engine's
 * current database is the one it was opened with. */
export interface ClickHouseEngine {
  readonly kind: 'chdb' | 'server';
  /** Runs DDL or another command; any result is read and discarded. */
  exec(sql: string): Promise<void>;
  /**
   * Inserts rows into a table of the engine's database, as one INSERT with an explicit column
   * list, in the same format and bytes on both engines (row-encoding.ts). `rows` is either
   * - an {@link InsertBatch} already encoded as CSV by the row writers of rows.ts
   *   (`writeDecision(batch, …)`, …): the sink's path, with no encoding left to do; or
   * - plain objects, the columns being the first row's keys — every row must have the same keys
   *   — sent as JSONCompactEachRow. Values must be JSON-serialisable (no bigint: 64-bit values
   *   beyond 2^53 as decimal strings; DateTime64 as '<epoch s>.<ms>' strings, see rows.ts).
   *   Encoded SLICE_ROWS rows at a time between event-loop turns.
   * Settings on every insert: synchronous (async_insert=0), deduplicated, including the blocks
   * written by materialized views (deduplicate_blocks_in_dependent_materialized_views=1).
   * With `dedupToken`, a repeat of the insert with the same token is dropped by the table and
   * by its views. Derive the token from exactly the rows sent (sources.ts `dedupToken`: table,
   * stream, first and last stream sequence, row count): ClickHouse drops a repeat even when its
   * rows differ. Tokens are per table. Without a token a retry is NOT dropped (the DEFAULT now64()
   * stored_time makes every attempt differ).
   * Keep a batch under 1,048,449 rows and 256 MB so that it is one block, written atomically.
   */
  insert(table: string, rows: readonly Record<string, unknown>[] | InsertBatch, opts?: InsertOptions): Promise<void>;
  /**
   * Runs a SELECT and returns its rows. `params` bind `{name:Type}` placeholders server-side.
   * 64-bit integers come back as JS numbers when they are safe integers (|n| ≤ 2^53−1) and as
   * decimal strings otherwise; DateTime64 as 'YYYY-MM-DD hh:mm:ss.sss' in the column's zone
   * (Asia/Shanghai for tapflow's tables). See json-result.ts.
   */
  query<T = Record<string, unknown>>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  /** Releases the connection. Idempotent; later calls on this engine reject. */
  close(): Promise<void>;
}

export interface InsertOptions {
  /** insert_deduplication_token: a repeat of an insert with the same token is dropped. */
  dedupToken?: string;
}

export interface ClickHouseConfig {
  /**
   * ClickHouse server HTTP(S) URL, e.g. `http://localhost:8123` (CLICKHOUSE_URL). When
   * undefined, the embedded chdb engine is used.
   * @default undefined
   */
  url?: string;
  /** Server user. @default 'default' (the client's default) */
  user?: string;
  /** Server password. @default '' */
  password?: string;
  /**
   * Database holding tapflow's tables; created if missing.
   * @default 'tapflow'
   */
  database?: string;
  /**
   * chdb data directory (embedded engine only); created if missing. One per process.
   * @default './data/chdb'
   */
  dataDir?: string;
}

export const DEFAULT_DATABASE = 'tapflow';
export const DEFAULT_DATA_DIR = './data/chdb';

/** Settings sent with every insert, on both engines. */
export function insertSettings(dedupToken?: string): Record<string, string | number> {
  const s: Record<string, string | number> = {
    // The sink batches itself; a server-side async buffer would ack before the data is in a part.
    async_insert: 0,
    insert_deduplicate: 1,
    deduplicate_blocks_in_dependent_materialized_views: 1,
    // chdb defaults to best_effort, a server to basic: pin one so both parse alike.
    date_time_input_format: 'basic',
    // The CSV of row-encoding.ts, read the same way whatever the engine's defaults: ',' between
    // fields, strings in double quotes only, no header guessing, an empty field an error.
    format_csv_delimiter: ',',
    format_csv_allow_single_quotes: 0,
    format_csv_allow_double_quotes: 1,
    input_format_csv_detect_header: 0,
    input_format_csv_empty_as_default: 0,
    // A batch is a few MB: parallel parsing would only add threads to hand it over (it splits at
    // 10 MB chunks), measurably more CPU on two cores for no gain.
    input_format_parallel_parsing: 0,
  };
  if (dedupToken !== undefined) {
    if (dedupToken === '') throw new StoreConfigError('TF_STORE_CONFIG', 'dedupToken must not be empty');
    s['insert_deduplication_token'] = dedupToken;
  }
  return s;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Checks a table or database name before it is put into SQL text. */
export function checkIdentifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name)) {
    throw new StoreConfigError('TF_STORE_IDENTIFIER', `${what} ${JSON.stringify(name)} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)`);
  }
  return name;
}

/**
 * Opens the engine the configuration names and makes sure its database exists.
 * Embedded: one chdb data directory per process — opening the same directory again gives a
 * second handle on the same in-process engine (each with its own connection, closed on its own);
 * opening a different directory while one is open fails with TF_STORE_CHDB_DIR_IN_USE.
 */
export async function openClickHouse(cfg: ClickHouseConfig): Promise<ClickHouseEngine> {
  const database = checkIdentifier(cfg.database ?? DEFAULT_DATABASE, 'database');
  if (cfg.url !== undefined && cfg.url !== '') {
    const { openServerEngine } = await import('./server-engine.js');
    return openServerEngine({ url: cfg.url, user: cfg.user, password: cfg.password, database });
  }
  const { openChdbEngine } = await import('./chdb-engine.js');
  return openChdbEngine({ dataDir: cfg.dataDir ?? DEFAULT_DATA_DIR, database });
}
