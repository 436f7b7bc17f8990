/**
 * The embedded engine: ClickHouse in process through npm `chdb`.
 *
 * Only async chdb calls are used (queryAsync, queryBindAsync, insert): they run on the libuv
 * thread pool, so a 50k-row insert or a long aggregate does not stall gRPC or NATS traffic.
 * Inserts hand chdb one Buffer in the batch's format, CSV or JSONCompactEachRow ("raw
 * passthrough", see row-encoding.ts): the payload goes to the native side without a copy and is
 * parsed by ClickHouse's own parser. Of chdb's input paths this is the fastest (row-array
 * inserts build a VALUES string and were slower; stream inserts split a batch into several
 * INSERTs, which would break both the atomicity of a batch and its deduplication token; binary
 * formats are not accepted by chdb 3.4's JS API).
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Session, drainPending } from 'chdb';
import { type ClickHouseEngine, type InsertOptions, checkIdentifier, insertSettings } from './engine.js';
import { StoreConfigError, storeFailure } from './errors.js';
import { testStoreOutage } from './test-outage.js';
import { type JsonFormatBody, decodeJsonRows } from './json-result.js';
import { type EncodedRows, InsertBatch, encodeRows } from './row-encoding.js';

/** The process's chdb data directory and how many engines have it open. */
const bound = { dir: undefined as string | undefined, handles: 0 };

class ChdbEngine implements ClickHouseEngine {
  readonly kind = 'chdb' as const;
  #session: Session | undefined;

  constructor(
    session: Session,
    readonly database: string,
    readonly dataDir: string,
  ) {
    this.#session = session;
  }

  #open(): Session {
    if (!this.#session) throw storeFailure(new Error('engine is closed'), `chdb ${this.dataDir}`);
    testStoreOutage(`chdb ${this.dataDir}`);
    return this.#session;
  }

  async exec(sql: string): Promise<void> {
    const s = this.#open();
    try {
      await s.queryAsync(sql, { format: 'Null' });
    } catch (err) {
      throw storeFailure(err, 'chdb exec');
    }
  }

  async insert(table: string, rows: readonly Record<string, unknown>[] | InsertBatch, opts: InsertOptions = {}): Promise<void> {
    const s = this.#open();
    checkIdentifier(table, 'table');
    const settings = insertSettings(opts.dedupToken);
    const batch: EncodedRows = rows instanceof InsertBatch ? rows : await encodeRows(rows);
    if (batch.rows === 0) return;
    try {
      await s.insert({ table: `${this.database}.${table}`, columns: batch.columns, values: batch.payload(), format: batch.format, settings });
    } catch (err) {
      throw storeFailure(err, `chdb insert into ${table}`);
    }
  }

  async query<T = Record<string, unknown>>(sql: string, params?: Record<string, unknown>): Promise<T[]> {
    const s = this.#open();
    let body: JsonFormatBody;
    try {
      const result =
        params && Object.keys(params).length > 0
          ? await s.queryBindAsync(sql, params, { format: 'JSON' })
          : await s.queryAsync(sql, { format: 'JSON' });
      body = result.json<JsonFormatBody>();
    } catch (err) {
      throw storeFailure(err, 'chdb query');
    }
    return decodeJsonRows<T>(body);
  }

  async close(): Promise<void> {
    const s = this.#session;
    if (!s) return;
    this.#session = undefined;
    s.close();
    bound.handles -= 1;
    if (bound.handles === 0) {
      // close() defers the native teardown while an operation still runs; wait for it so that a
      // later open of another directory in this process is not refused.
      await drainPending();
      if (bound.handles === 0) bound.dir = undefined;
    }
  }
}

/** Opens (a handle on) the process's embedded engine; see openClickHouse. */
export async function openChdbEngine(cfg: { dataDir: string; database: string }): Promise<ClickHouseEngine> {
  const dir = resolve(cfg.dataDir);
  if (bound.dir !== undefined && bound.dir !== dir) {
    throw new StoreConfigError(
      'TF_STORE_CHDB_DIR_IN_USE',
      `chdb data directory ${dir} cannot be opened: this process already has ${bound.dir} open ` +
        `(chdb binds one data directory per process). Close every engine on it first, or use the same directory.`,
    );
  }
  mkdirSync(dir, { recursive: true });
  let session: Session;
  try {
    session = new Session(dir, {
      // Quote 64-bit integers in JSON output (a server does by default); json-result.ts turns
      // them back into numbers where that is exact.
      connectionArgs: ['--output_format_json_quote_64bit_integers=1'],
    });
  } catch (err) {
    throw new StoreConfigError('TF_STORE_CONFIG', `cannot open chdb data directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  bound.dir = dir;
  bound.handles += 1;
  const engine = new ChdbEngine(session, cfg.database, dir);
  try {
    // The connection keeps its current database, so unqualified names in migrations and queries
    // resolve to tapflow's tables.
    await engine.exec(`CREATE DATABASE IF NOT EXISTS ${cfg.database}`);
    await engine.exec(`USE ${cfg.database}`);
  } catch (err) {
    await engine.close();
    throw err;
  }
  return engine;
}
