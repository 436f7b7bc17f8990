/** Opening the configured ClickHouse, and the business day of "today". */
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { openClickHouse, type ClickHouseEngine } from './engine.js';

/** Opens the configured ClickHouse: a server when CLICKHOUSE_URL is set, else the embedded engine. */
export function openStore(cfg: Config): Promise<ClickHouseEngine> {
  return openClickHouse({
    url: cfg.CLICKHOUSE_URL,
    user: cfg.CLICKHOUSE_USER,
    password: cfg.CLICKHOUSE_PASSWORD,
    database: cfg.CLICKHOUSE_DATABASE,
    dataDir: join(cfg.TAPFLOW_DATA_DIR, 'chdb'),
  });
}

/** Today's date (YYYY-MM-DD) in Asia/Shanghai (UTC+8, no daylight saving). */
export function todayInShanghai(now = Date.now()): string {
  return new Date(now + 8 * 3600_000).toISOString().slice(0, 10);
}
