/**
 * The key views of `tapflow report`: each is one ClickHouse panel of a Grafana dashboard, run with
 * the panel's own SQL (src/store/panels.ts) over the report's time range — the numbers a user sees
 * on the dashboard for that range, from the same query.
 */
import type { ClickHouseEngine } from './engine.js';
import { expandPanelSql, loadPanelQueries, panelQuery, type Interval, type PanelQuery } from './panels.js';

/** A view: its name on the command line, and the panel it shows. */
export interface ReportViewSpec {
  name: string;
  dashboardUid: string;
  panelTitle: string;
  /** What the view shows, as the report's heading. */
  heading: string;
}

/** The report's views, in the order printed. */
export const REPORT_VIEWS = [
  { name: 'throughput', dashboardUid: 'tapflow-operations', panelTitle: 'Taps by verdict, event time (ClickHouse)', heading: 'decided taps per interval by verdict (device time)' },
  { name: 'rejects-by-reason', dashboardUid: 'tapflow-risk', panelTitle: 'Rejects by reason (ClickHouse)', heading: 'rejected taps by reason' },
  { name: 'rejects-by-venue', dashboardUid: 'tapflow-risk', panelTitle: 'Rejects by venue and reason (ClickHouse)', heading: 'rejected taps by venue and reason (top 50)' },
  { name: 'risk-flags', dashboardUid: 'tapflow-risk', panelTitle: 'Risk flags by rule and severity (ClickHouse, range)', heading: 'risk flags by rule and severity (minute resolution)' },
  { name: 'fares', dashboardUid: 'tapflow-finance', panelTitle: 'Fares per business day by network and terminal region (fen)', heading: 'settlements per business day by network and terminal region (fen)' },
  { name: 'medical', dashboardUid: 'tapflow-finance', panelTitle: 'Medical splits by insured and treating region (fen, range)', heading: 'medical splits by insured and treating region (fen)' },
  { name: 'clearing', dashboardUid: 'tapflow-finance', panelTitle: 'Cross-region net positions by region (fen, range)', heading: 'cross-region net positions by region (fen)' },
  { name: 'clearing-accounts', dashboardUid: 'tapflow-finance', panelTitle: 'Net positions of the clearing accounts (fen, range)', heading: 'inter-region clearing accounts (fen)' },
] as const satisfies readonly ReportViewSpec[];

export type ReportViewName = (typeof REPORT_VIEWS)[number]['name'];
export const REPORT_VIEW_NAMES: readonly ReportViewName[] = REPORT_VIEWS.map((v) => v.name);

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
