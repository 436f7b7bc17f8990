-- tapflow 0002: materialized aggregates for dashboards, by device (event) time.
--
-- Each aggregate is a SummingMergeTree target filled by a materialized view on a base table.
-- Rows with the same key are summed only when parts merge, so ALWAYS read them with sum() and
-- GROUP BY, e.g.
--   SELECT minute, verdict, sum(taps) FROM taps_per_minute
--   WHERE minute >= now() - INTERVAL 1 HOUR GROUP BY minute, verdict ORDER BY minute;
-- The targets carry non_replicated_deduplication_window too: with
-- deduplicate_blocks_in_dependent_materialized_views = 1 (set by the engine on every insert),
-- a retried insert that the base table drops is dropped by the views as well, instead of
-- being counted twice. Minutes and hours are computed in Asia/Shanghai (a whole-hour offset,
-- so they are the same instants as in UTC).
-- Only rows inserted after a view exists are aggregated (no POPULATE: it would double-count
-- rows inserted while it runs).

-- Taps per minute by region, scene, verdict and reason (all decisions, accepted and rejected).
CREATE TABLE IF NOT EXISTS taps_per_minute
(
    minute DateTime('Asia/Shanghai'),
    terminal_region LowCardinality(String),
    card_region LowCardinality(String),
    scene LowCardinality(String),
    verdict LowCardinality(String),
    reason LowCardinality(String),
    taps UInt64,
    offline_taps UInt64,
    amount_fen Int64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, terminal_region, card_region, scene, verdict, reason)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS taps_per_minute_mv TO taps_per_minute AS
SELECT
    toStartOfMinute(device_time) AS minute,
    terminal_region,
    card_region,
    scene,
    verdict,
    reason,
    count() AS taps,
    countIf(offline = 1) AS offline_taps,
    sum(amount_fen) AS amount_fen
FROM decisions
GROUP BY minute, terminal_region, card_region, scene, verdict, reason;

-- Fares (all settlements, including adjustments as signed deltas) per minute by network and region.
CREATE TABLE IF NOT EXISTS fares_per_minute
(
    minute DateTime('Asia/Shanghai'),
    network LowCardinality(String),
    terminal_region LowCardinality(String),
    card_region LowCardinality(String),
    scene LowCardinality(String),
    kind LowCardinality(String),
    settlements UInt64,
    amount_fen Int64,
    base_fare_fen Int64,
    distance_m UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, network, terminal_region, card_region, scene, kind)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS fares_per_minute_mv TO fares_per_minute AS
SELECT
    toStartOfMinute(device_time) AS minute,
    network,
    terminal_region,
    card_region,
    scene,
    kind,
    count() AS settlements,
    sum(amount_fen) AS amount_fen,
    sum(base_fare_fen) AS base_fare_fen,
    sum(toUInt64(distance_m)) AS distance_m
FROM settlements
GROUP BY minute, network, terminal_region, card_region, scene, kind;

-- Accepted entries per culture venue (museum, library, park, scenic area) per hour.
CREATE TABLE IF NOT EXISTS venue_entries_per_hour
(
    hour DateTime('Asia/Shanghai'),
    venue_id LowCardinality(String),
    terminal_region LowCardinality(String),
    card_region LowCardinality(String),
    rider_category LowCardinality(String),
    entries UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, venue_id, terminal_region, card_region, rider_category)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS venue_entries_per_hour_mv TO venue_entries_per_hour AS
SELECT
    toStartOfHour(device_time) AS hour,
    venue_id,
    terminal_region,
    card_region,
    rider_category,
    count() AS entries
FROM decisions
WHERE scene = 'CULTURE' AND verdict = 'ACCEPTED' AND direction IN ('ENTRY', 'SINGLE')
GROUP BY hour, venue_id, terminal_region, card_region, rider_category;

-- Risk flags per minute by rule and severity.
CREATE TABLE IF NOT EXISTS risk_flags_per_minute
(
    minute DateTime('Asia/Shanghai'),
    rule_id LowCardinality(String),
    severity LowCardinality(String),
    region LowCardinality(String),
    key_kind LowCardinality(String),
    flags UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, rule_id, severity, region, key_kind)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS risk_flags_per_minute_mv TO risk_flags_per_minute AS
SELECT
    toStartOfMinute(device_time) AS minute,
    rule_id,
    severity,
    region,
    key_kind,
    count() AS flags
FROM risk_flags
GROUP BY minute, rule_id, severity, region, key_kind;

-- Ledger per business day and account: the daily trial balance and clearing positions.
CREATE TABLE IF NOT EXISTS ledger_per_day
(
    business_day Date,
    account LowCardinality(String),
    entries UInt64,
    debit_fen Int64,
    credit_fen Int64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(business_day)
ORDER BY (business_day, account)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_per_day_mv TO ledger_per_day AS
SELECT
    business_day,
    account,
    count() AS entries,
    sum(debit_fen) AS debit_fen,
    sum(credit_fen) AS credit_fen
FROM ledger
GROUP BY business_day, account;
