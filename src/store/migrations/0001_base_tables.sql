-- tapflow 0001: the base tables, one row per stored fact. Runs unchanged on chdb and on a
-- ClickHouse server, in the database the engine was opened with (names are unqualified).
--
-- Conventions:
-- * No raw card or ID numbers anywhere: card_token / person_token are keyed HMAC tokens.
-- * Money is Int64 fen. Times are DateTime64(3, 'Asia/Shanghai'): stored as UTC epoch
--   milliseconds, shown in Beijing time; inserted as '<epoch seconds>.<millis>' strings.
-- * stream_seq is the JetStream sequence of the message the row came from. Each table is fed
--   by exactly one stream, so max(stream_seq) is the sink's high-water mark for that table.
-- * PARTITION BY the month of stored_time, not of device time: stored_time is one value for
--   a whole INSERT (now64() is constant within a query), so a batch writes exactly one part
--   and commits all-or-nothing. Partitioning by device time would split a batch that carries
--   last month's offline taps into parts that commit separately, and a crash between them
--   would leave a high-water mark above missing rows. Time-range queries still skip granules
--   through device_time in the sorting key.
-- * non_replicated_deduplication_window > 0: an INSERT retried with the same
--   insert_deduplication_token is dropped (the sink always passes a token; without one a
--   retry is NOT dropped, because stored_time differs between the two attempts).
-- * Every statement is idempotent (IF NOT EXISTS): a migration interrupted halfway is simply
--   applied again.

CREATE TABLE IF NOT EXISTS decisions
(
    event_id String,
    terminal_id String,
    seq UInt64,
    terminal_region LowCardinality(String),
    operator_id LowCardinality(String),
    device_time DateTime64(3, 'Asia/Shanghai'),
    ingest_time DateTime64(3, 'Asia/Shanghai'),
    decision_time DateTime64(3, 'Asia/Shanghai'),
    stored_time DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3),
    scene LowCardinality(String),
    venue_id LowCardinality(String),
    direction LowCardinality(String),
    card_token String,
    card_region LowCardinality(String),
    form LowCardinality(String),
    amount_fen Int64,
    rider_category LowCardinality(String),
    offline UInt8,
    `partition` UInt32,
    verdict LowCardinality(String),
    reason LowCardinality(String),
    -- JSON array of {rule, version, detail}: the reasoning behind the verdict.
    trace String,
    risk_rules Array(LowCardinality(String)),
    stream_seq UInt64,
    INDEX idx_card_token card_token TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(stored_time)
ORDER BY (terminal_region, scene, device_time, terminal_id, seq)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS settlements
(
    settlement_id String,
    event_id String,
    kind LowCardinality(String),
    card_token String,
    card_region LowCardinality(String),
    terminal_region LowCardinality(String),
    operator_id LowCardinality(String),
    network LowCardinality(String),
    scene LowCardinality(String),
    venue_id LowCardinality(String),
    entry_venue_id LowCardinality(String),
    device_time DateTime64(3, 'Asia/Shanghai'),
    ingest_time DateTime64(3, 'Asia/Shanghai'),
    settle_time DateTime64(3, 'Asia/Shanghai'),
    stored_time DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3),
    -- YYYY-MM-DD of device_time in Asia/Shanghai, as the settler computed it.
    business_day Date,
    -- What the cardholder pays; a signed delta for ADJUSTMENT and REVERSAL.
    amount_fen Int64,
    base_fare_fen Int64,
    distance_m UInt32,
    tariff_version LowCardinality(String),
    trace String,
    adjusts_event_id String,
    `partition` UInt32,
    -- Medical claims only (empty / 0 otherwise); the split also lands in `claims`.
    claim_id String DEFAULT '',
    claim_status LowCardinality(String) DEFAULT '',
    medfee_sumamt Int64 DEFAULT 0,
    fulamt_ownpay_amt Int64 DEFAULT 0,
    preselfpay_amt Int64 DEFAULT 0,
    inscp_scp_amt Int64 DEFAULT 0,
    deductible_amt Int64 DEFAULT 0,
    hifp_pay Int64 DEFAULT 0,
    acct_pay Int64 DEFAULT 0,
    cash_payamt Int64 DEFAULT 0,
    over_cap_amt Int64 DEFAULT 0,
    policy_version LowCardinality(String) DEFAULT '',
    stream_seq UInt64,
    INDEX idx_card_token card_token TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(stored_time)
ORDER BY (business_day, terminal_region, scene, network, settlement_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS ledger
(
    entry_id String,
    settlement_id String,
    event_id String,
    business_day Date,
    -- Chart of accounts: src/domain/settle (e.g. 'card:BJ', 'operator:bj-subway', 'clearing:BJ:TJ').
    account LowCardinality(String),
    debit_fen Int64,
    credit_fen Int64,
    card_region LowCardinality(String),
    terminal_region LowCardinality(String),
    kind LowCardinality(String),
    device_time DateTime64(3, 'Asia/Shanghai'),
    stored_time DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3),
    stream_seq UInt64,
    INDEX idx_settlement_id settlement_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(stored_time)
ORDER BY (business_day, account, entry_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS risk_flags
(
    flag_id String,
    event_id String,
    rule_id LowCardinality(String),
    rule_version LowCardinality(String),
    severity LowCardinality(String),
    -- What `key` is: card (a card token), terminal, venue or institution id.
    key_kind LowCardinality(String),
    key String,
    detail String,
    device_time DateTime64(3, 'Asia/Shanghai'),
    flag_time DateTime64(3, 'Asia/Shanghai'),
    stored_time DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3),
    region LowCardinality(String),
    stream_seq UInt64,
    INDEX idx_key key TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(stored_time)
ORDER BY (rule_id, device_time, flag_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS claims
(
    claim_id String,
    settlement_id String,
    event_id String,
    status LowCardinality(String),
    reason LowCardinality(String),
    -- ClaimSplit, with the national platform's field names; all fen.
    medfee_sumamt Int64,
    fulamt_ownpay_amt Int64,
    preselfpay_amt Int64,
    inscp_scp_amt Int64,
    deductible_amt Int64,
    hifp_pay Int64,
    acct_pay Int64,
    cash_payamt Int64,
    over_cap_amt Int64,
    policy_version LowCardinality(String),
    person_token String,
    card_token String,
    insured_region LowCardinality(String),
    treatment_region LowCardinality(String),
    institution_id LowCardinality(String),
    device_time DateTime64(3, 'Asia/Shanghai'),
    business_day Date,
    stored_time DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3),
    stream_seq UInt64,
    INDEX idx_person_token person_token TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(stored_time)
ORDER BY (insured_region, treatment_region, device_time, claim_id)
SETTINGS non_replicated_deduplication_window = 1000;
