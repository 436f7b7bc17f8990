/** The ingest role: the gRPC server in front of JetStream. */
import type * as grpc from '@grpc/grpc-js';
import type { AppContext, Role } from '../runtime/app.js';
import { loadVenueDirectory } from '../domain/network/index.js';
import { IngestService, startGrpcServer } from './server.js';
import { demoRegistry, fileRegistry } from './terminals.js';
import { sleep } from '../bus/partitions.js';
import { maxMessageBytes } from '../domain/limits.js';
import { readFileSync } from 'node:fs';
import { RevocationList, serverTlsFiles } from './tls.js';

export interface IngestRole extends Role {
  port: number;
  service: IngestService;
}

export async function createIngestRole(ctx: AppContext): Promise<IngestRole> {
  const { cfg, log } = ctx;
  const registry = cfg.TAPFLOW_TERMINALS_FILE ? fileRegistry(cfg.TAPFLOW_TERMINALS_FILE) : demoRegistry(ctx.keys.fleetKey);
  if (!cfg.TAPFLOW_TERMINALS_FILE) log.warn(`no TAPFLOW_TERMINALS_FILE: using the demo terminal registry (${cfg.TAPFLOW_INGEST_AUTH === 'mtls' ? 'any <BJ|TJ|HE>-<name> id a fleet-CA certificate names' : 'secrets derived from the local fleet key'})`);
  let revoked: RevocationList | undefined;
  let tls: { caPem: Buffer; certPem: Buffer; keyPem: Buffer } | undefined;
  if (cfg.TAPFLOW_INGEST_AUTH === 'mtls') {
    const files = serverTlsFiles(cfg);
    if (files.development) log.warn({ dir: files.caFile.replace(/\/ca\.pem$/, '') }, 'no TAPFLOW_TLS_CA_FILE/CERT_FILE/KEY_FILE: serving mutual TLS with the development CA under the data dir (tapflow certs terminal issues its terminal certificates)');
    tls = { caPem: readFileSync(files.caFile), certPem: readFileSync(files.certFile), keyPem: readFileSync(files.keyFile) };
    revoked = new RevocationList(files.revokedFile, log, (outcome, size) => {
      ctx.metrics.revocationReloads.inc({ outcome });
      ctx.metrics.revokedCertificates.set(size);
    });
    if (!revoked.reload() && cfg.TAPFLOW_TLS_REVOKED_FILE) throw new Error(`TAPFLOW_TLS_REVOKED_FILE=${cfg.TAPFLOW_TLS_REVOKED_FILE}: could not be read (see the log line above)`);
  } else {
    log.warn('TAPFLOW_INGEST_AUTH=dev-secrets: plaintext gRPC, terminals authenticated by static secrets in metadata: DEVELOPMENT ONLY, never in production');
  }
  const service = new IngestService({
    bus: ctx.bus,
    publisher: ctx.publisher,
    instanceId: ctx.instanceId,
    claimsKv: ctx.buckets.claims,
    registry,
    ...(revoked && { mtls: { revoked } }),
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
  const { server, port, health } = await startGrpcServer(service, { host: cfg.TAPFLOW_GRPC_HOST, port: cfg.TAPFLOW_GRPC_PORT, maxMessageBytes: maxBytes, ...(tls && { tls }) });
  if (revoked) {
    const list = revoked;
    list.onChange(() => {
      const ended = service.endRevokedStreams(list);
      if (ended > 0) log.warn({ streams: ended }, 'ended the open streams of revoked terminal certificates');
    });
    list.start();
  }
  log.info({ port, maxMessageBytes: maxBytes, auth: cfg.TAPFLOW_INGEST_AUTH }, `ingest gRPC listening (tapflow.v1.TerminalIngest, health, reflection; ${tls ? 'mutual TLS' : 'PLAINTEXT, dev-secrets'})`);
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
      revoked?.stop();
      server.forceShutdown();
    },
  };
}
