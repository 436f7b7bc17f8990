/**
 * CPU and RSS of every process over the run (from the samples of procstat.ts), and the check
 * that memory stays bounded: after a warm-up, the RSS of every tapflow process stays within a
 * band around its level at the end of the warm-up (issue 10: ±25% during an offline burst),
 * whatever the backlog does. nats-server's RSS is measured the same way and reported beside
 * it, not judged: JetStream keeps the backlog, and its memory may follow it.
 */
import { maxOf, minOf } from './extremes.js';
import type { ProcSeries } from './procstat.js';
import { round1 } from './procstat.js';

/** One process's samples, columns of equal length; `t_s` from the start of the measured window. */
export interface ResourceSeries {
  pid: number;
  t_s: number[];
  cpu_pct: number[];
  rss_mb: number[];
}

/** Samples of every process between `fromT` and `toT` (ms of the sampler), times relative to `fromT`. */
export function resourceSeries(procs: readonly ProcSeries[], fromT: number, toT = Number.POSITIVE_INFINITY): Record<string, ResourceSeries> {
  const out: Record<string, ResourceSeries> = {};
  for (const p of procs) {
    const s: ResourceSeries = { pid: p.pid, t_s: [], cpu_pct: [], rss_mb: [] };
    for (const x of p.samples) {
      if (x.t < fromT || x.t > toT) continue;
      s.t_s.push(round1((x.t - fromT) / 1000));
      s.cpu_pct.push(round1(x.cpuPct));
      s.rss_mb.push(round1(x.rssMb));
    }
    out[p.name] = s;
  }
  return out;
}

/** One process against its level after the warm-up. */
export interface RssLevel {
  /** Median RSS over the last 3 s of the warm-up, MB. */
  baseline_mb: number;
  /** Highest and lowest RSS after the warm-up, MB, and their ratios to the baseline. */
  max_mb: number;
  min_mb: number;
  max_ratio: number;
  min_ratio: number;
  /** Every sample after the warm-up within baseline × (1 ± band). */
  within: boolean;
}

export interface RssCheck {
  /** Seconds of the window taken as warm-up (caches fill, the heap grows to its working size). */
  warmup_s: number;
  /** Allowed deviation from the baseline (0.25: ±25%). */
  band: number;
  /** Judged processes (tapflow's); null when the run had too few samples after the warm-up. */
  processes: Record<string, RssLevel | null>;
  /** Reported beside them, not judged. */
  beside: Record<string, RssLevel | null>;
  /** Every judged process within the band (null: nothing could be judged). */
  ok: boolean | null;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** A process's RSS after the warm-up against its level at the end of it (samples relative to the window). */
export function rssLevel(s: ResourceSeries, warmupS: number, band: number): RssLevel | null {
  const base: number[] = [];
  const after: number[] = [];
  s.t_s.forEach((t, i) => {
    if (t > warmupS - 3 && t <= warmupS) base.push(s.rss_mb[i]!);
    else if (t > warmupS) after.push(s.rss_mb[i]!);
  });
  if (base.length === 0 || after.length < 2) return null;
  const b = median(base);
  const max = maxOf(after);
  const min = minOf(after);
  const r = (x: number) => Math.round((x / b) * 1000) / 1000;
  return { baseline_mb: round1(b), max_mb: round1(max), min_mb: round1(min), max_ratio: r(max), min_ratio: r(min), within: max <= b * (1 + band) && min >= b * (1 - band) };
}

/** The check over the judged processes (`judged`: their names), the others reported beside. */
export function rssCheck(series: Record<string, ResourceSeries>, judged: readonly string[], o: { warmupS: number; band: number }): RssCheck {
  const processes: RssCheck['processes'] = {};
  const beside: RssCheck['beside'] = {};
  for (const [name, s] of Object.entries(series)) {
    const level = rssLevel(s, o.warmupS, o.band);
    if (judged.includes(name)) processes[name] = level;
    else if (name !== 'bench') beside[name] = level;
  }
  const levels = Object.values(processes);
  const ok = levels.length === 0 || levels.some((l) => l === null) ? null : levels.every((l) => l!.within);
  return { warmup_s: o.warmupS, band: o.band, processes, beside, ok };
}

/**
 * A Markdown table of CPU and RSS over time: one row per `step` seconds (chosen so that the
 * table has at most `maxRows` rows), one column pair per process, the sample nearest each row.
 */
export function resourceTable(series: Record<string, ResourceSeries>, maxRows = 40): string[] {
  const names = Object.keys(series).filter((n) => series[n]!.t_s.length > 0);
  if (names.length === 0) return [];
  const end = maxOf(names.map((n) => series[n]!.t_s.at(-1)!), 0);
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600];
  const step = steps.find((k) => end / k <= maxRows) ?? Math.ceil(end / maxRows);
  const lines = [
    `| s | ${names.map((n) => `${n} CPU % | ${n} RSS MB`).join(' | ')} |`,
    `| ---: | ${names.map(() => '---: | ---:').join(' | ')} |`,
  ];
  const cursor = new Map(names.map((n) => [n, 0]));
  for (let t = 0; t <= end + 1e-9; t += step) {
    const cells = names.map((n) => {
      const s = series[n]!;
      let i = cursor.get(n)!;
      // The last sample at or before t (samples are in time order).
      while (i + 1 < s.t_s.length && s.t_s[i + 1]! <= t) i++;
      cursor.set(n, i);
      return s.t_s[i]! <= t + 1 ? `${s.cpu_pct[i]} | ${s.rss_mb[i]}` : ' | ';
    });
    lines.push(`| ${t} | ${cells.join(' | ')} |`);
  }
  return lines;
}
