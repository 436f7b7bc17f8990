/**
 * Every ClickHouse query of the Grafana dashboards runs on tapflow's schema (the migrations of
 * src/store, on the embedded engine), and the finance and venue queries give the right numbers.
 * Grafana's ClickHouse macros are expanded the way grafana-clickhouse-datasource does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openClickHouse, type ClickHouseEngine } from '../../../src/store/mod.js';
import { expandPanelSql, loadPanelQueries } from '../../../src/store/panels.js';

/** Every ClickHouse query of the dashboards, as dashboard title, panel title and SQL. */
async function clickhouseQueries(): Promise<{ dashboard: string; panel: string; sql: string; variables: Record<string, string> }[]> {
  return loadPanelQueries().map((q) => ({ dashboard: q.dashboardTitle, panel: q.panelTitle, sql: q.rawSql, variables: q.variables }));
}

/** The plugin's macros for a time range [from, to] (epoch ms): src/store/panels.ts, grafana mode. */
function expandMacros(sql: string, fromMs: number, toMs: number, variables: Record<string, string> = {}): string {
  return expandPanelSql({ rawSql: sql, variables }, { fromMs, toMs, mode: 'grafana' });
}

const ts = (ms: number) => `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}`;
const HOUR = 3600_000;

describe('ops - dashboard SQL on the embedded ClickHouse', () => {
  let dir: string;
  let engine: ClickHouseEngine;
  const now = Date.now();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tapflow-dash-sql-'));
    engine = await openClickHouse({ dataDir: dir, database: 'tapflow' });
    await migrate(engine);

    // Business day 2026-11-28: a BJ card in Tianjin (400 fen), a TJ card in Beijing (300),
    // a BJ card in Beijing (500). Ledger entries balanced per settlement.
    const day = '2026-11-28';
    const t0 = Date.parse('2026-11-28T10:00:00+08:00');
    const settlements = [
      { id: 's1', card: 'BJ', terminal: 'TJ', network: 'tj-metro', fen: 400 },
      { id: 's2', card: 'TJ', terminal: 'BJ', network: 'bj-subway', fen: 300 },
      { id: 's3', card: 'BJ', terminal: 'BJ', network: 'bj-subway', fen: 500 },
    ];
    await engine.insert(
      'settlements',
      settlements.map((s, i) => ({
        settlement_id: s.id,
        event_id: `e-${s.id}`,
        kind: 'FARE',
        card_region: s.card,
        terminal_region: s.terminal,
        network: s.network,
        scene: 'RAIL',
        device_time: ts(t0 + i * 1000),
        business_day: day,
        amount_fen: s.fen,
        stream_seq: i + 1,
      })),
    );
    await engine.insert(
      'ledger',
      settlements.flatMap((s, i) => {
        const clearing = s.card === s.terminal ? `operator:${s.network}` : `clearing:${s.terminal}:${s.card}`;
        const base = { settlement_id: s.id, event_id: `e-${s.id}`, business_day: day, card_region: s.card, terminal_region: s.terminal, kind: 'FARE', device_time: ts(t0 + i * 1000) };
        return [
          { ...base, entry_id: `${s.id}-1`, account: `card:${s.card}`, debit_fen: s.fen, credit_fen: 0, stream_seq: 2 * i + 1 },
          { ...base, entry_id: `${s.id}-2`, account: clearing, debit_fen: 0, credit_fen: s.fen, stream_seq: 2 * i + 2 },
        ];
      }),
    );

    // Decisions around now: venue V-DROP was always accepted, and accepts half in the last hour;
    // V-STEADY accepts 90% throughout; V-QUIET dropped too, but with too few taps to judge.
    const decisions: Record<string, unknown>[] = [];
    const add = (venue: string, at: number, accepted: boolean) =>
      decisions.push({
        event_id: `d${decisions.length}`,
        terminal_id: `T-${venue}`,
        seq: decisions.length,
        terminal_region: 'HE',
        scene: 'CULTURE',
        venue_id: venue,
        direction: 'ENTRY',
        device_time: ts(at),
        verdict: accepted ? 'ACCEPTED' : 'REJECTED',
        reason: accepted ? 'OK' : 'FORM_NOT_ACCEPTED',
        stream_seq: decisions.length + 1,
      });
    for (let i = 0; i < 96; i++) {
      const before = now - HOUR - 5 * 60_000 - i * 15 * 60_000; // 24 h before the last hour, 4 an hour
      add('V-DROP', before, true);
      add('V-STEADY', before, i % 10 !== 0);
      add('V-QUIET', before, true);
    }
    for (let i = 0; i < 40; i++) {
      const recent = now - 50 * 60_000 + i * 60_000;
      add('V-DROP', recent, i % 2 === 0);
      add('V-STEADY', recent, i % 10 !== 0);
    }
    for (let i = 0; i < 5; i++) add('V-QUIET', now - 10 * 60_000 + i * 60_000, false);
    await engine.insert('decisions', decisions);
  });

  afterAll(async () => {
    await engine?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const range = () => ({ from: Date.parse('2026-11-27T00:00:00+08:00'), to: now + HOUR });
  const find = async (title: RegExp) => {
    const q = (await clickhouseQueries()).find((x) => title.test(x.panel));
    if (!q) throw new Error(`no ClickHouse panel matching ${title}`);
    return expandMacros(q.sql, range().from, range().to, q.variables);
  };

  it('runs every ClickHouse query of every dashboard', async () => {
    const queries = await clickhouseQueries();
    expect(queries.length).toBeGreaterThanOrEqual(8);
    for (const q of queries) {
      const sql = expandMacros(q.sql, range().from, range().to, q.variables);
      expect(sql, `${q.dashboard} / ${q.panel}: unexpanded macro`).not.toMatch(/\$/);
      await expect(engine.query(sql), `${q.dashboard} / ${q.panel}`).resolves.toBeInstanceOf(Array);
    }
  });

  it('ledger per business day: debits equal credits, in exact fen', async () => {
    const rows = await engine.query(await find(/^Ledger per business day/));
    expect(rows).toEqual([{ business_day: '2026-11-28', ledger_entries: 6, debits_fen: 1200, credits_fen: 1200, difference_fen: 0 }]);
  });

  it('cross-region net positions: the terminal region receives, the card region pays', async () => {
    const rows = await engine.query(await find(/^Cross-region net positions by region/));
    expect(rows).toEqual([
      { region: 'BJ', receivable: 300, payable: 400, net: -100 },
      { region: 'TJ', receivable: 400, payable: 300, net: 100 },
    ]);
    const clearing = await engine.query(await find(/^Net positions of the clearing accounts/));
    expect(clearing).toEqual([
      { account: 'clearing:BJ:TJ', debits_fen: 0, credits_fen: 300, net_debit_fen: -300 },
      { account: 'clearing:TJ:BJ', debits_fen: 0, credits_fen: 400, net_debit_fen: -400 },
    ]);
  });

  it('venues with dropping acceptance: only the venue whose share fell, with enough taps', async () => {
    const rows = await engine.query<Record<string, unknown>>(await find(/^Venues with dropping acceptance/));
    expect(rows.map((r) => r.venue_id)).toEqual(['V-DROP']);
    expect(rows[0]).toMatchObject({ taps_last_hour: 40, taps_per_hour_before: 4, acceptance_last_hour: 0.5, acceptance_before: 1, acceptance_drop: 0.5 });
  });
});
