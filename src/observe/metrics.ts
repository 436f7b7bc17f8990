/**
 * Prometheus metrics of every role, and the HTTP endpoint that serves them with liveness and
 * readiness. Labels never carry card tokens or terminal ids: only bounded vocabularies
 * (reason codes, regions, scenes, rule ids, tables).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';

/** A registry's metrics as data (getMetricsAsJSON), as worker threads send them. */
export type MetricsData = MetricObjectWithValues<MetricValue<string>>[];

/** Latency buckets in seconds, fine at the low end where ack latency lives. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30];

/**
 * tapflow's metrics in a registry of their own. `processMetrics`: also Node's process metrics
 * (CPU, memory, event loop) — once per process, so not on worker threads.
 */
export function createMetrics(o: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (o.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'tapflow_' });
  const m = {
    registry,
    roleUp: new Gauge({ name: 'tapflow_role_up', help: 'Replicas of each role running in this process, its worker threads included.', labelNames: ['role'], registers: [registry] }),
    tapsReceived: new Counter({ name: 'tapflow_taps_received_total', help: 'Taps received by ingest.', labelNames: ['kind'], registers: [registry] }),
    tapsPublished: new Counter({ name: 'tapflow_taps_published_total', help: 'Taps made durable in JetStream (ACCEPTED_DURABLE).', registers: [registry] }),
    tapsDuplicate: new Counter({ name: 'tapflow_taps_duplicate_total', help: 'Taps answered DUPLICATE.', registers: [registry] }),
    tapsInvalid: new Counter({ name: 'tapflow_taps_invalid_total', help: 'Taps answered INVALID, by the offending field.', labelNames: ['field'], registers: [registry] }),
    ingestRefused: new Counter({ name: 'tapflow_ingest_refused_total', help: 'Taps or calls refused (overload, JetStream unavailable, auth), by failure code.', labelNames: ['code'], registers: [registry] }),
    revocationReloads: new Counter({ name: 'tapflow_tls_revocation_reloads_total', help: 'Readings of the terminal certificate revocation list (TAPFLOW_TLS_REVOKED_FILE) by outcome: ok, or failed (the last good list stays in force).', labelNames: ['outcome'], registers: [registry] }),
    revokedCertificates: new Gauge({ name: 'tapflow_tls_revoked_certificates', help: 'Terminal certificate serials in the revocation list in force.', registers: [registry] }),
    clockSkew: new Counter({ name: 'tapflow_clock_skew_taps_total', help: 'Live taps whose device time is further from ingest time than TAPFLOW_CLOCK_SKEW_MS (beyond TAPFLOW_LIVE_TIME_BOUND_MS they are also refused), by terminal region.', labelNames: ['region'], registers: [registry] }),
    inflight: new Gauge({ name: 'tapflow_inflight_publishes', help: 'Taps handed to the bundler and not yet answered (queued or awaiting a bundle\'s PubAck).', registers: [registry] }),
    bundleTaps: new Histogram({ name: 'tapflow_bundle_taps', help: 'Taps per TapBundle published by ingest (group commit).', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], registers: [registry] }),
    ackLatency: new Histogram({ name: 'tapflow_ack_latency_seconds', help: 'From receiving a tap to sending its ack.', buckets: LATENCY_BUCKETS, registers: [registry] }),
    decisions: new Counter({ name: 'tapflow_decisions_total', help: 'Decisions by verdict and reason.', labelNames: ['verdict', 'reason', 'scene', 'region'], registers: [registry] }),
    claimDecisions: new Counter({ name: 'tapflow_claim_decisions_total', help: 'Medical claims decided by validators (card, hotlist, project list), by verdict, reason and treating region.', labelNames: ['verdict', 'reason', 'region'], registers: [registry] }),
    seqReused: new Counter({ name: 'tapflow_seq_reused_total', help: 'Taps sent under a (terminal_id, seq) already used for other content, by where it was caught (ingest answers INVALID; validator: the first tap counts).', labelNames: ['stage'], registers: [registry] }),
    framesUnreadable: new Counter({ name: 'tapflow_ingest_unreadable_frames_total', help: 'gRPC frames that could not be read as a message at all; each ended its stream (StreamTaps) or call.', labelNames: ['method'], registers: [registry] }),
    riskFlags: new Counter({ name: 'tapflow_risk_flags_total', help: 'Risk flags raised, by rule and severity.', labelNames: ['rule', 'severity'], registers: [registry] }),
    settlements: new Counter({ name: 'tapflow_settlements_total', help: 'Settlements by kind and terminal region.', labelNames: ['kind', 'region'], registers: [registry] }),
    fareFen: new Counter({ name: 'tapflow_fare_fen_total', help: 'Fares charged (fen), by network and terminal region.', labelNames: ['network', 'region'], registers: [registry] }),
    ledgerImbalance: new Gauge({ name: 'tapflow_ledger_imbalance_fen', help: 'Sum of debits minus sum of credits of every entry in the ClickHouse ledger (0 when balanced), computed from the ledger by the active sink every TAPFLOW_STORE_CHECK_INTERVAL_MS: it survives restarts of every role. Other processes export 0.', registers: [registry] }),
    ledgerImbalanced: new Counter({ name: 'tapflow_ledger_imbalanced_total', help: 'Settlements whose ledger entries did not balance.', registers: [registry] }),
    storedRows: new Counter({ name: 'tapflow_stored_rows_total', help: 'Rows inserted into ClickHouse, by table.', labelNames: ['table'], registers: [registry] }),
    deadLetters: new Counter({ name: 'tapflow_dead_letters_total', help: 'Messages sent to the dead-letter stream, by role and failure code.', labelNames: ['role', 'code'], registers: [registry] }),
    batchFailures: new Counter({ name: 'tapflow_batch_failures_total', help: 'Batches that failed as a whole and were redelivered or dead-lettered, by role and failure code.', labelNames: ['role', 'code'], registers: [registry] }),
    tapToStore: new Histogram({ name: 'tapflow_tap_to_store_latency_seconds', help: 'From ingest of a tap to its decision row stored in ClickHouse.', buckets: LATENCY_BUCKETS, registers: [registry] }),
    consumerPending: new Gauge({ name: 'tapflow_consumer_pending', help: 'Messages of a durable consumer not yet acknowledged (undelivered + delivered and unacknowledged), read from JetStream consumer info every TAPFLOW_LAG_INTERVAL_MS by each process running the role, by role, stream and partition ("all" for the sink and risk-windows consumers).', labelNames: ['role', 'stream', 'partition'], registers: [registry] }),
    consumerOldestAge: new Gauge({ name: 'tapflow_consumer_oldest_pending_age_seconds', help: 'Age of the oldest message a durable consumer has not acknowledged (0 when none), from its ack floor and the stream message\'s time, read every TAPFLOW_LAG_INTERVAL_MS; by role, stream and partition.', labelNames: ['role', 'stream', 'partition'], registers: [registry] }),
    sinkLastStored: new Gauge({ name: 'tapflow_sink_last_stored_timestamp_seconds', help: 'When the sink last inserted rows into a ClickHouse table (seconds since the epoch), set only by a successful insert; by table.', labelNames: ['table'], registers: [registry] }),
    venuesAcceptanceDrop: new Gauge({ name: 'tapflow_venues_acceptance_drop', help: 'Venues whose share of accepted taps in the recent window fell against their own previous 24 hours (docs/runbook.md, venue acceptance), from ClickHouse by the active sink.', registers: [registry] }),
    venuesRefusalSurge: new Gauge({ name: 'tapflow_venues_refusal_surge', help: 'Venues whose rejected taps per minute in the recent window surged against their own previous 24 hours, from ClickHouse by the active sink.', registers: [registry] }),
    venueAcceptance: new Gauge({ name: 'tapflow_venue_acceptance_ratio', help: 'Share of accepted taps of the worst venues (at most 10: those flagged by tapflow_venues_acceptance_drop or tapflow_venues_refusal_surge), in the recent window and in the 24 hours before.', labelNames: ['venue', 'window'], registers: [registry] }),
    venueRejectsPerMinute: new Gauge({ name: 'tapflow_venue_rejects_per_minute', help: 'Rejected taps per minute of the same worst venues, in the recent window and in the 24 hours before.', labelNames: ['venue', 'window'], registers: [registry] }),
    terminalsSilent: new Gauge({ name: 'tapflow_terminals_silent', help: 'Terminals that sent taps in the last 24 hours but none in the last TAPFLOW_TERMINAL_SILENT_MINUTES (by ingest time), by terminal region and scene, from ClickHouse by the active sink.', labelNames: ['region', 'scene'], registers: [registry] }),
    terminalsSeen: new Gauge({ name: 'tapflow_terminals_seen', help: 'Terminals that sent taps in the last 24 hours, by terminal region and scene, from ClickHouse by the active sink.', labelNames: ['region', 'scene'], registers: [registry] }),
    storeChecked: new Gauge({ name: 'tapflow_store_checks_timestamp_seconds', help: 'When the active sink last computed the ClickHouse gauges (ledger imbalance, venues, silent terminals), seconds since the epoch.', registers: [registry] }),
    partitionRestore: new Histogram({ name: 'tapflow_partition_restore_seconds', help: 'Time to restore a partition\'s state on acquiring it (checkpoint mark, changelog replay), by role.', labelNames: ['role'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60], registers: [registry] }),
    partitionsOwned: new Gauge({ name: 'tapflow_partitions_owned', help: 'Partitions this process owns, by role.', labelNames: ['role'], registers: [registry] }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** This registry's metrics and the worker threads', summed (the registry alone without threads). */
export async function aggregated(metrics: Metrics, more: () => Promise<MetricsData[]>): Promise<Registry> {
  const others = await more();
  if (others.length === 0) return metrics.registry;
  return AggregatorRegistry.aggregate([await metrics.registry.getMetricsAsJSON(), ...others]);
}

export interface HealthCheck {
  name: string;
  ready(): boolean;
}

/**
 * Serves /metrics, /healthz (alive: 200 "ok", or 503 "draining" once shutdown began) and /readyz
 * (every registered check ready, and not draining).
 */
export async function serveMetrics(
  metrics: Metrics,
  host: string,
  port: number,
  checks: () => HealthCheck[],
  endpoints: Map<string, (query: URLSearchParams) => Promise<unknown>> = new Map(),
  draining: () => boolean = () => false,
  /** Metrics of worker threads, served summed with this registry's. */
  more: () => Promise<MetricsData[]> = async () => [],
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const parsed = new URL(url, 'http://localhost');
    const endpoint = endpoints.get(parsed.pathname);
    if (endpoint) {
      endpoint(parsed.searchParams)
        .then((body) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body, null, 2) + '\n');
        })
        .catch((err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(String(err) + '\n');
        });
    } else if (url.startsWith('/metrics')) {
      aggregated(metrics, more)
        .then((r) => r.metrics())
        .then((body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
    } else if (url.startsWith('/healthz')) {
      const d = draining();
      res.writeHead(d ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(d ? 'draining\n' : 'ok\n');
    } else if (url.startsWith('/readyz')) {
      const d = draining();
      const status = checks().map((c) => ({ name: c.name, ready: c.ready() }));
      const ok = !d && status.every((s) => s.ready);
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ready: ok, draining: d, checks: status }) + '\n');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  server.unref();
  const actual = (server.address() as AddressInfo).port;
  return {
    server,
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
