/**
 * The store's admin step (src/store/setup.ts, `tapflow store setup`): on a ClickHouse server the
 * sink runs no DDL — it refuses to start (TF_STORE_SETUP_MISSING, naming what is missing and the
 * command) until the migrations and the retention have been applied by the admin step, so that
 * its user needs INSERT and SELECT only; on the embedded engine it applies them itself. The
 * server path runs here through @clickhouse/client on chdb's in-process connection (the server
 * engine of tapflow, for want of a server), the admin side on the embedded engine. The command
 * itself runs as an operator runs it.
 */
import { type ClickHouseClientConfigOptions, createClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMigrations, prepareSinkStore, setupStore, storeSetupMissing, RETAINED_TABLES } from '../../../src/store/mod.js';
import { serverClientOptions, serverEngineOnClient } from '../../../src/store/server-engine.js';
import { runCli } from '../cli/run-cli.js';
import { testStore } from './fixtures.js';

const { freshDb, dataDir } = testStore('tapflow-store-setup-');
const MIGRATIONS = loadMigrations().map((m) => m.name);

/** tapflow's server engine on a database of this file's chdb folder. */
function serverEngine(database: string) {
  // chdb types the connection against its own copy of @clickhouse/client-common.
  const connection = createChdbConnection({ path: dataDir() }) as unknown as ClickHouseClientConfigOptions['connection'];
  return serverEngineOnClient(createClient({ ...serverClientOptions({ url: 'http://chdb.invalid:8123', database }), connection }), 'chdb connection');
}

const tables = async (e: { query<T>(sql: string): Promise<T[]> }) => (await e.query<{ name: string }>('SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name')).map((r) => r.name);

describe('store setup - the admin step', () => {
  it('on a server the sink refuses to start until the admin step has run, and then runs no DDL', async () => {
    // chdb's connection answers in its default database: the admin works there too.
    const admin = await freshDb('default', { migrate: false });
    const server = serverEngine('default');
    expect(server.kind).toBe('server');
    const refused = await prepareSinkStore(server, 30, 'http://clickhouse:8123/').catch((err: unknown) => err as Error & { code?: string });
    expect(refused).toBeInstanceOf(Error);
    expect((refused as { code?: string }).code).toBe('TF_STORE_SETUP_MISSING');
    expect((refused as Error).message).toBe(
      `ClickHouse http://clickhouse:8123/: ${MIGRATIONS.length} migration(s) not applied (${MIGRATIONS.join(', ')}). Run the admin step \`tapflow store setup\` as a ClickHouse user allowed to create and alter tables (README, Least privilege), with the same TAPFLOW_STORE_RETENTION_DAYS; the sink's own user needs INSERT and SELECT only`,
    );
    // The check created nothing, not even schema_migrations.
    expect(await tables(admin)).toEqual([]);

    const done = await setupStore(admin, 30);
    expect(done.applied).toEqual(MIGRATIONS);
    expect(done.retention.map((c) => c.table)).toEqual([...RETAINED_TABLES]);
    const schema = await tables(admin);
    await expect(prepareSinkStore(server, 30, 'x')).resolves.toEqual({ applied: [], retention: [] });
    expect(await tables(admin)).toEqual(schema);

    // Another retention than the one applied: refused, changing nothing; the step again applies it.
    await expect(prepareSinkStore(server, 7, 'x')).rejects.toThrow(`the retention TAPFLOW_STORE_RETENTION_DAYS=7 is not applied to ${RETAINED_TABLES.join(', ')}. Run the admin step`);
    expect(await storeSetupMissing(admin, 30)).toBeUndefined();
    expect(await setupStore(admin, 30)).toEqual({ applied: [], retention: [] });
    expect((await setupStore(admin, 7)).retention).toHaveLength(RETAINED_TABLES.length);
    await expect(prepareSinkStore(server, 7, 'x')).resolves.toEqual({ applied: [], retention: [] });
    await server.close();
  });

  it('on the embedded engine the sink applies the step itself', async () => {
    const e = await freshDb('setup_embedded', { migrate: false });
    expect(e.kind).toBe('chdb');
    const done = await prepareSinkStore(e, 30, 'x');
    expect(done.applied).toEqual(MIGRATIONS);
    expect(await storeSetupMissing(e, 30)).toBeUndefined();
    expect(await prepareSinkStore(e, 30, 'x')).toEqual({ applied: [], retention: [] });
  });

  it('tapflow store setup [--check], as an operator runs it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tapflow-store-setup-cli-'));
    try {
      const env = { TAPFLOW_DATA_DIR: dir, TAPFLOW_STORE_RETENTION_DAYS: '90' };
      const before = await runCli(['store', 'setup', '--check'], env);
      expect([before.code, before.stderr]).toEqual([1, '']);
      expect(before.stdout).toBe(`ClickHouse embedded, ${dir}/chdb: ${MIGRATIONS.length} migration(s) not applied (${MIGRATIONS.join(', ')}): run tapflow store setup\n`);
      const setup = await runCli(['store', 'setup'], env);
      expect([setup.code, setup.stderr]).toEqual([0, '']);
      expect(setup.stdout).toBe(`ClickHouse embedded, ${dir}/chdb: ${MIGRATIONS.length} migration(s) applied (${MIGRATIONS.join(', ')}); retention 90 days set on ${RETAINED_TABLES.join(', ')}\n`);
      const again = await runCli(['store', 'setup'], env);
      expect(again.stdout).toBe(`ClickHouse embedded, ${dir}/chdb: schema already current; retention 90 days already in place\n`);
      const after = await runCli(['store', 'setup', '--check'], env);
      expect([after.code, after.stdout]).toEqual([0, `ClickHouse embedded, ${dir}/chdb: schema current, retention 90 days\n`]);
      const other = await runCli(['store', 'setup', '--check'], { ...env, TAPFLOW_STORE_RETENTION_DAYS: '30' });
      expect([other.code, other.stdout]).toEqual([1, `ClickHouse embedded, ${dir}/chdb: the retention TAPFLOW_STORE_RETENTION_DAYS=30 is not applied to ${RETAINED_TABLES.join(', ')}: run tapflow store setup\n`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
