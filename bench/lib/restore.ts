/**
 * Partition restore times, as tapflow reports them on /metrics: the histogram
 * `tapflow_partition_restore_seconds` (label `role`), observed each time an owner restores a
 * partition's state on acquiring it (issue 10: "in a bounded time that the bench reports").
 * The bench scrapes every tapflow process before stopping it and gives, per role, how many
 * restores there were, their total time and the highest bucket holding one (every restore took
 * at most that long). A tapflow that does not expose the histogram is reported as such.
 *
 * Prometheus text format (as prom-client writes it), labels in any order:
 *   tapflow_partition_restore_seconds_bucket{le="0.5",role="validator"} 12
 *   tapflow_partition_restore_seconds_sum{role="validator"} 1.93
 *   tapflow_partition_restore_seconds_count{role="validator"} 16
 */

export const RESTORE_METRIC = 'tapflow_partition_restore_seconds';

/** One label's value of a histogram: its buckets (upper bound → cumulative count), sum and count. */
export interface HistogramSeries {
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

/** Labels of a sample line `name{a="x",b="y"} value` (escaped quotes and backslashes allowed). */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  return out;
}

/**
 * A histogram's series by the value of `label`, summed over the other labels, from several
 * expositions (one per process). Empty when no exposition has the histogram.
 */
export function histogramBy(texts: readonly string[], name: string, label: string): Map<string, HistogramSeries> {
  const out = new Map<string, HistogramSeries>();
  const of = (k: string) => {
    let s = out.get(k);
    if (!s) out.set(k, (s = { buckets: new Map(), sum: 0, count: 0 }));
    return s;
  };
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (!line.startsWith(name)) continue;
      const rest = line.slice(name.length);
      const kind = rest.startsWith('_bucket') ? 'bucket' : rest.startsWith('_sum') ? 'sum' : rest.startsWith('_count') ? 'count' : undefined;
      if (!kind) continue;
      const open = line.indexOf('{');
      const close = line.lastIndexOf('}');
      const labels = open >= 0 && close > open ? parseLabels(line.slice(open + 1, close)) : {};
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      if (!Number.isFinite(value)) continue;
      const s = of(labels[label] ?? '');
      if (kind === 'sum') s.sum += value;
      else if (kind === 'count') s.count += value;
      else {
        const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
        if (!Number.isNaN(le)) s.buckets.set(le, (s.buckets.get(le) ?? 0) + value);
      }
    }
  }
  return out;
}

/** Restores of one role. */
export interface RoleRestores {
  count: number;
  sum_s: number;
  /** Upper bound of the lowest bucket holding every restore (s): the slowest took at most this; null when one fell in +Inf only. */
  max_bucket_s: number | null;
  /** When `max_bucket_s` is null: the largest finite bucket bound, which some restore exceeded. */
  over_s: number | null;
}

export interface RestoreReport {
  metric: string;
  /** false: this tapflow exposes no such histogram. */
  reported: boolean;
  by_role: Record<string, RoleRestores>;
  /** Processes whose /metrics could not be read (the figures may then be partial). */
  unscraped: string[];
  note: string;
}

/** The restore report from the expositions of every tapflow process. */
export function restoreReport(texts: readonly string[], unscraped: string[] = []): RestoreReport {
  const series = histogramBy(texts, RESTORE_METRIC, 'role');
  const by_role: Record<string, RoleRestores> = {};
  for (const [role, s] of [...series.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const bounds = [...s.buckets.entries()].sort((a, b) => a[0] - b[0]);
    const all = bounds.find(([, n]) => n >= s.count && s.count > 0);
    const finite = bounds.filter(([le]) => Number.isFinite(le));
    by_role[role || '(no role)'] = {
      count: s.count,
      sum_s: Math.round(s.sum * 1000) / 1000,
      max_bucket_s: s.count === 0 ? 0 : all && Number.isFinite(all[0]) ? all[0] : null,
      over_s: s.count > 0 && !(all && Number.isFinite(all[0])) ? (finite.at(-1)?.[0] ?? null) : null,
    };
  }
  const declared = texts.some((t) => t.includes(`# TYPE ${RESTORE_METRIC} histogram`));
  const reported = series.size > 0 || declared;
  const note = series.size === 0 && declared
    ? 'no partition restore observed'
    : reported
    ? Object.entries(by_role)
        .map(([role, r]) => `${role} ${r.count} restore(s), ${r.sum_s} s in all, ${r.max_bucket_s !== null ? `each ≤ ${r.max_bucket_s} s` : `some > ${r.over_s} s`}`)
        .join('; ')
    : 'not reported by this tapflow';
  return { metric: RESTORE_METRIC, reported, by_role, unscraped, note: unscraped.length > 0 ? `${note} (metrics of ${unscraped.join(', ')} could not be read)` : note };
}

/** Taps per TapBundle ingest published (histogram `tapflow_bundle_taps`), over every process. */
export interface BundleReport {
  bundles: number;
  taps: number;
  /** Mean taps per bundle; null when no process reported the histogram. */
  mean: number | null;
}

export function bundleReport(texts: readonly string[]): BundleReport {
  const s = histogramBy(texts, 'tapflow_bundle_taps', '').get('');
  if (!s || s.count === 0) return { bundles: 0, taps: 0, mean: null };
  return { bundles: s.count, taps: s.sum, mean: Math.round((s.sum / s.count) * 10) / 10 };
}
