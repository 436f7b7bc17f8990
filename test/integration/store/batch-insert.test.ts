/**
 * A sink-sized batch (50k decisions) through the embedded engine in one insert. Prints the
 * measured rate and the worst event-loop stall; asserts only what was stored (timing is the
 * bench harness's business, not a test's).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ClickHouseEngine, decisionRow, highWaterMarks, migrate, openClickHouse } from '../../../src/store/mod.js';
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
  const rows = Array.from({ length: ROWS }, (_, i) =>
    decisionRow(
      decision(i + 1, {
        terminalId: `bj-gate-${i % 300}`,
        venueId: `bj-subway:station-${i % 400}`,
        cardToken: `tok-${(i * 7919) % 100_000}`,
        amountFen: i % 3,
        deviceTime: T0 + i * 50,
        verdict: i % 50 === 0 ? 'REJECTED' : 'ACCEPTED',
        reason: i % 50 === 0 ? 'HOTLIST_LOST' : 'OK',
      }),
      1_000 + i,
    ),
  );

  let worstStallMs = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    worstStallMs = Math.max(worstStallMs, now - last);
    last = now;
  }, 5);
  const started = performance.now();
  await engine.insert('decisions', rows, { dedupToken: `DECISIONS:1000-${1_000 + ROWS - 1}` });
  const elapsedMs = performance.now() - started;
  clearInterval(probe);
  console.log(
    `chdb insert: ${ROWS} decision rows in ${elapsedMs.toFixed(0)} ms = ${Math.round((ROWS / elapsedMs) * 1000)} rows/s; ` +
      `worst event-loop stall ${worstStallMs.toFixed(0)} ms`,
  );

  const [stored] = await engine.query<{ n: number; fen: number; rejected: number }>(
    "SELECT count() AS n, sum(amount_fen) AS fen, countIf(verdict = 'REJECTED') AS rejected FROM decisions",
  );
  const expectedFen = rows.reduce((n, r) => n + r.amount_fen, 0);
  expect(stored).toEqual({ n: ROWS, fen: expectedFen, rejected: ROWS / 50 });
  const [parts] = await engine.query<{ parts: number }>(
    "SELECT count() AS parts FROM system.parts WHERE database = currentDatabase() AND table = 'decisions' AND active",
  );
  expect(parts!.parts).toBe(1); // one INSERT, one part: the batch commits all-or-nothing
  const [agg] = await engine.query<{ taps: number }>('SELECT sum(taps) AS taps FROM taps_per_minute');
  expect(agg!.taps).toBe(ROWS);
  expect((await highWaterMarks(engine))['decisions:DECISIONS']).toBe(1_000 + ROWS - 1);
});
