#!/usr/bin/env node
/**
 * tapflow's command line. `tapflow start` runs every role in one process (the laptop default);
 * `tapflow ingest|validator|settler|sink` runs one role, for scaling out; `tapflow demo` adds a
 * simulated terminal fleet; the other commands manage data and read reports.
 */
import { Command, Option } from 'commander';
import { ConfigError, configMarkdown, loadConfig, type Config, type ConfigKey } from '../config/config.js';
import { ROLES, startApp, type RoleName } from '../runtime/app.js';
import { ROLE_FACTORIES } from './roles.js';
import { registerDataCommands } from './data-commands.js';
import { formatSummary, registerReportCommands } from './report-commands.js';
import { registerQuoteCommands } from './quote-commands.js';
import { runDemoFleet } from '../demo/fleet.js';
import { summary } from '../store/mod.js';
import { failuresMarkdown, reasonsMarkdown } from '../domain/reasons.js';

/** Flags shared by the commands that run roles; each overrides its environment variable. */
function withRunFlags(cmd: Command): Command {
  return cmd
    .option('--nats-url <url>', 'NATS server URL (NATS_URL)')
    .option('--data-dir <dir>', 'local state folder (TAPFLOW_DATA_DIR)')
    .option('--grpc-port <port>', 'ingest gRPC port (TAPFLOW_GRPC_PORT)')
    .option('--metrics-port <port>', '/metrics port (TAPFLOW_METRICS_PORT)')
    .option('--clickhouse-url <url>', 'ClickHouse server; unset = embedded engine (CLICKHOUSE_URL)')
    .option('--partitions <n>', 'card partitions (TAPFLOW_PARTITIONS)')
    .option('--log-level <level>', 'log level (TAPFLOW_LOG_LEVEL)');
}

export function configFromFlags(flags: Record<string, string | undefined>): Config {
  const overrides: Partial<Record<ConfigKey, string | undefined>> = {
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

async function runRoles(roles: RoleName[], flags: Record<string, string | undefined>, demo?: { rate: number; terminals: number; durationS?: number }): Promise<void> {
  const cfg = configFromFlags(flags);
  const app = await startApp(
    cfg,
    roles.map((r) => ({ name: r, create: ROLE_FACTORIES[r] })),
  );
  if (demo) {
    const ingest = app.roles.find((r) => r.name === 'ingest') as (import('../ingest/role.js').IngestRole | undefined);
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
      durationS: demo.durationS,
      log: app.ctx.log,
      out: process.stdout,
      storedSummary: app.ctx.engine ? async () => formatSummary(await summary(app.ctx.engine!)) : undefined,
    });
    await app.shutdown('demo finished');
    process.exit(0);
  }
}

export function buildProgram(): Command {
  const program = new Command('tapflow')
    .description('Real-time stream processor for Beijing–Tianjin–Hebei social security card taps and settlements')
    .showHelpAfterError();

  withRunFlags(program.command('start'))
    .description('run every role in one process (ingest, validator, settler, sink); --demo adds a simulated fleet')
    .option('--roles <list>', `comma-separated roles to run (${ROLES.join(',')})`, ROLES.join(','))
    .option('--demo', 'add a simulated terminal fleet and print a live summary')
    .addOption(new Option('--rate <taps/s>', 'demo fleet rate').default('200'))
    .addOption(new Option('--terminals <n>', 'demo fleet size').default('300'))
    .addOption(new Option('--duration <s>', 'stop the demo after this many seconds (default: run until Ctrl-C)'))
    .action(async (flags) => {
      const roles = String(flags.roles)
        .split(',')
        .map((s: string) => s.trim())
        .filter(Boolean);
      for (const r of roles) if (!(ROLES as readonly string[]).includes(r)) throw new Error(`--roles: unknown role ${r} (known: ${ROLES.join(', ')})`);
      await runRoles(roles as RoleName[], flags, flags.demo ? { rate: Number(flags.rate), terminals: Number(flags.terminals), durationS: flags.duration ? Number(flags.duration) : undefined } : undefined);
    });

  withRunFlags(program.command('demo'))
    .description('same as `start --demo`: the whole pipeline plus a simulated terminal fleet')
    .addOption(new Option('--rate <taps/s>', 'demo fleet rate').default('200'))
    .addOption(new Option('--terminals <n>', 'demo fleet size').default('300'))
    .addOption(new Option('--duration <s>', 'stop after this many seconds (default: run until Ctrl-C)'))
    .action(async (flags) => {
      await runRoles([...ROLES], flags, { rate: Number(flags.rate), terminals: Number(flags.terminals), durationS: flags.duration ? Number(flags.duration) : undefined });
    });

  for (const role of ROLES) {
    withRunFlags(program.command(role))
      .description(`run only the ${role} role (scale out by starting several)`)
      .action(async (flags) => runRoles([role], flags));
  }

  program
    .command('config')
    .description('check the configuration (environment) and print it; --markdown prints the documented table')
    .option('--markdown', 'print the table of every setting with its default')
    .action((flags) => {
      if (flags.markdown) {
        console.log(configMarkdown());
        return;
      }
      const cfg = loadConfig();
      for (const [k, v] of Object.entries(cfg)) console.log(`${k}=${/KEY|PASSWORD/.test(k) && v ? '(set)' : (v ?? '')}`);
    });

  program
    .command('reasons')
    .description('print the reason codes of decisions and the failure codes, as Markdown tables')
    .action(() => {
      console.log(reasonsMarkdown());
      console.log();
      console.log(failuresMarkdown());
    });

  registerDataCommands(program);
  registerReportCommands(program);
  registerQuoteCommands(program);
  return program;
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      if (err instanceof ConfigError) console.error(`tapflow: ${err.message}`);
      else console.error(`tapflow: ${(err as Error).message ?? err}`);
      process.exit(1);
    });
}
