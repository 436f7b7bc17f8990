/**
 * Which presentation of a QR code tapflow should accept: the first one that became durable at
 * ingest — not necessarily the first one the fleet sent.
 *
 * A QR code is single-use. The validator spends a code's nonce on the first use it decides
 * (src/domain/validate/decide.ts, step 5) and decides a partition's taps in stream order
 * (src/bus/partitions.ts), which is the order in which ingest made them durable. The fleet
 * presents some codes twice (the `qr-replay` share: the same code at the same gate 3–45 s
 * later, or 15–20 s later in an offline store) and marks the first presentation `ok`. But the
 * fleet retries a tap that ingest refused (OVERLOADED, UNAVAILABLE) after a growing pause —
 * under overload for seconds — and a batch refused as a whole likewise, while later taps and
 * batches go out on time. A replay sent after its first use can thus become durable before it:
 * tapflow then accepts the replay and rejects the first use as QR_REPLAYED, as specified. The
 * bench's expectation follows the durable order; a verdict that still differs is tapflow's.
 *
 * Durable order, per presentation, from the best evidence first:
 *   1. the decision row's `ingest_time`: ingest stamps it when it receives the attempt it then
 *      publishes, and publishes synchronously in that order (src/ingest/server.ts submit(),
 *      src/bus/publisher.ts); an attempt that timed out but was stored keeps its own time;
 *   2. when two stamps are equal (ms; every tap of one UploadBatch call shares one), the time
 *      the terminal got its durable answer: a terminal's answers come back in PubAck order;
 *   3. then the order on the tape (within a batch, ingest publishes in the batch's order).
 * A presentation that never became durable (refused to the end, unanswered, INVALID) does not
 * take part.
 */
import type { Expect, SimTap } from './fleet.js';

/** What the run tells about one presentation. */
export interface UseEvidence {
  /** Answered ACCEPTED_DURABLE or DUPLICATE, or its decision row was stored (durable, answer lost). */
  durable: boolean;
  /** `ingest_time` of its decision row, epoch ms (undefined when no row was stored). */
  ingestMs?: number;
  /** When the terminal got its final answer, ms from the window start. */
  answeredMs?: number;
  /** Attempts the terminal needed (1: no retry). */
  attempts: number;
}

export interface QrOrderExample {
  /** The presentation the fleet sent first (event id) and how many attempts it took. */
  first_sent: string;
  first_sent_attempts: number;
  /** The presentation that became durable first. */
  first_durable: string;
  first_durable_attempts: number;
  /** ingest_time of the first sent minus that of the first durable, ms (null: not both stored). */
  ingest_gap_ms: number | null;
}

export interface QrOrderReport {
  /** QR codes presented more than once that reached the validator more than once. */
  codes_reused: number;
  /** Codes presented more than once whose first durable presentation was not the first one sent (also when that one never became durable). */
  out_of_sending_order: number;
  /** How many of those had their first presentation retried by the terminal. */
  first_sent_retried: number;
  /** Taps whose expectation changed (ok ↔ qr-replay). */
  expectations_changed: number;
  /** Up to 10 codes out of sending order. */
  examples: QrOrderExample[];
}

const eventId = (s: SimTap) => `${s.tap.terminalId}:${s.tap.seq}`;

/** The code a QR tap presents, or undefined for a chip tap. */
export function qrCodeOf(s: SimTap): string | undefined {
  return s.tap.card?.$case === 'qr' ? s.tap.card.value.payload : undefined;
}

/**
 * The expectation of every tap with the QR codes' winners chosen by durable order (module
 * comment). `taps` in tape order; `evidence` undefined for a tap never answered.
 */
export function expectByDurableOrder(
  taps: readonly SimTap[],
  evidence: (s: SimTap) => UseEvidence | undefined,
): { expectOf: (s: SimTap) => Expect; report: QrOrderReport } {
  const byCode = new Map<string, { s: SimTap; i: number }[]>();
  taps.forEach((s, i) => {
    if (s.expect !== 'ok' && s.expect !== 'qr-replay') return;
    const code = qrCodeOf(s);
    if (code === undefined) return;
    let l = byCode.get(code);
    if (!l) byCode.set(code, (l = []));
    l.push({ s, i });
  });
  const changed = new Map<SimTap, Expect>();
  const report: QrOrderReport = { codes_reused: 0, out_of_sending_order: 0, first_sent_retried: 0, expectations_changed: 0, examples: [] };
  const inf = Number.POSITIVE_INFINITY;
  for (const uses of byCode.values()) {
    if (uses.length < 2) continue;
    const durable = uses.map((u) => ({ ...u, e: evidence(u.s) })).filter((u) => u.e?.durable === true);
    if (durable.length === 0) continue;
    if (durable.length >= 2) report.codes_reused++;
    durable.sort((a, b) => (a.e!.ingestMs ?? inf) - (b.e!.ingestMs ?? inf) || (a.e!.answeredMs ?? inf) - (b.e!.answeredMs ?? inf) || a.i - b.i);
    const winner = durable[0]!;
    for (const u of durable) {
      const want: Expect = u === winner ? 'ok' : 'qr-replay';
      if (want !== u.s.expect) changed.set(u.s, want);
    }
    const firstSent = uses.find((u) => u.s.expect === 'ok') ?? uses[0]!;
    if (winner.s !== firstSent.s) {
      report.out_of_sending_order++;
      const fe = evidence(firstSent.s);
      if ((fe?.attempts ?? 1) > 1) report.first_sent_retried++;
      if (report.examples.length < 10) {
        report.examples.push({
          first_sent: eventId(firstSent.s),
          first_sent_attempts: fe?.attempts ?? 0,
          first_durable: eventId(winner.s),
          first_durable_attempts: winner.e!.attempts,
          ingest_gap_ms: fe?.ingestMs !== undefined && winner.e!.ingestMs !== undefined ? fe.ingestMs - winner.e!.ingestMs : null,
        });
      }
    }
  }
  report.expectations_changed = changed.size;
  return { expectOf: (s) => changed.get(s) ?? s.expect, report };
}
