/**
 * CPU and memory of processes, sampled from /proc (Linux):
 *   /proc/<pid>/stat    fields 14 and 15 (utime, stime) in clock ticks (USER_HZ, 100 on Linux)
 *   /proc/<pid>/status  VmRSS in kB
 * CPU is reported in percent of one core over each sampling interval (200% = two cores busy).
 */
import { readFileSync } from 'node:fs';
import { mapped, maxOf } from './extremes.js';

/** Linux's USER_HZ: the unit of utime/stime in /proc/<pid>/stat. */
const TICKS_PER_S = 100;

export interface ProcSample {
  /** ms since the sampler started. */
  t: number;
  cpuPct: number;
  rssMb: number;
}

export interface ProcSeries {
  name: string;
  pid: number;
  samples: ProcSample[];
}

/** CPU ticks (user + system) and RSS (MB) of a process, or undefined when it is gone. */
export function readProc(pid: number): { ticks: number; rssMb: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    const ticks = Number(rest[11]) + Number(rest[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return { ticks, rssMb: m ? Number(m[1]) / 1024 : 0 };
  } catch {
    return undefined;
  }
}

/** Samples named processes every `intervalMs` until stopped. */
export class ProcSampler {
  private readonly series = new Map<string, ProcSeries & { lastTicks?: number; lastT?: number }>();
  private timer?: NodeJS.Timeout;
  private readonly t0 = performance.now();

  constructor(private readonly intervalMs = 1000) {}

  /** ms since the sampler started (the time base of the samples). */
  now(): number {
    return performance.now() - this.t0;
  }

  /** Adds (or replaces) a process to watch. */
  watch(name: string, pid: number | undefined): void {
    if (pid === undefined) return;
    const first = readProc(pid);
    this.series.set(name, { name, pid, samples: [], lastTicks: first?.ticks, lastT: performance.now() });
  }

  unwatch(name: string): void {
    this.series.delete(name);
  }

  start(): void {
    this.timer ??= setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes one sample of every process now. */
  sample(): void {
    const now = performance.now();
    for (const s of this.series.values()) {
      const r = readProc(s.pid);
      if (!r) continue;
      const dt = (now - (s.lastT ?? now)) / 1000;
      const cpuPct = s.lastTicks !== undefined && dt > 0 ? ((r.ticks - s.lastTicks) / TICKS_PER_S / dt) * 100 : 0;
      s.samples.push({ t: now - this.t0, cpuPct, rssMb: r.rssMb });
      s.lastTicks = r.ticks;
      s.lastT = now;
    }
  }

  /** The latest sample of each process. */
  latest(): Map<string, ProcSample> {
    const out = new Map<string, ProcSample>();
    for (const s of this.series.values()) {
      const last = s.samples[s.samples.length - 1];
      if (last) out.set(s.name, last);
    }
    return out;
  }

  all(): ProcSeries[] {
    return [...this.series.values()].map(({ name, pid, samples }) => ({ name, pid, samples }));
  }
}

/** Summary of one process over a time range (ms since the sampler started). */
export interface ProcSummary {
  pid: number;
  cpu_mean_pct: number;
  cpu_max_pct: number;
  rss_mb_max: number;
  rss_mb_last: number;
  /** RSS growth over the range, MB per minute (least squares): ~0 when memory is bounded. */
  rss_mb_per_min: number;
}

export function summarizeProc(s: ProcSeries, fromT = 0, toT = Number.POSITIVE_INFINITY): ProcSummary {
  const xs = s.samples.filter((p) => p.t >= fromT && p.t <= toT);
  const n = xs.length;
  if (n === 0) return { pid: s.pid, cpu_mean_pct: 0, cpu_max_pct: 0, rss_mb_max: 0, rss_mb_last: 0, rss_mb_per_min: 0 };
  const mt = xs.reduce((a, p) => a + p.t, 0) / n;
  const mr = xs.reduce((a, p) => a + p.rssMb, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of xs) {
    num += (p.t - mt) * (p.rssMb - mr);
    den += (p.t - mt) ** 2;
  }
  return {
    pid: s.pid,
    cpu_mean_pct: round1(xs.reduce((a, p) => a + p.cpuPct, 0) / n),
    cpu_max_pct: round1(maxOf(mapped(xs, (p) => p.cpuPct))),
    rss_mb_max: round1(maxOf(mapped(xs, (p) => p.rssMb))),
    rss_mb_last: round1(xs[n - 1]!.rssMb),
    rss_mb_per_min: den > 0 ? round1((num / den) * 60_000) : 0,
  };
}

export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
