/**
 * The content digest of a tap: what the terminal sent for one (terminal_id, seq), so that a
 * re-send of the same tap (same digest: DUPLICATE) can be told from a seq reused for another tap
 * (another digest: SEQ_REUSED).
 *
 * Format: the first 8 bytes of SHA-256 over the tap re-encoded canonically — the Tap message of
 * proto/tapflow/v1/ingest.proto with the authenticated terminal id and the range-checked values,
 * encoded by the generated encoder (fields in number order, defaults omitted) — as 16 hex digits.
 * Re-encoding makes the digest independent of how a client's encoder ordered or padded fields.
 */
import { createHash } from 'node:crypto';
import { Tap } from '../gen/tapflow/v1/ingest.js';

export function tapDigest(t: Tap): string {
  return createHash('sha256').update(Tap.encode(t).finish()).digest('hex').slice(0, 16);
}
