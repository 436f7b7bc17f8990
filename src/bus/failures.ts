/**
 * Which row of the failure table (src/domain/reasons.ts) an error belongs to, and the backoff of
 * redeliveries. The partition worker acts on the answer:
 *
 *   where it failed                         code                      action
 *   decoding one message                    TF_DECODE_FAILED /        dead-letter it at once,
 *                                           TF_EVENT_INVALID          the partition goes on
 *   the pure core on one message            TF_EVENT_INVALID          dead-letter it at once
 *   publishing, KV, consumer calls          TF_BUS_UNAVAILABLE,       redeliver the batch after a
 *                                           TF_BUS_STREAM_FULL,       backoff; a message delivered
 *                                           TF_STATE_CONFLICT         TAPFLOW_MAX_DELIVER times is
 *   the store (sink)                        TF_STORE_FAILED           dead-lettered as
 *   anything else around a batch            TF_INTERNAL               TF_RETRIES_EXHAUSTED
 */
import { TapflowError, type FailureCode } from '../domain/reasons.js';

/** Error names of the NATS client's connection, request and JetStream API errors. */
const NATS_ERROR = /^(ClosedConnection|DrainingConnection|Connection|Request|Timeout|NoResponders|Protocol|PermissionViolation|JetStream\w*|ConsumerNotFound|StreamNotFound)Error$|^JetStreamNotEnabled$/;

/** The failure of a batch as a whole (an I/O step failed, or something unexpected). */
export function batchFailure(err: unknown): TapflowError {
  if (err instanceof TapflowError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code: FailureCode = err instanceof Error && NATS_ERROR.test(err.name) ? 'TF_BUS_UNAVAILABLE' : 'TF_INTERNAL';
  return new TapflowError(code, message, { cause: err });
}

/**
 * The failure of one message: decoding it, or the pure core on it. Deterministic — the same
 * message fails the same way every time — so it is a data error, never retried.
 */
export function messageFailure(err: unknown, phase: 'decode' | 'process'): TapflowError {
  if (err instanceof TapflowError && (err.code === 'TF_EVENT_INVALID' || err.code === 'TF_DECODE_FAILED')) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new TapflowError(phase === 'decode' ? 'TF_DECODE_FAILED' : 'TF_EVENT_INVALID', message, { cause: err });
}

/** First redelivery delay and the cap (ms). */
export const REDELIVERY_BASE_MS = 250;
export const REDELIVERY_MAX_MS = 30_000;

/**
 * Delay before the next delivery of a message delivered `deliveryCount` times: 250 ms doubling
 * to 30 s. With TAPFLOW_MAX_DELIVER = 20 a message is retried for about 7 minutes in all.
 */
export function redeliveryDelayMs(deliveryCount: number): number {
  const n = Math.max(1, Math.min(deliveryCount, 30));
  return Math.min(REDELIVERY_MAX_MS, REDELIVERY_BASE_MS * 2 ** (n - 1));
}
