/**
 * Runs one or more roles in this process with what they share: the NATS connection (and a
 * local nats-server when none answers), the JetStream topology, the pipelined publisher, the
 * metrics endpoint, and an orderly shutdown on SIGTERM/SIGINT.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { hostname } from 'node:os';
import type { Config } from '../config/config.js';
import { connectBus, type Bus } from '../bus/connection.js';
import { JsPublisher } from '../bus/publisher.js';
import { PartitionWorker, type PartitionHandler, type PartitionWorkerOptions } from '../bus/partitions.js';
import { deadLetter } from '../bus/dead-letter.js';
import { ensureTopology, openBuckets, topologyOptions, type BucketSet } from '../bus/topology.js';
import { createLogger, type Logger } from '../observe/log.js';
import { createMetrics, serveMetrics, type HealthCheck, type Metrics } from '../observe/metrics.js';
import { ensureNatsServer, isNatsReachable, parseNatsAddress, startNatsServer, type NatsServerHandle } from './nats-server.js';
import { localKeys, type LocalKeys } from './keys.js';

export { ROLES, type RoleName } from './role-names.js';

/** What every role gets. */
export interface AppContext {
  cfg: Config;
  log: Logger;
  bus: Bus;
  buckets: BucketSet;
  publisher: JsPublisher;
  metrics: Metrics;
  keys: LocalKeys;
  instanceId: string;
  /** Extra HTTP JSON endpoints served next to /metrics (e.g. /summary by the sink). */
  endpoints: Map<string, (query: URLSearchParams) => Promise<unknown>>;
  /** The ClickHouse engine, when this process runs the sink. */
  engine?: import('../store/engine.js').ClickHouseEngine;
}

/** A running role. */
export interface Role {
  name: string;
  ready(): boolean;
  /** First phase of shutdown: stop taking new work (ingest refuses new taps). */
  drain?(): Promise<void>;
  /** Second phase: finish what is in hand, release resources. */
  stop(): Promise<void>;
}

export type RoleFactory = (ctx: AppContext) => Promise<Role>;

/**
 * What every partition worker of a role shares: the bus, the leases, the failure table's bound
 * and dead-letter stream, and the role's ownership, backlog and failure metrics.
 */
export function workerOptions(ctx: AppContext, role: string): Omit<PartitionWorkerOptions, 'partitions' | 'batch' | 'handler'> {
  const { cfg, metrics } = ctx;
  return {
    bus: ctx.bus,
    leases: ctx.buckets.leases,
    role,
    instanceId: ctx.instanceId,
    leaseTtlMs: cfg.TAPFLOW_LEASE_TTL_MS,
    log: ctx.log,
    maxDeliver: cfg.TAPFLOW_MAX_DELIVER,
    deadLetter: async (consumer, d) => {
      await deadLetter(ctx.publisher, role, consumer, d.msg, d.error, d.part);
      metrics.deadLetters.inc({ role, code: d.error.code });
    },
    onOwned: (n) => metrics.partitionsOwned.set({ role }, n),
    onPending: (stream, _p, n) => metrics.consumerPending.set({ role, stream }, n),
    onBatchFailure: (code) => metrics.batchFailures.inc({ role, code }),
  };
}

/**
 * A partition worker of a card-partitioned role (validator, settler) with the deployment's
 * partitions and batch size.
 */
export function partitionedWorker(ctx: AppContext, role: string, handler: PartitionHandler): PartitionWorker {
  return new PartitionWorker({ ...workerOptions(ctx, role), partitions: ctx.cfg.TAPFLOW_PARTITIONS, batch: ctx.cfg.TAPFLOW_CONSUMER_BATCH, handler });
}

export interface RunningApp {
  ctx: AppContext;
  roles: Role[];
  metricsPort: number;
  natsServer?: NatsServerHandle;
  /** Orderly shutdown; resolves when everything is stopped. */
  shutdown(reason: string): Promise<void>;
}

/** Makes sure a NATS server answers at NATS_URL, starting a local one when allowed. */
export async function ensureNats(cfg: Config, log: Logger): Promise<NatsServerHandle | undefined> {
  if (await isNatsReachable(cfg.NATS_URL, 1500)) return undefined;
  if (!cfg.TAPFLOW_NATS_AUTOSTART) {
    throw new Error(`no NATS server answers at ${cfg.NATS_URL}. Start one with JetStream (nats-server -js), or set TAPFLOW_NATS_AUTOSTART=true to let tapflow start one, or run \`docker compose up nats\`.`);
  }
  const { host, port } = parseNatsAddress(cfg.NATS_URL.split(',')[0]!);
  if (host !== '127.0.0.1' && host !== 'localhost') {
    throw new Error(`no NATS server answers at ${cfg.NATS_URL}, and tapflow only starts a local one for a loopback URL. Start nats-server -js there, or unset NATS_URL.`);
  }
  const nlog = { info: (m: string) => log.info(m), warn: (m: string) => log.warn(m), debug: (m: string) => log.debug(m) };
  const bin = await ensureNatsServer({ install: true, log: nlog });
  const storeDir = join(cfg.TAPFLOW_DATA_DIR, 'nats');
  log.info({ bin, port, storeDir }, 'starting a local nats-server with JetStream');
  return startNatsServer({ bin, host: '127.0.0.1', port, storeDir, jetstream: true, log: nlog });
}

export async function startApp(cfg: Config, factories: { name: string; create: RoleFactory }[], opts: { log?: Logger; installSignalHandlers?: boolean } = {}): Promise<RunningApp> {
  const log = opts.log ?? createLogger(cfg.TAPFLOW_LOG_LEVEL, { app: 'tapflow' });
  const natsServer = await ensureNats(cfg, log);
  const instanceId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const bus = await connectBus(cfg.NATS_URL, `tapflow:${factories.map((f) => f.name).join('+')}:${instanceId}`, log);
  await ensureTopology(bus, topologyOptions(cfg));
  const buckets = await openBuckets(bus, cfg.TAPFLOW_LEASE_TTL_MS);
  const publisher = new JsPublisher(bus.nc, cfg.TAPFLOW_PUBLISH_TIMEOUT_MS);
  const metrics = createMetrics();
  const ctx: AppContext = { cfg, log, bus, buckets, publisher, metrics, keys: localKeys(cfg), instanceId, endpoints: new Map() };
  const roles: Role[] = [];
  for (const f of factories) {
    const role = await f.create(ctx);
    roles.push(role);
    metrics.roleUp.set({ role: f.name }, 1);
    log.info({ role: f.name }, 'role started');
  }
  const checks = (): HealthCheck[] => [{ name: 'nats', ready: () => bus.connected() }, ...roles.map((r) => ({ name: r.name, ready: () => r.ready() }))];
  let draining = false;
  const http = await serveMetrics(metrics, cfg.TAPFLOW_GRPC_HOST === '0.0.0.0' ? '0.0.0.0' : '127.0.0.1', cfg.TAPFLOW_METRICS_PORT, checks, ctx.endpoints, () => draining);
  log.info({ port: http.port }, 'metrics, /healthz and /readyz listening');

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> =>
    (stopping ??= (async () => {
      draining = true;
      log.info({ reason }, 'shutting down: draining');
      const deadline = setTimeout(() => {
        log.error({ timeoutMs: cfg.TAPFLOW_SHUTDOWN_TIMEOUT_MS }, 'shutdown took too long; exiting');
        process.exit(1);
      }, cfg.TAPFLOW_SHUTDOWN_TIMEOUT_MS);
      deadline.unref();
      for (const r of roles) await r.drain?.();
      for (const r of [...roles].reverse()) {
        await r.stop().catch((err: unknown) => log.error({ role: r.name, err: (err as Error).message }, 'role stop failed'));
        metrics.roleUp.set({ role: r.name }, 0);
      }
      publisher.close();
      await bus.close();
      await http.close();
      await natsServer?.stop();
      clearTimeout(deadline);
      log.info('stopped');
    })());
  if (opts.installSignalHandlers !== false) {
    const onSignal = (sig: string) => {
      void shutdown(sig).then(() => process.exit(0));
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  }
  return { ctx, roles, metricsPort: http.port, natsServer, shutdown };
}
