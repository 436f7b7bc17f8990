/**
 * What the run commands do (their options: run-commands.ts): start roles in this process with
 * the configuration from the environment and the flags, and for the demo, the simulated fleet.
 */
import { loadConfig, type Config, type ConfigKey } from '../config/config.js';
import { startApp, type RoleName } from '../runtime/app.js';
import { ROLE_FACTORIES } from './roles.js';
import { formatSummary } from './report-commands.js';
import { runDemoFleet } from '../demo/fleet.js';
import { summary } from '../store/mod.js';
import type { DemoFlags, RunFlags } from './run-commands.js';

/** The configuration: environment, overridden by the flags given. */
export function configFromFlags(flags: RunFlags): Config {
  const overrides: Partial<Record<ConfigKey, string | number | undefined>> = {
    NATS_URL: flags.natsUrl,
    TAPFLOW_DATA_DIR: flags.dataDir,
    TAPFLOW_GRPC_PORT: flags.grpcPort,
    TAPFLOW_METRICS_PORT: flags.metricsPort,
    CLICKHOUSE_URL: flags.clickhouseUrl,
    TAPFLOW_PARTITIONS: flags.partitions,
    TAPFLOW_LOG_LEVEL: flags.logLevel,
  };
  return loadConfig(process.env, overrides);
}

/** Starts the roles; with `demo`, runs the fleet against this process's ingest and exits after it. */
export async function runRoles(roles: readonly RoleName[], flags: RunFlags, demo?: DemoFlags): Promise<void> {
  const cfg = configFromFlags(flags);
  const app = await startApp(
    cfg,
    roles.map((r) => ({ name: r, create: ROLE_FACTORIES[r] })),
  );
  if (!demo) return;
  const ingest = app.roles.find((r) => r.name === 'ingest') as import('../ingest/role.js').IngestRole | undefined;
  if (!ingest) throw new Error('the demo fleet needs the ingest role in this process');
  await runDemoFleet({
    target: `127.0.0.1:${ingest.port}`,
    cfg,
    fleetKey: app.ctx.keys.fleetKey,
    tokenKey: app.ctx.keys.tokenKey,
    buckets: app.ctx.buckets,
    metrics: app.ctx.metrics,
    rate: demo.rate,
    terminals: demo.terminals,
    durationS: demo.duration,
    log: app.ctx.log,
    out: process.stdout,
    storedSummary: app.ctx.engine ? async () => formatSummary(await summary(app.ctx.engine!)) : undefined,
  });
  await app.shutdown('demo finished');
  process.exit(0);
}
