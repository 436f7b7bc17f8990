/** The ingest role: the gRPC server in front of JetStream. */
import type * as grpc from '@grpc/grpc-js';
import type { AppContext, Role } from '../runtime/app.js';
import { loadVenueDirectory } from '../domain/network/index.js';
import { IngestService, startGrpcServer } from './server.js';
import { demoRegistry, fileRegistry } from './terminals.js';
import { sleep } from '../bus/partitions.js';
import { maxMessageBytes } from '../domain/limits.js';

export interface IngestRole extends Role {
  port: number;
  service: IngestService;
}

export async function createIngestRole(ctx: AppContext): Promise<IngestRole> {
  const { cfg, log } = ctx;
  const registry = cfg.TAPFLOW_TERMINALS_FILE ? fileRegistry(cfg.TAPFLOW_TERMINALS_FILE) : demoRegistry(ctx.keys.fleetKey);
  if (!cfg.TAPFLOW_TERMINALS_FILE) log.warn('no TAPFLOW_TERMINALS_FILE: using the demo terminal registry (secrets derived from the local fleet key)');
  const service = new IngestService({
    bus: ctx.bus,
    publisher: ctx.publisher,
    instanceId: ctx.instanceId,
    claimsKv: ctx.buckets.claims,
    registry,
    venues: loadVenueDirectory(cfg.TAPFLOW_TARIFF_DIR),
    tokenKeys: ctx.keys.tokenKeys,
    sealKey: ctx.keys.sealKey,
    partitions: cfg.TAPFLOW_PARTITIONS,
    maxInflight: cfg.TAPFLOW_MAX_INFLIGHT,
    batchMaxTaps: cfg.TAPFLOW_BATCH_MAX_TAPS,
    claimWaitMs: cfg.TAPFLOW_CLAIM_WAIT_MS,
    clockSkewMs: cfg.TAPFLOW_CLOCK_SKEW_MS,
    liveTimeBoundMs: cfg.TAPFLOW_LIVE_TIME_BOUND_MS,
    uploadMaxAgeMs: cfg.TAPFLOW_UPLOAD_MAX_AGE_MS,
    seqMemory: cfg.TAPFLOW_INGEST_SEQ_MEMORY,
    metrics: ctx.metrics,
    log,
  });
  const maxBytes = maxMessageBytes(cfg.TAPFLOW_BATCH_MAX_TAPS);
  const { server, port, health } = await startGrpcServer(service, { host: cfg.TAPFLOW_GRPC_HOST, port: cfg.TAPFLOW_GRPC_PORT, maxMessageBytes: maxBytes });
  log.info({ port, maxMessageBytes: maxBytes }, 'ingest gRPC listening (tapflow.v1.TerminalIngest, health, reflection)');
  return {
    name: 'ingest',
    port,
    service,
    ready: () => ctx.bus.connected(),
    drain: async () => {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus('tapflow.v1.TerminalIngest', 'NOT_SERVING');
      service.startDrain();
      // Finish the taps in flight: their acks are written before the streams end.
      const until = Date.now() + cfg.TAPFLOW_SHUTDOWN_TIMEOUT_MS / 2;
      while ((service.inflight > 0 || service.openStreamCount > 0) && Date.now() < until) await sleep(20);
      await new Promise<void>((resolve) => (server as grpc.Server).tryShutdown(() => resolve()));
    },
    stop: async () => {
      server.forceShutdown();
    },
  };
}
