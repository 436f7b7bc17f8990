/** The actions of `tapflow store rebuild` and `tapflow store setup` (registered in store-commands.ts). */
import type { RebuildFlags } from './store-commands.js';
import { formatTime } from './report-commands.js';
import { ExitStatus } from './exit-status.js';

export async function rebuildStore(flags: RebuildFlags): Promise<void> {
  const { loadConfig } = await import('../config/config.js');
  const { withBus } = await import('./with-bus.js');
  const { openStore } = await import('../store/open.js');
  const { rebuildRange, rangeProblem } = await import('../sink/rebuild.js');
  const problem = rangeProblem(flags.from, flags.to);
  if (problem) throw new Error(problem);
  const cfg = loadConfig();
  const result = await withBus(cfg, async (bus) => {
    let engine;
    try {
      engine = await openStore(cfg);
    } catch (err) {
      throw new Error(`cannot open ClickHouse (${cfg.CLICKHOUSE_URL ?? `embedded, ${cfg.TAPFLOW_DATA_DIR}/chdb`}): ${(err as Error).message}. With the embedded engine, stop tapflow first.`);
    }
    try {
      const tables = [...new Set(flags.table)];
      console.error(`reading the ARCHIVE stream for ${tables.join(', ')} from ${formatTime(flags.from)} to ${formatTime(flags.to)}${flags.dryRun ? ' (dry run)' : ''}…`);
      return await rebuildRange(bus, engine, {
        tables,
        fromMs: flags.from,
        toMs: flags.to,
        dryRun: flags.dryRun === true,
        onProgress: (p) => console.error(`  ${p.messages} archived messages read, ${p.rows} rows made`),
      });
    } finally {
      await engine.close();
    }
  });
  if (flags.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`${result.archived} archived messages read, ${result.used} used${result.skipped > 0 ? `, ${result.skipped} without a source header skipped` : ''}`);
  for (const t of result.tables) {
    console.log(
      result.applied
        ? `  ${t.table}: ${t.before} rows in the range before, ${t.rebuilt} rebuilt from the archive, ${t.after} now`
        : `  ${t.table}: ${t.before} rows in the range, ${t.rebuilt} would be rebuilt from the archive (dry run: nothing changed)`,
    );
  }
  if (result.applied) console.log('rebuilt; the aggregates of the range were recomputed from the rebuilt rows');
}

/** The action of `tapflow store setup` (registered in store-commands.ts). */
export async function storeSetupCommand(flags: { check?: boolean }): Promise<void> {
  const { loadConfig } = await import('../config/config.js');
  const { openStore } = await import('../store/open.js');
  const { setupStore, storeSetupMissing } = await import('../store/setup.js');
  const { redactUrl } = await import('../store/redact.js');
  const cfg = loadConfig();
  const where = cfg.CLICKHOUSE_URL ? `${redactUrl(cfg.CLICKHOUSE_URL)} (database ${cfg.CLICKHOUSE_DATABASE}, user ${cfg.CLICKHOUSE_USER ?? 'default'})` : `embedded, ${cfg.TAPFLOW_DATA_DIR}/chdb`;
  let engine;
  try {
    engine = await openStore(cfg);
  } catch (err) {
    throw new Error(`cannot open ClickHouse (${where}): ${(err as Error).message}. With the embedded engine, stop tapflow first.`);
  }
  try {
    const days = cfg.TAPFLOW_STORE_RETENTION_DAYS;
    if (flags.check) {
      const missing = await storeSetupMissing(engine, days);
      console.log(missing ? `ClickHouse ${where}: ${missing}: run tapflow store setup` : `ClickHouse ${where}: schema current, retention ${days === 0 ? 'none' : `${days} days`}`);
      if (missing) throw new ExitStatus(1);
      return;
    }
    const done = await setupStore(engine, days);
    console.log(
      `ClickHouse ${where}: ${done.applied.length > 0 ? `${done.applied.length} migration(s) applied (${done.applied.join(', ')})` : 'schema already current'}; ` +
        `retention ${days === 0 ? 'none' : `${days} days`}${done.retention.length > 0 ? ` set on ${done.retention.map((c) => c.table).join(', ')}` : ' already in place'}`,
    );
  } finally {
    await engine.close();
  }
}
