/**
 * The server engine: a ClickHouse server over HTTP through `@clickhouse/client`.
 *
 * Habits the client needs (DESIGN.md, practical notes): every result set is consumed
 * (`command()` discards its body, `query()` is read with `.json()`), or its socket is never
 * returned to the pool; the client's idle sockets are dropped before the server closes them
 * (`keep_alive.idle_socket_ttl` below the server's `keep_alive_timeout`), or a request can be
 * sent on a socket the server is closing (ECONNRESET); 64-bit integers come back as strings and
 * are decoded in json-result.ts.
 */
import { redactUrl } from './redact.js';
import { Readable } from 'node:stream';
import { type ClickHouseClient, type ClickHouseClientConfigOptions, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { type ClickHouseEngine, type InsertOptions, checkIdentifier, insertSettings } from './engine.js';
import { storeFailure } from './errors.js';
import { type JsonFormatBody, decodeJsonRows } from './json-result.js';
import { InsertBatch, batchColumns, rowValues } from './row-encoding.js';

/**
 * Idle keep-alive sockets are dropped after this long (milliseconds). A ClickHouse server
 * closes idle HTTP connections after `keep_alive_timeout`: 3 s before 23.11, 10 s since; staying
 * 500 ms under the older value is safe with both.
 */
export const IDLE_SOCKET_TTL_MS = 2_500;
/** A request that has not finished after this long fails and is retried by the caller. */
export const REQUEST_TIMEOUT_MS = 60_000;
/** Sockets per ClickHouse host; the sink sends one batch per table at a time. */
export const MAX_OPEN_CONNECTIONS = 10;

export interface ServerEngineConfig {
  url: string;
  user?: string | undefined;
  password?: string | undefined;
  database: string;
}

/**
 * The @clickhouse/client options for tapflow (exported so that tests can check them without a
 * server). With `bootstrap`, no database is named: that client creates the database.
 */
export function serverClientOptions(cfg: ServerEngineConfig, opts: { bootstrap?: boolean } = {}): ClickHouseClientConfigOptions {
  const database = opts.bootstrap ? undefined : cfg.database;
  return {
    url: cfg.url,
    ...(cfg.user !== undefined ? { username: cfg.user } : {}),
    ...(cfg.password !== undefined ? { password: cfg.password } : {}),
    ...(database !== undefined ? { database } : {}),
    application: 'tapflow',
    // Failures reach the caller as TapflowErrors carrying the client's error as `cause`, and the
    // roles log them (pino); the client's own console logger would print each one a second time.
    log: { level: ClickHouseLogLevel.OFF },
    request_timeout: REQUEST_TIMEOUT_MS,
    max_open_connections: MAX_OPEN_CONNECTIONS,
    keep_alive: { enabled: true, idle_socket_ttl: IDLE_SOCKET_TTL_MS },
    // Insert bodies are repetitive CSV: gzip shrinks them several times over the network.
    compression: { request: true, response: false },
    clickhouse_settings: {
      // Quoted so that JSON.parse cannot lose precision; decoded in json-result.ts.
      output_format_json_quote_64bit_integers: 1,
      async_insert: 0,
    },
  };
}


class ServerEngine implements ClickHouseEngine {
  readonly kind = 'server' as const;
  #client: ClickHouseClient | undefined;

  constructor(client: ClickHouseClient, readonly url: string) {
    this.#client = client;
  }

  #open(): ClickHouseClient {
    if (!this.#client) throw storeFailure(new Error('engine is closed'), `ClickHouse ${this.url}`);
    return this.#client;
  }

  async exec(sql: string): Promise<void> {
    const c = this.#open();
    try {
      await c.command({ query: sql });
    } catch (err) {
      throw storeFailure(err, `ClickHouse ${this.url} exec`);
    }
  }

  async insert(table: string, rows: readonly Record<string, unknown>[] | InsertBatch, opts: InsertOptions = {}): Promise<void> {
    const c = this.#open();
    checkIdentifier(table, 'table');
    const clickhouse_settings = insertSettings(opts.dedupToken);
    if ((rows instanceof InsertBatch ? rows.rows : rows.length) === 0) return;
    // The formats of the embedded engine (row-encoding.ts): an InsertBatch's CSV bytes, sent
    // from a byte stream (the client takes a raw format only so); plain rows as arrays of their
    // values, which the client serialises as JSONCompactEachRow, as encodeRows does. The client
    // gzips the request (see the options).
    let insert: { columns: readonly string[]; values: Readable | unknown[][]; format: 'CSV' | 'JSONCompactEachRow' };
    if (rows instanceof InsertBatch) {
      insert = { columns: rows.columns, values: Readable.from([rows.payload()], { objectMode: false }), format: 'CSV' };
    } else {
      const columns = batchColumns(rows);
      insert = { columns, values: rows.map((row, i) => rowValues(row, columns, i)), format: 'JSONCompactEachRow' };
    }
    try {
      await c.insert({ table, ...insert, columns: insert.columns as [string, ...string[]], clickhouse_settings });
    } catch (err) {
      throw storeFailure(err, `ClickHouse ${this.url} insert into ${table}`);
    }
  }

  async query<T = Record<string, unknown>>(sql: string, params?: Record<string, unknown>): Promise<T[]> {
    const c = this.#open();
    let body: JsonFormatBody;
    try {
      const rs = await c.query({ query: sql, format: 'JSON', ...(params ? { query_params: params } : {}) });
      body = (await rs.json()) as unknown as JsonFormatBody;
    } catch (err) {
      throw storeFailure(err, `ClickHouse ${this.url} query`);
    }
    return decodeJsonRows<T>(body);
  }

  async close(): Promise<void> {
    const c = this.#client;
    if (!c) return;
    this.#client = undefined;
    await c.close();
  }
}

/**
 * The server engine on a client made elsewhere. Tests use it to run this engine's inserts and
 * queries through @clickhouse/client on chdb's in-process connection (`chdb/connection`), no
 * server running here; `label` names the client in error messages.
 */
export function serverEngineOnClient(client: ClickHouseClient, label: string): ClickHouseEngine {
  return new ServerEngine(client, label);
}

/** Opens a client on the server, creating the database first if it is missing. */
export async function openServerEngine(cfg: ServerEngineConfig): Promise<ClickHouseEngine> {
  checkIdentifier(cfg.database, 'database');
  // A client bound to a database that does not exist yet fails every request, so the database
  // is created through a short-lived client on the server's default database.
  // Looked up first: the roles' user (tapflow_writer) may not create it — the admin step does.
  const bootstrap = createClient(serverClientOptions(cfg, { bootstrap: true }));
  try {
    const found = await bootstrap.query({ query: 'SELECT count() AS n FROM system.databases WHERE name = {db:String}', query_params: { db: cfg.database }, format: 'JSONEachRow' });
    const [row] = await found.json<{ n: string | number }>();
    if (Number(row?.n ?? 0) === 0) await bootstrap.command({ query: `CREATE DATABASE IF NOT EXISTS ${cfg.database}` });
  } catch (err) {
    throw storeFailure(err, `ClickHouse ${redactUrl(cfg.url)} unreachable, or database ${cfg.database} missing and CREATE DATABASE refused (run \`tapflow store setup\` as an administrator)`);
  } finally {
    await bootstrap.close();
  }
  return new ServerEngine(createClient(serverClientOptions(cfg)), redactUrl(cfg.url));
}

export { redactUrl };
