/**
 * CPU and RSS over time: the per-process series of the report, the Markdown table, the chart's
 * panels and the bounded-memory check (within ±25% of the level after the warm-up). Pure.
 */
import { describe, expect, it } from 'vitest';
import type { ProcSeries } from '../../../bench/lib/procstat.js';
import { resourceSeries, resourceTable, rssCheck, rssLevel, type ResourceSeries } from '../../../bench/lib/resources.js';

function proc(name: string, rss: (t: number) => number, seconds = 60, from = -5): ProcSeries {
  const samples = [];
  for (let t = from; t <= seconds; t++) samples.push({ t: 10_000 + t * 1000, cpuPct: 40 + (t % 3), rssMb: rss(t) });
  return { name, pid: 7, samples };
}

describe('bench resources - series, table, bounded RSS', () => {
  it('keeps the samples of the window, times from its start', () => {
    const s = resourceSeries([proc('tapflow', () => 300)], 10_000, 40_000);
    expect(s.tapflow!.t_s[0]).toBe(0);
    expect(s.tapflow!.t_s.at(-1)).toBe(30);
    expect(s.tapflow!.rss_mb.length).toBe(31);
    expect(s.tapflow!.cpu_pct[1]).toBe(41);
  });

  it('holds RSS after the warm-up to its level then: flat passes, growth with the backlog fails', () => {
    const flat = resourceSeries([proc('tapflow', (t) => (t < 10 ? 200 + 10 * t : 300 + (t % 2) * 5))], 10_000)['tapflow']!;
    expect(rssLevel(flat, 10, 0.25)).toMatchObject({ baseline_mb: 290, max_mb: 305, within: true });
    const growing = resourceSeries([proc('tapflow', (t) => 300 + Math.max(0, t - 10) * 3)], 10_000)['tapflow']!;
    const l = rssLevel(growing, 10, 0.25)!;
    expect(l.within).toBe(false);
    expect(l.max_ratio).toBe(1.5);
    expect(rssLevel({ pid: 1, t_s: [1, 2], cpu_pct: [0, 0], rss_mb: [1, 1] }, 10, 0.25)).toBeNull();
  });

  it('judges tapflow processes and reports nats-server beside them, never the bench', () => {
    const series = resourceSeries([proc('ingest', () => 200), proc('sink', (t) => (t > 30 ? 400 : 250)), proc('nats-server', (t) => 100 + t * 10), proc('bench', () => 900)], 10_000);
    const c = rssCheck(series, ['ingest', 'sink'], { warmupS: 10, band: 0.25 });
    expect(Object.keys(c.processes)).toEqual(['ingest', 'sink']);
    expect(Object.keys(c.beside)).toEqual(['nats-server']);
    expect(c.processes.ingest!.within).toBe(true);
    expect(c.processes.sink!.within).toBe(false);
    expect(c.ok).toBe(false);
    expect(rssCheck(series, ['ingest'], { warmupS: 10, band: 0.25 }).ok).toBe(true);
    expect(rssCheck(series, ['ingest'], { warmupS: 100, band: 0.25 }).ok).toBeNull();
  });

  it('tabulates at most 40 rows with one column pair per process', () => {
    const series: Record<string, ResourceSeries> = resourceSeries([proc('tapflow', () => 300, 600), proc('nats-server', () => 80, 600)], 10_000);
    const t = resourceTable(series);
    expect(t[0]).toBe('| s | tapflow CPU % | tapflow RSS MB | nats-server CPU % | nats-server RSS MB |');
    expect(t.length - 2).toBeLessThanOrEqual(41);
    expect(t[2]).toBe('| 0 | 40 | 300 | 40 | 80 |');
    expect(t[3]!.startsWith('| 15 | ')).toBe(true);
  });
});
