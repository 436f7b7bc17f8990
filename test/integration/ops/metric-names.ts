/**
 * The metric names dashboards and alert rules may use, and a small PromQL scanner that finds
 * the metric names an expression refers to.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

/** tapflow's own metrics (src/observe/metrics.ts). Histograms are listed by their base name. */
export const TAPFLOW_METRICS = {
  counters: [
    'tapflow_taps_received_total',
    'tapflow_taps_published_total',
    'tapflow_taps_duplicate_total',
    'tapflow_taps_invalid_total',
    'tapflow_ingest_refused_total',
    'tapflow_decisions_total',
    'tapflow_risk_flags_total',
    'tapflow_settlements_total',
    'tapflow_fare_fen_total',
    'tapflow_ledger_imbalanced_total',
    'tapflow_stored_rows_total',
    'tapflow_dead_letters_total',
    'tapflow_batch_failures_total',
    'tapflow_clock_skew_taps_total',
    'tapflow_claim_decisions_total',
    'tapflow_seq_reused_total',
    'tapflow_ingest_unreadable_frames_total',
    'tapflow_tls_revocation_reloads_total',
  ],
  gauges: [
    'tapflow_ledger_imbalance_fen',
    'tapflow_inflight_publishes',
    'tapflow_consumer_pending',
    'tapflow_consumer_oldest_pending_age_seconds',
    'tapflow_role_up',
    'tapflow_partitions_owned',
    'tapflow_sink_last_stored_timestamp_seconds',
    'tapflow_venues_acceptance_drop',
    'tapflow_venues_refusal_surge',
    'tapflow_venue_acceptance_ratio',
    'tapflow_venue_rejects_per_minute',
    'tapflow_terminals_silent',
    'tapflow_terminals_seen',
    'tapflow_store_checks_timestamp_seconds',
    'tapflow_tls_revoked_certificates',
  ],
  histograms: ['tapflow_ack_latency_seconds', 'tapflow_tap_to_store_latency_seconds'],
} as const;

/** Series names Prometheus itself adds to every scrape target. */
const SCRAPE_SERIES = ['up', 'scrape_duration_seconds', 'scrape_samples_scraped'];

const histogramSeries = (base: string) => [`${base}_bucket`, `${base}_sum`, `${base}_count`];

/** prom-client's default (process and Node.js) metrics with tapflow's prefix, as exported. */
export async function defaultMetricSeries(): Promise<string[]> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tapflow_' });
  const metrics = await registry.getMetricsAsJSON();
  return metrics.flatMap((m) => (String(m.type) === 'histogram' ? histogramSeries(m.name) : [m.name]));
}

/** Every series name a dashboard or rule may query. */
export async function allowedSeries(): Promise<Set<string>> {
  return new Set([
    ...TAPFLOW_METRICS.counters,
    ...TAPFLOW_METRICS.gauges,
    ...TAPFLOW_METRICS.histograms.flatMap(histogramSeries),
    ...(await defaultMetricSeries()),
    ...SCRAPE_SERIES,
  ]);
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2']);

/**
 * The metric names a PromQL expression selects. Not a full parser: strips strings, label
 * matchers, ranges, Grafana variables, grouping clauses and numbers, then takes every
 * identifier that is not a keyword or a function/aggregation call.
 */
export function metricNamesIn(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\{?\w+(?::\w+)?\}?/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/(?<![\w:])\d[\w.+-]*/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const name = m[0];
    const after = s.slice((m.index ?? 0) + name.length);
    if (/^\s*\(/.test(after)) continue; // function or aggregation
    if (KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}
