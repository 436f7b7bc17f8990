/**
 * The views of `tapflow report`, by name: each is one ClickHouse panel of a Grafana dashboard
 * (src/store/report-views.ts runs the panel's own SQL over the report's range). Plain data, so
 * the command definitions can name the views without loading the store.
 */

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
