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
import { bindTopology, fileStoreNeeded, openBuckets, type BucketSet } from '../bus/topology.js';
import { busAuth, defaultCredsDir, ensureCredentials } from '../bus/credentials.js';
import { busUserFor, natsAuthorizationBlock } from '../bus/permissions.js';
import { setupBus } from './bus-setup.js';
import { createLogger, type Logger } from '../observe/log.js';
import { aggregated, createMetrics, serveMetrics, type HealthCheck, type Metrics } from '../observe/metrics.js';
import type { Registry } from 'prom-client';
import { startConsumerLag } from '../observe/consumer-lag.js';
import { startRoleThreads, type RoleThreads, type ThreadRole } from './threads.js';
import { ensureNatsServer, isNatsReachable, parseNatsAddress, startNatsServer, type NatsServerHandle } from './nats-server.js';
import { localKeys, type LocalKeys } from './keys.js';
import type { RoleName, WorkerRole } from './role-names.js';

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
export function workerOptions(ctx: AppContext, role: WorkerRole): Omit<PartitionWorkerOptions, 'partitions' | 'batch' | 'handler'> {
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
    onBatchFailure: (code) => metrics.batchFailures.inc({ role, code }),
  };
}

/**
 * A partition worker of a card-partitioned role (validator, settler) with the deployment's
 * partitions and batch size.
 */
export function partitionedWorker(ctx: AppContext, role: WorkerRole, handler: PartitionHandler): PartitionWorker {
  return new PartitionWorker({ ...workerOptions(ctx, role), partitions: ctx.cfg.TAPFLOW_PARTITIONS, batch: ctx.cfg.TAPFLOW_CONSUMER_BATCH, handler });
}

export interface RunningApp {
  ctx: AppContext;
  roles: Role[];
  /** Role replicas on worker threads, when any. */
  threads?: RoleThreads;
  /** This process's metrics, the worker threads' included (summed). */
  metrics(): Promise<Registry>;
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
  // Least privilege by default: a user per role and an admin user, their passwords generated
  // once into the credentials folder (0600), which every process of this data dir then reads.
  // With NATS_USER the operator chose one identity: the server then asks for none.
  const credsDir = cfg.TAPFLOW_NATS_CREDS_DIR ?? defaultCredsDir(cfg.TAPFLOW_DATA_DIR);
  const passwords = cfg.NATS_USER ? undefined : await ensureCredentials(credsDir);
  const authorization = passwords ? natsAuthorizationBlock(cfg.TAPFLOW_PARTITIONS, (u) => JSON.stringify(passwords[u])) : undefined;
  log.info({ bin, port, storeDir, credsDir: passwords ? credsDir : undefined }, 'starting a local nats-server with JetStream');
  // Room for every stream's size limit, whatever the disk's free space says at start.
  return startNatsServer({ bin, host: '127.0.0.1', port, storeDir, jetstream: true, maxFileStore: fileStoreNeeded(cfg.TAPFLOW_STREAM_MAX_BYTES, cfg.TAPFLOW_ARCHIVE_MAX_BYTES), log: nlog, authorization });
}

export interface StartOptions {
  log?: Logger;
  installSignalHandlers?: boolean;
  /** Replicas of these roles on worker threads (threads.ts), besides `factories` here. */
  threads?: { roles: ThreadRole[]; count: number };
  /** This is a worker thread: no local nats-server, no HTTP endpoints, no process metrics. */
  inThread?: boolean;
  /**
   * Run the admin steps before the roles bind, as `tapflow start` does: the bus's (setupBus:
   * topology, as the admin NATS user) and, with a ClickHouse server and the sink here, the
   * store's (migrations and retention). Otherwise they must have been done (TF_TOPOLOGY_MISSING,
   * TF_STORE_SETUP_MISSING).
   */
  setupBus?: boolean;
}

export async function startApp(cfg: Config, factories: { name: string; create: RoleFactory }[], opts: StartOptions = {}): Promise<RunningApp> {
  const log = opts.log ?? createLogger(cfg.TAPFLOW_LOG_LEVEL, { app: 'tapflow' });
  const natsServer = opts.inThread ? undefined : await ensureNats(cfg, log);
  const instanceId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  if (opts.setupBus && !opts.inThread) await setupBus(cfg, log);
  // The store's admin step too, on a server (the embedded engine's sink applies it itself).
  if (opts.setupBus && !opts.inThread && cfg.CLICKHOUSE_URL && factories.some((f) => f.name === 'sink')) {
    const { openStore, setupStore } = await import('../store/mod.js');
    const engine = await openStore(cfg);
    try {
      const done = await setupStore(engine, cfg.TAPFLOW_STORE_RETENTION_DAYS);
      log.info({ applied: done.applied, retention: done.retention }, 'store admin step done (tapflow store setup)');
    } finally {
      await engine.close();
    }
  }
  // The NATS user of this process: its role's, or `all` when it runs several (threads included).
  const roleNames = [...new Set([...factories.map((f) => f.name), ...(opts.threads && opts.threads.count > 0 ? opts.threads.roles : [])])];
  const auth = busAuth(cfg, busUserFor(roleNames as RoleName[]));
  const bus = await connectBus(cfg.NATS_URL, `tapflow:${factories.map((f) => f.name).join('+')}:${instanceId}`, log, 5000, auth);
  try {
    await bindTopology(bus, cfg.TAPFLOW_PARTITIONS, roleNames);
  } catch (err) {
    await bus.close();
    throw err;
  }
  // Leases on a connection of their own: a renewal must not wait behind the data path's
  // publishes on a busy socket, or an overloaded owner loses partitions it is serving.
  const leaseBus = await connectBus(cfg.NATS_URL, `tapflow-leases:${instanceId}`, log, 5000, auth);
  const buckets = await openBuckets(bus, cfg.TAPFLOW_LEASE_TTL_MS, leaseBus, false);
  const publisher = new JsPublisher(bus.nc, cfg.TAPFLOW_PUBLISH_TIMEOUT_MS);
  const metrics = createMetrics({ processMetrics: !opts.inThread });
  const ctx: AppContext = { cfg, log, bus, buckets, publisher, metrics, keys: localKeys(cfg), instanceId, endpoints: new Map() };
  const roles: Role[] = [];
  for (const f of factories) {
    const role = await f.create(ctx);
    roles.push(role);
    metrics.roleUp.set({ role: f.name }, 1);
    log.info({ role: f.name }, 'role started');
  }
  let threads: RoleThreads | undefined;
  let threadLost: Error | undefined;
  let stopForLostThread: (() => void) | undefined;
  if (opts.threads && opts.threads.count > 0 && opts.threads.roles.length > 0) {
    threads = await startRoleThreads(cfg, opts.threads.roles, opts.threads.count, log, (err) => {
      threadLost = err;
      stopForLostThread?.();
    });
  }
  const moreMetrics = async () => (threads ? threads.metrics() : []);
  const checks = (): HealthCheck[] => [
    { name: 'nats', ready: () => bus.connected() },
    ...roles.map((r) => ({ name: r.name, ready: () => r.ready() })),
    ...(threads ? [{ name: `${threads.count} worker threads`, ready: () => threads!.ready() }] : []),
  ];
  // Backlog per role, stream and partition, read from JetStream on a timer (not after a batch, so
  // a stalled partition shows): once per process, for its roles and its worker threads' roles.
  const lag = opts.inThread
    ? undefined
    : startConsumerLag({ bus, partitions: cfg.TAPFLOW_PARTITIONS, roles: [...factories.map((f) => f.name), ...(threads ? opts.threads!.roles : [])], intervalMs: cfg.TAPFLOW_LAG_INTERVAL_MS, metrics, log });
  let draining = false;
  const http = opts.inThread
    ? undefined
    : await serveMetrics(metrics, cfg.TAPFLOW_GRPC_HOST === '0.0.0.0' ? '0.0.0.0' : '127.0.0.1', cfg.TAPFLOW_METRICS_PORT, checks, ctx.endpoints, () => draining, moreMetrics);
  if (http) log.info({ port: http.port }, 'metrics, /healthz and /readyz listening');

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
      await lag?.stop();
      // Worker threads after ingest stopped taking taps, before the sink: what they publish
      // while finishing their batches is still stored.
      if (threads) {
        await threads.stop();
      }
      for (const r of [...roles].reverse()) {
        await r.stop().catch((err: unknown) => log.error({ role: r.name, err: (err as Error).message }, 'role stop failed'));
        metrics.roleUp.set({ role: r.name }, 0);
      }
      publisher.close();
      await bus.close();
      await leaseBus.close();
      await http?.close();
      await natsServer?.stop();
      clearTimeout(deadline);
      log.info('stopped');
    })());
  // A worker thread that dies has one action: the whole process stops with an error (a
  // supervisor restarts it), releasing its other leases on the way so that other replicas take
  // its partitions at once.
  stopForLostThread = () => {
    log.fatal({ err: threadLost?.message }, 'a worker thread died; tapflow stops');
    process.exitCode = 1;
    void shutdown('a worker thread died').then(() => {
      if (opts.installSignalHandlers !== false) process.exit(1);
    });
  };
  if (threadLost) stopForLostThread();
  if (opts.installSignalHandlers !== false) {
    const onSignal = (sig: string) => {
      void shutdown(sig).then(() => process.exit(process.exitCode ?? 0));
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  }
  return { ctx, roles, threads, metrics: () => aggregated(metrics, moreMetrics), metricsPort: http?.port ?? 0, natsServer, shutdown };
}
