/**
 * Replaying dead letters (src/bus/replay.ts) and reading bus payloads (src/bus/payload-view.ts),
 * pure: what a replay publishes — subject, payload (a part re-wrapped as a bundle of one),
 * headers, Nats-Msg-Id — which dead letters are refused and why, how consumers recognise a
 * replay, and how a payload is shown.
 */
import { headers as natsHeaders } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { encodeDecision, encodeDecisionBundle, encodeRiskFlag, encodeTapBundle, splitDecisionBundle, splitSettlementBundle, splitTapBundle } from '../../../src/bus/codec.js';
import { viewPayload } from '../../../src/bus/payload-view.js';
import { DeadLetterError, ReplayHeaders, derivedOutputHeaders, isReplayDerived, planReplay, replayedFor, replayedWholeOriginals, streamOfSubject } from '../../../src/bus/replay.js';
import { BusTap, DeadLetter } from '../../../src/gen/tapflow/v1/bus.js';
import type { Decision, RiskFlag } from '../../../src/domain/types.js';

const decision: Decision = {
  eventId: 'TJ-BUS-0001:1',
  terminalId: 'TJ-BUS-0001',
  seq: 1,
  terminalRegion: 'TJ',
  operatorId: 'tj-bus',
  deviceTime: Date.UTC(2026, 2, 10),
  ingestTime: Date.UTC(2026, 2, 10),
  decisionTime: Date.UTC(2026, 2, 10),
  scene: 'BUS',
  venueId: 'tj-bus:1:0',
  direction: 'SINGLE',
  cardToken: 'a'.repeat(32),
  cardRegion: 'TJ',
  form: 'CHIP',
  amountFen: 0,
  riderCategory: 'ADULT',
  offline: false,
  partition: 2,
  verdict: 'ACCEPTED',
  reason: 'OK',
  trace: [],
  riskRules: [],
};
const flag: RiskFlag = { flagId: 'f1', eventId: 'e1', ruleId: 'builtin:X', ruleVersion: '1', severity: 'WARNING', keyKind: 'terminal', key: 'T', detail: '', deviceTime: 1, flagTime: 1, region: 'BJ' };

function letter(over: Partial<DeadLetter> = {}): DeadLetter {
  return DeadLetter.fromPartial({
    role: 'sink',
    subject: 'tapflow.decisions.2',
    streamSeq: 57,
    errorCode: 'TF_RETRIES_EXHAUSTED',
    error: 'TF_STORE_FAILED in each of 20 deliveries',
    data: Buffer.from(encodeTapBundle([])),
    time: 1,
    stream: 'DECISIONS',
    consumer: 'sink-decisions',
    deliveryCount: 20,
    headers: [
      { name: 'Nats-Msg-Id', value: 'v:12' },
      { name: 'Tapflow-Origin', value: 'a' },
      { name: 'Tapflow-Origin', value: 'b' },
    ],
    ...over,
  });
}

const refusal = (dl: DeadLetter) => {
  try {
    planReplay(9, dl);
  } catch (err) {
    expect(err).toBeInstanceOf(DeadLetterError);
    return (err as DeadLetterError).message;
  }
  throw new Error('not refused');
};

describe('replay - what is published', () => {
  it('a whole message: as it was, to its subject, for its consumer, with its headers but JetStream’s own', () => {
    const data = Buffer.from(encodeDecisionBundle([decision], [flag]));
    const r = planReplay(9, letter({ data }));
    expect(r.subject).toBe('tapflow.decisions.2');
    expect(r.stream).toBe('DECISIONS');
    expect(Buffer.from(r.data)).toEqual(data);
    expect(r.msgId).toBe('replay:sink:DECISIONS:57');
    expect(r.consumer).toBe('sink-decisions');
    expect(r.part).toBeUndefined();
    expect(r.headers).toEqual([
      { name: 'Tapflow-Origin', value: 'a' },
      { name: 'Tapflow-Origin', value: 'b' },
      { name: ReplayHeaders.For, value: 'sink-decisions' },
      { name: ReplayHeaders.Of, value: 'DECISIONS:57' },
    ]);
  });

  it('a replay dead-lettered again: the chain of originals is kept, the consumer and id are the new ones', () => {
    const r = planReplay(
      9,
      letter({
        streamSeq: 90,
        headers: [
          { name: 'Nats-Msg-Id', value: 'replay:sink:DECISIONS:57' },
          { name: ReplayHeaders.For, value: 'sink-decisions' },
          { name: ReplayHeaders.Of, value: 'DECISIONS:57' },
        ],
      }),
    );
    expect(r.msgId).toBe('replay:sink:DECISIONS:90');
    expect(r.headers).toEqual([
      { name: ReplayHeaders.For, value: 'sink-decisions' },
      { name: ReplayHeaders.Of, value: 'DECISIONS:57' },
      { name: ReplayHeaders.Of, value: 'DECISIONS:90' },
    ]);
  });

  it('a part: re-wrapped as a bundle of one, in the field its kind has', () => {
    const tap = BusTap.encode(BusTap.fromPartial({ eventId: 'T:1', seq: 1 })).finish();
    const t = planReplay(9, letter({ role: 'validator', subject: 'tapflow.taps.1', stream: 'TAPS', consumer: 'validator-p1', part: 'tap-3', data: Buffer.from(tap) }));
    expect(splitTapBundle(t.data).map((p) => Buffer.from(p))).toEqual([Buffer.from(tap)]);
    expect([t.part, t.msgId]).toEqual(['tap-3', 'replay:validator:TAPS:57:tap-3']);
    expect(t.headers.at(-1)).toEqual({ name: ReplayHeaders.Of, value: 'TAPS:57:tap-3' });

    const d = planReplay(9, letter({ role: 'settler', consumer: 'settler-p2', part: 'decision-0', data: Buffer.from(encodeDecision(decision)) }));
    expect(splitDecisionBundle(d.data).decisions.map((p) => Buffer.from(p))).toEqual([Buffer.from(encodeDecision(decision))]);

    const f = planReplay(9, letter({ subject: 'tapflow.settlements.0', stream: 'SETTLEMENTS', consumer: 'sink-settlements', part: 'flag-1', data: Buffer.from(encodeRiskFlag(flag)) }));
    expect(splitSettlementBundle(f.data)).toEqual({ settlements: [], flags: [expect.anything()] });

    // A flag of the RISK stream is a message of its own.
    const alone = Buffer.from(encodeRiskFlag(flag));
    expect(Buffer.from(planReplay(9, letter({ subject: 'tapflow.risk.0', stream: 'RISK', consumer: 'sink-risk', part: 'flag-0', data: alone })).data)).toEqual(alone);
  });
});

describe('replay - refused, naming why', () => {
  it.each([
    [{ subject: '' }, 'the original subject is missing'],
    [{ subject: 'other.thing' }, 'belongs to no stream of tapflow'],
    [{ subject: 'tapflow.state.validator.1', stream: 'STATE' }, 'is in stream STATE, which is not processed by a consumer'],
    [{ subject: 'tapflow.dlq.sink', stream: 'DLQ' }, 'is in stream DLQ'],
    [{ stream: 'TAPS' }, 'the dead letter says stream TAPS, but its subject tapflow.decisions.2 belongs to stream DECISIONS'],
    [{ consumer: '' }, 'a replay would be processed by no one'],
    [{ streamSeq: 0 }, 'the original stream sequence is missing'],
    [{ part: 'journey-1' }, 'part "journey-1" of a message of stream DECISIONS'],
    [{ subject: 'tapflow.claims.2', stream: 'CLAIMS', consumer: 'validator-claims-p2', errorCode: 'TF_EVENT_INVALID' }, 'a medical claim (tapflow.claims.2): its terminal was answered REJECTED with TF_EVENT_INVALID'],
    [{ subject: 'tapflow.claimdecisions.1', stream: 'CLAIMS', consumer: 'settler-claims-p1' }, 'never by a replay'],
  ] as [Partial<DeadLetter>, string][])('%j: %s', (over, says) => {
    const message = refusal(letter(over));
    expect(message).toContain('dead letter 9: ');
    expect(message).toContain(says);
  });
});

describe('replay - recognised by consumers', () => {
  const msg = (pairs: [string, string][]) => {
    const h = natsHeaders();
    for (const [k, v] of pairs) h.append(k, v);
    return { headers: h };
  };

  it('names the consumer it is for; a message that is no replay names none', () => {
    expect(replayedFor(msg([[ReplayHeaders.For, 'sink-decisions']]))).toBe('sink-decisions');
    expect(replayedFor(msg([['Tapflow-Origin', 'x']]))).toBeUndefined();
    expect(replayedFor({})).toBeUndefined();
  });

  it('a whole message stands for its originals in the stream; a part, or another stream, for none', () => {
    expect(replayedWholeOriginals(msg([[ReplayHeaders.Of, 'SETTLEMENTS:57'], [ReplayHeaders.Of, 'SETTLEMENTS:90']]), 'SETTLEMENTS')).toEqual([57, 90]);
    expect(replayedWholeOriginals(msg([[ReplayHeaders.Of, 'SETTLEMENTS:57:settlement-1']]), 'SETTLEMENTS')).toEqual([]);
    expect(replayedWholeOriginals(msg([[ReplayHeaders.Of, 'SETTLEMENTS:57'], [ReplayHeaders.Of, 'SETTLEMENTS:90:flag-0']]), 'SETTLEMENTS')).toEqual([]);
    expect(replayedWholeOriginals(msg([[ReplayHeaders.Of, 'DECISIONS:57']]), 'SETTLEMENTS')).toEqual([]);
    expect(replayedWholeOriginals(msg([]), 'SETTLEMENTS')).toEqual([]);
  });

  it('a replay, or a message made from one, is derived; its outputs say from what, other outputs carry no header', () => {
    const replay = { ...msg([[ReplayHeaders.For, 'validator-p1'], [ReplayHeaders.Of, 'TAPS:57']]), seq: 90 };
    const made = { ...msg([[ReplayHeaders.Derived, 'TAPS:90']]), seq: 12 };
    const plain = { ...msg([['Tapflow-Origin', 'x']]), seq: 13 };
    expect([replay, made, plain, { seq: 1, headers: undefined }].map((m) => isReplayDerived(m))).toEqual([true, true, false, false]);
    expect(derivedOutputHeaders(replay, 'TAPS')).toEqual({ 'Tapflow-Replay-Derived': 'TAPS:90' });
    expect(derivedOutputHeaders(made, 'DECISIONS')).toEqual({ 'Tapflow-Replay-Derived': 'DECISIONS:12' });
    expect(derivedOutputHeaders(plain, 'DECISIONS')).toBeUndefined();
  });

  it('subjects belong to their streams', () => {
    expect(['tapflow.taps.0', 'tapflow.claimdecisions.3', 'tapflow.claims.3', 'tapflow.dlq.sink', 'tapflow.taps', 'x'].map(streamOfSubject)).toEqual(['TAPS', 'CLAIMS', 'CLAIMS', 'DLQ', undefined, undefined]);
  });
});

describe('payload view', () => {
  it('a bundle: each event with its fields, and the codec’s complaint where it would refuse one', () => {
    const good = BusTap.encode(BusTap.fromPartial({ eventId: 'T:1', terminalId: 'T', seq: 1, terminalRegion: 1, deviceTime: Date.UTC(2026, 2, 10), ingestTime: Date.UTC(2026, 2, 10), scene: 1, venueId: 'v', direction: 1, cardToken: 'c', cardRegion: 1, form: 1, amountFen: 5 })).finish();
    const bad = BusTap.encode(BusTap.fromPartial({ eventId: 'T:2', seq: 2, deviceTime: Date.UTC(2026, 2, 10), amountFen: -5 })).finish();
    const v = viewPayload('tapflow.taps.1', '', encodeTapBundle([good, bad]));
    expect(v.type).toBe('TapBundle');
    expect(v.error).toBeUndefined();
    const [a, b] = v.parts!.taps!;
    expect(a).toEqual({ fields: expect.objectContaining({ eventId: 'T:1', scene: 'RAIL', amountFen: 5 }) });
    expect(b!.fields).toMatchObject({ eventId: 'T:2', amountFen: -5 });
    expect(b!.error).toMatch(/^amount_fen: -5 is not an integer/);
  });

  it('a part alone, by its kind', () => {
    const v = viewPayload('tapflow.decisions.2', 'decision-4', encodeDecision(decision));
    expect(v.type).toBe('Decision');
    expect(v.event).toEqual({ fields: expect.objectContaining({ eventId: 'TJ-BUS-0001:1', verdict: 'VERDICT_ACCEPTED' }) });
  });

  it('bytes that are not the type: raw, with the reason', () => {
    const v = viewPayload('tapflow.taps.1', '', Buffer.from([0x08, 0x01]));
    expect(v).toEqual({ type: 'TapBundle', size: 2, error: expect.stringContaining('field 1 with wire type 0'), base64: 'CAE=' });
    expect(viewPayload('elsewhere', '', Buffer.from([1, 2]))).toEqual({ size: 2, error: 'no known message type for subject elsewhere', base64: 'AQI=' });
  });
});
