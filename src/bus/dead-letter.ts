/** Dead letters: messages a role cannot process (undecodable) go to tapflow.dlq.<role> and are acked. */
import type { JsMsg } from '@nats-io/jetstream';
import { DeadLetter } from '../gen/tapflow/v1/bus.js';
import type { JsPublisher } from './publisher.js';
import { subjects } from './subjects.js';
import type { FailureCode } from '../domain/reasons.js';
import type { Metrics } from '../observe/metrics.js';

export async function deadLetter(publisher: JsPublisher, metrics: Metrics, role: string, msg: JsMsg, code: FailureCode, error: string): Promise<void> {
  const data = DeadLetter.encode({
    role,
    subject: msg.subject,
    streamSeq: msg.seq,
    errorCode: code,
    error,
    data: Buffer.from(msg.data),
    time: Date.now(),
  }).finish();
  await publisher.publish(subjects.deadLetter(role), data, `dlq:${role}:${msg.info.stream}:${msg.seq}`);
  metrics.deadLetters.inc({ role, code });
}
