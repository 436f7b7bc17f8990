/**
 * The ARCHIVE stream: a copy of every message the sink stores (streams DECISIONS, SETTLEMENTS
 * and RISK), kept for TAPFLOW_ARCHIVE_MAX_AGE_S, so a range of the store can be rebuilt from it
 * (`tapflow store rebuild`, src/store/rebuild.ts) after the sink's streams have let the
 * messages go (interest retention removes a message once every consumer acknowledged it).
 *
 * The archive sources those streams (JetStream stream sourcing: the server copies each message,
 * subject, headers and data, with a Nats-Stream-Source header naming the stream and sequence it
 * came from). Its source consumers count as interest: a message stays in its stream until it
 * was copied. Limits retention, discard old: a full archive drops its oldest messages rather
 * than hold anything up. It is not on the hot path (no role publishes to it or waits for it);
 * the cost is the server's copy and the disk (README, "Rebuilding a store range").
 */
import { DiscardPolicy, RetentionPolicy, StorageType, type JsMsg, type StreamConfig, type StreamSource } from '@nats-io/jetstream';
import type { Bus } from './connection.js';
import { Streams } from './subjects.js';
import type { SourceStream } from '../store/sources.js';

export const ARCHIVE_STREAM = 'ARCHIVE';

/** The streams the archive copies: those the sink stores. */
export const ARCHIVED_STREAMS: readonly SourceStream[] = ['DECISIONS', 'SETTLEMENTS', 'RISK'];

export interface ArchiveOptions {
  maxAgeS: number;
  maxBytes: number;
  /** JetStream replicas (TAPFLOW_STREAM_REPLICAS). @default 1 */
  replicas?: number;
}

const NS_PER_S = 1_000_000_000;

/** Creates the ARCHIVE stream, or brings its limits and sources to the settings. */
export async function ensureArchive(bus: Bus, o: ArchiveOptions): Promise<void> {
  const sources: StreamSource[] = ARCHIVED_STREAMS.map((s) => ({ name: Streams[s].name }));
  const cfg: Partial<StreamConfig> & { name: string } = {
    name: ARCHIVE_STREAM,
    subjects: [],
    sources,
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_bytes: o.maxBytes,
    max_age: o.maxAgeS * NS_PER_S,
    max_msgs: -1,
    num_replicas: o.replicas ?? 1,
  };
  const existing = await bus.jsm.streams.info(ARCHIVE_STREAM).catch(() => undefined);
  if (!existing) {
    await bus.jsm.streams.add(cfg).catch((err: unknown) => {
      if (!(err instanceof Error) || !/insufficient storage/i.test(err.message)) throw err;
      throw new Error(
        `the NATS server cannot reserve ${(o.maxBytes / 1024 ** 3).toFixed(1)} GiB for stream ${ARCHIVE_STREAM} (${err.message}): lower TAPFLOW_ARCHIVE_MAX_BYTES, or raise the server's jetstream max_file_store (tapflow's streams reserve TAPFLOW_STREAM_MAX_BYTES each, the archive TAPFLOW_ARCHIVE_MAX_BYTES).`,
        { cause: err },
      );
    });
    return;
  }
  const c = existing.config;
  const sameSources = (c.sources ?? []).map((s) => s.name).sort().join(' ') === sources.map((s) => s.name).sort().join(' ');
  if (!sameSources || c.max_bytes !== cfg.max_bytes || c.max_age !== cfg.max_age) {
    await bus.jsm.streams.update(ARCHIVE_STREAM, { ...c, sources, max_bytes: cfg.max_bytes!, max_age: cfg.max_age! });
  }
}

/** Where an archived message came from: its stream and its sequence there (the sink's stream_seq). */
export interface ArchivedOrigin {
  stream: SourceStream;
  seq: number;
}

/**
 * The origin of an archived message, from its Nats-Stream-Source header ("DECISIONS 42 > >",
 * or "DECISIONS:<hash> 42 …"), or undefined when it has none or names another stream.
 */
export function archivedOrigin(header: string | undefined): ArchivedOrigin | undefined {
  if (!header) return undefined;
  const [name, seq] = header.trim().split(/\s+/);
  const stream = name?.split(':')[0];
  const n = Number(seq);
  if (!stream || !(ARCHIVED_STREAMS as readonly string[]).includes(stream) || !Number.isSafeInteger(n) || n <= 0) return undefined;
  return { stream: stream as SourceStream, seq: n };
}

/** One archived message. */
export interface ArchivedMessage {
  origin: ArchivedOrigin;
  /** Its sequence in ARCHIVE. */
  archiveSeq: number;
  msg: JsMsg;
}

/**
 * Every message in the archive now, oldest first (an ordered consumer; the messages archived
 * after the call started are left out). Messages without a readable origin are counted in
 * `skipped`.
 */
export async function* readArchive(bus: Bus, skipped: { count: number } = { count: 0 }): AsyncGenerator<ArchivedMessage> {
  const info = await bus.jsm.streams.info(ARCHIVE_STREAM);
  const last = info.state.last_seq;
  if (info.state.messages === 0) return;
  const consumer = await bus.js.consumers.get(ARCHIVE_STREAM);
  let seen = 0;
  while (seen < last) {
    const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
    let got = 0;
    for await (const m of batch) {
      got++;
      seen = m.seq;
      const origin = archivedOrigin(m.headers?.get('Nats-Stream-Source'));
      if (!origin) skipped.count++;
      else yield { origin, archiveSeq: m.seq, msg: m };
      if (seen >= last) break;
    }
    if (got === 0) break;
  }
}
