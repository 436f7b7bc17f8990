/**
 * The sink role: batches decisions, settlements (with their ledger entries and claims) and risk
 * flags from JetStream into ClickHouse.
 *
 * Exactly once: each table records the JetStream sequence of the message each row came from
 * (stream_seq). The sink is a single owner (a lease; a second replica waits as a hot standby)
 * and consumes each stream in order, so a table's max(stream_seq) is a high-water mark: on
 * start it reads the marks, and skips rows of a redelivered message at or below its table's
 * mark. Messages are acknowledged only after their rows are inserted. A dead letter replayed
 * (src/bus/replay.ts) comes back under a new sequence; as a whole message it is stored only into
 * the tables that hold no row of its original (a first attempt may have stored some of them).
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { Bus } from '../bus/connection.js';
import { messageFailure } from '../bus/failures.js';
import { isReplayDerived, replayedWholeOriginals } from '../bus/replay.js';
import { PartitionWorker, type ConsumerSpec, type DeadMessage, type PartitionWorkerOptions } from '../bus/partitions.js';
import { Streams } from '../bus/subjects.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import { TapflowError } from '../domain/reasons.js';
import { join } from 'node:path';
import { workerOptions, type AppContext, type Role } from '../runtime/app.js';
import { pacer } from '../runtime/pacer.js';
import { messageRowKeys, RowKeyGuard, storedRowKeys, writeMessageRows } from './message-rows.js';
import { StoreGauges } from './store-gauges.js';
import {
  clearingReport,
  venueEntries,
  dedupToken,
  highWaterMarks,
  InsertBatch,
  tablesHoldingMessages,
  ledgerBalance,
  markKey,
  openStore,
  prepareSinkStore,
  redactUrl,
  waitForEmbeddedStore,
  summary,
  reportViews,
  REPORT_VIEW_NAMES,
  type ReportViewName,
  todayInShanghai,
  type ClickHouseEngine,
  type SourceStream,
  type StoreTable,
} from '../store/mod.js';

export interface SinkOptions {
  bus: Bus;
  engine: ClickHouseEngine;
  /** Leases, failure bound, dead letters and metrics shared with the other roles. */
  worker: Omit<PartitionWorkerOptions, 'partitions' | 'batch' | 'handler'>;
  /** Most messages (bundles) gathered before an insert. */
  maxMessages: number;
  flushMs: number;
  metrics: Metrics;
  log: Logger;
  /** The store's alert gauges (store-gauges.ts), computed while this replica holds the sink lease. */
  storeGauges?: { intervalMs: number; silentMinutes: number };
}

/** Most bytes of bundles per insert: large blocks for ClickHouse (some 15,000 decisions). */
const SINK_BATCH_BYTES = 4 * 1024 * 1024;

const CONSUMERS: ConsumerSpec[] = [
  { stream: 'DECISIONS', durable: 'sink-decisions' },
  { stream: 'SETTLEMENTS', durable: 'sink-settlements' },
  { stream: 'RISK', durable: 'sink-risk' },
];

/** The tables each stream feeds. */
const STREAM_TABLES: Record<string, StoreTable[]> = {
  DECISIONS: ['decisions', 'risk_flags'],
  SETTLEMENTS: ['settlements', 'ledger', 'claims', 'risk_flags'],
  RISK: ['risk_flags'],
};

export class SinkRole {
  /** High-water marks by (table, source stream): src/store/queries.ts markKey. */
  private marks?: Record<string, number>;
  /** Per stream: every message at or below it is stored. */
  private cursors = new Map<string, number>();
  private readonly worker: PartitionWorker;
  private lastInsertOk = true;
  private readonly gauges?: StoreGauges;

  constructor(private readonly o: SinkOptions) {
    if (o.storeGauges) this.gauges = new StoreGauges({ engine: o.engine, metrics: o.metrics, log: o.log, ...o.storeGauges });
    // Messages are bundles (many rows each): a batch is bounded in messages and in bytes.
    const consumers = CONSUMERS.map((c) => ({ ...c, batch: o.maxMessages, batchBytes: SINK_BATCH_BYTES, expiresMs: o.flushMs }));
    this.worker = new PartitionWorker({
      ...o.worker,
      partitions: 1,
      batch: o.maxMessages,
      handler: {
        consumers: () => consumers,
        onAcquire: async () => {
          this.marks = await highWaterMarks(o.engine);
          this.cursors.clear();
          o.log.info({ marks: this.marks }, 'sink owns the streams; high-water marks loaded');
          this.gauges?.start();
        },
        onRelease: () => this.gauges?.stop(),
        handle: (_p, spec, msgs) => this.handle(spec, msgs),
      },
    });
  }

  start(): Promise<void> {
    return this.worker.start();
  }

  async stop(): Promise<void> {
    await this.worker.stop();
    await this.gauges?.stop();
  }

  /** Ready when it has no failing inserts (a standby replica is ready too). */
  ready(): boolean {
    return this.lastInsertOk;
  }

  /**
   * The messages of a batch to store now, in stream order: those up to the first gap. A gap
   * is a message not seen yet (delivered to a subscription that has since gone, say): it comes
   * back after the consumer's ack wait, and nothing behind it may be stored before it, or the
   * high-water marks would skip it.
   */
  private async inOrder(spec: ConsumerSpec, msgs: JsMsg[]): Promise<{ take: JsMsg[]; later: JsMsg[] }> {
    const marks = this.marks!;
    const stream = spec.stream;
    let cursor = this.cursors.get(stream) ?? Math.min(...STREAM_TABLES[stream]!.map((t) => marks[markKey(t, stream as SourceStream)] ?? 0));
    const sorted = [...msgs].sort((a, b) => a.seq - b.seq);
    const take: JsMsg[] = [];
    let i = 0;
    for (; i < sorted.length; i++) {
      const m = sorted[i]!;
      if (m.seq <= cursor) take.push(m); // stored already (its rows are skipped by the marks)
      else if (m.seq === cursor + 1) {
        take.push(m);
        cursor = m.seq;
      } else {
        // A gap: messages acknowledged before (stored, then removed from the stream) are no gap.
        const info = await this.o.bus.jsm.consumers.info(Streams[stream].name, spec.durable);
        const floor = Math.max(info.ack_floor.stream_seq, (await this.o.bus.jsm.streams.info(Streams[stream].name)).state.first_seq - 1);
        if (floor >= m.seq - 1) {
          take.push(m);
          cursor = m.seq;
        } else break;
      }
    }
    this.cursors.set(stream, cursor);
    return { take, later: sorted.slice(i) };
  }

  private async handle(spec: ConsumerSpec, all: JsMsg[]): Promise<void | { nak: JsMsg[]; dead: DeadMessage[] }> {
    this.marks ??= await highWaterMarks(this.o.engine);
    const marks = this.marks;
    const { take: msgs, later } = await this.inOrder(spec, all);
    if (later.length > 0) this.o.log.debug({ stream: spec.stream, waitingFor: (this.cursors.get(spec.stream) ?? 0) + 1, held: later.length }, 'sink: gap in the stream; holding later messages');
    if (msgs.length === 0) return { nak: later, dead: [] };
    const { engine, metrics } = this.o;
    const stream = spec.stream as SourceStream;
    // One batch of CSV rows per table this stream feeds, written straight from the bundles.
    const batches = new Map<StoreTable, InsertBatch>();
    // A replayed dead letter (src/bus/replay.ts) of a whole message may have had some of its
    // tables stored by its first attempt, under the original's sequence: it adds the rest only.
    const replays = new Map<number, number[]>();
    for (const m of msgs) {
      const originals = replayedWholeOriginals(m, stream);
      if (originals.length > 0) replays.set(m.seq, originals);
    }
    let held = new Map<number, Set<StoreTable>>();
    if (replays.size > 0) {
      try {
        held = await tablesHoldingMessages(engine, stream, [...new Set([...replays.values()].flat())]);
      } catch (err) {
        throw new TapflowError('TF_STORE_FAILED', (err as Error).message, { cause: err });
      }
    }
    // A message made from a replay (src/bus/replay.ts) may repeat rows its original gave, long
    // after the duplicate window: its rows go in only where no row of the same key is stored.
    let guard: RowKeyGuard | undefined;
    const derived = new Set(msgs.filter((m) => isReplayDerived(m)));
    if (derived.size > 0) {
      const keys = new Map<StoreTable, Set<string>>();
      for (const m of derived) {
        try {
          for (const [t, ks] of messageRowKeys(stream, m.data, m.seq)) {
            const set = keys.get(t) ?? new Set<string>();
            for (const k of ks) set.add(k);
            keys.set(t, set);
          }
        } catch {
          // Unreadable: dead-lettered below.
        }
      }
      try {
        guard = new RowKeyGuard(await storedRowKeys(engine, (t) => t, keys));
      } catch (err) {
        throw new TapflowError('TF_STORE_FAILED', (err as Error).message, { cause: err });
      }
    }
    const above = (t: StoreTable, m: JsMsg) => m.seq > (marks[markKey(t, stream)] ?? 0) && !(replays.get(m.seq) ?? []).some((seq) => held.get(seq)?.has(t));
    const batch = (t: StoreTable) => {
      let b = batches.get(t);
      if (!b) batches.set(t, (b = new InsertBatch()));
      return b;
    };
    const ingestTimes: number[] = [];
    const dead: DeadMessage[] = [];
    /**
     * Writes one part of a bundle; a part that cannot be stored is dead-lettered alone, its
     * half-written rows taken back.
     */
    const eachPart = (m: JsMsg, kind: string, parts: Uint8Array[], write: (raw: Uint8Array) => void) =>
      parts.forEach((raw, i) => {
        const marksBefore = [...batches].map(([t, b]) => [t, b.mark()] as const);
        try {
          write(raw);
        } catch (err) {
          for (const [t, b] of batches) {
            const before = marksBefore.find(([mt]) => mt === t)?.[1];
            b.rollback(before ?? { bytes: 0, rows: 0 });
          }
          dead.push({ msg: m, error: messageFailure(err, 'process'), part: { name: `${kind}-${i}`, data: raw } });
        }
      });
    // Writing a large batch gives the thread's other work (ingest's answers) a turn now and then.
    const pace = pacer();
    for (const m of msgs) {
      await pace();
      try {
        writeMessageRows(stream, m.data, m.seq, {
          wants: (t) => above(t, m),
          rows: (t, _fact, key) => (guard && !guard.admit(t, key, derived.has(m)) ? undefined : batch(t)),
          eachPart: (kind, parts, write) => eachPart(m, kind, parts, write),
          onDecision: (d) => ingestTimes.push(d.ingestTime),
        });
      } catch (err) {
        dead.push({ msg: m, error: messageFailure(err, 'decode') });
      }
    }
    const first = msgs[0]!.seq;
    const last = msgs[msgs.length - 1]!.seq;
    const done = { nak: later, dead };
    try {
      for (const [table, b] of batches) {
        if (b.rows === 0) continue;
        // The token drops a retry of an insert that did commit although it reported an error.
        await engine.insert(table, b, { dedupToken: dedupToken(table, stream, first, last, b.rows) });
        marks[markKey(table, stream)] = Math.max(marks[markKey(table, stream)] ?? 0, last);
        metrics.storedRows.inc({ table }, b.rows);
        // The heartbeat: moves only when rows were stored (TapflowSinkNotStoring).
        metrics.sinkLastStored.set({ table }, Date.now() / 1000);
      }
      this.lastInsertOk = true;
    } catch (err) {
      this.lastInsertOk = false;
      // An insert may have committed before failing: read the marks again before the retry.
      this.marks = undefined;
      this.cursors.clear();
      throw new TapflowError('TF_STORE_FAILED', (err as Error).message, { cause: err });
    }
    const now = Date.now();
    for (const t of ingestTimes) metrics.tapToStore.observe(Math.max(0, now - t) / 1000);
    return done;
  }
}

/**
 * Opens ClickHouse (embedded unless CLICKHOUSE_URL), applies migrations and the retention
 * (TAPFLOW_STORE_RETENTION_DAYS), starts the sink.
 */
export async function createSinkRole(ctx: AppContext): Promise<Role> {
  const { cfg, log } = ctx;
  await waitForEmbeddedStore(cfg, (pid, dir) => log.info({ pid, dir }, 'sink: another process (an active sink) has the embedded store open; waiting as its standby'));
  const engine = await openStore(cfg);
  const where = cfg.CLICKHOUSE_URL ? redactUrl(cfg.CLICKHOUSE_URL) : join(cfg.TAPFLOW_DATA_DIR, 'chdb');
  // Embedded: the migrations and retention applied here; on a server only checked (the admin step's).
  const { applied, retention } = await prepareSinkStore(engine, cfg.TAPFLOW_STORE_RETENTION_DAYS, where).catch(async (err: unknown) => {
    await engine.close();
    throw err;
  });
  if (applied.length > 0) log.info({ applied }, 'ClickHouse migrations applied');
  if (retention.length > 0) log.info({ days: cfg.TAPFLOW_STORE_RETENTION_DAYS, changes: retention }, 'ClickHouse retention changed (TAPFLOW_STORE_RETENTION_DAYS)');
  log.info({ engine: engine.kind, url: where }, 'ClickHouse ready');
  const sink = new SinkRole({
    bus: ctx.bus,
    engine,
    worker: workerOptions(ctx, 'sink'),
    maxMessages: cfg.TAPFLOW_CONSUMER_BATCH,
    flushMs: cfg.TAPFLOW_SINK_FLUSH_MS,
    metrics: ctx.metrics,
    log,
    storeGauges: { intervalMs: cfg.TAPFLOW_STORE_CHECK_INTERVAL_MS, silentMinutes: cfg.TAPFLOW_TERMINAL_SILENT_MINUTES },
  });
  await sink.start();
  ctx.engine = engine;
  // Reports read through the running process (the embedded engine allows one process per data dir).
  const epochMs = (q: URLSearchParams, name: string): number | undefined => {
    const v = q.get(name);
    if (v === null) return undefined;
    if (!/^\d{1,15}$/.test(v)) throw new Error(`${name}: expected epoch milliseconds, got ${v}`);
    return Number(v);
  };
  const day = (q: URLSearchParams, name: string): string | undefined => {
    const v = q.get(name);
    if (v !== null && !/^\d{4}-\d{2}-\d{2}$/.test(v)) throw new Error(`${name}: expected YYYY-MM-DD, got ${v}`);
    return v ?? undefined;
  };
  ctx.endpoints.set('/summary', async (q) => {
    const [sinceMs, fromMs, toMs] = [epochMs(q, 'since'), epochMs(q, 'from'), epochMs(q, 'to')];
    return summary(engine, { ...(sinceMs !== undefined && { sinceMs }), ...(fromMs !== undefined && { fromMs }), ...(toMs !== undefined && { toMs }) });
  });
  ctx.endpoints.set('/report-views', async (q) => {
    const [fromMs, toMs] = [epochMs(q, 'from'), epochMs(q, 'to')];
    if (fromMs === undefined || toMs === undefined) throw new Error('from and to (epoch ms) are required');
    const b = /^(\d{1,4}) (minute|hour|day)$/.exec(q.get('bucket') ?? '1 hour');
    if (!b) throw new Error(`bucket: expected "<n> minute|hour|day", got ${q.get('bucket')}`);
    const names = (q.get('views') ?? REPORT_VIEW_NAMES.join(',')).split(',');
    const unknown = names.filter((n) => !(REPORT_VIEW_NAMES as readonly string[]).includes(n));
    if (unknown.length > 0) throw new Error(`views: unknown ${unknown.join(', ')}`);
    return reportViews(engine, { fromMs, toMs, interval: { count: Number(b[1]), unit: b[2] as 'hour' }, views: names as ReportViewName[] });
  });
  ctx.endpoints.set('/ledger-balance', () => ledgerBalance(engine));
  ctx.endpoints.set('/entries', (q) => {
    const [fromMs, toMs] = [epochMs(q, 'from'), epochMs(q, 'to')];
    return venueEntries(engine, fromMs !== undefined && toMs !== undefined ? { fromMs, toMs } : (day(q, 'day') ?? todayInShanghai()));
  });
  ctx.endpoints.set('/clearing', (q) => {
    const first = day(q, 'day') ?? todayInShanghai();
    return clearingReport(engine, first, { lastDay: day(q, 'lastDay') ?? first });
  });
  return {
    name: 'sink',
    ready: () => sink.ready(),
    stop: async () => {
      await sink.stop();
      await engine.close();
    },
  };
}
