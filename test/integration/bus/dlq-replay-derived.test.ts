/**
 * A replayed validator or settler dead letter that failed AFTER its outputs were published is
 * not stored twice — the whole pipeline in process (real nats-server, every role, the embedded
 * ClickHouse engine), the CLI as an operator runs it.
 *
 * The fault: the partition owners' state changelog cannot be written (the STATE stream stops
 * taking their subjects, as a misapplied stream update would; a full or lost stream does the
 * same) for longer than TAPFLOW_MAX_DELIVER deliveries. A Tianjin bus tap sent meanwhile is
 * decided — the decision published, then the validator's state commit fails — and settled — the
 * settlement published, then the settler's commit fails. Both are retried and dead-lettered as
 * TF_RETRIES_EXHAUSTED; the sink has stored the decision, the settlement and its ledger once.
 *
 * After the fix the operator replays every dead letter. The validator and the settler, whose
 * states never recorded the tap, decide and settle it again and publish their outputs again, under
 * new Nats-Msg-Ids, long after the duplicate window would matter: those outputs carry
 * Tapflow-Replay-Derived, and the sink stores none of their rows whose key it holds. Rebuilding
 * the day from the archive (which holds both copies) gives the same single rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVE_STREAM } from '../../../src/bus/archive.js';
import { ReplayHeaders } from '../../../src/bus/replay.js';
import { consumerPlan } from '../../../src/bus/topology.js';
import { Streams } from '../../../src/bus/subjects.js';
import { DeadLetter } from '../../../src/gen/tapflow/v1/bus.js';
import { TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { rebuildRange } from '../../../src/sink/rebuild.js';
import { startTestPipeline, testPipelineSettings, type TestPipeline } from '../../support/pipeline.js';
import { runCli } from '../cli/run-cli.js';
import { sendTap, tjBusTap } from './tj-bus-tap.js';

let p: TestPipeline;
const BUS = 'TJ-BUS-0032';
const EVENT = `${BUS}:1`;
const DAY = 86_400_000;
const SHANGHAI = 8 * 3_600_000;

beforeAll(async () => {
  p = await startTestPipeline({ TAPFLOW_MAX_DELIVER: '2' });
  await p.until(async () => (await p.app.ctx.metrics.partitionsOwned.get()).values.some((v) => v.labels.role === 'settler' && v.value === p.cfg.TAPFLOW_PARTITIONS), 30_000, 'settler partitions');
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

const count = async (sql: string) => Number((await p.query<{ n: number | string }>(sql))[0]!.n);
const stored = async () => ({
  decisions: await count(`SELECT count() AS n FROM decisions WHERE event_id = '${EVENT}'`),
  settlements: await count(`SELECT count() AS n FROM settlements WHERE event_id = '${EVENT}'`),
  ledger: await count(`SELECT count() AS n FROM ledger WHERE event_id = '${EVENT}'`),
  fen: await count(`SELECT sum(amount_fen) AS n FROM settlements WHERE event_id = '${EVENT}'`),
});

async function deadLetters(): Promise<DeadLetter[]> {
  const info = await p.app.ctx.bus.jsm.streams.info('DLQ');
  const out: DeadLetter[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await p.app.ctx.bus.jsm.streams.getMessage('DLQ', { seq }).catch(() => null);
    if (m) out.push(DeadLetter.decode(m.data));
  }
  return out;
}

async function drained(): Promise<boolean> {
  for (const c of consumerPlan(p.cfg.TAPFLOW_PARTITIONS)) {
    const i = await p.app.ctx.bus.jsm.consumers.info(Streams[c.stream].name, c.name);
    if (i.num_pending > 0 || i.num_ack_pending > 0) return false;
  }
  return true;
}

/** The streams of the archived messages that carry Tapflow-Replay-Derived. */
async function derivedInArchive(): Promise<string[]> {
  const info = await p.app.ctx.bus.jsm.streams.info(ARCHIVE_STREAM);
  const out: string[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await p.app.ctx.bus.jsm.streams.getMessage(ARCHIVE_STREAM, { seq }).catch(() => null);
    const from = m?.header?.get(ReplayHeaders.Derived);
    if (from) out.push(m!.subject.split('.')[1]!);
  }
  return out.sort();
}

describe('a replayed dead letter whose outputs were published before it failed', () => {
  it('the state changelog refused beyond the retry bound: the validator and the settler dead-letter after publishing', async () => {
    const jsm = p.app.ctx.bus.jsm;
    const cfg = (await jsm.streams.info('STATE')).config;
    await jsm.streams.update('STATE', { ...cfg, subjects: ['tapflow.state-outage.>'] });
    try {
      expect((await sendTap(p, tjBusTap(p, BUS, '120000000932'))).map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
      await p.until(
        async () => {
          const roles = (await deadLetters()).filter((d) => d.errorCode === 'TF_RETRIES_EXHAUSTED').map((d) => d.consumer);
          return roles.some((c) => c.startsWith('validator-p')) && roles.some((c) => c.startsWith('settler-p'));
        },
        60_000,
        'the validator and the settler dead-lettered',
      );
    } finally {
      // The fix.
      await jsm.streams.update('STATE', { ...cfg, subjects: ['tapflow.state.>'] });
    }
    const letters = (await deadLetters()).filter((d) => d.errorCode === 'TF_RETRIES_EXHAUSTED');
    for (const d of letters) expect(d.error).toMatch(/in each of 2 deliveries/);
    expect(letters.map((d) => d.stream).sort()).toEqual(expect.arrayContaining(['DECISIONS', 'TAPS']));
    // The outputs went out before the commits failed: stored once, 1.80 yuan.
    await p.until(async () => (await stored()).ledger === 2, 30_000, 'the first outputs stored');
    expect(await stored()).toEqual({ decisions: 1, settlements: 1, ledger: 2, fen: 180 });
  }, 120_000);

  it('replayed after the fix: decided and settled again, published again, stored once', async () => {
    const r = await runCli(['dlq', 'replay', '--all', '--code', 'TF_RETRIES_EXHAUSTED', '--json'], testPipelineSettings(p.nats.url, p.dataDir));
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { replays: { consumer: string; removed: boolean }[]; refused: unknown[] };
    expect(out.refused).toEqual([]);
    expect(out.replays.map((x) => x.consumer.replace(/-p\d+$/, '-p'))).toEqual(expect.arrayContaining(['validator-p', 'settler-p']));
    await p.until(async () => (await drained()) && (await derivedInArchive()).includes('settlements'), 60_000, 'the replays processed');
    // The replays really were processed again and their outputs published again (new message
    // ids): a decision and a settlement bundle marked as derived from a replay.
    expect(await derivedInArchive()).toEqual(expect.arrayContaining(['decisions', 'settlements']));
    expect(await stored()).toEqual({ decisions: 1, settlements: 1, ledger: 2, fen: 180 });
    const balance = await p.query<{ d: number; c: number }>(`SELECT sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger WHERE event_id = '${EVENT}'`);
    expect(Number(balance[0]!.d)).toBe(Number(balance[0]!.c));
    expect((await deadLetters()).filter((d) => d.errorCode === 'TF_RETRIES_EXHAUSTED')).toEqual([]);
  }, 120_000);

  it('a rebuild of the day from the archive, which holds both copies, gives the same single rows', async () => {
    const fromMs = Math.floor((Date.now() - 10_000 + SHANGHAI) / DAY) * DAY - SHANGHAI;
    const r = await rebuildRange(p.app.ctx.bus, p.app.ctx.engine!, { tables: ['decisions', 'settlements', 'ledger'], fromMs, toMs: fromMs + DAY, dryRun: false });
    expect(r.applied).toBe(true);
    expect(await stored()).toEqual({ decisions: 1, settlements: 1, ledger: 2, fen: 180 });
  }, 120_000);
});
