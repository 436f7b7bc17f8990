/**
 * ClickHouse least privilege, as far as the embedded engine can show it. chdb has no access
 * control (CREATE USER is refused: no user directory), so the users and grants of
 * clickhouse/users.sql are checked statically (test/integration/ops/compose.test.ts); what the
 * engine does enforce is the read-only mode: the setting users.sql gives Grafana's user
 * (readonly = 2). Here the sink's statements (migrations, a batch insert) run first with the
 * writer's settings (none), then the session takes Grafana's setting and must refuse every write
 * and DDL while the dashboards' reads, and the setting the Grafana plugin changes on each query,
 * still work.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ClickHouseEngine, InsertBatch, migrate, openClickHouse, writeDecision } from '../../../src/store/mod.js';
import { decision } from './fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
let dataDir: string;
let engine: ClickHouseEngine;

/** The readonly setting clickhouse/users.sql gives a user. */
function readonlyOf(user: string): number | undefined {
  const sql = readFileSync(join(ROOT, 'clickhouse', 'users.sql'), 'utf8');
  const m = new RegExp(`CREATE USER IF NOT EXISTS ${user} [^;]*?SETTINGS readonly = (\\d)`).exec(sql);
  return m ? Number(m[1]) : undefined;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tapflow-readonly-'));
  engine = await openClickHouse({ dataDir });
});

afterAll(async () => {
  await engine?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

it("store - the writer runs the sink's statements; Grafana's read-only setting then refuses every write and DDL", async () => {
  // The writer (tapflow_writer: no readonly setting): migrations and the sink's insert.
  expect(readonlyOf('tapflow_writer')).toBeUndefined();
  await migrate(engine);
  const batch = new InsertBatch();
  for (let i = 1; i <= 3; i++) writeDecision(batch, decision(i), 100 + i);
  await engine.insert('decisions', batch, { dedupToken: 'decisions:DECISIONS:101-103:3' });
  expect((await engine.query<{ n: number }>('SELECT count() AS n FROM decisions'))[0]!.n).toBe(3);

  // Grafana's user: the setting users.sql gives it, applied to this session.
  const readonly = readonlyOf('tapflow_grafana');
  expect(readonly).toBe(2);
  await engine.exec(`SET readonly = ${readonly}`);
  // Reads work, and so does the per-query timeout the Grafana plugin sets.
  expect((await engine.query<{ n: number }>('SELECT count() AS n FROM decisions'))[0]!.n).toBe(3);
  await engine.exec('SET max_execution_time = 30');
  const refused = /readonly mode|READONLY/;
  const more = new InsertBatch();
  writeDecision(more, decision(4), 104);
  await expect(engine.insert('decisions', more, { dedupToken: 'decisions:DECISIONS:104-104:1' })).rejects.toThrow(refused);
  await expect(engine.exec("INSERT INTO decisions (event_id) VALUES ('x')")).rejects.toThrow(refused);
  await expect(engine.exec('CREATE TABLE rogue (a UInt8) ENGINE = MergeTree ORDER BY a')).rejects.toThrow(refused);
  await expect(engine.exec('DROP TABLE decisions')).rejects.toThrow(refused);
  await expect(engine.exec('TRUNCATE TABLE decisions')).rejects.toThrow(refused);
  await expect(engine.exec('ALTER TABLE decisions DELETE WHERE 1')).rejects.toThrow(refused);
  // Nor can it lift the setting.
  await expect(engine.exec('SET readonly = 0')).rejects.toThrow(refused);
  expect((await engine.query<{ n: number }>('SELECT count() AS n FROM decisions'))[0]!.n).toBe(3);
});
