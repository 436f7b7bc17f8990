/**
 * Dead letters listed, shown and replayed with `tapflow dlq …` (the CLI as a child process, as an
 * operator runs it) against a running pipeline: a real nats-server, every role, the embedded
 * ClickHouse engine.
 *
 * The scenario, a store outage that outlasts the retry bound: ClickHouse refuses every insert
 * into two tables, `decisions` and `ledger`, for longer than TAPFLOW_MAX_DELIVER deliveries (2
 * here; about 7 minutes by default). A CHECK constraint that rejects every row does it here, as
 * a faulty migration applied by hand would; a full disk or a table switched to read-only does
 * the same in production. A Tianjin bus tap sent meanwhile is decided and settled, but the sink
 * dead-letters both its bundles as TF_RETRIES_EXHAUSTED: the decision bundle with nothing
 * stored, and the settlement bundle after its first attempt stored the settlement row and then
 * failed on the ledger. Beside them sits a message no fix will make readable: bytes that are no
 * tap bundle, put on the bus as a corrupt or forged message would be (TF_DECODE_FAILED).
 *
 * The operator lists the dead letters, looks at them, drops the constraints (the fix) and
 * replays the TF_RETRIES_EXHAUSTED ones: the decision, the settlement and its two ledger entries
 * are each stored exactly once (the settlement is not stored a second time). Replaying again
 * changes nothing: the replayed dead letters are gone from the DLQ and the command says so; and
 * a copy of a dead letter put back — what a replay interrupted between publishing and removing
 * leaves — is dropped by JetStream's duplicate window when replayed, and removed.
 */
import { spawn } from 'node:child_process';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, testPipelineSettings, type TestPipeline } from '../../support/pipeline.js';
import { ROOT, runCli, type CliResult } from '../cli/run-cli.js';
import { DeadLetter } from '../../../src/gen/tapflow/v1/bus.js';
import { TapStatus, type Tap } from '../../../src/gen/tapflow/v1/ingest.js';
import { sendTap, tjBusTap } from './tj-bus-tap.js';

let p: TestPipeline;

beforeAll(async () => {
  // Two deliveries before a transient failure dead-letters a message.
  p = await startTestPipeline({ TAPFLOW_MAX_DELIVER: '2' });
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

/** `tapflow dlq <args>` against the test pipeline's NATS. */
const dlq = (...args: string[]): Promise<CliResult> => runCli(['dlq', ...args], testPipelineSettings(p.nats.url, p.dataDir));

const BUS = 'TJ-BUS-0031';
const EVENT = `${BUS}:1`;
const count = async (sql: string) => Number((await p.query<{ n: number | string }>(sql))[0]!.n);

const busTap = () => tjBusTap(p, BUS, '120000000931');
const send = (tap: Tap) => sendTap(p, tap);

/** The DLQ as the stream holds it, decoded (read directly, to wait on it). */
async function dlqMessages(): Promise<{ seq: number; letter: DeadLetter }[]> {
  const info = await p.app.ctx.bus.jsm.streams.info('DLQ');
  const out: { seq: number; letter: DeadLetter }[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await p.app.ctx.bus.jsm.streams.getMessage('DLQ', { seq });
    if (m) out.push({ seq, letter: DeadLetter.decode(m.data) });
  }
  return out;
}

/** The sink's consumers have nothing pending: what was replayed has been stored (or skipped). */
async function sinkDrained(): Promise<boolean> {
  for (const [stream, consumer] of [['DECISIONS', 'sink-decisions'], ['SETTLEMENTS', 'sink-settlements']] as const) {
    const c = await p.app.ctx.bus.jsm.consumers.info(stream, consumer);
    if (c.num_pending > 0 || c.num_ack_pending > 0) return false;
  }
  return true;
}

const stored = async () => ({
  decisions: await count(`SELECT count() AS n FROM decisions WHERE event_id = '${EVENT}'`),
  settlements: await count(`SELECT count() AS n FROM settlements WHERE event_id = '${EVENT}'`),
  ledger: await count(`SELECT count() AS n FROM ledger WHERE event_id = '${EVENT}'`),
});

interface ListRow {
  dlqSeq: number;
  role: string;
  consumer: string;
  code: string;
  reason: string;
  sourceStream: string;
  sourceSeq: number;
  subject: string;
  part: string;
  size: number;
}

let poisonSeq: number;
let decisionSeq: number;
let settlementSeq: number;
let settlementCopy: Uint8Array;

describe('dlq cli - dead letters from a running pipeline', () => {
  it('an undecodable bus message and a store outage beyond the retry bound leave three dead letters', async () => {
    const h = natsHeaders();
    h.set('Tapflow-Origin', 'dlq-cli-test');
    await p.app.ctx.bus.js.publish('tapflow.taps.1', Buffer.from([0x08, 0x01]), { headers: h, msgID: 'dlq-cli-poison' });
    await p.until(async () => (await dlqMessages()).some((d) => d.letter.errorCode === 'TF_DECODE_FAILED'), 30_000, 'the poison dead-lettered');

    for (const table of ['decisions', 'ledger']) await p.app.ctx.engine!.exec(`ALTER TABLE ${table} ADD CONSTRAINT store_outage CHECK 0`);
    expect((await send(busTap())).map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
    await p.until(async () => (await dlqMessages()).filter((d) => d.letter.errorCode === 'TF_RETRIES_EXHAUSTED').length === 2, 60_000, 'both bundles dead-lettered');
    // The settlement row went in before the ledger insert failed; the rest did not.
    expect(await stored()).toEqual({ decisions: 0, settlements: 1, ledger: 0 });
  });

  it('tapflow dlq list: every dead letter, and those a filter asks for', async () => {
    const all = await dlq('list', '--json');
    expect(all.code, all.stderr).toBe(0);
    const rows = JSON.parse(all.stdout) as ListRow[];
    expect(rows.map((r) => [r.role, r.consumer, r.code, r.sourceStream, r.subject.replace(/\d+$/, 'P'), r.part])).toEqual([
      ['validator', 'validator-p1', 'TF_DECODE_FAILED', 'TAPS', 'tapflow.taps.P', ''],
      ...(rows[1]!.sourceStream === 'DECISIONS'
        ? [
            ['sink', 'sink-decisions', 'TF_RETRIES_EXHAUSTED', 'DECISIONS', 'tapflow.decisions.P', ''],
            ['sink', 'sink-settlements', 'TF_RETRIES_EXHAUSTED', 'SETTLEMENTS', 'tapflow.settlements.P', ''],
          ]
        : [
            ['sink', 'sink-settlements', 'TF_RETRIES_EXHAUSTED', 'SETTLEMENTS', 'tapflow.settlements.P', ''],
            ['sink', 'sink-decisions', 'TF_RETRIES_EXHAUSTED', 'DECISIONS', 'tapflow.decisions.P', ''],
          ]),
    ]);
    expect(rows[0]!.size).toBe(2);
    expect(rows[0]!.reason).toMatch(/^bundle: field 1 with wire type 0/);
    for (const r of rows.slice(1)) expect(r.reason).toMatch(/^TF_STORE_FAILED in each of 2 deliveries; last: .*store_outage/);
    poisonSeq = rows[0]!.dlqSeq;
    decisionSeq = rows.find((r) => r.sourceStream === 'DECISIONS')!.dlqSeq;
    settlementSeq = rows.find((r) => r.sourceStream === 'SETTLEMENTS')!.dlqSeq;

    const sink = await dlq('list', '--code', 'TF_RETRIES_EXHAUSTED', '--role', 'sink');
    expect(sink.code, sink.stderr).toBe(0);
    const lines = sink.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('2 dead letter(s) match, oldest first');
    expect(lines[1]).toMatch(/^ {2}seq +dead-lettered +role +code +source +subject +part +bytes +reason$/);
    expect(lines.slice(2).map((l) => l.trim().split(/ +/).slice(0, 5))).toEqual(
      [decisionSeq, settlementSeq].sort((a, b) => a - b).map((seq) => [String(seq), expect.stringMatching(/^\d{4}-\d\d-\d\dT.*\+08:00$/), 'sink', 'TF_RETRIES_EXHAUSTED', seq === decisionSeq ? 'DECISIONS' : 'SETTLEMENTS']),
    );

    const none = await dlq('list', '--since', String(Date.now() + 3_600_000));
    expect([none.code, none.stdout]).toEqual([0, 'no dead letters match\n']);
  });

  it('tapflow dlq list into a reader that goes away ends quietly', async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'dlq', 'list'], {
        cwd: ROOT,
        env: { ...process.env, TAPFLOW_LOG_LEVEL: 'silent', ...testPipelineSettings(p.nats.url, p.dataDir) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.destroy();
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r).toEqual({ code: 0, stderr: '' });
  });

  it('tapflow dlq show: the dead letter whole, its payload decoded, or raw where it cannot be', async () => {
    const s = await dlq('show', String(settlementSeq), '--json');
    expect(s.code, s.stderr).toBe(0);
    const j = JSON.parse(s.stdout) as {
      deadLetter: { role: string; code: string; stream: string; streamSeq: number; subject: string; headers: { name: string; value: string }[]; deliveryCount: number };
      payload: { type: string; parts: { settlements: { fields: Record<string, unknown>; error?: string }[] } };
      replay: { subject: string; consumer: string; msgId: string; headers: { name: string; value: string }[] };
    };
    expect(j.deadLetter).toMatchObject({ role: 'sink', code: 'TF_RETRIES_EXHAUSTED', stream: 'SETTLEMENTS', deliveryCount: 2 });
    expect(j.deadLetter.headers.map((h) => h.name)).toContain('Nats-Msg-Id');
    expect(j.payload.type).toBe('SettlementBundle');
    const [settlement] = j.payload.parts.settlements;
    expect(settlement!.error).toBeUndefined();
    expect(settlement!.fields).toMatchObject({ eventId: EVENT, kind: 'SETTLEMENT_KIND_FARE', amountFen: 180, network: 'tj-bus' });
    expect(j.replay).toMatchObject({ subject: j.deadLetter.subject, consumer: 'sink-settlements', msgId: `replay:sink:SETTLEMENTS:${j.deadLetter.streamSeq}` });
    expect(j.replay.headers).toContainEqual({ name: 'Tapflow-Replay-Of', value: `SETTLEMENTS:${j.deadLetter.streamSeq}` });

    const poison = await dlq('show', String(poisonSeq));
    expect(poison.code, poison.stderr).toBe(0);
    expect(poison.stdout).toContain(`dead letter ${poisonSeq} in stream DLQ (tapflow.dlq.validator)`);
    expect(poison.stdout).toMatch(/failure +TF_DECODE_FAILED/);
    // The original's headers, as it was published.
    const headers = /\n {2}headers +([\s\S]*?)\n {2}DLQ headers/.exec(poison.stdout)?.[1]?.split(/\n +/).sort();
    expect(headers).toEqual(['Nats-Msg-Id: dlq-cli-poison', 'Tapflow-Origin: dlq-cli-test']);
    expect(poison.stdout).toMatch(/payload +TapBundle, 2 bytes: cannot be read \(bundle: field 1 with wire type 0/);
    expect(poison.stdout).toMatch(/^ {4}000000 {2}08 01$/m);

    const unknown = await dlq('show', '9999');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^tapflow: dead letter 9999: no message with this sequence in stream DLQ \(it holds 3 message\(s\) between sequences \d+ and \d+/);
  });

  it('tapflow dlq replay after the fix: each row stored exactly once', async () => {
    const dry = await dlq('replay', '--all', '--code', 'TF_RETRIES_EXHAUSTED', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`would replay dead letter ${decisionSeq} -> tapflow\\.decisions\\.\\d+ for sink-decisions, Nats-Msg-Id replay:sink:DECISIONS:\\d+`));
    expect(dry.stdout).toContain('2 would be replayed');
    expect((await dlqMessages()).length).toBe(3);

    // Kept for the next test: the settlement's dead letter as the DLQ holds it.
    settlementCopy = (await p.app.ctx.bus.jsm.streams.getMessage('DLQ', { seq: settlementSeq }))!.data;
    // The fix.
    for (const table of ['decisions', 'ledger']) await p.app.ctx.engine!.exec(`ALTER TABLE ${table} DROP CONSTRAINT store_outage`);
    const r = await dlq('replay', '--all', '--code', 'TF_RETRIES_EXHAUSTED', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { replays: { dlqSeq: number; consumer: string; stream: string; duplicate: boolean; removed: boolean }[]; refused: unknown[] };
    expect(out.refused).toEqual([]);
    expect(out.replays.map((x) => [x.dlqSeq, x.consumer, x.stream, x.duplicate, x.removed]).sort()).toEqual(
      [
        [decisionSeq, 'sink-decisions', 'DECISIONS', false, true],
        [settlementSeq, 'sink-settlements', 'SETTLEMENTS', false, true],
      ].sort(),
    );

    await p.until(async () => (await stored()).ledger === 2 && (await stored()).decisions === 1 && (await sinkDrained()), 30_000, 'the replays stored');
    expect(await stored()).toEqual({ decisions: 1, settlements: 1, ledger: 2 });
    const [bal] = await p.query<{ d: number; c: number }>(`SELECT sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger WHERE event_id = '${EVENT}'`);
    expect([Number(bal!.d), Number(bal!.c)]).toEqual([180, 180]);

    // What is left is the message no fix makes readable.
    const left = JSON.parse((await dlq('list', '--json')).stdout) as ListRow[];
    expect(left.map((x) => [x.dlqSeq, x.code])).toEqual([[poisonSeq, 'TF_DECODE_FAILED']]);
  });

  it('a second replay changes nothing', async () => {
    const again = await dlq('replay', String(decisionSeq), String(settlementSeq));
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`tapflow: dead letter ${Math.min(decisionSeq, settlementSeq)}: no message with this sequence in stream DLQ`);
    const all = await dlq('replay', '--all', '--code', 'TF_RETRIES_EXHAUSTED');
    expect([all.code, all.stdout]).toEqual([0, 'no dead letters match: nothing to replay\n']);

    // A copy of the settlement's dead letter back in the DLQ, as a replay interrupted between
    // publishing and removing leaves it: its replay is dropped by the duplicate window.
    const ack = await p.app.ctx.bus.js.publish('tapflow.dlq.sink', settlementCopy, { msgID: 'dlq-cli-copy' });
    const r = await dlq('replay', String(ack.seq), '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { replays: { duplicate: boolean; removed: boolean }[] };
    expect(out.replays.map((x) => [x.duplicate, x.removed])).toEqual([[true, true]]);
    await p.until(sinkDrained, 30_000, 'the sink drained');
    expect(await stored()).toEqual({ decisions: 1, settlements: 1, ledger: 2 });
    expect((await dlqMessages()).map((d) => d.seq)).toEqual([poisonSeq]);
  });
});
