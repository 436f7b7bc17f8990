/**
 * The bench report: one JSON object (fields documented in bench/README.md, "Report fields"),
 * rendered as a ghz-like console summary, a Markdown report and an SVG chart, written to
 * <out>/<run id>/ with a copy of the JSON at <out>/latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CeilingResult } from './ceilings.js';
import type { ProcSummary } from './procstat.js';
import { resourceTable, type ResourceSeries, type RssCheck, type RssLevel } from './resources.js';
import type { BundleReport, RestoreReport } from './restore.js';
import type { LogSummary } from './logs.js';
import type { BehindReport, Knee, LatencySummary, SecondStats } from './recorder.js';
import { renderChart, type Panel } from './svg.js';
import type { LossReport, MoneyReport, VerdictReport } from './verify.js';
import type { ProfileSummary } from './cpuprofile.js';
import { profileMarkdown } from './cpuprofile.js';

export const REPORT_SCHEMA = 'tapflow-bench/1';

export interface TargetRow {
  target: string;
  required: string;
  measured: string;
  /** true / false, or null when this run does not test it (other profile, other rate). */
  met: boolean | null;
}

export interface BenchReport {
  schema: typeof REPORT_SCHEMA;
  run_id: string;
  started_at: string;
  profile: string;
  mode: string;
  /** Offered taps/s: the constant rate, a ramp's top, the rush hour's peak, the batch upload rate; null for a burst. */
  offered_rate: number | null;
  duration_s: number;
  options: Record<string, unknown>;
  machine: { cpus: number; cpu_model: string; load_avg_before: number[]; node: string; nats_server: string };
  fleet: {
    terminals: number;
    streams: number;
    uploaders: number;
    cards: number;
    live_taps: number;
    warm_taps: number;
    batch_taps: number;
    batches: number;
    claims: number;
    bad_shares: Record<string, number>;
    expected: Record<string, number>;
    tap_bytes_avg: number;
    generate_s: number;
  };
  pipeline: {
    taps_per_s: { offered: number; acked: number; stored: number };
    acked_taps: number;
    stored_taps: number;
    /** Seconds from the window start to the last durable ack / last decision row stored. */
    acked_span_s: number;
    stored_span_s: number;
    ack_p99_ms: number;
    stored_p99_ms: number;
    ack_ms: LatencySummary;
    ack_service_ms: LatencySummary;
    stored_ms: LatencySummary;
    device_to_stored_ms: LatencySummary;
    batch_ms: LatencySummary | null;
    claim_ms: LatencySummary | null;
    status: { live: Record<string, number>; batch: Record<string, number>; claims: Record<string, number> };
    retries: number;
    stream_errors: number;
    start_lag_ms: number;
    drain_s: number;
    backlog_left: number;
    /** Ramp: where acks (ingest: ≥ 95% answered, ack p99 ≤ 100 ms) and stored rows (≥ 90%, 5 s windows) stopped keeping up. */
    knee: { acked: Knee | null; stored: Knee | null } | null;
    /** Partition restore times per role from tapflow's /metrics (`reported: false` when it has no such histogram). */
    restore: RestoreReport;
    /** Taps per bus message out of ingest (group commit): mean and counts from tapflow's /metrics. */
    bundles: BundleReport;
    /** Windows of 5 s and of 1 s in which acks fell behind (acked < 95% of offered while the backlog grew); null for a burst. */
    acks_behind: { by_5s: BehindReport; by_1s: BehindReport } | null;
  };
  ceilings: {
    grpc_stream_msgs_per_s: number | null;
    jetstream_publish_msgs_per_s: number | null;
    jetstream_js_publish_msgs_per_s: number | null;
    jetstream_consume_msgs_per_s: number | null;
    /** tapflow's per-tap work on one thread with no bus, the run's own taps (bench/lib/work-ceiling.ts). */
    work_taps_per_s: number | null;
    details: Record<string, CeilingResult>;
  };
  ratios: {
    acked_over_grpc_stream: number | null;
    stored_over_grpc_stream: number | null;
    acked_over_jetstream_publish: number | null;
    stored_over_jetstream_publish: number | null;
    stored_over_jetstream_consume: number | null;
    /** Pipeline over the work ceiling: what the bus and the hand-offs cost, how much the second core gives. */
    acked_over_work: number | null;
    stored_over_work: number | null;
    /** Ramp: the knee (acks ≥ 95% of offered, ack p99 ≤ 100 ms) over the work ceiling. */
    knee_over_work: number | null;
  };
  loss: LossReport;
  verdicts: VerdictReport;
  money: MoneyReport & { by_stored_verdicts?: { expected_fen: number; stored_fen: number; cards_mismatched: number; ok: boolean } };
  /** Highest RSS of each process during the measured window and the drain, MB. */
  rss_mb: Record<string, number>;
  processes: Record<string, ProcSummary>;
  /** CPU and RSS of every process over the window and the drain, and the bounded-memory check. */
  resources: { interval_s: number; series: Record<string, ResourceSeries>; rss_check: RssCheck };
  targets: TargetRow[];
  /** Where latency comes from: a JetStream PubAck probe beside tapflow, and the bench's own event-loop delay. */
  diagnostics: {
    jetstream_probe_ms: LatencySummary;
    jetstream_probe_failures: number;
    bench_event_loop_delay_ms: { p99_ms: number; max_ms: number; mean_ms: number };
    /** tapflow's warnings and errors during the run (its logs), `lease lost` counted apart. */
    tapflow_log: LogSummary;
  };
  timeline: (SecondStats & { probe_max_ms: number; cpu_pct: Record<string, number> })[];
  cpu_profile: { process: string; file: string; summary: ProfileSummary }[] | null;
  files: Record<string, string>;
  notes: string[];
}

export function ratio(a: number, b: number | null): number | null {
  return b && b > 0 ? Math.round((a / b) * 1000) / 1000 : null;
}

/** The issue's targets (item 7), judged where this run tests them. */
export function evaluateTargets(r: BenchReport): TargetRow[] {
  const rows: TargetRow[] = [];
  const zero = r.loss.ok && r.money.ok;
  const live = ['constant', 'ramp', 'rush-hour'].includes(r.profile);
  const batch = r.profile === 'batch' || r.profile === 'offline-burst';
  const g = r.ceilings.grpc_stream_msgs_per_s;
  if (live) {
    const need = g ? Math.round(0.6 * g) : null;
    const stored = r.pipeline.taps_per_s.stored;
    const acked = r.pipeline.taps_per_s.acked;
    const offeredEnough = need !== null && r.pipeline.taps_per_s.offered >= need;
    rows.push({
      target: 'live taps: acked and stored ≥ 0.6 × gRPC streaming ceiling, zero loss',
      required: need ? `≥ ${need} taps/s` : 'needs the gRPC ceiling',
      measured: `acked ${acked}, stored ${stored} taps/s (${r.ratios.stored_over_grpc_stream ?? '?'} × ceiling), zero loss ${zero ? 'yes' : 'NO'}`,
      // Not tested when the run offered less than the target (it could not show the capacity).
      met: need === null ? null : Math.min(acked, stored) >= need && zero ? true : offeredEnough ? false : null,
    });
    const at5k = r.profile === 'constant' && Math.abs(r.pipeline.taps_per_s.offered - 5000) <= 500;
    rows.push({
      target: 'at 5,000 taps/s offered: ack p99 ≤ 10 ms',
      required: '≤ 10 ms',
      measured: `${r.pipeline.ack_p99_ms} ms at ${r.pipeline.taps_per_s.offered} taps/s offered`,
      met: at5k ? r.pipeline.ack_p99_ms <= 10 : null,
    });
    rows.push({
      target: 'at 5,000 taps/s offered: device-to-stored p99 ≤ 2 s',
      required: '≤ 2000 ms',
      measured: `${r.pipeline.stored_p99_ms} ms at ${r.pipeline.taps_per_s.offered} taps/s offered`,
      met: at5k ? r.pipeline.stored_p99_ms <= 2000 : null,
    });
  }
  if (batch) {
    rows.push({
      target: 'batch uploads: ≥ 100,000 taps/s stored, zero loss',
      required: '≥ 100000 taps/s',
      measured: `stored ${r.pipeline.taps_per_s.stored} taps/s, zero loss ${zero ? 'yes' : 'NO'}`,
      met: r.pipeline.taps_per_s.stored >= 100_000 && zero,
    });
  }
  const behind = r.pipeline.acks_behind;
  if (behind) {
    rows.push({
      target: 'rush hour: no window where acks fall behind (acked < 95% of offered while the backlog grows, 5 s windows)',
      required: '0 windows',
      measured: `${behind.by_5s.behind} of ${behind.by_5s.windows} windows of 5 s behind (1 s windows: ${behind.by_1s.behind} of ${behind.by_1s.windows})`,
      met: r.profile === 'rush-hour' ? behind.by_5s.behind === 0 : null,
    });
  }
  const work = r.ceilings.work_taps_per_s;
  if (r.profile === 'ramp') {
    const k = r.pipeline.knee?.acked ?? null;
    rows.push({
      target: "ramp's knee (acks ≥ 95% of offered, ack p99 ≤ 100 ms) ≥ 1.0 × work ceiling (aim 1.5 ×)",
      required: work ? `≥ ${f0(work)} taps/s (aim ${f0(1.5 * work)})` : 'needs the work ceiling',
      measured: k ? `knee ${f0(k.offered)} taps/s = ${r.ratios.knee_over_work ?? '?'} × work ceiling` : 'no knee: acks kept up to the top of the ramp (raise --rate)',
      met: work === null || k === null ? null : k.offered >= work,
    });
  }
  if (batch) {
    rows.push({
      target: 'batch uploads stored ≥ 1.2 × work ceiling (aim 1.8 ×)',
      required: work ? `≥ ${f0(1.2 * work)} taps/s (aim ${f0(1.8 * work)})` : 'needs the work ceiling',
      measured: `stored ${f0(r.pipeline.taps_per_s.stored)} taps/s = ${r.ratios.stored_over_work ?? '?'} × work ceiling`,
      met: work === null ? null : r.pipeline.taps_per_s.stored >= 1.2 * work,
    });
  }
  const growth = Object.entries(r.processes).filter(([name]) => name !== 'bench');
  const overloaded = r.pipeline.backlog_left > 0 || r.pipeline.drain_s > 5 || (r.pipeline.knee?.stored ?? null) !== null;
  rows.push({
    target: 'RSS of each process bounded under overload (flat, not growing with the backlog)',
    required: '< 20 MB/min growth while overloaded',
    measured: growth.map(([n, p]) => `${n} ${p.rss_mb_max} MB max, ${p.rss_mb_per_min} MB/min`).join('; '),
    met: overloaded ? growth.every(([, p]) => p.rss_mb_per_min < 20) : null,
  });
  const rc = r.resources.rss_check;
  const fmtLevel = (n: string, l: RssLevel | null) => (l ? `${n} ${l.baseline_mb} MB after warm-up, then ${l.min_mb}–${l.max_mb} MB (×${l.min_ratio}–×${l.max_ratio})` : `${n}: too few samples after the warm-up`);
  rows.push({
    target: `offline burst: RSS of every tapflow process within ${Math.round(rc.band * 100)}% of its level after warm-up (${rc.warmup_s} s)`,
    required: `×${1 - rc.band}–×${1 + rc.band} of the level after warm-up`,
    measured: [...Object.entries(rc.processes).map(([n, l]) => fmtLevel(n, l)), ...Object.entries(rc.beside).map(([n, l]) => `(beside: ${fmtLevel(n, l)})`)].join('; '),
    met: r.profile === 'offline-burst' ? rc.ok : null,
  });
  const lg = r.diagnostics.tapflow_log;
  rows.push({
    target: "no lease lost, no hand-over that gave up on a previous owner's messages (tapflow's log)",
    required: '0 and 0',
    measured: `lease lost ${lg.lease_lost}, hand-overs gone on without messages ${lg.handover_gave_up}, batches failed ${lg.batch_failed}`,
    met: lg.lease_lost === 0 && lg.handover_gave_up === 0,
  });
  rows.push({ target: 'zero loss: every durable ack stored exactly once; fen sums equal', required: 'missing 0, duplicated 0, fen equal', measured: `missing ${r.loss.missing}, duplicated ${r.loss.duplicated}, fen diff ${r.money.diff_fen}`, met: zero });
  rows.push({ target: 'every verdict as the fleet expects', required: '0 mismatches', measured: `${r.verdicts.mismatched} of ${r.verdicts.checked} differ`, met: r.verdicts.ok });
  return rows;
}

const f0 = (n: number) => Math.round(n).toLocaleString('en-US');

/** A ghz-like summary for the console. */
export function consoleSummary(r: BenchReport): string {
  const a = r.pipeline.ack_ms;
  const lines = [
    '',
    `Summary (${r.profile}, ${r.mode}):`,
    `  Count:        ${f0(a.count)} taps answered (${f0(r.pipeline.acked_taps)} durable, ${f0(r.pipeline.stored_taps)} stored)`,
    `  Total:        ${r.duration_s} s window, last ack at ${r.pipeline.acked_span_s} s, last stored at ${r.pipeline.stored_span_s} s`,
    `  Slowest:      ${a.max_ms} ms`,
    `  Average:      ${a.mean_ms} ms`,
    `  Taps/sec:     offered ${f0(r.pipeline.taps_per_s.offered)}, acked ${f0(r.pipeline.taps_per_s.acked)}, stored ${f0(r.pipeline.taps_per_s.stored)}`,
    ...(r.pipeline.acks_behind ? [`  Behind:       ${behindText(r.pipeline.acks_behind)}`] : []),
    `  Restore:      partition state restored on acquisition: ${r.pipeline.restore.note}`,
    `  Bundles:      ${r.pipeline.bundles.mean === null ? 'not reported' : `${f0(r.pipeline.bundles.taps)} taps in ${f0(r.pipeline.bundles.bundles)} TapBundles, ${r.pipeline.bundles.mean} taps each on average`}`,
    '',
    'Latency distribution (from the intended send time):',
    `           p50        p90        p99        p99.9      max`,
    `  ack      ${pad(a.p50_ms)} ${pad(a.p90_ms)} ${pad(a.p99_ms)} ${pad(a.p999_ms)} ${pad(a.max_ms)}`,
    `  stored   ${pad(r.pipeline.stored_ms.p50_ms)} ${pad(r.pipeline.stored_ms.p90_ms)} ${pad(r.pipeline.stored_ms.p99_ms)} ${pad(r.pipeline.stored_ms.p999_ms)} ${pad(r.pipeline.stored_ms.max_ms)}`,
    ...(r.pipeline.batch_ms ? [`  batch    ${pad(r.pipeline.batch_ms.p50_ms)} ${pad(r.pipeline.batch_ms.p90_ms)} ${pad(r.pipeline.batch_ms.p99_ms)} ${pad(r.pipeline.batch_ms.p999_ms)} ${pad(r.pipeline.batch_ms.max_ms)}`] : []),
    ...(r.pipeline.claim_ms && r.pipeline.claim_ms.count > 0 ? [`  claim    ${pad(r.pipeline.claim_ms.p50_ms)} ${pad(r.pipeline.claim_ms.p90_ms)} ${pad(r.pipeline.claim_ms.p99_ms)} ${pad(r.pipeline.claim_ms.p999_ms)} ${pad(r.pipeline.claim_ms.max_ms)}`] : []),
    '',
    'Status distribution:',
    ...Object.entries({ ...prefix('live', r.pipeline.status.live), ...prefix('batch', r.pipeline.status.batch), ...prefix('claim', r.pipeline.status.claims) }).map(([k, n]) => `  [${k}]  ${f0(n)}`),
    '',
    `Ceilings: gRPC stream ${fmtN(r.ceilings.grpc_stream_msgs_per_s)}/s, JetStream publish ${fmtN(r.ceilings.jetstream_publish_msgs_per_s)}/s (js.publish ${fmtN(r.ceilings.jetstream_js_publish_msgs_per_s)}/s), consume ${fmtN(r.ceilings.jetstream_consume_msgs_per_s)}/s, work ${fmtN(r.ceilings.work_taps_per_s)} taps/s (one thread, no bus)`,
    `Ratios (stored over): gRPC ${r.ratios.stored_over_grpc_stream ?? '-'}, publish ${r.ratios.stored_over_jetstream_publish ?? '-'}, consume ${r.ratios.stored_over_jetstream_consume ?? '-'}, work ${r.ratios.stored_over_work ?? '-'} (acked over work ${r.ratios.acked_over_work ?? '-'}${r.pipeline.knee ? `, knee over work ${r.ratios.knee_over_work ?? '-'}` : ''})`,
    `Loss: acked ${f0(r.loss.acked)}, stored ${f0(r.loss.stored)}, missing ${r.loss.missing}, duplicated ${r.loss.duplicated}${r.loss.unanswered ? `, unanswered ${r.loss.unanswered}` : ''}`,
    `Money: expected ${f0(r.money.expected_fen)} fen, stored ${f0(r.money.stored_fen)} fen, cards mismatched ${r.money.cards_mismatched}, ledger ${r.money.ledger.balanced ? 'balanced' : 'UNBALANCED'}`,
    ...verdictLines(r.verdicts),
    `RSS (MB, max): ${Object.entries(r.rss_mb).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    rssLine(r.resources.rss_check, r.profile === 'offline-burst'),
    `tapflow log: lease lost ${r.diagnostics.tapflow_log.lease_lost}, batches failed ${r.diagnostics.tapflow_log.batch_failed}, errors ${r.diagnostics.tapflow_log.errors}`,
    '',
  ];
  return lines.join('\n');
}

/** The verdict check for the console: one line when it passed, every kind with examples when not. */
export function verdictLines(v: VerdictReport): string[] {
  const q = v.qr_order;
  const qr = q && q.out_of_sending_order > 0 ? ` (${q.out_of_sending_order} QR code(s) became durable out of sending order, ${q.first_sent_retried} after a retry: expected by durable order)` : '';
  if (v.ok) return [`Verdicts: ${f0(v.checked)} checked, all as expected${qr}`];
  return [
    `Verdicts: ${f0(v.checked)} checked, ${v.mismatched} DIFFER from the fleet's expectation (the bench fails)${qr}:`,
    ...Object.entries(v.mismatches).map(([k, n]) => `  ${k}: ${n}${v.mismatch_examples[k]?.length ? ` — e.g. ${v.mismatch_examples[k]!.join(', ')}` : ''}`),
  ];
}

/** Windows in which acks fell behind, in one line. */
export function behindText(b: { by_5s: BehindReport; by_1s: BehindReport }): string {
  const first = b.by_5s.examples[0];
  return `acks fell behind in ${b.by_5s.behind} of ${b.by_5s.windows} windows of 5 s (acked < ${Math.round(b.by_5s.keep * 100)}% of offered while the backlog grew${first ? `; first at ${first.from_s} s: ${f0(first.acked)} of ${f0(first.offered)}` : ''}), ${b.by_1s.behind} of ${b.by_1s.windows} of 1 s`;
}

/** RSS after the warm-up against its level then, for the console. */
export function rssLine(c: RssCheck, judgedHere = true): string {
  const one = (n: string, l: RssLevel | null) => (l ? `${n} ×${l.min_ratio}–×${l.max_ratio} of ${l.baseline_mb} MB` : `${n} -`);
  const judged = Object.entries(c.processes).map(([n, l]) => one(n, l));
  const beside = Object.entries(c.beside).map(([n, l]) => one(n, l));
  const verdict = (c.ok === null ? 'too few samples' : c.ok ? `within ±${Math.round(c.band * 100)}%` : `NOT within ±${Math.round(c.band * 100)}%`) + (judgedHere ? '' : '; judged for offline-burst runs only');
  return `RSS after ${c.warmup_s} s warm-up: ${judged.join(', ')} (${verdict}); beside: ${beside.join(', ')}`;
}

function pad(n: number): string {
  return `${n.toFixed(2)} ms`.padEnd(10);
}
function fmtN(n: number | null): string {
  return n === null ? '-' : f0(n);
}
function prefix(p: string, m: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [`${p} ${k}`, v]));
}

/** The work ceiling's time per tap by stage, as a Markdown table. */
function workStages(c: CeilingResult | undefined): string[] {
  if (!c?.per_stage_us) return [];
  const total = Object.values(c.per_stage_us).reduce((a, b) => a + b, 0);
  return [
    '',
    `Work per tap by stage (µs, one thread; ${Math.round(total)} µs in all ≈ ${f0(total > 0 ? 1e6 / total : 0)} taps/s):`,
    '',
    '| stage | µs per tap | share |',
    '| --- | ---: | ---: |',
    ...Object.entries(c.per_stage_us).map(([k, us]) => `| ${k} | ${us} | ${total > 0 ? Math.round((us / total) * 1000) / 10 : 0}% |`),
  ];
}

function latencyRow(name: string, s: LatencySummary | null): string {
  if (!s || s.count === 0) return `| ${name} | 0 | | | | | | |`;
  return `| ${name} | ${f0(s.count)} | ${s.mean_ms} | ${s.p50_ms} | ${s.p90_ms} | ${s.p99_ms} | ${s.p999_ms} | ${s.max_ms} |`;
}

/** The Markdown report. */
export function toMarkdown(r: BenchReport): string {
  const met = (m: boolean | null) => (m === null ? 'not tested by this run' : m ? 'met' : '**not met**');
  const out = [
    `# tapflow bench — ${r.profile}, ${r.mode} — ${r.run_id}`,
    '',
    `Machine: ${r.machine.cpus} × ${r.machine.cpu_model}, load before ${r.machine.load_avg_before.join(' / ')}, Node ${r.machine.node}, nats-server ${r.machine.nats_server}. Everything (tapflow, nats-server, the simulator) ran on it.`,
    '',
    `Offered: ${r.offered_rate === null ? `${f0(r.fleet.batch_taps)} taps at once` : `${f0(r.offered_rate)} taps/s`} (${r.profile}), window ${r.duration_s} s; fleet ${f0(r.fleet.terminals)} terminals (${f0(r.fleet.streams)} live streams, ${f0(r.fleet.uploaders)} uploaders), ${f0(r.fleet.cards)} cards, ${f0(r.fleet.live_taps)} live taps, ${f0(r.fleet.batch_taps)} batch taps, ${f0(r.fleet.warm_taps)} warm-up taps, ${f0(r.fleet.claims)} claims.`,
    '',
    '## Targets',
    '',
    '| target | required | measured | result |',
    '| --- | --- | --- | --- |',
    ...r.targets.map((t) => `| ${t.target} | ${t.required} | ${t.measured} | ${met(t.met)} |`),
    '',
    '## Throughput and ceilings',
    '',
    '| | taps or msgs/s | ratio (stored over) |',
    '| --- | ---: | ---: |',
    `| pipeline offered | ${f0(r.pipeline.taps_per_s.offered)} | |`,
    `| pipeline acked (durable) | ${f0(r.pipeline.taps_per_s.acked)} | |`,
    `| pipeline stored (decision rows) | ${f0(r.pipeline.taps_per_s.stored)} | |`,
    `| ceiling: gRPC bidi streaming echo | ${fmtN(r.ceilings.grpc_stream_msgs_per_s)} | ${r.ratios.stored_over_grpc_stream ?? '-'} |`,
    `| ceiling: JetStream publish (JsPublisher, Nats-Msg-Id) | ${fmtN(r.ceilings.jetstream_publish_msgs_per_s)} | ${r.ratios.stored_over_jetstream_publish ?? '-'} |`,
    `| ceiling: JetStream publish (js.publish) | ${fmtN(r.ceilings.jetstream_js_publish_msgs_per_s)} | |`,
    `| ceiling: JetStream consume (consume(), ack each) | ${fmtN(r.ceilings.jetstream_consume_msgs_per_s)} | ${r.ratios.stored_over_jetstream_consume ?? '-'} |`,
    `| ceiling: work (the run's taps, one thread, no bus) | ${fmtN(r.ceilings.work_taps_per_s)} | ${r.ratios.stored_over_work ?? '-'} (acked ${r.ratios.acked_over_work ?? '-'}${r.pipeline.knee ? `, knee ${r.ratios.knee_over_work ?? '-'}` : ''}) |`,
    '',
    ...Object.entries(r.ceilings.details).map(([k, c]) => `- ${k}: ${f0(c.messages)} messages of ${c.message_bytes} bytes in ${c.seconds} s — ${c.notes}`),
    ...workStages(r.ceilings.details.work),
    ...(r.pipeline.knee
      ? [
          '',
          `Knee (ramp): acks kept up (≥ 95%, p99 ≤ 100 ms) to ${r.pipeline.knee.acked ? `${f0(r.pipeline.knee.acked.offered)} taps/s offered (at ${r.pipeline.knee.acked.at_s} s)` : 'the top of the ramp'}; stored rows kept up (≥ 90%, 5 s windows) to ${r.pipeline.knee.stored ? `${f0(r.pipeline.knee.stored.offered)} taps/s offered (${f0(r.pipeline.knee.stored.kept)} stored/s, at ${r.pipeline.knee.stored.at_s} s)` : 'the top of the ramp'}.`,
        ]
      : []),
    '',
    '## Latency (ms, from the intended send time)',
    '',
    '| | count | mean | p50 | p90 | p99 | p99.9 | max |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    latencyRow('ack (at the terminal)', r.pipeline.ack_ms),
    latencyRow('ack, from the actual send', r.pipeline.ack_service_ms),
    latencyRow('stored (decision row in ClickHouse)', r.pipeline.stored_ms),
    latencyRow('device time → stored', r.pipeline.device_to_stored_ms),
    ...(r.pipeline.batch_ms ? [latencyRow('batch (UploadBatch, whole batch)', r.pipeline.batch_ms)] : []),
    ...(r.pipeline.claim_ms ? [latencyRow('claim (SettleClaim)', r.pipeline.claim_ms)] : []),
    '',
    latencyRow('JetStream probe PubAck (bench, beside tapflow)', r.diagnostics.jetstream_probe_ms),
    '',
    ...(r.pipeline.acks_behind ? [`Rush hour: ${behindText(r.pipeline.acks_behind)}.`, ''] : []),
    `Partition restore (\`${r.pipeline.restore.metric}\`): ${r.pipeline.restore.note}.`,
    ...(Object.keys(r.pipeline.restore.by_role).length > 0
      ? ['', '| role | restores | total s | each ≤ s |', '| --- | ---: | ---: | ---: |', ...Object.entries(r.pipeline.restore.by_role).map(([role, x]) => `| ${role} | ${x.count} | ${x.sum_s} | ${x.max_bucket_s ?? `> ${x.over_s}`} |`)]
      : []),
    '',
    `Bench event-loop delay: p99 ${r.diagnostics.bench_event_loop_delay_ms.p99_ms} ms, max ${r.diagnostics.bench_event_loop_delay_ms.max_ms} ms (the simulator's own lateness). Start lag ${r.pipeline.start_lag_ms} ms; retries ${r.pipeline.retries}; stream errors ${r.pipeline.stream_errors}; drain after the window ${r.pipeline.drain_s} s (backlog left ${r.pipeline.backlog_left}).`,
    '',
    ...(Object.keys(r.diagnostics.tapflow_log.by_message).length > 0
      ? ["tapflow's warnings and errors (its logs in this folder):", '', '| process: message | lines |', '| --- | ---: |', ...Object.entries(r.diagnostics.tapflow_log.by_message).map(([k, n]) => `| ${k.replace(/\|/g, '\\|')} | ${n} |`), '']
      : []),
    '![throughput and latency](chart.svg)',
    '',
    '## Status distribution',
    '',
    '| | status | count |',
    '| --- | --- | ---: |',
    ...Object.entries(r.pipeline.status.live).map(([k, v]) => `| live | ${k} | ${f0(v)} |`),
    ...Object.entries(r.pipeline.status.batch).map(([k, v]) => `| batch | ${k} | ${f0(v)} |`),
    ...Object.entries(r.pipeline.status.claims).map(([k, v]) => `| claim | ${k} | ${f0(v)} |`),
    '',
    '## Zero loss and money',
    '',
    `- Durable acks: ${f0(r.loss.acked)}; stored: ${f0(r.loss.stored)}; missing: ${r.loss.missing}${r.loss.missing_examples.length ? ` (e.g. ${r.loss.missing_examples.slice(0, 5).join(', ')})` : ''}; duplicated: ${r.loss.duplicated}${r.loss.duplicated_examples.length ? ` (e.g. ${r.loss.duplicated_examples.slice(0, 5).join(', ')})` : ''}; stored without a durable ack: ${r.loss.stored_unacked}; unanswered: ${r.loss.unanswered}.`,
    `- Verdicts checked: ${f0(r.verdicts.checked)}; mismatched: ${r.verdicts.mismatched}${r.verdicts.ok ? '' : ' — **the run fails**'}.`,
    ...(r.verdicts.ok ? [] : ['', '| expected → got | taps | examples (event id, attempts) |', '| --- | ---: | --- |', ...Object.entries(r.verdicts.mismatches).map(([k, n]) => `| ${k} | ${n} | ${(r.verdicts.mismatch_examples[k] ?? []).join(', ')} |`), '']),
    ...(r.verdicts.qr_order
      ? [
          `- QR codes presented twice that reached the validator twice: ${r.verdicts.qr_order.codes_reused}; became durable in another order than sent: ${r.verdicts.qr_order.out_of_sending_order} (first presentation retried by the terminal: ${r.verdicts.qr_order.first_sent_retried}); expectations moved to the first durable presentation: ${r.verdicts.qr_order.expectations_changed}${r.verdicts.qr_order.examples.length ? ` — e.g. ${r.verdicts.qr_order.examples.slice(0, 3).map((e) => `sent first ${e.first_sent} (${e.first_sent_attempts} attempts), durable first ${e.first_durable} (${e.first_durable_attempts})${e.ingest_gap_ms !== null ? `, ${e.ingest_gap_ms} ms later at ingest` : ''}`).join('; ')}` : ''}.`,
        ]
      : []),
    ...(Object.keys(r.verdicts.other_reason).length ? [`- Same verdict, another reason: ${Object.entries(r.verdicts.other_reason).map(([k, v]) => `${k}: ${v}`).join('; ')}.`] : []),
    `- Settlements: expected ${f0(r.money.expected_fen)} fen (settle core over the simulator's accepted taps and claims), stored ${f0(r.money.stored_fen)} fen, difference ${r.money.diff_fen}; cards mismatched ${r.money.cards_mismatched}; duplicated settlement ids ${r.money.duplicated_settlements}; ledger debits ${f0(r.money.ledger.debit_fen)} = credits ${f0(r.money.ledger.credit_fen)}: ${r.money.ledger.balanced ? 'balanced' : 'UNBALANCED'}; journeys still open ${r.money.open_journeys}.`,
    ...(r.money.by_stored_verdicts ? [`- Over the verdicts tapflow stored instead: expected ${f0(r.money.by_stored_verdicts.expected_fen)} fen, stored ${f0(r.money.by_stored_verdicts.stored_fen)}, cards mismatched ${r.money.by_stored_verdicts.cards_mismatched}: ${r.money.by_stored_verdicts.ok ? 'equal' : 'DIFFERENT'}.`] : []),
    `- Claims: expected ${JSON.stringify(r.money.claims.expected)}, stored ${JSON.stringify(r.money.claims.stored)}.`,
    '',
    '| kind | expected settlements | expected fen | stored settlements | stored fen |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...[...new Set([...Object.keys(r.money.expected_by_kind), ...Object.keys(r.money.stored_by_kind)])].map(
      (k) => `| ${k} | ${f0(r.money.expected_by_kind[k]?.settlements ?? 0)} | ${f0(r.money.expected_by_kind[k]?.fen ?? 0)} | ${f0(r.money.stored_by_kind[k]?.settlements ?? 0)} | ${f0(r.money.stored_by_kind[k]?.fen ?? 0)} |`,
    ),
    '',
    '## Processes (measured window and drain)',
    '',
    '| process | pid | CPU mean % | CPU max % | RSS max MB | RSS last MB | RSS growth MB/min |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...Object.entries(r.processes).map(([n, p]) => `| ${n} | ${p.pid} | ${p.cpu_mean_pct} | ${p.cpu_max_pct} | ${p.rss_mb_max} | ${p.rss_mb_last} | ${p.rss_mb_per_min} |`),
    '',
    '### CPU and RSS over time',
    '',
    `${rssLine(r.resources.rss_check, r.profile === 'offline-burst')}. Samples every ${r.resources.interval_s} s (\`resources.series\` in report.json has every one; the chart draws them).`,
    '',
    ...resourceTable(r.resources.series),
    '',
  ];
  if (r.cpu_profile && r.cpu_profile.length > 0) {
    out.push('## CPU profile', '');
    for (const p of r.cpu_profile) out.push(profileMarkdown(p.process, p.summary), '', `Raw profile: \`${p.file}\` (open in Chrome DevTools, Performance).`, '');
  }
  if (r.notes.length > 0) out.push('## Notes', '', ...r.notes.map((n) => `- ${n}`), '');
  out.push('## Options', '', '```json', JSON.stringify(r.options, null, 2), '```', '');
  return out.join('\n');
}

/** Throughput, latency, CPU and RSS over time. */
export function chartSvg(r: BenchReport): string {
  const tl = r.timeline;
  const x = (s: { t: number }) => s.t + 0.5;
  const colors = ['#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
  const procs = Object.entries(r.resources.series);
  const perProcess = (col: 'cpu_pct' | 'rss_mb') =>
    procs.map(([name, s], i) => ({ name, color: colors[i % colors.length]!, points: s.t_s.map((t, k) => [t, s[col][k]!] as [number, number]) }));
  const panels: Panel[] = [
    {
      title: 'Throughput',
      unit: 'taps/s',
      series: [
        { name: 'offered', color: '#999999', points: tl.map((s) => [x(s), s.offered]), dashed: true },
        { name: 'acked (any)', color: '#1f77b4', points: tl.map((s) => [x(s), s.acked]) },
        { name: 'stored', color: '#2ca02c', points: tl.map((s) => [x(s), s.stored]) },
      ],
    },
    {
      title: 'Latency p99 per second (by intended send time)',
      unit: 'ms (log)',
      log: true,
      series: [
        { name: 'ack p99', color: '#1f77b4', points: tl.map((s) => [x(s), s.ack_p99_ms]) },
        { name: 'stored p99', color: '#2ca02c', points: tl.map((s) => [x(s), s.stored_p99_ms]) },
        { name: 'JetStream probe max', color: '#ff7f0e', points: tl.map((s) => [x(s), s.probe_max_ms]), dashed: true },
      ],
    },
    { title: 'CPU', unit: '% of one core', series: perProcess('cpu_pct') },
    { title: 'RSS', unit: 'MB', series: perProcess('rss_mb') },
  ];
  return renderChart(`tapflow bench — ${r.profile} (${r.mode}), ${r.run_id}`, panels);
}

/** Writes report.json, report.md and chart.svg into `dir`, and `latestPath`. */
export function writeReport(dir: string, latestPath: string, r: BenchReport, svg: string): void {
  mkdirSync(dir, { recursive: true });
  const json = JSON.stringify(r, null, 2) + '\n';
  writeFileSync(join(dir, 'report.json'), json);
  writeFileSync(join(dir, 'report.md'), toMarkdown(r));
  writeFileSync(join(dir, 'chart.svg'), svg);
  writeFileSync(latestPath, json);
}
