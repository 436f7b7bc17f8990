/**
 * A chart of a run, as a hand-written SVG (no plotting dependency): throughput over time on
 * top (offered, acknowledged, stored taps per second), latency below (p99 of each second, log
 * scale), then CPU and RSS of each process. Seconds from the start of the measured window.
 */
import { maxOf, minOf } from './extremes.js';

export interface Series {
  name: string;
  color: string;
  /** (x, y) points; y may be 0 (drawn at the axis; on a log axis, skipped). */
  points: [number, number][];
  dashed?: boolean;
}

export interface Panel {
  title: string;
  unit: string;
  series: Series[];
  log?: boolean;
}

const W = 960;
const PANEL_H = 220;
const M = { left: 70, right: 170, top: 34, bottom: 34 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** "Nice" axis ticks: 1, 2 or 5 × 10^k steps covering [0, max]. */
export function niceTicks(max: number, target = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1]! < max) out.push(Number((out[out.length - 1]! + step).toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  if (v >= 1_000_000) return `${+(v / 1_000_000).toFixed(1)}M`;
  if (v >= 1000) return `${+(v / 1000).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

function panel(p: Panel, y0: number, xMax: number): string {
  const w = W - M.left - M.right;
  const h = PANEL_H - M.top - M.bottom;
  const top = y0 + M.top;
  const ys = p.series.flatMap((s) => s.points.map(([, y]) => y)).filter((y) => Number.isFinite(y));
  const out: string[] = [];
  out.push(`<text x="${M.left}" y="${y0 + 20}" font-size="14" font-weight="bold">${esc(p.title)}</text>`);
  let yOf: (v: number) => number;
  let ticks: number[];
  if (p.log) {
    const pos = ys.filter((y) => y > 0);
    const lo = Math.floor(Math.log10(Math.min(minOf(pos), 1)));
    const hi = Math.ceil(Math.log10(Math.max(maxOf(pos), 10)));
    ticks = [];
    for (let k = lo; k <= hi; k++) ticks.push(10 ** k);
    yOf = (v) => top + h - ((Math.log10(v) - lo) / Math.max(1, hi - lo)) * h;
  } else {
    ticks = niceTicks(Math.max(maxOf(ys), 1));
    const max = ticks[ticks.length - 1]!;
    yOf = (v) => top + h - (v / max) * h;
  }
  const xTicks = niceTicks(Math.max(xMax, 1), 10);
  const xScale = xTicks[xTicks.length - 1]!;
  const xOf = (x: number) => M.left + (x / xScale) * w;
  // Grid and axes.
  for (const t of ticks) {
    const y = yOf(t).toFixed(1);
    out.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + w}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${y}" font-size="11" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  for (const t of xTicks) {
    const x = xOf(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + h}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x}" y="${top + h + 16}" font-size="11" text-anchor="middle">${fmt(t)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#888"/>`);
  out.push(`<text x="14" y="${top + h / 2}" font-size="11" transform="rotate(-90 14 ${top + h / 2})" text-anchor="middle">${esc(p.unit)}</text>`);
  // Lines and legend.
  p.series.forEach((s, i) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y) && (!p.log || y > 0));
    if (pts.length > 0) {
      const d = pts.map(([x, y]) => `${xOf(x).toFixed(1)},${yOf(y).toFixed(1)}`).join(' ');
      out.push(`<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    }
    const ly = top + 8 + i * 18;
    out.push(`<line x1="${M.left + w + 12}" y1="${ly}" x2="${M.left + w + 34}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    out.push(`<text x="${M.left + w + 40}" y="${ly}" font-size="11" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  return out.join('\n');
}

/** The whole chart: panels stacked, a common x axis (seconds). */
export function renderChart(title: string, panels: Panel[], xLabel = 'seconds from the start of the measured window'): string {
  const xMax = Math.max(1, maxOf(panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([x]) => x)))));
  const H = 40 + panels.length * PANEL_H + 20;
  const body = panels.map((p, i) => panel(p, 40 + i * PANEL_H, xMax)).join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`,
    body,
    `<text x="${M.left + (W - M.left - M.right) / 2}" y="${H - 8}" font-size="11" text-anchor="middle">${esc(xLabel)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
