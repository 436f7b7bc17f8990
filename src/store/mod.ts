/**
 * tapflow's ClickHouse storage layer: the engine seam (embedded chdb or a server), versioned
 * migrations, row mapping from the domain types, and the read queries. The sink role
 * (JetStream consumer, batching, acks) lives elsewhere and calls this.
 */
export { openClickHouse, insertSettings, DEFAULT_DATABASE, DEFAULT_DATA_DIR } from './engine.js';
export { openStore, todayInShanghai, chdbDirHolder, waitForEmbeddedStore } from './open.js';
export type { ClickHouseEngine, ClickHouseConfig, InsertOptions } from './engine.js';
export { StoreConfigError, type StoreConfigErrorCode } from './errors.js';
export { migrate, pendingMigrations, loadMigrations, splitStatements, MIGRATIONS_DIR, type Migration } from './migrate.js';
export { setupStore, storeSetupMissing, prepareSinkStore, type StoreSetup } from './setup.js';
export { redactUrl } from './redact.js';
export { applyRetention, retentionTtl, tableTtl, RETAINED_TABLES, type RetentionChange } from './retention.js';
export { decisionRow, settlementRows, riskFlagRow, dateTime64, writeDecision, writeSettlement, writeLedger, writeClaim, writeRiskFlag } from './rows.js';
export { InsertBatch, SLICE_ROWS, type BatchMark, type RowWriter } from './row-encoding.js';
export type { DecisionRow, SettlementRow, LedgerRow, ClaimRow, RiskFlagRow, SettlementRows } from './rows.js';
export { highWaterMarks, tablesHoldingMessages, summary, regionParts, clearingReport, ledgerBalance, venueEntries } from './queries.js';
export { TABLE_SOURCE_STREAMS, MARK_KEYS, DEFAULT_RISK_FLAG_STREAM, markKey, dedupToken } from './sources.js';
export type { StoreTable, SourceStream, MarkKey } from './sources.js';
export type { HighWaterMarks, StoreSummary, SummaryFilter, RegionPart, ClearingReport, ClearingOptions, AccountTotal, LedgerBalance, VenueHourEntries } from './queries.js';
export { loadPanelQueries, panelQuery, expandPanelSql, DASHBOARDS_DIR, CLICKHOUSE_DATASOURCE, type PanelQuery, type MacroRange, type Interval } from './panels.js';
export { reportViews, REPORT_VIEWS, REPORT_VIEW_NAMES, type ReportView, type ReportViewName, type ReportViewOptions, type ReportViewSpec } from './report-views.js';
export { ledgerImbalanceFen, venueAcceptance, silentTerminals, VENUE_CHECK, type VenueAcceptance, type VenueCheck, type SilentTerminals } from './checks.js';
