/**
 * The store's admin step (`tapflow store setup`; `tapflow start` runs it first): the schema
 * migrations and the retention TTL (TAPFLOW_STORE_RETENTION_DAYS) — every DDL statement tapflow
 * runs. On a ClickHouse server the sink runs none of them: it checks that the step has been done
 * for its configuration and refuses to start otherwise (TF_STORE_SETUP_MISSING), so its user
 * (tapflow_writer, clickhouse/users.sql) needs INSERT and SELECT only. On the embedded engine —
 * one process, no users — the sink applies them itself.
 */
import { TapflowError } from '../domain/reasons.js';
import type { ClickHouseEngine } from './engine.js';
import { migrate, pendingMigrations } from './migrate.js';
import { applyRetention, type RetentionChange } from './retention.js';

export interface StoreSetup {
  /** Migrations applied now (names). */
  applied: string[];
  /** Retention TTLs changed now. */
  retention: RetentionChange[];
}

/** Applies the migrations not applied yet, then the retention of `retentionDays`. Idempotent. */
export async function setupStore(engine: ClickHouseEngine, retentionDays: number): Promise<StoreSetup> {
  const applied = await migrate(engine);
  const retention = await applyRetention(engine, retentionDays);
  return { applied, retention };
}

/** What the admin step has still to do for this configuration, changing nothing; undefined when nothing. */
export async function storeSetupMissing(engine: ClickHouseEngine, retentionDays: number): Promise<string | undefined> {
  const pending = await pendingMigrations(engine);
  if (pending.length > 0) return `${pending.length} migration(s) not applied (${pending.join(', ')})`;
  const changes = await applyRetention(engine, retentionDays, { dryRun: true });
  if (changes.length > 0) return `the retention TAPFLOW_STORE_RETENTION_DAYS=${retentionDays} is not applied to ${changes.map((c) => c.table).join(', ')}`;
  return undefined;
}

/**
 * The sink's store step: on the embedded engine, the setup itself; on a server, the check —
 * TF_STORE_SETUP_MISSING names what is missing and the command that does it.
 */
export async function prepareSinkStore(engine: ClickHouseEngine, retentionDays: number, where: string): Promise<StoreSetup> {
  if (engine.kind === 'chdb') return setupStore(engine, retentionDays);
  const missing = await storeSetupMissing(engine, retentionDays);
  if (missing) {
    throw new TapflowError(
      'TF_STORE_SETUP_MISSING',
      `ClickHouse ${where}: ${missing}. Run the admin step \`tapflow store setup\` as a ClickHouse user allowed to create and alter tables (README, Least privilege), with the same TAPFLOW_STORE_RETENTION_DAYS; the sink's own user needs INSERT and SELECT only`,
    );
  }
  return { applied: [], retention: [] };
}
