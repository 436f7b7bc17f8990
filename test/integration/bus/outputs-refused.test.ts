/**
 * A validator whose outputs are refused by JetStream while it is still deciding the rest of its
 * batch — what a cluster node going down does to PubAcks — fails that batch and retries it; it
 * does not die of an unhandled rejection (found by the fault suite's cluster scenario: a settler
 * process ended with TF_BUS_UNAVAILABLE thrown from a PubAck reply). The whole pipeline in
 * process, one partition so that one batch holds a lone tap's bundle and then a bundle of
 * hundreds: the lone bundle's decisions are published first, and their refusal (no stream takes
 * the subject: JetStream answers 503 at once) comes back while the long bundle is decided and the
 * loop gives the event loop its turns (without `awaitedLater` this case records 6 unhandled
 * rejections). Then the stream takes its subjects again: every tap is decided and stored exactly
 * once. The settler's case (its settlements refused) proves the same retry and exactly-once
 * settlement; its batches here seldom hold a published bundle and a long one together, so it
 * does not reproduce the race itself — its outputs are marked the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { tap, uploadBatch } from '../ingest/grpc-taps.js';
import { tjBusTap } from './tj-bus-tap.js';

let p: TestPipeline;
const GATE = 'BJ-RAIL-0931';
const N = 1200;

beforeAll(async () => {
  p = await startTestPipeline({ TAPFLOW_PARTITIONS: '1' });
  await p.until(async () => (await p.app.ctx.metrics.partitionsOwned.get()).values.some((v) => v.labels.role === 'validator' && v.value === 1), 30_000, 'the validator partition');
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

const failures = async (role: string) => (await p.app.ctx.metrics.batchFailures.get()).values.filter((v) => v.labels.role === role).reduce((n, v) => n + v.value, 0);

/** Runs `send` while `stream` takes none of its subjects, until `role` has failed a batch twice; then gives them back. */
async function whileRefused(stream: string, role: string, send: () => Promise<void>): Promise<unknown[]> {
  const jsm = p.app.ctx.bus.jsm;
  const cfg = (await jsm.streams.info(stream)).config;
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  const before = await failures(role);
  try {
    await jsm.streams.update(stream, { ...cfg, subjects: [`tapflow.${stream.toLowerCase()}-outage.>`] });
    await send();
    await p.until(async () => (await failures(role)) >= before + 2, 30_000, `the ${role} batch failed and was retried`);
  } finally {
    await jsm.streams.update(stream, cfg);
    process.off('unhandledRejection', onRejection);
  }
  return rejections;
}

describe('outputs refused mid-batch', () => {
  it('the validator: the batch fails and is retried; the process lives; every tap is stored once after the stream is back', async () => {
    const rejections = await whileRefused('DECISIONS', 'validator', async () => {
      const taps = Array.from({ length: N }, (_, i) => ({ ...tap(GATE, i + 1), deviceTime: Date.now() - 60_000 + i }));
      const r = await uploadBatch(p.client, p.metadata(GATE), { terminalId: GATE, taps });
      expect(r.ok && r.value.acks.filter((a) => a.status === TapStatus.ACCEPTED_DURABLE).length).toBe(N);
    });
    expect(rejections).toEqual([]);
    await p.until(async () => Number((await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${GATE}'`))[0]!.n) >= N, 60_000, 'every tap stored');
    const [row] = await p.query<{ n: number; d: number }>(`SELECT count() AS n, uniqExact(event_id) AS d FROM decisions WHERE terminal_id = '${GATE}'`);
    expect([Number(row!.n), Number(row!.d)]).toEqual([N, N]);
  }, 120_000);

  it('the settler: the same, and every fare is settled once', async () => {
    const BUS = 'TJ-BUS-0033';
    const rejections = await whileRefused('SETTLEMENTS', 'settler', async () => {
      // A card each: flat 1.80 yuan fares, each settled at once.
      const taps = Array.from({ length: N }, (_, i) => tjBusTap(p, BUS, `12${String(93_000_000 + i).padStart(10, '0')}`, 1));
      const r = await uploadBatch(p.client, p.metadata(BUS), { terminalId: BUS, taps: taps.map((t, i) => ({ ...t, seq: i + 1 })) });
      expect(r.ok && r.value.acks.filter((a) => a.status === TapStatus.ACCEPTED_DURABLE).length).toBe(N);
    });
    expect(rejections).toEqual([]);
    await p.until(async () => Number((await p.query<{ n: number }>(`SELECT count() AS n FROM settlements WHERE startsWith(event_id, '${BUS}:')`))[0]!.n) >= N, 60_000, 'every fare stored');
    const [row] = await p.query<{ n: number; d: number; fen: number }>(`SELECT count() AS n, uniqExact(settlement_id) AS d, sum(amount_fen) AS fen FROM settlements WHERE startsWith(event_id, '${BUS}:')`);
    expect([Number(row!.n), Number(row!.d), Number(row!.fen)]).toEqual([N, N, N * 180]);
  }, 120_000);
});
