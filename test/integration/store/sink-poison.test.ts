/**
 * The sink with a bundle one part of which cannot be stored (a settlement whose business day is
 * not a date fails half-way through its row): that part is dead-lettered alone, the rows it had
 * half-written are taken back, and the rest of the bundle — and of the stream — is stored once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSettlementBundle } from '../../../src/bus/codec.js';
import { subjects } from '../../../src/bus/subjects.js';
import { DeadLetter } from '../../../src/gen/tapflow/v1/bus.js';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { fare } from './fixtures.js';

let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline();
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

describe('sink - a part that cannot be stored', () => {
  it('is dead-lettered alone; the good parts before and after it are stored whole, once', async () => {
    const good1 = fare('sink-poison:1', 300);
    const bad = fare('sink-poison:2', 400, { businessDay: 'not-a-day' });
    const good2 = fare('sink-poison:3', 500, { cardRegion: 'TJ' });
    await p.app.ctx.bus.js.publish(subjects.settlement(0), encodeSettlementBundle([good1, bad, good2], []), { msgID: 'sink-poison-bundle' });
    await p.app.ctx.bus.js.publish(subjects.settlement(0), encodeSettlementBundle([fare('sink-poison:4', 600)], []), { msgID: 'sink-poison-after' });

    await p.until(async () => (await p.query<{ n: number }>("SELECT count() AS n FROM settlements WHERE event_id = 'sink-poison:4'"))[0]!.n === 1, 30_000, 'the next bundle stored');
    const settled = await p.query<{ event_id: string; amount_fen: number }>("SELECT event_id, amount_fen FROM settlements WHERE event_id LIKE 'sink-poison:%' ORDER BY event_id");
    expect(settled.map((r) => [r.event_id, Number(r.amount_fen)])).toEqual([
      ['sink-poison:1', 300],
      ['sink-poison:3', 500],
      ['sink-poison:4', 600],
    ]);
    // Ledger rows of the good ones only (2 + 4 + 2), balanced; none of the bad one's.
    const ledger = await p.query<{ event_id: string; n: number; d: number; c: number }>(
      "SELECT event_id, count() AS n, sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger WHERE event_id LIKE 'sink-poison:%' GROUP BY event_id ORDER BY event_id",
    );
    expect(ledger.map((r) => [r.event_id, Number(r.n), Number(r.d) === Number(r.c)])).toEqual([
      ['sink-poison:1', 2, true],
      ['sink-poison:3', 4, true],
      ['sink-poison:4', 2, true],
    ]);

    const info = await p.app.ctx.bus.jsm.streams.info('DLQ');
    expect(info.state.messages).toBe(1);
    const m = (await p.app.ctx.bus.jsm.streams.getMessage('DLQ', { seq: info.state.last_seq }))!;
    const d = DeadLetter.decode(m.data);
    expect([m.subject, d.role, d.consumer, d.errorCode, d.part]).toEqual(['tapflow.dlq.sink', 'sink', 'sink-settlements', 'TF_EVENT_INVALID', 'settlement-1']);
    expect(d.error).toMatch(/businessDay/);
  });
});
