/** Opening the configured ClickHouse, and the business day of "today". */
import { readFileSync } from 'node:fs';
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

/**
 * The process holding the embedded engine's data directory, when another live process does:
 * chdb locks the directory and writes its pid into `<dir>/status` while it has it open (the
 * file stays behind a process killed with SIGKILL, whose lock is gone with it). Undefined when
 * the directory is free, or held by this process.
 */
export function chdbDirHolder(dataDir: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'status'), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(/^PID:\s*(\d+)/m.exec(text)?.[1] ?? NaN);
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    // EPERM: alive, but another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/**
 * Waits while another live process has the embedded engine's data directory open (a second
 * sink on the same host and data dir: the active one has it; this one is its standby and takes
 * over when it is gone). Returns at once for a ClickHouse server (CLICKHOUSE_URL): sinks share
 * it, and the sink lease alone picks the active one.
 */
export async function waitForEmbeddedStore(cfg: Config, onWait: (pid: number, dir: string) => void, pollMs = 250): Promise<void> {
  if (cfg.CLICKHOUSE_URL) return;
  const dir = join(cfg.TAPFLOW_DATA_DIR, 'chdb');
  let told = false;
  for (let pid = chdbDirHolder(dir); pid !== undefined; pid = chdbDirHolder(dir)) {
    if (!told) onWait(pid, dir);
    told = true;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Today's date (YYYY-MM-DD) in Asia/Shanghai (UTC+8, no daylight saving). */
export function todayInShanghai(now = Date.now()): string {
  return new Date(now + 8 * 3600_000).toISOString().slice(0, 10);
}
