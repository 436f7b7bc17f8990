/**
 * The bench's verdict check without tapflow: which presentation of a QR code is expected
 * accepted (the first that became durable at ingest), and how mismatches are counted by kind
 * with examples so that a run with any fails.
 */
import { describe, expect, it } from 'vitest';
import { TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { expectByDurableOrder, qrCodeOf, type UseEvidence } from '../../../bench/lib/durable-order.js';
import type { Expect, SimTap } from '../../../bench/lib/fleet.js';
import type { TapResult } from '../../../bench/lib/fleet-client.js';
import { Timeline } from '../../../bench/lib/recorder.js';
import { checkTaps, type StoredDecision } from '../../../bench/lib/verify.js';

function tap(seq: number, expectAs: Expect, qr?: string): SimTap {
  return {
    tap: {
      terminalId: 'BJ-RAIL-s0001-G1',
      seq,
      deviceTime: 1_000_000 + seq,
      card: qr ? { $case: 'qr', value: { payload: qr } } : { $case: 'chip', value: { cardNumber: '110000000001', counter: seq, mac: Buffer.alloc(8) } },
    } as SimTap['tap'],
    expect: expectAs,
    cardNumber: '110000000001',
    terminalRegion: 'BJ',
    phase: 'live',
  };
}

const durable = (ingestMs: number | undefined, answeredMs: number, attempts = 1): UseEvidence => ({ durable: true, ingestMs, answeredMs, attempts });

describe('bench durable order - the QR presentation that became durable first is the one accepted', () => {
  it('keeps the expectation when the first presentation sent became durable first', () => {
    const first = tap(1, 'ok', 'code-a');
    const replay = tap(2, 'qr-replay', 'code-a');
    const ev = new Map([[first, durable(100, 5)], [replay, durable(4000, 4005)]]);
    const { expectOf, report } = expectByDurableOrder([first, replay], (s) => ev.get(s));
    expect([expectOf(first), expectOf(replay)]).toEqual(['ok', 'qr-replay']);
    expect(report).toMatchObject({ codes_reused: 1, out_of_sending_order: 0, expectations_changed: 0 });
  });

  it('swaps them when the first presentation was refused and retried until after its replay', () => {
    const first = tap(1, 'ok', 'code-a');
    const replay = tap(2, 'qr-replay', 'code-a');
    const other = tap(3, 'ok', 'code-b');
    const chip = tap(4, 'ok');
    const ev = new Map([[first, durable(9000, 9004, 12)], [replay, durable(4000, 4005)], [other, durable(10, 12)], [chip, durable(11, 13)]]);
    const { expectOf, report } = expectByDurableOrder([first, replay, other, chip], (s) => ev.get(s));
    expect([expectOf(first), expectOf(replay), expectOf(other), expectOf(chip)]).toEqual(['qr-replay', 'ok', 'ok', 'ok']);
    expect(report).toMatchObject({ codes_reused: 1, out_of_sending_order: 1, first_sent_retried: 1, expectations_changed: 2 });
    expect(report.examples[0]).toEqual({ first_sent: 'BJ-RAIL-s0001-G1:1', first_sent_attempts: 12, first_durable: 'BJ-RAIL-s0001-G1:2', first_durable_attempts: 1, ingest_gap_ms: 5000 });
    expect(qrCodeOf(chip)).toBeUndefined();
  });

  it('breaks an equal ingest time by the answer at the terminal, then by tape order', () => {
    const first = tap(1, 'ok', 'code-a');
    const replay = tap(2, 'qr-replay', 'code-a');
    const byAnswer = expectByDurableOrder([first, replay], (s) => (s === first ? durable(500, 900) : durable(500, 800)));
    expect(byAnswer.expectOf(replay)).toBe('ok');
    const byTape = expectByDurableOrder([first, replay], () => durable(500, 800));
    expect(byTape.expectOf(first)).toBe('ok');
    expect(byTape.expectOf(replay)).toBe('qr-replay');
  });

  it('expects the replay accepted when the first presentation never became durable', () => {
    const first = tap(1, 'ok', 'code-a');
    const replay = tap(2, 'qr-replay', 'code-a');
    const { expectOf, report } = expectByDurableOrder([first, replay], (s) => (s === first ? { durable: false, answeredMs: 30_000, attempts: 40 } : durable(4000, 4005)));
    expect(expectOf(replay)).toBe('ok');
    expect(report).toMatchObject({ codes_reused: 0, out_of_sending_order: 1, first_sent_retried: 1 });
  });
});

describe('bench verdict check - mismatches by kind, with examples', () => {
  const row = (s: SimTap, verdict: string, reason: string): StoredDecision => ({ event_id: `${s.tap.terminalId}:${s.tap.seq}`, verdict, reason, device_ms: 0, ingest_ms: 0, stored_ms: 0 });
  const answered = (status: TapStatus, attempts = 1, reason = ''): TapResult => ({ status, reason, attempts, ackedAt: 10, intended: 0 });

  it('passes a run whose verdicts are all as expected, malformed taps refused at ingest', () => {
    const ok = tap(1, 'ok');
    const hot = tap(2, 'hotlisted');
    const bad = tap(3, 'malformed');
    const results = new Map([[ok, answered(TapStatus.ACCEPTED_DURABLE)], [hot, answered(TapStatus.ACCEPTED_DURABLE)], [bad, answered(TapStatus.INVALID, 1, 'INVALID_ARGUMENT: venue_id: empty')]]);
    const v = checkTaps({ taps: [ok, hot, bad], rows: [row(ok, 'ACCEPTED', 'OK'), row(hot, 'REJECTED', 'HOTLIST_LOST')], results, windowStartMs: 0, timeline: new Timeline() }).verdicts;
    expect(v).toMatchObject({ checked: 3, mismatched: 0, ok: true });
  });

  it('fails on any verdict that differs, counting each kind with examples', () => {
    const taps = [1, 2, 3].map((i) => tap(i, 'ok', `code-${i}`));
    const replay = tap(4, 'qr-replay', 'code-1');
    const invalid = tap(5, 'ok');
    const results = new Map<SimTap, TapResult>([...taps, replay].map((s) => [s, answered(TapStatus.ACCEPTED_DURABLE, 3)]));
    results.set(invalid, answered(TapStatus.INVALID, 1, 'INVALID_ARGUMENT: venue_id: empty'));
    const rows = [row(taps[0]!, 'REJECTED', 'QR_REPLAYED'), row(taps[1]!, 'REJECTED', 'QR_REPLAYED'), row(taps[2]!, 'ACCEPTED', 'OK'), row(replay, 'ACCEPTED', 'OK')];
    const v = checkTaps({ taps: [...taps, replay, invalid], rows, results, windowStartMs: 0, timeline: new Timeline() }).verdicts;
    expect(v.ok).toBe(false);
    expect(v.mismatched).toBe(4);
    expect(v.mismatches).toEqual({ 'ok → REJECTED/QR_REPLAYED': 2, 'qr-replay → ACCEPTED/OK': 1, 'ok → INVALID at ingest (INVALID_ARGUMENT: venue_id)': 1 });
    expect(v.mismatch_examples['ok → REJECTED/QR_REPLAYED']).toEqual(['BJ-RAIL-s0001-G1:1 (3 attempts)', 'BJ-RAIL-s0001-G1:2 (3 attempts)']);

    // The same rows judged by durable order: the replay became durable first, so only code-2 differs.
    const expectOf = (s: SimTap): Expect => (s === taps[0] ? 'qr-replay' : s === replay ? 'ok' : s.expect);
    const v2 = checkTaps({ taps: [...taps, replay], rows, results, expectOf, windowStartMs: 0, timeline: new Timeline() }).verdicts;
    expect(v2.mismatches).toEqual({ 'ok → REJECTED/QR_REPLAYED': 1 });
  });
});
