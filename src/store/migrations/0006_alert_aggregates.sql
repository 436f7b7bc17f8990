-- tapflow 0006: two small aggregates on decisions for the sink's alert gauges
-- (src/store/checks.ts, docs/runbook.md). Computed every TAPFLOW_STORE_CHECK_INTERVAL_MS by
-- the active sink, these must stay cheap on a large decisions table: each reads an aggregate
-- whose size is bounded by venues x 5-minute buckets (one day and a quarter of an hour) or by
-- terminals, never the decisions themselves.
-- Both can be rebuilt with their base table (src/sink/rebuild.ts): the venue buckets are of the
-- device time, like the other aggregates (a rebuilt day deletes and refills them), and a
-- terminal's last tap is a max (re-inserted rows leave it as it was).
-- Two views on the hottest table cost some CPU per insert (see 0004); they are what the
-- venue-acceptance and silent-terminal alerts read, nothing else could serve them cheaply.

-- Decisions and accepted decisions per venue and 5 minutes of device time. The alert reads the
-- last 24 hours and a quarter; kept like the other aggregates (docs/schema.md, Retention).
CREATE TABLE IF NOT EXISTS venue_decisions_per_5min
(
    five_min DateTime('Asia/Shanghai'),
    venue_id LowCardinality(String),
    terminal_region LowCardinality(String),
    scene LowCardinality(String),
    decisions UInt64,
    accepted UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMMDD(five_min)
ORDER BY (five_min, venue_id, terminal_region, scene)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS venue_decisions_per_5min_mv TO venue_decisions_per_5min AS
SELECT
    toStartOfFiveMinutes(device_time) AS five_min,
    venue_id,
    terminal_region,
    scene,
    count() AS decisions,
    countIf(verdict = 'ACCEPTED') AS accepted
FROM decisions
GROUP BY five_min, venue_id, terminal_region, scene;

-- The last tap of each terminal (ingest time: when it last reached tapflow, whatever its clock
-- says), one row per terminal once merged.
CREATE TABLE IF NOT EXISTS terminal_last_seen
(
    terminal_region LowCardinality(String),
    scene LowCardinality(String),
    terminal_id String,
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'Asia/Shanghai'))
)
ENGINE = AggregatingMergeTree
ORDER BY (terminal_region, scene, terminal_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS terminal_last_seen_mv TO terminal_last_seen AS
SELECT
    terminal_region,
    scene,
    terminal_id,
    max(ingest_time) AS last_seen
FROM decisions
GROUP BY terminal_region, scene, terminal_id;
