/**
 * The ClickHouse queries of the Grafana dashboards (grafana/dashboards/*.json), read from the
 * dashboard files themselves: `tapflow report` prints the same key views as the dashboards by
 * running the very SQL of their panels, so a panel and its report view cannot drift apart.
 *
 * A panel's SQL holds the macros of grafana-clickhouse-datasource; {@link expandPanelSql}
 * replaces them for a time range in one of two ways:
 *
 * - `grafana`: as the plugin (4.x) does, for checking the dashboards — `$__timeFilter(c)` is
 *   `c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)`, both ends included, whole seconds;
 * - `report`: for `tapflow report`'s range, --from included and --to excluded, to the
 *   millisecond — `c >= fromUnixTimestamp64Milli(<from ms>) AND c < fromUnixTimestamp64Milli(<to ms>)`.
 *
 * `$__dateFilter(c)` is the business days (Asia/Shanghai) from the day of `from` to the day of
 * `to` (report: of the last millisecond before `to`), both included; `$__timeInterval(c)` the
 * start of the interval holding `c`; `$__fromTime` and `$__toTime` the range's ends. Dashboard
 * variables (`$name`, `${name}`) take their current value from the dashboard's templating, as
 * Grafana substitutes them before the plugin sees the SQL. A `$` left over is an error.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { businessDay } from '../domain/settle/time.js';

/** The dashboards folder: grafana/dashboards of this tapflow (copied next to dist/ by the build). */
export const DASHBOARDS_DIR = fileURLToPath(new URL('../../grafana/dashboards/', import.meta.url));

/** One ClickHouse query of a dashboard panel. */
export interface PanelQuery {
  /** The dashboard's uid, e.g. `tapflow-finance`. */
  dashboardUid: string;
  dashboardTitle: string;
  panelId: number;
  panelTitle: string;
  panelType: string;
  refId: string;
  /** The SQL with Grafana's macros, as in the dashboard file. */
  rawSql: string;
  /** The dashboard's template variables and their current values. */
  variables: Record<string, string>;
}

interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  panels?: DashboardPanel[];
  targets?: { refId?: string; datasource?: { type?: string }; rawSql?: string }[];
}

interface DashboardFile {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating?: { list?: { name: string; current?: { value?: unknown } }[] };
}

export const CLICKHOUSE_DATASOURCE = 'grafana-clickhouse-datasource';

/** Every ClickHouse query of every dashboard in `dir`, in file and panel order. */
export function loadPanelQueries(dir: string = DASHBOARDS_DIR): PanelQuery[] {
  const out: PanelQuery[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const d = JSON.parse(readFileSync(join(dir, file), 'utf8')) as DashboardFile;
    const variables: Record<string, string> = {};
    for (const v of d.templating?.list ?? []) {
      const value = v.current?.value;
      variables[v.name] = Array.isArray(value) ? value.map(String).join(',') : String(value ?? '');
    }
    const visit = (p: DashboardPanel) => {
      for (const inner of p.panels ?? []) visit(inner); // a collapsed row holds its panels
      for (const t of p.targets ?? []) {
        if (t.datasource?.type !== CLICKHOUSE_DATASOURCE || !t.rawSql) continue;
        out.push({ dashboardUid: d.uid, dashboardTitle: d.title, panelId: p.id, panelTitle: p.title, panelType: p.type, refId: t.refId ?? 'A', rawSql: t.rawSql, variables });
      }
    };
    d.panels.forEach(visit);
  }
  return out;
}

/** The one ClickHouse query of a panel, found by dashboard uid and panel title. */
export function panelQuery(dashboardUid: string, panelTitle: string, queries: readonly PanelQuery[] = loadPanelQueries()): PanelQuery {
  const found = queries.filter((q) => q.dashboardUid === dashboardUid && q.panelTitle === panelTitle);
  if (found.length !== 1) throw new Error(`dashboard ${dashboardUid} has ${found.length === 0 ? 'no' : found.length} ClickHouse panel(s) titled ${JSON.stringify(panelTitle)}`);
  return found[0]!;
}

/** A bucket of `$__timeInterval`: a count of minutes, hours or days. */
export interface Interval {
  count: number;
  unit: 'second' | 'minute' | 'hour' | 'day';
}

export interface MacroRange {
  /** Epoch ms: start of the range (included). */
  fromMs: number;
  /** Epoch ms: end of the range (excluded in `report` mode, included in `grafana` mode). */
  toMs: number;
  /** `$__timeInterval`'s bucket. @default 60 seconds (Grafana's interval for a range of a few hours) */
  interval?: Interval;
  mode: 'grafana' | 'report';
}

/** The panel's SQL for a range: macros and variables replaced (see the module's comment). */
export function expandPanelSql(q: Pick<PanelQuery, 'rawSql' | 'variables'>, r: MacroRange): string {
  for (const v of [r.fromMs, r.toMs]) if (!Number.isSafeInteger(v)) throw new RangeError(`range ends must be epoch ms, got ${v}`);
  const interval = r.interval ?? { count: 60, unit: 'second' };
  if (!Number.isSafeInteger(interval.count) || interval.count < 1) throw new RangeError(`interval count must be a positive integer, got ${interval.count}`);
  const grafana = r.mode === 'grafana';
  const from = grafana ? `toDateTime(${Math.floor(r.fromMs / 1000)})` : `fromUnixTimestamp64Milli(${r.fromMs})`;
  const to = grafana ? `toDateTime(${Math.floor(r.toMs / 1000)})` : `fromUnixTimestamp64Milli(${r.toMs})`;
  const lastDay = businessDay(grafana ? r.toMs : r.toMs - 1);
  let sql = q.rawSql
    .replace(/\$__timeFilter\(([^)]+)\)/g, (_, c: string) => `${c} >= ${from} AND ${c} ${grafana ? '<=' : '<'} ${to}`)
    .replace(/\$__dateFilter\(([^)]+)\)/g, (_, c: string) => `${c} >= toDate('${businessDay(r.fromMs)}') AND ${c} <= toDate('${lastDay}')`)
    .replace(/\$__timeInterval\(([^)]+)\)/g, (_, c: string) => `toStartOfInterval(toDateTime(${c}), INTERVAL ${interval.count} ${interval.unit})`)
    .replace(/\$__fromTime\b/g, from)
    .replace(/\$__toTime\b/g, to);
  for (const [name, value] of Object.entries(q.variables)) {
    sql = sql.replace(new RegExp(`\\$\\{${name}\\}|\\$${name}\\b`, 'g'), value);
  }
  const left = /\$\{?\w+/.exec(sql);
  if (left) throw new Error(`unknown macro or variable ${left[0]} in a dashboard query`);
  return sql;
}
