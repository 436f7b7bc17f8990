/**
 * The dead-letter stream DLQ as operators use it (`tapflow dlq list|show|replay`): reading its
 * dead letters, replaying one to its original subject (src/bus/replay.ts), removing it.
 *
 * The DLQ holds what still needs attention, not a history: a dead letter replayed is removed from
 * it. The replay's trace stays with the re-published message (its Tapflow-Replay-Of header, and
 * the dead letter again should it fail once more). Removal follows the publication: a replay
 * interrupted between the two leaves the dead letter in place, and replaying it again is dropped
 * by JetStream's duplicate window (same Nats-Msg-Id), then removes it.
 */
import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type JsMsg, type PubAck, type StoredMsg } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { DeadLetter } from '../gen/tapflow/v1/bus.js';
import type { Bus } from './connection.js';
import { DeadLetterError, type Replay } from './replay.js';
import { Streams } from './subjects.js';

const DLQ = Streams.DLQ.name;

/** One message of the DLQ stream and the dead letter it holds. */
export interface StoredDeadLetter {
  /** Its sequence in the DLQ stream: what the commands take. */
  dlqSeq: number;
  /** tapflow.dlq.<role> */
  dlqSubject: string;
  /** When the DLQ stored it (epoch ms). */
  storedAt: number;
  /** The DLQ message's own headers (Tapflow-Error-Code, Tapflow-Source-Stream, …). */
  dlqHeaders: { name: string; value: string }[];
  /** The dead letter, unless the message is not one. */
  letter?: DeadLetter;
  /** Why the message could not be read as a DeadLetter, and its bytes. */
  unreadable?: string;
  raw?: Uint8Array;
}

/** What `tapflow dlq list` shows of a dead letter: everything but the bytes. */
export interface DeadLetterSummary {
  dlqSeq: number;
  /** When it was dead-lettered (epoch ms). */
  time: number;
  role: string;
  consumer: string;
  code: string;
  reason: string;
  sourceStream: string;
  sourceSeq: number;
  subject: string;
  /** The part of the original it holds ("tap-3"), or "" for the whole message. */
  part: string;
  /** Bytes of the original (or of the part). */
  size: number;
  deliveryCount: number;
  /** Set when the DLQ message is not a readable dead letter. */
  unreadable?: string;
}

/** Which dead letters: each given criterion must hold. */
export interface DeadLetterFilter {
  codes?: readonly string[];
  roles?: readonly string[];
  /** Dead-lettered at or after (epoch ms). */
  sinceMs?: number;
}

function headerList(h: MsgHdrs | undefined): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  if (!h) return out;
  for (const name of h.keys()) for (const value of h.values(name)) out.push({ name, value });
  return out;
}

function stored(seq: number, subject: string, storedAt: number, h: MsgHdrs | undefined, data: Uint8Array): StoredDeadLetter {
  const base = { dlqSeq: seq, dlqSubject: subject, storedAt, dlqHeaders: headerList(h) };
  try {
    return { ...base, letter: DeadLetter.decode(data) };
  } catch (err) {
    return { ...base, unreadable: `not a DeadLetter message (${(err as Error).message}); ${data.length} bytes`, raw: data };
  }
}

const fromJsMsg = (m: JsMsg) => stored(m.seq, m.subject, m.time.getTime(), m.headers, m.data);
const fromStoredMsg = (m: StoredMsg) => stored(m.seq, m.subject, m.time.getTime(), m.header, m.data);

/** The role of a dead letter: its own field, else the last token of its DLQ subject. */
const roleOf = (d: StoredDeadLetter) => d.letter?.role || d.dlqSubject.split('.').pop() || '';

export function summarize(d: StoredDeadLetter): DeadLetterSummary {
  const l = d.letter;
  return {
    dlqSeq: d.dlqSeq,
    time: l?.time || d.storedAt,
    role: roleOf(d),
    consumer: l?.consumer ?? '',
    code: l?.errorCode ?? '',
    reason: l?.error ?? '',
    sourceStream: l?.stream ?? '',
    sourceSeq: l?.streamSeq ?? 0,
    subject: l?.subject ?? '',
    part: l?.part ?? '',
    size: l?.data.length ?? 0,
    deliveryCount: l?.deliveryCount ?? 0,
    ...(d.unreadable !== undefined && { unreadable: d.unreadable }),
  };
}

export function matches(d: StoredDeadLetter, f: DeadLetterFilter): boolean {
  const s = summarize(d);
  return (f.codes === undefined || f.codes.includes(s.code)) && (f.roles === undefined || f.roles.includes(s.role)) && (f.sinceMs === undefined || s.time >= f.sinceMs);
}

/**
 * The dead letters matching `filter`, oldest first, read with an ordered consumer (ephemeral,
 * no acknowledgements: reading changes nothing). Stops at the last message the stream held when
 * the scan began, so a DLQ that grows meanwhile does not keep it going.
 */
export async function* scanDeadLetters(bus: Bus, filter: DeadLetterFilter = {}): AsyncGenerator<StoredDeadLetter> {
  const { messages, last_seq: lastSeq, last_ts: lastTs } = (await bus.jsm.streams.info(DLQ)).state;
  if (messages === 0) return;
  // Nothing stored at or after the time asked for: no consumer to wait on.
  if (filter.sinceMs !== undefined && Date.parse(lastTs) < filter.sinceMs) return;
  const consumer = await bus.js.consumers.get(DLQ, filter.sinceMs === undefined ? {} : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(filter.sinceMs).toISOString() });
  for (;;) {
    const batch = await consumer.fetch({ max_messages: 500, expires: 2000 });
    let got = 0;
    let end = false;
    for await (const m of batch) {
      got++;
      const d = fromJsMsg(m);
      if (matches(d, filter)) yield d;
      if (m.seq >= lastSeq || m.info.pending === 0) {
        end = true;
        break;
      }
    }
    if (end || got === 0) return;
  }
}

/** Dead letter `seq`; throws {@link DeadLetterError} ('not-found') naming what the DLQ holds. */
export async function getDeadLetter(bus: Bus, seq: number): Promise<StoredDeadLetter> {
  const m = await bus.jsm.streams.getMessage(DLQ, { seq });
  if (m) return fromStoredMsg(m);
  const { messages, first_seq: first, last_seq: last } = (await bus.jsm.streams.info(DLQ)).state;
  const holds = messages === 0 ? 'the stream is empty' : `it holds ${messages} message(s) between sequences ${first} and ${last}`;
  throw new DeadLetterError(seq, 'not-found', `no message with this sequence in stream ${DLQ} (${holds}; a replayed dead letter is removed)`);
}

/**
 * Checks that the consumer a replay is meant for exists: every other consumer of the subject
 * passes a replay by, so without it nothing would process the message.
 */
export async function checkReplayTarget(bus: Bus, dlqSeq: number, r: Replay): Promise<void> {
  const stream = Streams[r.stream].name;
  try {
    await bus.jsm.consumers.info(stream, r.consumer);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) {
      throw new DeadLetterError(dlqSeq, 'not-replayable', `consumer ${r.consumer} of stream ${stream}, which dead-lettered it, does not exist: nothing would process the replay`, { cause: err });
    }
    throw err;
  }
}

/** Publishes a replay and resolves with its PubAck (`duplicate`: replayed before, dropped). */
export function publishReplay(bus: Bus, r: Replay): Promise<PubAck> {
  const h = natsHeaders();
  for (const { name, value } of r.headers) h.append(name, value);
  return bus.js.publish(r.subject, r.data, { msgID: r.msgId, headers: h });
}

/** Removes dead letter `seq` from the DLQ (true when it was there). */
export async function removeDeadLetter(bus: Bus, seq: number): Promise<boolean> {
  try {
    return await bus.jsm.streams.deleteMessage(DLQ, seq, false);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return false;
    throw err;
  }
}
