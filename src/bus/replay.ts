/**
 * Replaying a dead letter: the message it holds goes back to the subject it came from, to be
 * processed again once the cause is fixed (`tapflow dlq replay`). Pure: what to publish, with
 * which headers and Nats-Msg-Id, or why a dead letter cannot be replayed.
 *
 * A replay is published to its original subject with the original's headers (JetStream's own
 * `Nats-*` headers and an earlier replay's headers dropped) and these:
 *   Nats-Msg-Id         replay:<role>:<stream>:<stream seq>[:<part>]   from the dead letter, so a
 *                       replay repeated within the duplicate window is dropped by JetStream
 *   Tapflow-Replay-For  the durable consumer that dead-lettered it, e.g. sink-settlements
 *   Tapflow-Replay-Of   <stream>:<stream seq>[:<part>] of the original; one value per replay in a
 *                       chain (a replay that was dead-lettered and replayed again carries both)
 *
 * Every consumer of the subject receives the replay, but only the one named in
 * Tapflow-Replay-For processes it; the others acknowledge it unseen (src/bus/partitions.ts): the
 * settler's replay of a decision bundle is not stored a second time by the sink, nor counted
 * again by the risk windows.
 *
 * A dead letter of a part (one tap of a bundle, say) holds that part alone; it is replayed as a
 * bundle of one, which is what the subject carries. A replay of a whole message whose first
 * attempt may have stored some of its rows (the sink inserts table after table) is told apart by
 * Tapflow-Replay-Of: the sink skips the tables that already hold rows of the original
 * (src/sink/role.ts).
 *
 * The outputs of a replayed message, and of any message derived from one, carry
 *   Tapflow-Replay-Derived  <stream>:<seq> of the input they were made from
 * A validator or settler dead letter may have failed after its outputs were published (its state
 * commit failed beyond the retry bound): processed again, it publishes them again under new
 * Nats-Msg-Ids, long after JetStream's duplicate window. The sink stores such a derived message's
 * rows only where the table holds no row of the same key (decision by event id, settlement and its
 * ledger entries and claim by settlement id, risk flag by flag id): see src/sink/message-rows.ts.
 *
 * Medical claims are never replayed: a dead-lettered claim was answered REJECTED to its
 * terminal, and money must not move for a claim its terminal was told was refused.
 */
import type { DeadLetter } from '../gen/tapflow/v1/bus.js';
import { encodeFields } from './codec.js';
import { Streams, type StreamName } from './subjects.js';

/** Header names of a replay (see the module comment). */
export const ReplayHeaders = {
  For: 'Tapflow-Replay-For',
  Of: 'Tapflow-Replay-Of',
  Derived: 'Tapflow-Replay-Derived',
} as const;

/** Why a dead letter cannot be shown or replayed, naming its DLQ sequence. */
export class DeadLetterError extends Error {
  override readonly name = 'DeadLetterError';
  constructor(
    readonly dlqSeq: number,
    readonly kind: 'not-found' | 'unreadable' | 'not-replayable',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`dead letter ${dlqSeq}: ${message}`, options);
  }
}

/** What a replay publishes. */
export interface Replay {
  subject: string;
  /** The stream the subject belongs to (the original's). */
  stream: StreamName;
  data: Uint8Array;
  msgId: string;
  /** The consumer that dead-lettered it, and the only one to process the replay. */
  consumer: string;
  /** Name and value of every header, in order (a name may repeat). */
  headers: { name: string; value: string }[];
  /** Set when the dead letter is one part of a message, replayed as a bundle of one. */
  part?: string;
}

/** The stream whose subjects include `subject`, or undefined. */
export function streamOfSubject(subject: string): StreamName | undefined {
  for (const [name, s] of Object.entries(Streams) as [StreamName, (typeof Streams)[StreamName]][]) {
    if (s.subjects.some((pattern) => subject.startsWith(pattern.slice(0, -1)) && subject.length > pattern.length - 1)) return name;
  }
  return undefined;
}

/**
 * Field number of a part in its bundle (src/bus/codec.ts): taps, decisions and settlements are
 * field 1, risk flags field 2. Undefined when the stream's messages are not bundles.
 */
const BUNDLE_FIELD: Partial<Record<StreamName, Record<string, number>>> = {
  TAPS: { tap: 1 },
  DECISIONS: { decision: 1, flag: 2 },
  SETTLEMENTS: { settlement: 1, flag: 2 },
};

/**
 * The payload a replay publishes: the message as it was, or a part alone wrapped as a bundle of
 * one. A risk flag dead-lettered from the RISK stream is a whole message already.
 */
function replayPayload(dlqSeq: number, stream: StreamName, part: string, data: Uint8Array): Uint8Array {
  if (part === '') return data;
  const kind = /^([a-z]+)-\d+$/.exec(part)?.[1];
  const fields = BUNDLE_FIELD[stream];
  if (!fields) {
    if (stream === 'RISK' && kind === 'flag') return data;
  } else if (kind !== undefined && fields[kind] !== undefined) {
    return encodeFields([[fields[kind], [data]]]);
  }
  throw new DeadLetterError(dlqSeq, 'not-replayable', `part ${JSON.stringify(part)} of a message of stream ${stream}: not a part tapflow's bundles have`);
}

/** `<stream>:<seq>[:<part>]`, the value of Tapflow-Replay-Of for the original of a dead letter. */
export function replayOfValue(stream: string, seq: number, part = ''): string {
  return `${stream}:${seq}${part ? `:${part}` : ''}`;
}

/**
 * What replaying dead letter `dlqSeq` publishes; throws {@link DeadLetterError} naming what is
 * wrong when it cannot be replayed.
 */
export function planReplay(dlqSeq: number, dl: DeadLetter): Replay {
  const refuse = (why: string): never => {
    throw new DeadLetterError(dlqSeq, 'not-replayable', why);
  };
  if (dl.subject === '') refuse('the original subject is missing (the dead letter names no subject to replay to)');
  const stream = streamOfSubject(dl.subject);
  if (stream === undefined) refuse(`the original subject ${dl.subject} belongs to no stream of tapflow`);
  if (stream === 'DLQ' || stream === 'STATE') refuse(`the original subject ${dl.subject} is in stream ${stream}, which is not processed by a consumer`);
  if (dl.stream !== '' && dl.stream !== Streams[stream!].name) refuse(`the dead letter says stream ${dl.stream}, but its subject ${dl.subject} belongs to stream ${stream}`);
  if (stream === 'CLAIMS') {
    refuse(`a medical claim (${dl.subject}): its terminal was answered REJECTED with ${dl.errorCode || 'the failure code'}; a claim is settled only when its terminal sends it again, never by a replay`);
  }
  if (dl.consumer === '') refuse('the consumer that dead-lettered it is missing: a replay would be processed by no one');
  if (!(dl.streamSeq > 0)) refuse('the original stream sequence is missing');
  const data = replayPayload(dlqSeq, stream!, dl.part, dl.data);
  const headers: Replay['headers'] = [];
  const chain: string[] = [];
  for (const h of dl.headers) {
    if (h.name.toLowerCase() === ReplayHeaders.Of.toLowerCase()) chain.push(h.value);
    // JetStream's own headers (Nats-Msg-Id, Nats-Expected-*) belong to the first publication;
    // an earlier replay's are replaced.
    else if (!/^nats-/i.test(h.name) && h.name.toLowerCase() !== ReplayHeaders.For.toLowerCase()) headers.push(h);
  }
  chain.push(replayOfValue(stream!, dl.streamSeq, dl.part));
  headers.push({ name: ReplayHeaders.For, value: dl.consumer }, ...chain.map((value) => ({ name: ReplayHeaders.Of, value })));
  return {
    subject: dl.subject,
    stream: stream!,
    data,
    msgId: `replay:${dl.role}:${replayOfValue(stream!, dl.streamSeq, dl.part)}`,
    consumer: dl.consumer,
    headers,
    ...(dl.part && { part: dl.part }),
  };
}

/** Reads headers the way a JsMsg or StoredMsg offers them. */
interface HeaderSource {
  headers?: { get(name: string): string; values(name: string): string[] } | undefined;
}

/** The consumer a replayed message is meant for, or undefined when it is no replay. */
export function replayedFor(msg: HeaderSource): string | undefined {
  const v = msg.headers?.get(ReplayHeaders.For);
  return v ? v : undefined;
}

/**
 * The sequences in `stream` of the originals a replayed whole message stands for (its chain of
 * Tapflow-Replay-Of), or [] when it is no replay, or a replay of a part (whose original's other
 * parts were stored: only the part itself is new), or of another stream.
 */
export function replayedWholeOriginals(msg: HeaderSource, stream: string): number[] {
  const values = msg.headers?.values(ReplayHeaders.Of) ?? [];
  const seqs: number[] = [];
  for (const v of values) {
    const m = /^([A-Z]+):(\d+)$/.exec(v);
    if (!m || m[1] !== stream) return [];
    seqs.push(Number(m[2]));
  }
  return seqs;
}

/** Whether a message is a replay or was made from one (its rows may already be stored). */
export function isReplayDerived(msg: HeaderSource): boolean {
  return !!(msg.headers?.get(ReplayHeaders.Of) || msg.headers?.get(ReplayHeaders.Derived));
}

/**
 * The headers of an output made from `input` (of `stream`): Tapflow-Replay-Derived when the input
 * is a replay or derived from one, none otherwise (the hot path publishes no extra header).
 */
export function derivedOutputHeaders(input: HeaderSource & { seq: number }, stream: StreamName): Record<string, string> | undefined {
  return isReplayDerived(input) ? { [ReplayHeaders.Derived]: `${stream}:${input.seq}` } : undefined;
}
