/**
 * Retention of the stored facts: a ClickHouse table TTL on `stored_time`, set from
 * TAPFLOW_STORE_RETENTION_DAYS when the sink starts (after the migrations), the same statements
 * on chdb and on a server.
 *
 * The TTL covers the tables the sink fills from the streams (decisions, settlements, ledger,
 * risk_flags, claims): `TTL toDateTime(stored_time) + toIntervalDay(<days>)`. stored_time is
 * the time of the INSERT, one value for a whole batch, so
 * - the entries of a settlement (stored by one insert) expire together: what remains of the
 *   ledger still balances;
 * - a tap uploaded weeks late is kept as long as one stored at once (device time would delete
 *   it on arrival);
 * - a table's high-water mark (max stream_seq) can fall only when the sink has stored nothing
 *   from a stream for the whole retention, long after those messages were acknowledged and left
 *   the stream: no message is stored twice.
 * The aggregates (ledger_per_day, risk_flags_per_minute, venue_entries_per_hour) hold no tokens
 * and are kept: the dashboards read past days from them. docs/schema.md, "Retention".
 *
 * The setting owns the TTL of those five tables: 0 removes any TTL they have. A change starts
 * ClickHouse's MATERIALIZE TTL mutation, which rewrites the table's parts in the background;
 * applyRetention() therefore changes nothing when the TTL already is the wanted one, so a
 * restart costs one read of system.tables.
 */
import { MAX_RETENTION_DAYS } from '../config/values.js';
import type { ClickHouseEngine } from './engine.js';
import { StoreConfigError } from './errors.js';
import { type StoreTable, TABLE_SOURCE_STREAMS } from './sources.js';

/** The tables whose rows TAPFLOW_STORE_RETENTION_DAYS deletes: the ones the sink fills. */
export const RETAINED_TABLES = Object.keys(TABLE_SOURCE_STREAMS) as readonly StoreTable[];

/**
 * The TTL expression for a retention in days, as ClickHouse prints it in system.tables
 * (`INTERVAL n DAY` becomes `toIntervalDay(n)`); undefined for 0 (no TTL).
 * toDateTime(): ClickHouse before 25.7 (docker-compose.yml runs 24.8) refuses a DateTime64 TTL.
 */
export function retentionTtl(days: number): string | undefined {
  if (!Number.isInteger(days) || days < 0 || days > MAX_RETENTION_DAYS) {
    throw new StoreConfigError('TF_STORE_CONFIG', `retention must be a whole number of days from 0 to ${MAX_RETENTION_DAYS}, got ${days}`);
  }
  return days === 0 ? undefined : `toDateTime(stored_time) + toIntervalDay(${days})`;
}

/** The table TTL in a system.tables `engine_full`, or undefined when the table has none. */
export function tableTtl(engineFull: string): string | undefined {
  return / TTL (.+?)(?: SETTINGS |$)/.exec(engineFull)?.[1];
}

/** A TTL applyRetention() changed: `from` and `to` are TTL expressions, undefined for none. */
export interface RetentionChange {
  table: StoreTable;
  from: string | undefined;
  to: string | undefined;
}

/**
 * Gives every retained table the TTL of `days` (0: none), changing only the tables whose TTL
 * differs, and returns the changes made (with `dryRun`, those it would make, changing nothing).
 */
export async function applyRetention(engine: ClickHouseEngine, days: number, opts: { dryRun?: boolean } = {}): Promise<RetentionChange[]> {
  const wanted = retentionTtl(days);
  const rows = await engine.query<{ name: StoreTable; engine_full: string }>(
    `SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() AND name IN (${RETAINED_TABLES.map((t) => `'${t}'`).join(', ')})`,
  );
  const current = new Map(rows.map((r) => [r.name, tableTtl(r.engine_full)]));
  const changes: RetentionChange[] = [];
  for (const table of RETAINED_TABLES) {
    if (!current.has(table)) {
      throw new StoreConfigError('TF_STORE_MIGRATION', `table ${table} does not exist: apply the migrations before the retention`);
    }
    const from = current.get(table);
    if (from === wanted) continue;
    if (!opts.dryRun) await engine.exec(wanted === undefined ? `ALTER TABLE ${table} REMOVE TTL` : `ALTER TABLE ${table} MODIFY TTL ${wanted}`);
    changes.push({ table, from, to: wanted });
  }
  return changes;
}
