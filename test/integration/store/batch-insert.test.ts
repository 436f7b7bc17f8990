/**
 * A sink-sized batch (50k decisions) through the embedded engine in one insert, encoded as the
 * sink encodes it (rows.ts writers into an InsertBatch). Prints the measured rate and the worst
 * event-loop stall; asserts only what was stored (timing is bench/store-insert.ts's business,
 * not a test's).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ClickHouseEngine, InsertBatch, highWaterMarks, migrate, openClickHouse, writeDecision } from '../../../src/store/mod.js';
import { T0, decision } from './fixtures.js';

const ROWS = 50_000;
let dataDir: string;
let engine: ClickHouseEngine;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'tapflow-batch-'));
  engine = await openClickHouse({ dataDir });
  await migrate(engine);
});

afterAll(async () => {
  await engine?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

it('store - a 50k-row batch is stored whole, with its aggregates', async () => {
  const decisions = Array.from({ length: ROWS }, (_, i) =>
    decision(i + 1, {
      terminalId: `bj-gate-${i % 300}`,
      venueId: i % 10 === 0 ? `museum:BJ:${i % 7}` : `bj-subway:station-${i % 400}`,
      scene: i % 10 === 0 ? 'CULTURE' : 'RAIL',
      direction: i % 10 === 0 ? 'SINGLE' : 'ENTRY',
      cardToken: `tok-${(i * 7919) % 100_000}`,
      amountFen: i % 3,
      deviceTime: T0 + i * 50,
      verdict: i % 50 === 0 ? 'REJECTED' : 'ACCEPTED',
      reason: i % 50 === 0 ? 'HOTLIST_LOST' : 'OK',
    }),
  );
  const batch = new InsertBatch();
  decisions.forEach((d, i) => writeDecision(batch, d, 1_000 + i));
  expect(batch.rows).toBe(ROWS);

  let worstStallMs = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    worstStallMs = Math.max(worstStallMs, now - last);
    last = now;
  }, 5);
  const started = performance.now();
  await engine.insert('decisions', batch, { dedupToken: `decisions:DECISIONS:1000-${1_000 + ROWS - 1}:${ROWS}` });
  const elapsedMs = performance.now() - started;
  clearInterval(probe);
  console.log(
    `chdb insert: ${ROWS} decision rows in ${elapsedMs.toFixed(0)} ms = ${Math.round((ROWS / elapsedMs) * 1000)} rows/s; ` +
      `worst event-loop stall ${worstStallMs.toFixed(0)} ms`,
  );

  const [stored] = await engine.query<{ n: number; fen: number; rejected: number }>(
    "SELECT count() AS n, sum(amount_fen) AS fen, countIf(verdict = 'REJECTED') AS rejected FROM decisions",
  );
  const expectedFen = decisions.reduce((n, d) => n + d.amountFen, 0);
  expect(stored).toEqual({ n: ROWS, fen: expectedFen, rejected: ROWS / 50 });
  const [parts] = await engine.query<{ parts: number }>(
    "SELECT count() AS parts FROM system.parts WHERE database = currentDatabase() AND table = 'decisions' AND active",
  );
  expect(parts!.parts).toBe(1); // one INSERT, one part: the batch commits all-or-nothing
  // Culture entries: every tenth tap, minus those rejected (i % 50 === 0).
  const [agg] = await engine.query<{ entries: number }>('SELECT sum(entries) AS entries FROM venue_entries_per_hour');
  expect(agg!.entries).toBe(ROWS / 10 - ROWS / 50);
  expect((await highWaterMarks(engine))['decisions:DECISIONS']).toBe(1_000 + ROWS - 1);
});
