/**
 * Dead letters: a message a role cannot process goes to tapflow.dlq.<role> (stream DLQ, limits
 * retention) with its failure code, the reason, where it came from and its original headers,
 * and is then acknowledged, so the partition goes on. Which failures end here is the failure
 * table's `term-dead-letter` action (src/domain/reasons.ts), applied by the partition worker.
 *
 * The DeadLetter message (proto/tapflow/v1/bus.proto) carries the original bytes; its own
 * headers name the code and source for tools that do not decode it:
 *   Nats-Msg-Id           dlq:<role>:<stream>:<stream seq>[:<part>]   (a redelivery dead-letters once)
 *   Tapflow-Error-Code    e.g. TF_EVENT_INVALID
 *   Tapflow-Source-Stream e.g. TAPS
 *   Tapflow-Source-Seq    the stream sequence of the original
 *
 * `tapflow dlq list|show|replay` reads them and puts them back on their subjects once the cause
 * is fixed (src/bus/dead-letter-store.ts, src/bus/replay.ts).
 */
import type { JsMsg } from '@nats-io/jetstream';
import { DeadLetter } from '../gen/tapflow/v1/bus.js';
import type { JsPublisher } from './publisher.js';
import { subjects } from './subjects.js';
import type { TapflowError } from '../domain/reasons.js';

/** The dead letter's own headers (module comment). */
export const DeadLetterHeaders = {
  ErrorCode: 'Tapflow-Error-Code',
  SourceStream: 'Tapflow-Source-Stream',
  SourceSeq: 'Tapflow-Source-Seq',
} as const;

/** The original message's headers, every value of every name. */
function headersOf(msg: JsMsg): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  const h = msg.headers;
  if (!h) return out;
  for (const name of h.keys()) for (const value of h.values(name)) out.push({ name, value });
  return out;
}

/**
 * Publishes the dead letter of `msg` — or of one part of it (e.g. one tap of a bundle, whose other
 * taps were processed) — and resolves when it is durable in the DLQ stream.
 */
export async function deadLetter(
  publisher: JsPublisher,
  role: string,
  consumer: string,
  msg: JsMsg,
  error: TapflowError,
  part?: { name: string; data: Uint8Array },
  now = Date.now(),
): Promise<void> {
  const stream = msg.info.stream;
  const data = DeadLetter.encode({
    role,
    subject: msg.subject,
    streamSeq: msg.seq,
    errorCode: error.code,
    error: error.message,
    data: Buffer.from(part ? part.data : msg.data),
    part: part?.name ?? '',
    time: now,
    stream,
    consumer,
    deliveryCount: msg.info.deliveryCount,
    headers: headersOf(msg),
  }).finish();
  await publisher.publish(subjects.deadLetter(role), data, `dlq:${role}:${stream}:${msg.seq}${part ? `:${part.name}` : ''}`, {
    headers: { [DeadLetterHeaders.ErrorCode]: error.code, [DeadLetterHeaders.SourceStream]: stream, [DeadLetterHeaders.SourceSeq]: String(msg.seq) },
  });
}
