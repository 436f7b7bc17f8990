/**
 * The commands that run roles: `tapflow start` (every role in one process, the laptop default),
 * `tapflow demo` (the same with a simulated fleet), and one command per role for scaling out.
 * Options and help only; run.ts, loaded when one runs, starts them.
 */
import { Option, type Command } from 'commander';
import { LOG_LEVELS, MAX_PARTITIONS } from '../config/values.js';
import { ROLES, type RoleName } from '../runtime/role-names.js';
import { folder, httpUrl, integer, listOf, listenPort, natsUrls, oneOf, positiveNumber, workersValue } from './options.js';

/** The run flags as parsed: each overrides its environment variable. */
export interface RunFlags {
  natsUrl?: string;
  dataDir?: string;
  grpcPort?: number;
  metricsPort?: number;
  clickhouseUrl?: string;
  partitions?: number;
  logLevel?: string;
  workers?: string;
}

/** The demo fleet's flags as parsed. */
export interface DemoFlags {
  rate: number;
  terminals: number;
  /** Seconds; undefined: until Ctrl-C. */
  duration?: number;
}

/** Flags shared by the commands that run roles; each overrides its environment variable. */
function withRunFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--nats-url <url>', 'NATS server URL, comma-separated for a cluster (NATS_URL)').argParser(natsUrls))
    .addOption(new Option('--data-dir <dir>', 'local state folder (TAPFLOW_DATA_DIR)').argParser(folder))
    .addOption(new Option('--grpc-port <port>', 'ingest gRPC port, 0 = any free port (TAPFLOW_GRPC_PORT)').argParser(listenPort))
    .addOption(new Option('--metrics-port <port>', '/metrics port, 0 = any free port (TAPFLOW_METRICS_PORT)').argParser(listenPort))
    .addOption(new Option('--clickhouse-url <url>', 'ClickHouse server; unset = embedded engine (CLICKHOUSE_URL)').argParser(httpUrl))
    .addOption(new Option('--partitions <n>', `card partitions, 1 to ${MAX_PARTITIONS} (TAPFLOW_PARTITIONS)`).argParser(integer(1, MAX_PARTITIONS, 'card partitions')))
    .addOption(new Option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')} (TAPFLOW_LOG_LEVEL)`).argParser(oneOf(LOG_LEVELS)))
    .addOption(new Option('--workers <n|auto>', 'worker threads for validator and settler replicas, 0 to 64 or auto (TAPFLOW_WORKERS)').argParser(workersValue));
}

/** The demo fleet's flags. */
function withDemoFlags(cmd: Command, durationHelp: string): Command {
  return cmd
    .addOption(new Option('--rate <taps/s>', 'demo fleet rate, taps per second').argParser(positiveNumber(100_000, 'taps per second', '200')).default(200))
    .addOption(new Option('--terminals <n>', 'demo fleet size').argParser(integer(1, 100_000, 'terminals')).default(300))
    .addOption(new Option('--duration <s>', durationHelp).argParser(positiveNumber(365 * 86_400, 'seconds', '30')));
}

const run = () => import('./run.js');

export function registerRunCommands(program: Command): void {
  withDemoFlags(
    withRunFlags(program.command('start'))
      .description('run every role in one process (ingest, validator, settler, sink); --demo adds a simulated fleet')
      .addOption(new Option('--roles <list>', `comma-separated roles to run (${ROLES.join(',')})`).argParser(listOf(ROLES)).default([...ROLES], ROLES.join(',')))
      .option('--demo', 'add a simulated terminal fleet and print a live summary'),
    'stop the demo after this many seconds (default: run until Ctrl-C)',
  ).action(async (flags: RunFlags & DemoFlags & { roles: RoleName[]; demo?: boolean }, cmd: Command) => {
    if (!flags.demo) {
      // Without --demo these would be ignored: say so instead.
      for (const name of ['rate', 'terminals', 'duration']) {
        if (cmd.getOptionValueSource(name) === 'cli') throw new Error(`--${name}: only with --demo (tapflow start --demo --${name} …)`);
      }
    }
    if (flags.demo && !flags.roles.includes('ingest')) throw new Error('--roles: the demo fleet sends its taps to the ingest role of this process; add ingest');
    await (await run()).runRoles(flags.roles, flags, flags.demo ? flags : undefined, true);
  });

  withDemoFlags(withRunFlags(program.command('demo')), 'stop after this many seconds (default: run until Ctrl-C)')
    .description('same as `start --demo`: the whole pipeline plus a simulated terminal fleet')
    .action(async (flags: RunFlags & DemoFlags) => (await run()).runRoles([...ROLES], flags, flags, true));

  for (const role of ROLES) {
    withRunFlags(program.command(role))
      .description(`run only the ${role} role (scale out by starting several); the topology must exist (tapflow bus setup)`)
      .action(async (flags: RunFlags) => (await run()).runRoles([role], flags));
  }
}
