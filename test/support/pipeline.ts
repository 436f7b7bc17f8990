/**
 * The whole pipeline in the test process: a throw-away nats-server, every role (ingest,
 * validator, settler, sink with the embedded ClickHouse engine) on free ports, a temporary data
 * dir, and gRPC clients for demo-registry terminals.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config, type ConfigKey } from '../../src/config/config.js';
import { startApp, type RoleName, type RunningApp } from '../../src/runtime/app.js';
import { ROLE_FACTORIES } from '../../src/cli/roles.js';
import { createLogger, type Logger } from '../../src/observe/log.js';
import { demoTerminalSecret } from '../../src/ingest/terminals.js';
import { TerminalIngestClient } from '../../src/gen/tapflow/v1/ingest.js';
import type { NatsServerHandle } from '../../src/runtime/nats-server.js';
import { startTestNats, type TestNatsOptions } from './nats.js';
import { setupBus } from './bus.js';

export interface TestPipeline {
  nats: NatsServerHandle;
  app: RunningApp;
  cfg: Config;
  dataDir: string;
  grpcPort: number;
  client: TerminalIngestClient;
  metadata(terminalId: string): grpc.Metadata;
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  /** Polls until fn returns true (or throws after timeoutMs). */
  until(fn: () => Promise<boolean>, timeoutMs?: number, what?: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The settings of a test pipeline against `natsUrl` with state in `dataDir`: no nats-server of its
 * own, free ports, 4 partitions, short leases and flushes. Also the environment of a CLI child.
 */
export function testPipelineSettings(natsUrl: string, dataDir: string): Partial<Record<ConfigKey, string>> {
  return {
    NATS_URL: natsUrl,
    TAPFLOW_NATS_AUTOSTART: 'false',
    TAPFLOW_DATA_DIR: dataDir,
    TAPFLOW_GRPC_HOST: '127.0.0.1',
    TAPFLOW_GRPC_PORT: '0',
    TAPFLOW_METRICS_PORT: '0',
    TAPFLOW_PARTITIONS: '4',
    TAPFLOW_LEASE_TTL_MS: '3000',
    TAPFLOW_ACK_WAIT_S: '5',
    TAPFLOW_SINK_FLUSH_MS: '100',
    TAPFLOW_PUBLISH_TIMEOUT_MS: '5000',
    // Roles in the main thread unless a test asks for worker threads (test/e2e/threads.test.ts).
    TAPFLOW_WORKERS: '0',
    // Tests not about terminal identity use the static-secret path (TapSender, metadata());
    // test/integration/ingest/mtls.test.ts covers mutual TLS, the default.
    TAPFLOW_INGEST_AUTH: 'dev-secrets',
  };
}

/**
 * `threads`: run validator and settler on that many worker threads (the main thread keeps ingest
 * and the sink), as `tapflow start` does with TAPFLOW_WORKERS. `roles`: run only these (say
 * ingest alone, to read what it published from the TAPS stream, where it stays: the topology's
 * consumers are interested in it and nobody acknowledges it); `query` then needs the sink.
 * `log`: the roles' logger (default: JSON lines on stderr at TAPFLOW_LOG_LEVEL); worker threads
 * keep logging to stderr. `nats`: options of the test's nats-server (e.g. where its own output
 * lines go).
 */
export async function startTestPipeline(
  overrides: Partial<Record<ConfigKey, string>> = {},
  o: { threads?: number; roles?: RoleName[]; log?: Logger; nats?: TestNatsOptions } = {},
): Promise<TestPipeline> {
  const nats = await startTestNats(o.nats);
  const dataDir = await mkdtemp(join(tmpdir(), 'tapflow-e2e-'));
  const cfg = loadConfig({}, { ...testPipelineSettings(nats.url, dataDir), TAPFLOW_LOG_LEVEL: process.env.TAPFLOW_TEST_LOG_LEVEL ?? 'warn', ...overrides });
  // The admin step, as `tapflow start` runs it: the roles only bind to the topology.
  await setupBus(nats.url, { ...testPipelineSettings(nats.url, dataDir), ...overrides });
  const app = await startApp(
    cfg,
    (o.roles ?? (o.threads ? (['ingest', 'sink'] as const) : (['ingest', 'validator', 'settler', 'sink'] as const))).map((r) => ({ name: r, create: ROLE_FACTORIES[r] })),
    {
      installSignalHandlers: false,
      log: o.log ?? createLogger(cfg.TAPFLOW_LOG_LEVEL, { test: true }),
      threads: o.threads ? { roles: ['validator', 'settler'], count: o.threads } : undefined,
    },
  );
  const ingest = app.roles.find((r) => r.name === 'ingest') as unknown as { port: number };
  const client = new TerminalIngestClient(`127.0.0.1:${ingest.port}`, grpc.credentials.createInsecure());
  const engine = app.ctx.engine;
  const until = async (fn: () => Promise<boolean>, timeoutMs = 30_000, what = 'condition') => {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (await fn()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  };
  return {
    nats,
    app,
    cfg,
    dataDir,
    grpcPort: ingest.port,
    client,
    metadata(terminalId) {
      const md = new grpc.Metadata();
      md.set('x-terminal-id', terminalId);
      md.set('x-terminal-secret', demoTerminalSecret(app.ctx.keys.fleetKey, terminalId));
      return md;
    },
    query: (sql) => {
      if (!engine) throw new Error('this test pipeline runs no sink: there is no store to query');
      return engine.query(sql);
    },
    until,
    async stop() {
      client.close();
      await app.shutdown('test done');
      await nats.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
