-- tapflow 0004: only the aggregates something reads stay on the hot tables.
--
-- Every materialized view on a table runs inside each INSERT into it: it aggregates the block
-- and writes (and deduplicates) a part of its own, which background merges then rewrite. With
-- one insert per table per sink batch that was a fixed cost of several milliseconds of CPU per
-- view and insert, on the tables every tap writes. Two views were read by nothing — no Grafana
-- panel (grafana/dashboards/*.json), no query of src/store/queries.ts, no alert:
-- * taps_per_minute (on decisions): taps by minute, regions, scene, verdict and reason. The
--   dashboards read decisions itself (rejects by venue, venues with dropping acceptance).
-- * fares_per_minute (on settlements): the finance panels read settlements by business day.
-- Both go, with their target tables: nothing feeds a stale aggregate. Should one be wanted
-- again, it is one GROUP BY over its base table (the SELECT of 0002) and a new view.
--
-- The aggregates that stay, one per table at most:
--   decisions  -> venue_entries_per_hour (risk dashboard, `tapflow entries`)
--   ledger     -> ledger_per_day         (finance dashboard)
--   risk_flags -> risk_flags_per_minute  (risk dashboard)
--   settlements, claims: none.
--
-- Idempotent (IF EXISTS). The view goes before its target, so no insert meets a view whose
-- target has gone.

DROP VIEW IF EXISTS taps_per_minute_mv;
DROP TABLE IF EXISTS taps_per_minute;
DROP VIEW IF EXISTS fares_per_minute_mv;
DROP TABLE IF EXISTS fares_per_minute;
