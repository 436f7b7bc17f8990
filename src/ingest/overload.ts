/**
 * The memory bound of an ingest process under overload (README, "Overload"): what it can hold
 * beyond its idle size, from its settings. A tap is held from the moment its frame is read until
 * its ack is written; reading stops where the bounds are:
 *
 * - taps in flight (published, PubAck not back): at most TAPFLOW_MAX_INFLIGHT, each held as its
 *   frame, the decoded tap, the encoded BusTap and its share of the bundle being published, each
 *   at most MAX_TAP_BYTES (plus object overheads): {@link INFLIGHT_TAP_BYTES};
 * - requests being received: an UploadBatch is read whole before it is answered (its bytes, then
 *   the decoded batch), at most the largest message (maxMessageBytes); a StreamTaps call holds
 *   only what flow control lets through (one HTTP/2 window, 64 KiB, and 16 frames and 16 acks
 *   in the call's buffers) — less than a batch, so counted as one;
 * - garbage not yet collected: V8 collects the young generation (16 MiB semi-spaces) often and the
 *   old generation when it has grown by about as much as it held, so twice the live bytes.
 */
import { MAX_TAP_BYTES } from '../domain/limits.js';

/** The most one tap in flight holds (frame, decoded tap, BusTap, bundle share; with overheads). */
export const INFLIGHT_TAP_BYTES = 4 * MAX_TAP_BYTES;

/** A request being received holds its bytes and its decoded form: twice the message at most. */
export const REQUEST_COPIES = 2;

/** V8's young generation (two 16 MiB semi-spaces) and the JetStream client's buffers. */
export const RUNTIME_SLACK_BYTES = 64 * 1024 ** 2;

export interface OverloadBoundInput {
  /** RSS of the process when idle (listening, connected), bytes. */
  idleRssBytes: number;
  /** TAPFLOW_MAX_INFLIGHT. */
  maxInflight: number;
  /** The largest gRPC message ingest accepts: maxMessageBytes(TAPFLOW_BATCH_MAX_TAPS). */
  maxMessageBytes: number;
  /** Calls being received at once (UploadBatch and StreamTaps calls of every connection). */
  requestsAtOnce: number;
}

/**
 * The RSS an ingest process stays under, whatever it is sent:
 * idle + 2 × (TAPFLOW_MAX_INFLIGHT × INFLIGHT_TAP_BYTES + calls at once × REQUEST_COPIES ×
 * largest message) + RUNTIME_SLACK_BYTES (the factor 2: garbage not yet collected).
 */
export function overloadRssBoundBytes(o: OverloadBoundInput): number {
  const live = o.maxInflight * INFLIGHT_TAP_BYTES + o.requestsAtOnce * REQUEST_COPIES * o.maxMessageBytes;
  return o.idleRssBytes + 2 * live + RUNTIME_SLACK_BYTES;
}
