/**
 * Messages at the limits of the wire contract (src/domain/limits.ts), for the tests of the
 * largest message ingest accepts: a tap that passes the shape checks and encodes to exactly
 * MAX_TAP_BYTES, and a batch of them.
 */
import { MAX_DEVICE_TIME, MAX_ID_LENGTH, MAX_QR_PAYLOAD_LENGTH, MAX_SEQ, MAX_TAP_AMOUNT_FEN, MAX_TERMINAL_ID_LENGTH } from '../../src/domain/limits.js';
import { Direction, RiderCategory, Scene, TapBatch, type Tap } from '../../src/gen/tapflow/v1/ingest.js';

/** A terminal id of the demo registry ("BJ-…") of the longest length. */
export const LONGEST_TERMINAL_ID = `BJ-${'X'.repeat(MAX_TERMINAL_ID_LENGTH - 3)}`;

/** A QR payload that parses (card number, issuer, times, nonce, level) and is exactly as long as allowed. */
export function longestQrPayload(cardNumber: string, issuedAt: number): string {
  const body = Buffer.from(JSON.stringify({ c: cardNumber, r: 'BJ', iat: issuedAt, exp: issuedAt + 60_000, n: 'bm9uY2Vub25jZQ', l: 2 })).toString('base64url');
  const head = `TFQR1.${body}.`;
  return head + 'A'.repeat(MAX_QR_PAYLOAD_LENGTH - head.length);
}

/**
 * The largest legal tap: every field at its bound — terminal_id of 64 characters, seq 2^53 − 1
 * (or `seq`), device_time 2100-01-01 (or `deviceTime`), venue_id of 128 three-byte characters, a
 * 2,048-character QR payload, the largest amount and enum values.
 */
export function largestTap(o: { seq?: number; deviceTime?: number; terminalId?: string } = {}): Tap {
  const deviceTime = o.deviceTime ?? MAX_DEVICE_TIME;
  return {
    terminalId: o.terminalId ?? LONGEST_TERMINAL_ID,
    seq: o.seq ?? MAX_SEQ,
    deviceTime,
    scene: Scene.BENEFIT,
    venueId: '国'.repeat(MAX_ID_LENGTH),
    direction: Direction.SINGLE,
    card: { $case: 'qr', value: { payload: longestQrPayload('11ABCDEFGH12345678', deviceTime - 1000) } },
    amountFen: MAX_TAP_AMOUNT_FEN,
    riderCategory: RiderCategory.DISABLED,
  };
}

/**
 * The first of `n` seqs that all take the longest varint (8 bytes, as 2^53 − 1 does): taps of
 * distinct seqs and of the largest size.
 */
export const LONG_SEQS = 2 ** 49;

/**
 * The bytes of a batch of `n` largest taps of `terminalId`, seqs `firstSeq`, `firstSeq` + 1, …
 * (default: all 2^53 − 1) at `deviceTime`. Now is as long on the wire as 2100-01-01 (6 bytes).
 */
export function largestBatch(n: number, o: { deviceTime?: number; firstSeq?: number; terminalId?: string } = {}): Buffer {
  const terminalId = o.terminalId ?? LONGEST_TERMINAL_ID;
  const taps = Array.from({ length: n }, (_, i) => largestTap({ terminalId, deviceTime: o.deviceTime, seq: o.firstSeq === undefined ? undefined : o.firstSeq + i }));
  return Buffer.from(TapBatch.encode({ terminalId, taps }).finish());
}
