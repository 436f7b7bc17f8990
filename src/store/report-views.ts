/**
 * The key views of `tapflow report`: each is one ClickHouse panel of a Grafana dashboard, run with
 * the panel's own SQL (src/store/panels.ts) over the report's time range — the numbers a user sees
 * on the dashboard for that range, from the same query.
 */
import type { ClickHouseEngine } from './engine.js';
import { expandPanelSql, loadPanelQueries, panelQuery, type Interval, type PanelQuery } from './panels.js';

import { REPORT_VIEWS, REPORT_VIEW_NAMES, type ReportViewName, type ReportViewSpec } from '../domain/report-views.js';

export { REPORT_VIEWS, REPORT_VIEW_NAMES, type ReportViewName, type ReportViewSpec };

/** One view's result: its columns (also when it has no rows) and rows. */
export interface ReportView {
  name: ReportViewName;
  heading: string;
  /** Where the SQL comes from: `<dashboard uid> / <panel title>`. */
  panel: string;
  columns: string[];
  rows: Record<string, unknown>[];
}

export interface ReportViewOptions {
  /** Epoch ms, included. */
  fromMs: number;
  /** Epoch ms, excluded. */
  toMs: number;
  /** Throughput's bucket. @default 1 hour */
  interval?: Interval;
  /** The views to run. @default all of {@link REPORT_VIEWS} */
  views?: readonly ReportViewName[];
  /** Panel queries to use. @default those of grafana/dashboards */
  queries?: readonly PanelQuery[];
}

/** Runs the report's views over [fromMs, toMs). */
export async function reportViews(engine: ClickHouseEngine, o: ReportViewOptions): Promise<ReportView[]> {
  const queries = o.queries ?? loadPanelQueries();
  const wanted = o.views ?? REPORT_VIEW_NAMES;
  const specs = REPORT_VIEWS.filter((v) => wanted.includes(v.name));
  return Promise.all(
    specs.map(async (spec): Promise<ReportView> => {
      const q = panelQuery(spec.dashboardUid, spec.panelTitle, queries);
      const sql = expandPanelSql(q, { fromMs: o.fromMs, toMs: o.toMs, interval: o.interval ?? { count: 1, unit: 'hour' }, mode: 'report' });
      const rows = await engine.query(sql);
      // The columns come with the rows; a view without rows asks the engine for them.
      const columns = rows.length > 0 ? Object.keys(rows[0]!) : (await engine.query<{ name: string }>(`DESCRIBE TABLE (${sql})`)).map((c) => c.name);
      return { name: spec.name, heading: spec.heading, panel: `${spec.dashboardUid} / ${spec.panelTitle}`, columns, rows };
    }),
  );
}
