/**
 * Summary of a V8 CPU profile (`node --cpu-prof`, JSON `.cpuprofile`): self time per function
 * and per area (which package or which part of tapflow the code belongs to), as text for the
 * Markdown report.
 *
 * Format: `nodes` [{id, callFrame: {functionName, url, lineNumber}, children}], `samples` (node
 * id of each sample), `timeDeltas` (µs before each sample). A node's self time is the sum of the
 * deltas of the samples taken in it.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  /** Where: file (relative) and line, or the area for natives. */
  where: string;
  area: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Share of samples spent neither idle nor in "(program)": JavaScript, GC and natives. */
  busyPct: number;
  functions: SelfTime[];
  areas: { area: string; ms: number; pct: number }[];
  /**
   * Time by the innermost tapflow source file on the sample's stack (src/…, not src/gen): who
   * called into the libraries — e.g. writeBuffer under src/bus/publisher.ts counts there.
   * Samples whose stack has no tapflow frame (promise continuations start new stacks, GC, idle)
   * count under their area in parentheses.
   */
  callers: { caller: string; ms: number; pct: number }[];
}

/**
 * The area of a frame: GC / idle / program; a node_modules package (@nats-io/nats-core,
 * @grpc/grpc-js, …); a tapflow source folder (src/bus, src/domain/validate, …); node internals.
 */
export function areaOf(url: string, functionName: string): string {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(program)') return '(program)';
  if (!url) return 'native';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  if (url.startsWith('node:')) return 'node internals';
  const src = url.indexOf('/src/');
  if (src >= 0) {
    const parts = url.slice(src + 1).split('/');
    if (parts[1] === 'domain' || parts[1] === 'gen') return parts.slice(0, 3).join('/').replace(/\.ts$/, '');
    return parts.slice(0, 2).join('/');
  }
  const bench = url.indexOf('/bench/');
  if (bench >= 0) return 'bench';
  return 'other';
}

/**
 * Self times of a profile, optionally only of the samples taken within `range` (µs on the
 * profile's clock: V8 stamps samples with the monotonic clock, the one process.hrtime() reads
 * in any process on the machine, so the bench can cut out its measured window).
 */
export function summarizeProfile(p: CpuProfile, top = 25, range?: { fromUs: number; toUs: number }): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const callerOf = new Map<number, string | undefined>();
  const caller = (id: number): string | undefined => {
    if (callerOf.has(id)) return callerOf.get(id);
    let cur: number | undefined = id;
    let found: string | undefined;
    while (cur !== undefined) {
      const url = byId.get(cur)?.callFrame.url ?? '';
      const i = url.indexOf('/src/');
      if (i >= 0 && !url.includes('/src/gen/') && !url.includes('node_modules')) {
        found = url.slice(i + 1);
        break;
      }
      cur = parent.get(cur);
    }
    callerOf.set(id, found);
    return found;
  };
  const callers = new Map<string, number>();
  const fn = new Map<string, SelfTime>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let ts = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!);
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    ts += p.timeDeltas[i] ?? 0;
    if (range && (ts < range.fromUs || ts > range.toUs)) continue;
    if (!n) continue;
    total += dt;
    const { functionName, url, lineNumber } = n.callFrame;
    const name = functionName || '(anonymous)';
    const area = areaOf(url, name);
    if (area === 'idle' || area === '(program)') idle += dt;
    areas.set(area, (areas.get(area) ?? 0) + dt);
    const who = caller(n.id) ?? `(${area})`;
    callers.set(who, (callers.get(who) ?? 0) + dt);
    const file = url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/(src|bench)\//, '$1/');
    const key = `${name}|${file}|${lineNumber}`;
    const e = fn.get(key);
    if (e) e.ms += dt;
    else fn.set(key, { name, where: file ? `${file}:${lineNumber + 1}` : area, area, ms: dt, pct: 0 });
  }
  const pct = (ms: number) => Math.round((ms / Math.max(total, 1e-9)) * 1000) / 10;
  const functions = [...fn.values()]
    .filter((f) => f.area !== 'idle' && f.area !== '(program)')
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top)
    .map((f) => ({ ...f, ms: Math.round(f.ms), pct: pct(f.ms) }));
  return {
    totalMs: Math.round(total),
    busyPct: pct(total - idle),
    functions,
    areas: [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([area, ms]) => ({ area, ms: Math.round(ms), pct: pct(ms) })),
    callers: [...callers.entries()].sort((a, b) => b[1] - a[1]).map(([c, ms]) => ({ caller: c, ms: Math.round(ms), pct: pct(ms) })),
  };
}

export function readProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
}

/** The summary as a Markdown section body. */
export function profileMarkdown(name: string, s: ProfileSummary): string {
  const lines = [
    `Process \`${name}\`: ${(s.totalMs / 1000).toFixed(1)} s profiled (the measured window and the drain), ${s.busyPct}% busy (not idle).`,
    '',
    'Self time by area:',
    '',
    '| area | ms | % |',
    '| --- | ---: | ---: |',
    ...s.areas.slice(0, 15).map((a) => `| ${a.area} | ${a.ms} | ${a.pct} |`),
    '',
    'Time by the innermost tapflow file on the stack (who called into the libraries):',
    '',
    '| caller | ms | % |',
    '| --- | ---: | ---: |',
    ...s.callers.slice(0, 15).map((c) => `| ${c.caller} | ${c.ms} | ${c.pct} |`),
    '',
    'Top functions by self time:',
    '',
    '| function | where | ms | % |',
    '| --- | --- | ---: | ---: |',
    ...s.functions.map((f) => `| \`${f.name}\` | ${f.where} | ${f.ms} | ${f.pct} |`),
  ];
  return lines.join('\n');
}
