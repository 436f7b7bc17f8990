/**
 * Every PromQL expression tapflow ships, and Grafana's way of turning a dashboard query into the
 * PromQL it sends to Prometheus:
 * - dashboardQueries: each Prometheus target of each panel (rows' nested panels included) of
 *   every dashboard JSON, with the dashboard's template variables;
 * - ruleQueries: each alerting and recording rule of every rule file in prometheus/ (files
 *   with top-level `groups`, the promtool unit tests *.test.yml excepted);
 * - interpolate: template variables ($var, ${var}, ${var:format}, [[var]]) formatted as the
 *   Prometheus data source formats them (a single value escaped, several values or All as a
 *   regex alternation of escaped values, or the variable's custom all value), then the built-in
 *   $__interval, $__interval_ms, $__range, $__range_s, $__range_ms, $__rate_interval and
 *   $__rate_interval_ms computed as Grafana's Prometheus data source computes them;
 * - boolForm: an expression with every comparison turned into a `bool` comparison, which keeps
 *   the series an alert condition looks at instead of filtering them by its threshold.
 *
 * Sources of the Grafana rules (pkg/promlib/models/query.go, pkg/promlib/intervalv2,
 * public/app/plugins/datasource/prometheus/datasource.ts):
 *   interval      = max(roundInterval(max(range / maxDataPoints, minInterval)), roundInterval(range / 11000))
 *                   where minInterval = the query's min step, else the data source's scrape interval
 *   rate_interval = max(interval + scrape, 4 × scrape), scrape = the query's min step, else the
 *                   data source's scrape interval ("timeInterval"), else 15s
 *   $__range      = the dashboard range in whole seconds + "s"
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';

export interface GrafanaDatasourceRef {
  type?: string;
  uid?: string;
}

export interface GrafanaTarget {
  refId?: string;
  datasource?: GrafanaDatasourceRef | string | null;
  expr?: string;
  rawSql?: string;
  instant?: boolean;
  range?: boolean;
  /** Min step. */
  interval?: string;
  /** "{{label}} …": series names in the legend. */
  legendFormat?: string;
  hide?: boolean;
}

export interface GrafanaPanel {
  type: string;
  title: string;
  datasource?: GrafanaDatasourceRef | string | null;
  targets?: GrafanaTarget[];
  panels?: GrafanaPanel[];
  interval?: string;
  maxDataPoints?: number;
  gridPos?: { w?: number; h?: number };
}

export interface GrafanaVariable {
  name: string;
  type: string;
  datasource?: GrafanaDatasourceRef | string | null;
  query?: string | { query?: string };
  definition?: string;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string | null;
  options?: { text?: string; value?: string | string[]; selected?: boolean }[];
  current?: { text?: string | string[]; value?: string | string[] };
}

export interface GrafanaDashboard {
  uid: string;
  title: string;
  panels: GrafanaPanel[];
  time?: { from?: string; to?: string };
  templating?: { list?: GrafanaVariable[] };
}

/** One Prometheus query of a dashboard panel. */
export interface DashboardQuery {
  file: string;
  dashboard: string;
  panel: GrafanaPanel;
  target: GrafanaTarget;
  /** "dashboard / panel title / refId", the key of the expectations. */
  key: string;
  expr: string;
}

/** One alerting or recording rule. */
export interface RuleQuery {
  file: string;
  group: string;
  kind: 'alert' | 'record';
  name: string;
  /** "alert Name" or "record name". */
  key: string;
  expr: string;
  /** Labels the rule's annotation and label templates use ({{ $labels.x }}). */
  templateLabels: string[];
}

/** Is this data source reference the Prometheus one (an unset reference is the default data source, Prometheus)? */
export function isPrometheus(ds: GrafanaDatasourceRef | string | null | undefined): boolean {
  if (ds === undefined || ds === null) return true;
  if (typeof ds === 'string') return /prometheus/i.test(ds);
  return ds.type === 'prometheus';
}

/** Panels and the panels nested in (collapsed) rows. */
export function allPanels(panels: GrafanaPanel[]): GrafanaPanel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

export async function readDashboards(dir: string): Promise<{ file: string; dashboard: GrafanaDashboard }[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(files.map(async (file) => ({ file, dashboard: JSON.parse(await readFile(join(dir, file), 'utf8')) as GrafanaDashboard })));
}

/** Every Prometheus query of every panel of the dashboards. */
export function dashboardQueries(dashboards: { file: string; dashboard: GrafanaDashboard }[]): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const { file, dashboard } of dashboards) {
    for (const panel of allPanels(dashboard.panels ?? [])) {
      for (const target of panel.targets ?? []) {
        if (target.hide) continue;
        const ds = target.datasource ?? panel.datasource;
        // A mixed-panel target naming no data source inherits the panel's.
        if (!isPrometheus(ds) || target.rawSql !== undefined) continue;
        if (!target.expr) throw new Error(`${file} / ${panel.title} / ${target.refId}: a Prometheus target without an expression`);
        out.push({ file, dashboard: dashboard.title, panel, target, key: `${dashboard.title} / ${panel.title} / ${target.refId ?? 'A'}`, expr: target.expr });
      }
    }
  }
  return out;
}

/** The rule files of a folder: YAML files with top-level `groups`, except promtool unit tests (*.test.yml). */
export async function ruleFiles(dir: string): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f) && !/\.test\.ya?ml$/.test(f)).sort();
  const out: string[] = [];
  for (const f of files) {
    const doc = parse(await readFile(join(dir, f), 'utf8')) as { groups?: unknown } | null;
    if (doc && typeof doc === 'object' && Array.isArray(doc.groups)) out.push(join(dir, f));
  }
  return out;
}

export async function ruleQueries(files: string[]): Promise<RuleQuery[]> {
  const out: RuleQuery[] = [];
  for (const path of files) {
    const doc = parse(await readFile(path, 'utf8')) as {
      groups: { name: string; rules: { alert?: string; record?: string; expr: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[];
    };
    for (const g of doc.groups) {
      for (const r of g.rules ?? []) {
        const kind = r.alert !== undefined ? 'alert' : 'record';
        const name = r.alert ?? r.record ?? '?';
        const templates = [...Object.values(r.labels ?? {}), ...Object.values(r.annotations ?? {})].join('\n');
        const templateLabels = [...new Set([...templates.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1]!))].sort();
        out.push({ file: path, group: g.name, kind, name, key: `${kind} ${name}`, expr: String(r.expr), templateLabels });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Durations as Grafana parses, rounds and prints them.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 };

/** "15s", "1m30s", "<10s", or a bare number of seconds → ms. */
export function parseGrafanaDuration(s: string): number {
  const t = s.trim().replace(/^</, '').replace(/>$/, '');
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  let ms = 0;
  let rest = t;
  const re = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/;
  if (!re.test(rest)) throw new Error(`not a duration: "${s}"`);
  while (rest.length > 0) {
    const m = re.exec(rest);
    if (!m) throw new Error(`not a duration: "${s}"`);
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return ms;
}

/** "now-1h" → 3 600 000 (relative ranges ending at "now" only). */
export function relativeRangeMs(from: string | undefined, to: string | undefined): number {
  if ((to ?? 'now') !== 'now') throw new Error(`dashboard time range must end at "now" (found "${to}")`);
  const m = /^now-(.+)$/.exec(from ?? 'now-6h');
  if (!m) throw new Error(`dashboard time range start must be "now-<duration>" (found "${from}")`);
  return parseGrafanaDuration(m[1]!);
}

/** Grafana's roundInterval (pkg/promlib/intervalv2, and gtime): the next "nice" interval. */
export function roundInterval(ms: number): number {
  const steps: [number, number][] = [
    [10, 1], [15, 10], [35, 20], [75, 50], [150, 100], [350, 200], [750, 500], [1500, 1000], [3500, 2000], [7500, 5000],
    [12500, 10_000], [17500, 15_000], [25000, 20_000], [45000, 30_000], [90000, 60_000], [210000, 120_000], [450000, 300_000],
    [750000, 600_000], [1050000, 900_000], [1500000, 1_200_000], [2700000, 1_800_000], [5400000, 3_600_000], [9000000, 7_200_000],
    [16200000, 10_800_000], [24300000, 18_000_000], [32400000, 28_800_000], [86400000, 43_200_000], [604800000, 86_400_000],
    [1814400000, 604_800_000], [3628800000, 2_592_000_000],
  ];
  for (const [limit, value] of steps) if (ms <= limit) return value;
  return 31_536_000_000;
}

/** gtime.FormatInterval: the largest whole unit ("2s", "5m", "1h"). */
export function formatInterval(ms: number): string {
  for (const [unit, size] of [['y', UNIT_MS.y!], ['d', UNIT_MS.d!], ['h', UNIT_MS.h!], ['m', UNIT_MS.m!], ['s', UNIT_MS.s!]] as const) {
    if (ms >= size) return `${Math.floor(ms / size)}${unit}`;
  }
  return ms >= 1 ? `${Math.floor(ms)}ms` : '1ms';
}

/** Go's time.Duration.String() for whole milliseconds ("4s", "1m0s", "1.5s", "500ms"), as Grafana prints $__rate_interval. */
export function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const sMs = ms % 60_000;
  const s = sMs % 1000 === 0 ? String(sMs / 1000) : String(sMs / 1000).replace(/0+$/, '');
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

// ---------------------------------------------------------------------------------------------
// Intervals and interpolation.

/** What Grafana knows when it sends a panel's query. */
export interface GrafanaQueryContext {
  /** The dashboard's time range, ms. */
  rangeMs: number;
  /** The Prometheus data source's "Scrape interval" (jsonData.timeInterval), e.g. "1s"; unset = 15s. */
  dsScrapeInterval?: string;
  /** Values of the dashboard's template variables (see {@link variableValue}). */
  variables?: Map<string, VariableValue>;
  /** Panel width in pixels per grid column (Grafana's default maxDataPoints is the panel's width). @default 80 (1920 px / 24) */
  pxPerColumn?: number;
}

export interface QueryIntervals {
  intervalMs: number;
  rateIntervalMs: number;
  rangeMs: number;
}

/** $__interval and $__rate_interval of a panel's query, as Grafana's Prometheus data source computes them. */
export function queryIntervals(panel: Pick<GrafanaPanel, 'interval' | 'maxDataPoints' | 'gridPos'>, target: Pick<GrafanaTarget, 'interval'>, ctx: GrafanaQueryContext): QueryIntervals {
  const isVar = (s: string | undefined) => s !== undefined && /^\$\{?__(rate_)?interval(_ms)?\}?$/.test(s);
  const minStep = target.interval || panel.interval || '';
  const requested = isVar(minStep) ? '' : minStep;
  const scrape = ctx.dsScrapeInterval || '15s';
  const minIntervalMs = parseGrafanaDuration(requested || scrape);
  const maxDataPoints = panel.maxDataPoints ?? Math.max(1, (panel.gridPos?.w ?? 24) * (ctx.pxPerColumn ?? 80));
  const calculated = ctx.rangeMs / maxDataPoints;
  const interval = calculated < minIntervalMs ? roundInterval(minIntervalMs) : roundInterval(calculated);
  const safe = roundInterval(ctx.rangeMs / 11_000);
  const intervalMs = Math.max(interval, safe);
  const scrapeMs = parseGrafanaDuration(requested || scrape);
  const rateIntervalMs = /^\$\{?__rate_interval/.test(minStep) ? intervalMs : Math.max(intervalMs + scrapeMs, 4 * scrapeMs);
  return { intervalMs, rateIntervalMs, rangeMs: ctx.rangeMs };
}

/** A template variable's selected values, and how the data source formats them. */
export interface VariableValue {
  /** The selected values ("All" expanded into every option's value). */
  values: string[];
  multi: boolean;
  includeAll: boolean;
  /** All is selected and the variable has a custom all value: used as it is. */
  allValue?: string;
}

/** prometheusRegularEscape (classic behaviour). */
export function prometheusRegularEscape(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/'/g, "\\\\'");
}

/** prometheusSpecialRegexEscape (classic behaviour). */
export function prometheusSpecialRegexEscape(v: string): string {
  return v.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]+?.()|]/g, '\\\\$&');
}

/** The data source's interpolateQueryExpr, or an explicit ${var:format}. */
export function formatVariable(name: string, v: VariableValue, format?: string): string {
  if (v.allValue !== undefined) return v.allValue;
  if (format) {
    switch (format) {
      case 'raw':
        return v.values.join(',');
      case 'csv':
        return v.values.join(',');
      case 'pipe':
        return v.values.join('|');
      case 'regex': {
        const escaped = v.values.map((x) => x.replace(/[\\^$*+?.()|{}[\]/]/g, '\\$&'));
        return escaped.length === 1 ? escaped[0]! : `(${escaped.join('|')})`;
      }
      default:
        throw new Error(`variable ${name}: format "${format}" is not supported by this check; add it to test/support/grafana-promql.ts`);
    }
  }
  if (!v.multi && !v.includeAll) return prometheusRegularEscape(v.values[0] ?? '');
  const escaped = v.values.map(prometheusSpecialRegexEscape);
  return escaped.length === 1 ? escaped[0]! : `(${escaped.join('|')})`;
}

const BUILTINS = ['__interval', '__interval_ms', '__rate_interval', '__rate_interval_ms', '__range', '__range_s', '__range_ms'];

/** Grafana's templateSrv variable syntax: $var, [[var]], [[var:format]], ${var}, ${var:format}. */
const VARIABLE_RE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}/g;

/** The PromQL Grafana sends for a panel's query. Throws on a variable the dashboard does not define. */
export function interpolate(expr: string, intervals: QueryIntervals, variables: Map<string, VariableValue> = new Map()): string {
  // Template variables first (the frontend), then the built-ins (the data source backend).
  const withVars = expr.replace(VARIABLE_RE, (whole, a?: string, b?: string, bFormat?: string, c?: string, _path?: string, cFormat?: string) => {
    const name = (a ?? b ?? c)!;
    if (BUILTINS.includes(name)) return whole;
    const v = variables.get(name);
    // $1, $2: group references of label_replace, which Grafana leaves alone as unknown variables.
    if (!v && /^\d+$/.test(name)) return whole;
    if (!v) throw new Error(`"${expr}" refers to $${name}, which is neither a variable of the dashboard nor a Grafana built-in`);
    return formatVariable(name, v, bFormat ?? cFormat);
  });
  const rangeS = Math.round(intervals.rangeMs / 1000);
  const replacements: [string, string][] = [
    ['__interval_ms', String(intervals.intervalMs)],
    ['__interval', formatInterval(intervals.intervalMs)],
    ['__range_ms', String(intervals.rangeMs)],
    ['__range_s', String(rangeS)],
    ['__range', `${rangeS}s`],
    ['__rate_interval_ms', String(intervals.rateIntervalMs)],
    ['__rate_interval', goDuration(intervals.rateIntervalMs)],
  ];
  let out = withVars;
  for (const [name, value] of replacements) out = out.split(`\${${name}}`).join(value).split(`$${name}`).join(value);
  return out;
}

/** Values of a variable given the values its query (or list) offers: All when it can, else every value when multi, else the current or first one. */
export function variableValue(v: GrafanaVariable, offered: string[]): VariableValue {
  const multi = !!v.multi;
  const includeAll = !!v.includeAll;
  if (includeAll) return { values: offered, multi, includeAll, ...(v.allValue ? { allValue: v.allValue } : {}) };
  if (multi) return { values: offered, multi, includeAll };
  const current = v.current?.value;
  const cur = Array.isArray(current) ? current[0] : current;
  return { values: [cur !== undefined && offered.includes(cur) ? cur : offered[0]!], multi, includeAll };
}

/** The query string of a variable (string, or { query } in newer dashboards). */
export function variableQuery(v: GrafanaVariable): string {
  return typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '');
}

// ---------------------------------------------------------------------------------------------
// Comparisons as `bool`.

/**
 * The expression with `bool` after every comparison operator outside strings, label matchers
 * and range brackets (`a > 0.3 and b == 1` → `a > bool 0.3 and b == bool 1`): the alert's
 * condition keeps every series it looks at (valued 0 or 1) instead of only those over the
 * threshold. undefined when the expression has no comparison.
 */
export function boolForm(expr: string): string | undefined {
  let out = '';
  let changed = false;
  let i = 0;
  while (i < expr.length) {
    const ch = expr[i]!;
    if (ch === '"' || ch === "'" || ch === '`') {
      let j = i + 1;
      while (j < expr.length && expr[j] !== ch) j += expr[j] === '\\' && ch !== '`' ? 2 : 1;
      out += expr.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (ch === '#') {
      const j = expr.indexOf('\n', i);
      const end = j === -1 ? expr.length : j;
      out += expr.slice(i, end);
      i = end;
      continue;
    }
    if (ch === '{' || ch === '[') {
      const close = ch === '{' ? '}' : ']';
      let j = i + 1;
      while (j < expr.length && expr[j] !== close) {
        if (expr[j] === '"' || expr[j] === "'" || expr[j] === '`') {
          const q = expr[j]!;
          j++;
          while (j < expr.length && expr[j] !== q) j += expr[j] === '\\' && q !== '`' ? 2 : 1;
        }
        j++;
      }
      out += expr.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const op = /^(==|!=|>=|<=|>|<)/.exec(expr.slice(i))?.[0];
    if (op) {
      out += op;
      i += op.length;
      if (!/^\s*bool\b/.test(expr.slice(i))) {
        out += ' bool';
        changed = true;
      }
      continue;
    }
    out += ch;
    i++;
  }
  return changed ? out : undefined;
}

/**
 * The labels an expression groups or matches by: by (…), without (…), on (…), ignoring (…),
 * group_left (…), group_right (…) — outside strings. `le` of histogram buckets included.
 */
export function groupingLabels(expr: string): string[] {
  const s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  const out = new Set<string>();
  for (const m of s.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const l of m[1]!.split(',').map((x) => x.trim()).filter(Boolean)) out.add(l);
  }
  return [...out].sort();
}
