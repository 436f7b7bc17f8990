-- tapflow's ClickHouse users: least privilege for the store (README, "Least privilege").
-- docker-compose.yml runs this file once, on an empty data volume, as the clickhouse service's
-- admin user (/docker-entrypoint-initdb.d). On another server, run it as an administrator:
--   clickhouse-client --user <admin> --password --multiquery < clickhouse/users.sql
-- The passwords are the compose example's: change them for anything but a laptop.

-- tapflow's processes (CLICKHOUSE_USER): the sink's inserts, the reports' and /summary's
-- selects, and the migrations the sink applies at start (tables, materialized views, an added
-- column, the retention TTL, dropping the aggregates a migration replaced) — in the tapflow
-- database only: no other database, no users or grants, no SYSTEM commands.
CREATE USER IF NOT EXISTS tapflow_writer IDENTIFIED WITH sha256_password BY 'tapflow_writer' DEFAULT DATABASE tapflow;
GRANT CREATE DATABASE ON tapflow.* TO tapflow_writer;
GRANT SELECT, INSERT, CREATE TABLE, CREATE VIEW, ALTER ADD COLUMN, ALTER TTL, DROP TABLE, DROP VIEW ON tapflow.* TO tapflow_writer;

-- Grafana's ClickHouse datasource: reads only. readonly = 2 refuses every write and DDL but lets
-- the plugin set max_execution_time on each query (readonly = 1 would refuse that too).
CREATE USER IF NOT EXISTS tapflow_grafana IDENTIFIED WITH sha256_password BY 'tapflow_grafana' DEFAULT DATABASE tapflow SETTINGS readonly = 2;
GRANT SELECT ON tapflow.* TO tapflow_grafana;
