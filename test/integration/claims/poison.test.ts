/**
 * No poison message can wedge a partition (issue 8), through the whole pipeline: a poison tap
 * and a poison claim are put straight onto the bus (as a corrupt or forged message would be) in
 * front of good ones of the same partitions; the good ones are decided, settled and stored, and
 * the poison is in the dead-letter stream with its failure code, reason and original headers. A
 * poison claim's terminal is answered REJECTED (GetClaim never says PENDING forever).
 */
import { headers as natsHeaders } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { BusClaim, BusTap, ClaimDecision, DeadLetter } from '../../../src/gen/tapflow/v1/bus.js';
import { encodeTapBundle } from '../../../src/bus/codec.js';
import { ClaimStatus, TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { partitionOf, tokenize } from '../../../src/domain/card/token.js';
import { claimKey } from '../../../src/domain/claim-key.js';
import { stream, tap } from '../ingest/grpc-taps.js';
import { TJ_COUNTER, claim, getClaim, ok, settleClaim, signClaimsWith } from './grpc-claims.js';

let p: TestPipeline;

beforeAll(async () => {
  p = await startTestPipeline();
  signClaimsWith(p.dataDir);
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

const gate = 'BJ-RAIL-0901';

/** A card number (of the shape tap() uses for seq n) whose token falls in partition `part`. */
function cardSeqIn(part: number, from: number): number {
  for (let n = from; ; n++) {
    const number = `11${String(60_000_000 + n).padStart(10, '0')}`;
    if (partitionOf(tokenize(p.app.ctx.keys.tokenKey, 'card', number), p.cfg.TAPFLOW_PARTITIONS) === part) return n;
  }
}

function chipNumberIn(part: number, prefix: string): string {
  for (let n = 1; ; n++) {
    const number = `${prefix}${String(n).padStart(8, '0')}`;
    if (partitionOf(tokenize(p.app.ctx.keys.tokenKey, 'card', number), p.cfg.TAPFLOW_PARTITIONS) === part) return number;
  }
}

async function publishPoison(subject: string, data: Uint8Array, id: string): Promise<void> {
  const h = natsHeaders();
  h.set('Tapflow-Origin', 'poison-test');
  await p.app.ctx.bus.js.publish(subject, data, { headers: h, msgID: id });
}

async function deadLetters() {
  const info = await p.app.ctx.bus.jsm.streams.info('DLQ');
  const out: (ReturnType<typeof DeadLetter.decode> & { at: string })[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await p.app.ctx.bus.jsm.streams.getMessage('DLQ', { seq }).catch(() => undefined);
    if (m) out.push({ ...DeadLetter.decode(m.data), at: m.subject });
  }
  return out;
}

describe('poison - one bad message never stops its partition', () => {
  const P = 1;

  it('a poison tap in front of good taps: the good taps are decided and stored', async () => {
    const seqA = cardSeqIn(P, 1);
    const seqB = cardSeqIn(P, seqA + 1);
    // A bundle holding a BusTap whose purse debit is out of range (ingest never publishes one; a
    // corrupt or forged message would), and a bundle that is not a bundle at all.
    const poison = BusTap.encode({ ...BusTap.fromPartial({ eventId: 'POISON:1', terminalId: 'POISON', seq: 1, terminalRegion: 1, deviceTime: Date.now(), ingestTime: Date.now(), scene: 1, venueId: 'bj-subway:西直门', direction: 1, cardToken: 'x', cardRegion: 1, form: 1, partition: P }), amountFen: -5 }).finish();
    await publishPoison(`tapflow.taps.${P}`, encodeTapBundle([poison]), 'poison-tap-1');
    await publishPoison(`tapflow.taps.${P}`, Buffer.from([0x08, 0x01]), 'poison-bundle-1');
    const out = await stream(p.client, p.metadata(gate), [tap(gate, seqA), tap(gate, seqB)]);
    expect(out.acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE', 'ACCEPTED_DURABLE']);
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${gate}'`))[0]!.n === 2, 30_000, 'both taps stored');
  });

  it('a poison claim in front of a good claim, at the validator and at the settler: the good claim settles', async () => {
    const md = p.metadata(TJ_COUNTER);
    const person = '110105197003030033';
    const personToken = tokenize(p.app.ctx.keys.tokenKey, 'person', person);
    const Q = partitionOf(personToken, p.cfg.TAPFLOW_PARTITIONS);
    const cardNumber = chipNumberIn(2, '1100');
    // At the settler: a claim decision whose item is above the bound (the overflow of issue 8).
    const atSettler = ClaimDecision.fromPartial({
      claimId: 'POISON-S',
      claimKey: claimKey('POISON-S'),
      terminalId: TJ_COUNTER,
      institutionId: 'hospital:TJ:tmu-general-hospital',
      institutionLevel: 3,
      treatment: 1,
      personToken,
      cardToken: 'x',
      insuredRegion: 1,
      treatmentRegion: 2,
      deviceTime: Date.now(),
      ingestTime: Date.now(),
      items: [{ code: 'A', name: 'a', catalogueClass: 1, amountFen: 4_503_599_627_370_496 }],
      partition: Q,
      form: 1,
      cardRegion: 1,
      verdict: 1,
      reason: 'OK',
    });
    await publishPoison(`tapflow.claimdecisions.${Q}`, ClaimDecision.encode(atSettler).finish(), 'poison-claim-s');
    // At the validator: a claim with no plausible device time, in the good claim's card partition.
    const atValidator = BusClaim.fromPartial({ ...atSettler, claimId: 'POISON-V', claimKey: claimKey('POISON-V'), items: [{ code: 'A', name: 'a', catalogueClass: 1, amountFen: 100 }], deviceTime: 0, cardPartition: 2 });
    await publishPoison('tapflow.claims.2', BusClaim.encode(atValidator).finish(), 'poison-claim-v');

    const good = ok(await settleClaim(p.client, md, claim('GOOD-1', { idNumber: person, card: { $case: 'chip', value: { cardNumber, counter: 0, mac: Buffer.alloc(8) } } })));
    expect(ClaimStatus[good.status]).toBe('SETTLED');

    // The poison claims' terminal is answered: REJECTED with the failure code, not PENDING.
    for (const id of ['POISON-S', 'POISON-V']) {
      await p.until(async () => (await getClaim(p.client, md, id)).ok, 30_000, `${id} answered`);
      const r = ok(await getClaim(p.client, md, id));
      expect([ClaimStatus[r.status], r.reason.split(':')[0]]).toEqual(['REJECTED', 'TF_EVENT_INVALID']);
    }
  });

  it('puts each poison message in the dead-letter stream with its code, reason and original headers', async () => {
    await p.until(async () => (await deadLetters()).length >= 5, 30_000, 'five dead letters');
    const dlq = await deadLetters();
    const summary = dlq.map((d) => [d.at, d.role, d.consumer, d.errorCode, d.error.split(':')[0], d.part]).sort();
    expect(summary).toEqual(
      [
        // The poison claim decision reaches two consumers: the settler's and the risk windows' (claims feed the institution rules).
        ['tapflow.dlq.risk-windows', 'risk-windows', 'risk-windows-claims', 'TF_EVENT_INVALID', 'items[0].amount_fen', ''],
        ['tapflow.dlq.settler', 'settler', `settler-claims-p${partitionOf(tokenize(p.app.ctx.keys.tokenKey, 'person', '110105197003030033'), p.cfg.TAPFLOW_PARTITIONS)}`, 'TF_EVENT_INVALID', 'items[0].amount_fen', ''],
        ['tapflow.dlq.validator', 'validator', 'validator-claims-p2', 'TF_EVENT_INVALID', 'device_time', ''],
        // The bad tap alone, out of its bundle (whose other taps, had there been any, were decided).
        ['tapflow.dlq.validator', 'validator', `validator-p${P}`, 'TF_EVENT_INVALID', 'amount_fen', 'tap-0'],
        ['tapflow.dlq.validator', 'validator', `validator-p${P}`, 'TF_DECODE_FAILED', 'bundle', ''],
      ].sort(),
    );
    for (const d of dlq) {
      expect(d.headers, d.subject).toContainEqual({ name: 'Tapflow-Origin', value: 'poison-test' });
      expect(d.data.length).toBeGreaterThan(0);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^tapflow_dead_letters_total\{role="validator",code="TF_EVENT_INVALID"\} 2$/m);
    expect(metrics).toMatch(/^tapflow_dead_letters_total\{role="validator",code="TF_DECODE_FAILED"\} 1$/m);
    expect(metrics).toMatch(/^tapflow_dead_letters_total\{role="settler",code="TF_EVENT_INVALID"\} 1$/m);
    // Nothing left unacknowledged on the consumers of those partitions.
    for (const [stream, consumer] of [['TAPS', `validator-p${P}`], ['CLAIMS', 'validator-claims-p2']]) {
      await p.until(async () => {
        const c = await p.app.ctx.bus.jsm.consumers.info(stream!, consumer!);
        return c.num_pending === 0 && c.num_ack_pending === 0;
      }, 30_000, `${consumer} drained`);
    }
  });
});
