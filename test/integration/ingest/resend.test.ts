/**
 * A terminal's re-send of a tap that ingest no longer remembers (another ingest replica, a
 * restart, or past TAPFLOW_INGEST_SEQ_MEMORY: here the memory is off) travels in a later bundle
 * and is answered ACCEPTED_DURABLE; the validator of its card recognises the event as applied and
 * it is stored once (issue 10 item 7). The same seq with other content is counted once too — the
 * first tap — and the terminal is flagged (SEQ_REUSED, stage validator).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { codeOf, stream, tap, uploadBatch } from './grpc-taps.js';

let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline({ TAPFLOW_INGEST_SEQ_MEMORY: '0' });
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

const rowsOf = async (eventId: string) => Number((await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE event_id = '${eventId}'`))[0]!.n);

describe('ingest - re-sends in later bundles', () => {
  it('stores an acknowledged tap once when the terminal sends it again, live or in an upload', async () => {
    const gate = 'BJ-RAIL-0601';
    const t = tap(gate, 1);
    expect((await stream(p.client, p.metadata(gate), [t])).acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
    await p.until(async () => (await rowsOf(`${gate}:1`)) === 1, 30_000, 'the first copy stored');
    // The answer was lost; the terminal sends it again on a new stream, then in an offline upload.
    expect((await stream(p.client, p.metadata(gate), [t])).acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
    const up = await uploadBatch(p.client, p.metadata(gate), { terminalId: gate, taps: [t, tap(gate, 2)] });
    expect(codeOf(up)).toBe('OK');
    expect(up.ok && up.value.acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE', 'ACCEPTED_DURABLE']);
    await p.until(async () => (await rowsOf(`${gate}:2`)) === 1, 30_000, 'the batch stored');
    // Every consumer has passed the copies: they produced nothing.
    await p.until(async () => {
      for (const c of ['validator-p0', 'validator-p1', 'validator-p2', 'validator-p3']) {
        const i = await p.app.ctx.bus.jsm.consumers.info('TAPS', c);
        if (i.num_pending > 0 || i.num_ack_pending > 0) return false;
      }
      return true;
    }, 30_000, 'the validators drained');
    await new Promise((r) => setTimeout(r, 500));
    expect(await rowsOf(`${gate}:1`)).toBe(1);
    expect(await p.query(`SELECT event_id FROM risk_flags WHERE rule_id = 'builtin:SEQ_REUSED' AND key = '${gate}'`)).toEqual([]);
  });

  it('counts the first of two different taps under one seq, and flags the terminal', async () => {
    const gate = 'BJ-RAIL-0602';
    const first = tap(gate, 1);
    const other = { ...first, deviceTime: first.deviceTime + 5_000 };
    expect((await stream(p.client, p.metadata(gate), [first])).acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
    expect((await stream(p.client, p.metadata(gate), [other])).acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
    await p.until(async () => (await p.query(`SELECT event_id FROM risk_flags WHERE rule_id = 'builtin:SEQ_REUSED' AND key = '${gate}'`)).length === 1, 30_000, 'the SEQ_REUSED flag');
    expect(await rowsOf(`${gate}:1`)).toBe(1);
    const [row] = await p.query<{ t: number }>(`SELECT toUnixTimestamp64Milli(device_time) AS t FROM decisions WHERE event_id = '${gate}:1'`);
    expect(Number(row!.t)).toBe(first.deviceTime);
    const metrics = await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^tapflow_seq_reused_total\{stage="validator"\} 1$/m);
  });
});
