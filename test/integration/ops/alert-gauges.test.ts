/**
 * The alert gauges on a running pipeline (real gRPC, nats-server, embedded ClickHouse): the sink's
 * heartbeat moves only when rows are stored — not while inserts fail, although taps keep being
 * accepted — and the sink's backlog is visible meanwhile; the store gauges are computed from the
 * pipeline's own rows by the active sink and served on /metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gauge } from 'prom-client';
import { createLogger } from '../../../src/observe/log.js';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { stream, tap } from '../ingest/grpc-taps.js';

let p: TestPipeline;
const GATE = 'BJ-RAIL-0301';

beforeAll(async () => {
  // Silent roles: the failing inserts below are expected (each would log a warning).
  p = await startTestPipeline({ TAPFLOW_STORE_CHECK_INTERVAL_MS: '5000', TAPFLOW_LAG_INTERVAL_MS: '1000' }, { log: createLogger('silent') });
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

async function gauge(g: Gauge, labels: Record<string, string> = {}): Promise<number | undefined> {
  return (await g.get()).values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function decisionsStored(): Promise<number> {
  return Number((await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${GATE}'`))[0]!.n);
}

async function published(): Promise<number> {
  return (await p.app.ctx.metrics.tapsPublished.get()).values[0]?.value ?? 0;
}

describe('alert gauges on a running pipeline', () => {
  it('the sink heartbeat moves only when rows are stored', async () => {
    const m = p.app.ctx.metrics;
    const decisions = { table: 'decisions' };
    const first = await stream(p.client, p.metadata(GATE), [tap(GATE, 1), tap(GATE, 2), tap(GATE, 3)]);
    expect(first.acks).toHaveLength(3);
    await p.until(async () => (await decisionsStored()) === 3, 30_000, 'three decisions stored');
    const beat1 = (await gauge(m.sinkLastStored, decisions))!;
    expect(Math.abs(beat1 - Date.now() / 1000)).toBeLessThan(30);

    // Nothing arrives: the heartbeat stays where it was.
    await sleep(1500);
    expect(await gauge(m.sinkLastStored, decisions)).toBe(beat1);

    // Inserts into decisions fail (a constraint no row meets): taps are still accepted, but
    // nothing is stored and the heartbeat does not move; the sink's backlog shows in the gauges.
    await p.app.ctx.engine!.exec('ALTER TABLE decisions ADD CONSTRAINT tapflow_test_refuse CHECK terminal_id = \'\'');
    try {
      const before = await published();
      const more = await stream(p.client, p.metadata(GATE), [tap(GATE, 4), tap(GATE, 5)]);
      expect(more.acks).toHaveLength(2);
      expect(await published()).toBe(before + 2);
      const sinkDecisions = { role: 'sink', stream: 'DECISIONS', partition: 'all' };
      await p.until(async () => ((await gauge(m.consumerOldestAge, sinkDecisions)) ?? 0) >= 2, 30_000, 'the sink backlog ageing');
      expect((await gauge(m.consumerPending, sinkDecisions))!).toBeGreaterThan(0);
      expect((await m.batchFailures.get()).values.some((v) => v.labels.role === 'sink' && v.labels.code === 'TF_STORE_FAILED')).toBe(true);
      expect(await gauge(m.sinkLastStored, decisions)).toBe(beat1);
      expect(await decisionsStored()).toBe(3);
    } finally {
      await p.app.ctx.engine!.exec('ALTER TABLE decisions DROP CONSTRAINT tapflow_test_refuse');
    }

    // The store is back: the redelivered batch is stored and the heartbeat moves on.
    await p.until(async () => (await decisionsStored()) === 5, 60_000, 'the held decisions stored');
    expect((await gauge(m.sinkLastStored, decisions))!).toBeGreaterThan(beat1);
    await p.until(async () => (await gauge(m.consumerPending, { role: 'sink', stream: 'DECISIONS', partition: 'all' })) === 0, 30_000, 'the sink backlog drained');
  }, 150_000);

  it('the store gauges come from the pipeline rows, computed by the active sink and served on /metrics', async () => {
    const m = p.app.ctx.metrics;
    // The gate's taps of the first test are in terminal_last_seen: it is seen, and not silent.
    await p.until(async () => ((await gauge(m.terminalsSeen, { region: 'BJ', scene: 'RAIL' })) ?? 0) >= 1, 30_000, 'terminals seen computed');
    expect(await gauge(m.terminalsSilent, { region: 'BJ', scene: 'RAIL' })).toBe(0);
    expect(await gauge(m.ledgerImbalance)).toBe(0);
    expect(await gauge(m.venuesAcceptanceDrop)).toBe(0);
    const checked = (await gauge(m.storeChecked))!;
    expect(Math.abs(checked - Date.now() / 1000)).toBeLessThan(30);

    const body = await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text();
    expect(body).toMatch(/^tapflow_terminals_seen\{region="BJ",scene="RAIL"\} \d+$/m);
    expect(body).toMatch(/^tapflow_ledger_imbalance_fen 0$/m);
    expect(body).toMatch(/^tapflow_sink_last_stored_timestamp_seconds\{table="decisions"\} \d+(\.\d+)?$/m);
    expect(body).toMatch(/^tapflow_consumer_oldest_pending_age_seconds\{role="validator",stream="TAPS",partition="0"\} /m);
    // One series per consumer of the process's roles: 4 partitions x (TAPS, CLAIMS) for validators
    // and (DECISIONS, CLAIMS) for settlers, 3 for the sink, 2 for risk-windows (DECISIONS, CLAIMS).
    expect(body.match(/^tapflow_consumer_pending\{/gm)).toHaveLength(4 * 2 * 2 + 3 + 2);
  }, 60_000);
});
