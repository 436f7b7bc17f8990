-- tapflow's ClickHouse users: least privilege for the store (README, "Least privilege").
-- docker-compose.yml runs this file once, on an empty data volume, as the clickhouse service's
-- admin user (/docker-entrypoint-initdb.d). On another server, run it as an administrator:
--   clickhouse-client --user <admin> --password --multiquery < clickhouse/users.sql
-- The passwords are the compose example's: change them for anything but a laptop.

-- tapflow's processes (CLICKHOUSE_USER): the sink's inserts, the reports' and /summary's
-- selects — in the tapflow database only. No DDL: the schema (migrations) and the retention TTL
-- are the admin step's, `tapflow store setup`, run as an administrator (the compose file's
-- store-setup service runs it as the clickhouse service's tapflow_admin); a sink started before
-- it refuses with TF_STORE_SETUP_MISSING.
CREATE USER IF NOT EXISTS tapflow_writer IDENTIFIED WITH sha256_password BY 'tapflow_writer' DEFAULT DATABASE tapflow;
GRANT SELECT, INSERT ON tapflow.* TO tapflow_writer;

-- Grafana's ClickHouse datasource: reads only. readonly = 2 refuses every write and DDL but lets
-- the plugin set max_execution_time on each query (readonly = 1 would refuse that too).
CREATE USER IF NOT EXISTS tapflow_grafana IDENTIFIED WITH sha256_password BY 'tapflow_grafana' DEFAULT DATABASE tapflow SETTINGS readonly = 2;
GRANT SELECT ON tapflow.* TO tapflow_grafana;
