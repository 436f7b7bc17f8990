/**
 * The sink's store gauges (src/sink/store-gauges.ts, src/store/checks.ts) on the embedded engine:
 * the ledger imbalance read from the ledger itself, venues whose acceptance drops or whose
 * refusals surge against their own history, and silent terminals by region and scene — from rows
 * inserted into the base tables, through the migrations' aggregates.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Gauge } from 'prom-client';
import { createLogger } from '../../../src/observe/log.js';
import { createMetrics } from '../../../src/observe/metrics.js';
import { StoreGauges } from '../../../src/sink/store-gauges.js';
import { decisionRow, settlementRows, silentTerminals, venueAcceptance, type ClickHouseEngine } from '../../../src/store/mod.js';
import { decision, fare, testStore } from './fixtures.js';

const { freshDb } = testStore('tapflow-alert-checks-');
const log = createLogger('silent');

/** 2024-05-02 12:07:00 UTC: the recent window is the buckets from 11:55 on (12 minutes). */
const NOW = Date.UTC(2024, 4, 2, 12, 7, 0);
const MIN = 60_000;

async function values(g: Gauge): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await g.get()).values) out[Object.values(v.labels).join('/')] = v.value;
  return out;
}

let seq = 0;
/** `n` decisions at `venue`, `accepted` of them accepted, spread evenly over [fromMs, toMs). */
async function taps(engine: ClickHouseEngine, venue: string, n: number, accepted: number, fromMs: number, toMs: number, over: { terminalId?: string; terminalRegion?: string; scene?: string } = {}) {
  const rows = Array.from({ length: n }, (_, i) => {
    const t = fromMs + Math.floor(((toMs - fromMs) * i) / n);
    const s = ++seq;
    return decisionRow(
      decision(s, {
        venueId: venue,
        terminalId: over.terminalId ?? `t-${venue}`,
        terminalRegion: (over.terminalRegion ?? 'BJ') as 'BJ' | 'TJ' | 'HE',
        scene: (over.scene ?? 'RAIL') as never,
        deviceTime: t,
        ingestTime: t + 40,
        decisionTime: t + 50,
        verdict: i < accepted ? 'ACCEPTED' : 'REJECTED',
        reason: i < accepted ? 'OK' : 'FORM_NOT_ACCEPTED',
      }),
      s,
    );
  });
  await engine.insert('decisions', rows);
}

describe('store gauges - ledger imbalance from the ledger', () => {
  it('is 0 on a balanced ledger and the injected amount after an unbalanced insert', async () => {
    const engine = await freshDb('ledger_imbalance');
    const metrics = createMetrics({ processMetrics: false });
    const gauges = new StoreGauges({ engine, metrics, log, intervalMs: 60_000, silentMinutes: 30, now: () => NOW });
    const rows = [fare('a', 500), fare('b', 700, { cardRegion: 'TJ' }), fare('c', 300, { terminalRegion: 'HE' })].map((s, i) => settlementRows(s, i + 1));
    await engine.insert('ledger', rows.flatMap((r) => r.ledger));
    gauges.start();
    await gauges.compute();
    expect(await values(metrics.ledgerImbalance)).toEqual({ '': 0 });
    expect((await values(metrics.storeChecked))['']).toBe(NOW / 1000);

    // A deliberate unbalanced posting: a debit of 123 fen without its credit.
    const bad = settlementRows(fare('d', 123), 9).ledger.filter((e) => e.debit_fen > 0);
    await engine.insert('ledger', bad);
    await gauges.compute();
    expect(await values(metrics.ledgerImbalance)).toEqual({ '': 123 });

    // Another gauge set (a restarted sink) reads the same from the ledger.
    const again = createMetrics({ processMetrics: false });
    const restarted = new StoreGauges({ engine, metrics: again, log, intervalMs: 60_000, silentMinutes: 30, now: () => NOW });
    restarted.start();
    await restarted.compute();
    expect(await values(again.ledgerImbalance)).toEqual({ '': 123 });

    // Losing the lease clears what this replica exported.
    await gauges.stop();
    await restarted.stop();
    expect(await values(metrics.ledgerImbalance)).toEqual({ '': 0 });
    expect(await values(metrics.storeChecked)).toEqual({ '': 0 });
  });
});

describe('store gauges - venue acceptance against its own history (art. 24)', () => {
  it('counts the venues whose acceptance drops and whose refusals surge, and names the worst', async () => {
    const engine = await freshDb('venues');
    const dayBefore = NOW - 24 * 60 * MIN;
    const recentFrom = Date.UTC(2024, 4, 2, 11, 55, 0);
    // A: 95% accepted over the day before, 50% now: a drop and a surge.
    await taps(engine, 'bj-subway:A', 200, 190, dayBefore, recentFrom - MIN);
    await taps(engine, 'bj-subway:A', 40, 20, recentFrom, NOW);
    // B: steady at 95%.
    await taps(engine, 'bj-subway:B', 200, 190, dayBefore, recentFrom - MIN);
    await taps(engine, 'bj-subway:B', 40, 38, recentFrom, NOW);
    // C: 90% before, 85% now at many more taps: rejects per minute surge, acceptance barely moves.
    await taps(engine, 'bj-bus:C', 1000, 900, dayBefore, recentFrom - MIN);
    await taps(engine, 'bj-bus:C', 400, 340, recentFrom, NOW);
    // D: every tap rejected, but too few taps to judge; E: new, no history.
    await taps(engine, 'museum:BJ:D', 200, 200, dayBefore, recentFrom - MIN);
    await taps(engine, 'museum:BJ:D', 10, 0, recentFrom, NOW);
    await taps(engine, 'museum:BJ:E', 40, 0, recentFrom, NOW);
    // Older than the history: not read.
    await taps(engine, 'bj-subway:B', 500, 0, dayBefore - 120 * MIN, dayBefore - 60 * MIN);

    const check = await venueAcceptance(engine, NOW);
    expect(check.drops).toBe(1);
    expect(check.surges).toBe(2);
    expect(check.worst.map((v) => [v.venueId, v.drop, v.surge])).toEqual([
      ['bj-subway:A', true, true],
      ['bj-bus:C', false, true],
    ]);
    expect(check.worst[0]!.recentAcceptance).toBe(0.5);
    expect(check.worst[0]!.historyAcceptance).toBe(0.95);
    expect(check.worst[0]!.recentRejectsPerMinute).toBeCloseTo(20 / 12, 6);

    const metrics = createMetrics({ processMetrics: false });
    const gauges = new StoreGauges({ engine, metrics, log, intervalMs: 60_000, silentMinutes: 30, now: () => NOW });
    gauges.start();
    await gauges.compute();
    expect(await values(metrics.venuesAcceptanceDrop)).toEqual({ '': 1 });
    expect(await values(metrics.venuesRefusalSurge)).toEqual({ '': 2 });
    const ratios = await values(metrics.venueAcceptance);
    expect(ratios).toEqual({ 'bj-subway:A/recent': 0.5, 'bj-subway:A/history': 0.95, 'bj-bus:C/recent': 0.85, 'bj-bus:C/history': 0.9 });
    await gauges.stop();
    expect(await values(metrics.venueAcceptance)).toEqual({});
  });

  it('flags nothing when every venue keeps its acceptance', async () => {
    const engine = await freshDb('venues_steady');
    const recentFrom = Date.UTC(2024, 4, 2, 11, 55, 0);
    await taps(engine, 'bj-subway:A', 300, 280, NOW - 24 * 60 * MIN, recentFrom - MIN);
    await taps(engine, 'bj-subway:A', 30, 28, recentFrom, NOW);
    expect(await venueAcceptance(engine, NOW)).toEqual({ drops: 0, surges: 0, worst: [] });
  });
});

describe('store gauges - silent terminals', () => {
  it('counts terminals seen in the last day and silent for the last N minutes, by region and scene', async () => {
    const engine = await freshDb('terminals');
    await taps(engine, 'bj-subway:A', 3, 3, NOW - 15 * MIN, NOW - 3 * MIN, { terminalId: 'bj-1' }); // active: last tap 7 minutes ago
    await taps(engine, 'bj-subway:A', 3, 3, NOW - 180 * MIN, NOW - 120 * MIN, { terminalId: 'bj-2' }); // silent 2 h
    await taps(engine, 'tj-bus:1:2', 2, 2, NOW - 60 * MIN, NOW - 40 * MIN, { terminalId: 'tj-1', terminalRegion: 'TJ', scene: 'BUS' }); // silent 40+ min
    await taps(engine, 'he:rail:X', 2, 2, NOW - 3 * 24 * 60 * MIN, NOW - 2 * 24 * 60 * MIN, { terminalId: 'he-1', terminalRegion: 'HE' }); // gone for days: not counted
    // A second insert for bj-2, later: the newest tap counts (rows of one terminal before a merge).
    await taps(engine, 'bj-subway:A', 1, 1, NOW - 10 * MIN, NOW - 10 * MIN + 1, { terminalId: 'bj-2' });

    expect(await silentTerminals(engine, 30, NOW)).toEqual([
      { region: 'BJ', scene: 'RAIL', seen: 2, silent: 0 },
      { region: 'TJ', scene: 'BUS', seen: 1, silent: 1 },
    ]);
    expect(await silentTerminals(engine, 8, NOW)).toEqual([
      { region: 'BJ', scene: 'RAIL', seen: 2, silent: 1 },
      { region: 'TJ', scene: 'BUS', seen: 1, silent: 1 },
    ]);

    const metrics = createMetrics({ processMetrics: false });
    const gauges = new StoreGauges({ engine, metrics, log, intervalMs: 60_000, silentMinutes: 30, now: () => NOW });
    gauges.start();
    await gauges.compute();
    expect(await values(metrics.terminalsSilent)).toEqual({ 'BJ/RAIL': 0, 'TJ/BUS': 1 });
    expect(await values(metrics.terminalsSeen)).toEqual({ 'BJ/RAIL': 2, 'TJ/BUS': 1 });
    await gauges.stop();
  });
});

describe('store gauges - the silent terminals table of the operations dashboard', () => {
  it('lists the terminals seen in the last day and silent for 30 minutes, longest silent first', async () => {
    const dash = JSON.parse(readFileSync(new URL('../../../grafana/dashboards/tapflow-operations.json', import.meta.url), 'utf8')) as { panels: { title: string; targets?: { rawSql?: string }[] }[] };
    const sql = dash.panels.find((p) => p.title === 'Silent terminals (ClickHouse)')!.targets![0]!.rawSql!;
    const engine = await freshDb('terminals_panel');
    const now = Date.now();
    await taps(engine, 'bj-subway:A', 2, 2, now - 20 * MIN, now - 2 * MIN, { terminalId: 'bj-live' });
    await taps(engine, 'bj-subway:A', 2, 2, now - 5 * 60 * MIN, now - 3 * 60 * MIN, { terminalId: 'bj-3h' });
    await taps(engine, 'tj-bus:1:2', 2, 2, now - 90 * MIN, now - 45 * MIN, { terminalId: 'tj-1h', terminalRegion: 'TJ', scene: 'BUS' });
    await taps(engine, 'he:rail:X', 2, 2, now - 3 * 24 * 60 * MIN, now - 2 * 24 * 60 * MIN, { terminalId: 'he-gone', terminalRegion: 'HE' });
    const rows = await engine.query<{ region: string; scene: string; terminal_id: string; silent_minutes: number }>(sql);
    expect(rows.map((r) => [r.region, r.scene, r.terminal_id])).toEqual([
      ['BJ', 'RAIL', 'bj-3h'],
      ['TJ', 'BUS', 'tj-1h'],
    ]);
    expect(Number(rows[0]!.silent_minutes)).toBeGreaterThanOrEqual(239);
  });
});
