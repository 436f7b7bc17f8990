/**
 * What the run commands do (their options: run-commands.ts): start roles in this process with
 * the configuration from the environment and the flags, and for the demo, the simulated fleet.
 */
import { loadConfig, workerThreads, type Config, type ConfigKey } from '../config/config.js';
import { THREAD_ROLES } from '../runtime/threads.js';
import { startApp, type RunningApp, type RoleName } from '../runtime/app.js';
import { waitForPipelineIdle } from '../runtime/pipeline-idle.js';
import { ROLE_FACTORIES } from './roles.js';
import { connectAdminBus } from '../runtime/bus-setup.js';
import { openBuckets } from '../bus/topology.js';
import { formatSummary, formatTime } from './report-commands.js';
import { runDemoFleet, type DemoOptions } from '../demo/fleet.js';
import { regionParts, summary } from '../store/mod.js';
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
    TAPFLOW_WORKERS: flags.workers,
  };
  return loadConfig(process.env, overrides);
}

/** Sums amounts by region. */
function sumByRegion<T>(rows: Iterable<T>, region: (row: T) => string, amount: (row: T) => number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) out[region(r)] = (out[region(r)] ?? 0) + amount(r);
  return out;
}

/** How long the end of a demo waits for the pipeline to store what the fleet sent. */
const DRAIN_TIMEOUT_MS = 60_000;

/**
 * The demo's figures. With the sink in this process they come from ClickHouse, for the taps
 * ingested since the run started — exactly what `tapflow report --since <start>` reads, so the
 * two agree to the fen. Without it, the settlers' fare counter stands in (it counts charges
 * when made: no negative adjustments, a redelivered batch possibly twice) and says so.
 */
function demoFigures(app: RunningApp, runStart: number): Pick<DemoOptions, 'fares' | 'drained' | 'closingSummary'> {
  const { cfg, engine } = app.ctx;
  const drained = () => waitForPipelineIdle(app.ctx.bus, cfg.TAPFLOW_PARTITIONS, { timeoutMs: DRAIN_TIMEOUT_MS });
  const reportCommand = `tapflow report --since ${formatTime(runStart)}`;
  if (!engine) {
    return {
      drained,
      fares: {
        label: 'fares charged (settler counter)',
        byRegion: async () =>
          sumByRegion(
            (((await (await app.metrics()).getSingleMetric('tapflow_fare_fen_total')?.get())?.values ?? []) as { labels: Record<string, string | number>; value: number }[]).filter((v) => v.labels.network !== 'entry'),
            (v) => String(v.labels.region),
            (v) => v.value,
          ),
      },
      closingSummary: async () => `No sink runs in this process: the stored figures of this run are \`${reportCommand}\` where the sink runs.`,
    };
  }
  return {
    drained,
    fares: {
      label: 'fares stored',
      byRegion: async () =>
        sumByRegion(
          (await regionParts(engine, { sinceMs: runStart })).filter((p) => p.scene !== 'CULTURE'),
          (p) => p.terminalRegion,
          (p) => p.amountFen,
        ),
    },
    closingSummary: async (isDrained) =>
      [
        `This run in ClickHouse: the taps ingested since ${formatTime(runStart)}${isDrained ? ', every one processed and stored' : `; the pipeline had not caught up after ${DRAIN_TIMEOUT_MS / 1000} s, so later taps may be missing`}.`,
        `The same figures later: ${reportCommand}`,
        'Journeys still open at the end (an entry, no exit yet) cost nothing yet: they are charged at their exit, or as',
        'incomplete journeys once their time limit passes, and a later report of the run includes them.',
        '',
        formatSummary(await summary(engine, { sinceMs: runStart })),
      ].join('\n'),
  };
}

/** Starts the roles; with `demo`, runs the fleet against this process's ingest and exits after it. */
/**
 * `setup`: run the admin step first (`tapflow start` and `demo`, which run the whole pipeline);
 * a single-role command only binds to the topology (`tapflow bus setup` makes it).
 */
export async function runRoles(roles: readonly RoleName[], flags: RunFlags, demo?: DemoFlags, setup = false): Promise<void> {
  const cfg = configFromFlags(flags);
  // Validator and settler replicas go to worker threads when there are cores to spare; the main
  // thread keeps ingest and the sink, or, when it runs nothing else, a replica of its own.
  const threads = workerThreads(cfg);
  const threadRoles = threads > 0 ? THREAD_ROLES.filter((r) => roles.includes(r)) : [];
  const mainRoles = roles.every((r) => (threadRoles as readonly string[]).includes(r)) ? roles : roles.filter((r) => !(threadRoles as readonly string[]).includes(r));
  const app = await startApp(
    cfg,
    mainRoles.map((r) => ({ name: r, create: ROLE_FACTORIES[r] })),
    { threads: { roles: [...threadRoles], count: threads }, setupBus: setup },
  );
  if (!demo) return;
  const ingest = app.roles.find((r) => r.name === 'ingest') as import('../ingest/role.js').IngestRole | undefined;
  if (!ingest) throw new Error('the demo fleet needs the ingest role in this process');
  // Every tap of this run is ingested after this instant: the run's figures are those since it.
  const runStart = Date.now();
  // The fleet reports some of its cards lost (hotlist): an operator's write, as the admin user.
  const adminBus = await connectAdminBus(cfg, app.ctx.log, 'tapflow-demo');
  const { demoIssuingCa, serverTlsFiles } = await import('../ingest/tls.js');
  await runDemoFleet({
    target: `127.0.0.1:${ingest.port}`,
    cfg,
    ...(cfg.TAPFLOW_INGEST_AUTH === 'mtls' && { tls: { ca: demoIssuingCa(serverTlsFiles(cfg).caFile) } }),
    fleetKey: app.ctx.keys.fleetKey,
    tokenKeys: app.ctx.keys.tokenKeys,
    buckets: await openBuckets(adminBus, cfg.TAPFLOW_LEASE_TTL_MS, adminBus, false),
    metrics: () => app.metrics(),
    rate: demo.rate,
    terminals: demo.terminals,
    durationS: demo.duration,
    log: app.ctx.log,
    out: process.stdout,
    ...demoFigures(app, runStart),
  });
  await adminBus.close();
  await app.shutdown('demo finished');
  process.exit(0);
}
