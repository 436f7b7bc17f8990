/**
 * Rebuilding a range of the store from the ARCHIVE stream (`tapflow store rebuild`, README
 * "Rebuilding a store range"): the rows of the chosen tables whose device time (decisions,
 * risk_flags) or business day (settlements, ledger, claims) is in [from, to) are deleted and made again from the archived messages, with the sink's own row
 * mapping (message-rows.ts), so a rebuilt row equals the original (stored_time aside: it is the
 * time of the rebuild's insert).
 *
 * 1. Marks: per table and source stream, the last message the sink has stored — the greater of
 *    the table's max(stream_seq) and the sink consumer's ack floor (a wiped range may have held
 *    the table's last rows; what the sink acknowledged it had stored). Messages above a mark are
 *    the sink's to store: the rebuild neither deletes nor writes their rows, so it can run while
 *    the sink does (on a ClickHouse server; the embedded engine's data dir is one process's).
 * 2. Scan: every archived message at or below its marks gives its rows in the range (the sink's
 *    mapping), written into staging tables `rebuild_<table>` (same structure, no views).
 * 3. Check: every message that rows of the range in the table came from must be in the archive;
 *    otherwise (it aged out of it, TAPFLOW_ARCHIVE_MAX_AGE_S) the rebuild stops before changing
 *    anything: it would lose rows.
 * 4. Apply (not with dry-run): per table, delete the range (rows at or below the marks), delete
 *    the range of the aggregates a materialized view fills from the table, and insert the staged
 *    rows: the views count them again, once. The range must be whole business days (midnight
 *    Asia/Shanghai), so every aggregate bucket (minute, hour, business day) is wholly inside or
 *    outside it.
 *
 * No row is doubled: the range is deleted before the staged rows go in, each archived message
 * gives its rows once (the archive holds it once: its duplicate window), and the staged insert
 * carries no deduplication token of the sink's.
 */
import type { Bus } from '../bus/connection.js';
import { ARCHIVE_STREAM, readArchive } from '../bus/archive.js';
import { isReplayDerived, replayedWholeOriginals } from '../bus/replay.js';
import { Streams } from '../bus/subjects.js';
import { InsertBatch, highWaterMarks, markKey, TABLE_SOURCE_STREAMS, type ClickHouseEngine, type SourceStream, type StoreTable } from '../store/mod.js';
import { messageRowKeys, RowKeyGuard, storedRowKeys, writeMessageRows } from './message-rows.js';

/** The tables a rebuild can make again: those the sink fills. */
export const REBUILD_TABLES = Object.keys(TABLE_SOURCE_STREAMS) as StoreTable[];

/** The sink's consumer of each stream (src/bus/topology.ts). */
const SINK_CONSUMER: Record<SourceStream, string> = { DECISIONS: 'sink-decisions', SETTLEMENTS: 'sink-settlements', RISK: 'sink-risk' };

/**
 * The aggregates that materialized views fill from each table, and their bucket column
 * (migrations 0002, 0004, 0006). A rebuild refuses to run when the store has a view it does not
 * know. Kind `max`: an aggregate of maxima (a terminal's last tap), which rows inserted again
 * leave as it was: nothing of it is deleted.
 */
export const TABLE_AGGREGATES: Record<StoreTable, { view: string; table: string; bucket: string; kind: 'time' | 'day' | 'max' }[]> = {
  decisions: [
    { view: 'venue_entries_per_hour_mv', table: 'venue_entries_per_hour', bucket: 'hour', kind: 'time' },
    { view: 'venue_decisions_per_5min_mv', table: 'venue_decisions_per_5min', bucket: 'five_min', kind: 'time' },
    { view: 'terminal_last_seen_mv', table: 'terminal_last_seen', bucket: 'last_seen', kind: 'max' },
  ],
  settlements: [],
  ledger: [{ view: 'ledger_per_day_mv', table: 'ledger_per_day', bucket: 'business_day', kind: 'day' }],
  claims: [],
  risk_flags: [{ view: 'risk_flags_per_minute_mv', table: 'risk_flags_per_minute', bucket: 'minute', kind: 'time' }],
};

const DAY_MS = 86_400_000;
const SHANGHAI_MS = 8 * 3_600_000;

/** The business day (YYYY-MM-DD, Asia/Shanghai) that starts at `ms`. */
const dayOf = (ms: number) => new Date(ms + SHANGHAI_MS).toISOString().slice(0, 10);

/** Why a range cannot be rebuilt, or undefined. */
export function rangeProblem(fromMs: number, toMs: number): string | undefined {
  if (!Number.isSafeInteger(fromMs) || !Number.isSafeInteger(toMs)) return 'from and to must be instants';
  if (toMs <= fromMs) return `--to (${new Date(toMs).toISOString()}) must be after --from (${new Date(fromMs).toISOString()})`;
  for (const [name, ms] of [['--from', fromMs], ['--to', toMs]] as const) {
    if ((ms + SHANGHAI_MS) % DAY_MS !== 0) {
      return `${name} ${new Date(ms).toISOString()} is not midnight in Asia/Shanghai: a rebuild covers whole business days (e.g. ${name} ${dayOf(ms - ((ms + SHANGHAI_MS) % DAY_MS))}), so the daily, hourly and minute aggregates are rebuilt whole`;
    }
  }
  return undefined;
}

export interface RebuildOptions {
  tables: StoreTable[];
  fromMs: number;
  toMs: number;
  dryRun: boolean;
  /** Called now and then while the archive is read. */
  onProgress?: (p: { messages: number; rows: number }) => void;
}

export interface TableRebuild {
  table: StoreTable;
  /** Rows in the range before (at or below the marks). */
  before: number;
  /** Rows made from the archive. */
  rebuilt: number;
  /** Rows in the range after (at or below the marks); equals `rebuilt` when applied. */
  after?: number;
}

export interface RebuildResult {
  applied: boolean;
  /** Archived messages read, and those of them at or below the marks used. */
  archived: number;
  used: number;
  /** Archived messages without a readable origin (not tapflow's). */
  skipped: number;
  marks: Record<string, number>;
  tables: TableRebuild[];
}

/** The rebuild could not run, or would lose rows: nothing was changed. */
export class RebuildRefused extends Error {
  override readonly name = 'RebuildRefused';
}

const staging = (t: StoreTable) => `rebuild_${t}`;

/**
 * The tables whose range is by business day (the money: a journey's fare belongs to the business
 * day the settler gave it, which can differ from its exit tap's day); the others by device time.
 */
export const BY_BUSINESS_DAY: ReadonlySet<StoreTable> = new Set(['settlements', 'ledger', 'claims']);

/** The SQL condition of the rows of `t` in the range and at or below the marks. */
function rangeCondition(t: StoreTable, o: RebuildOptions, marks: Record<string, number>): string {
  const inRange = BY_BUSINESS_DAY.has(t)
    ? `business_day >= toDate('${dayOf(o.fromMs)}') AND business_day < toDate('${dayOf(o.toMs)}')`
    : `toUnixTimestamp64Milli(device_time) >= ${o.fromMs} AND toUnixTimestamp64Milli(device_time) < ${o.toMs}`;
  const streams = TABLE_SOURCE_STREAMS[t] as readonly SourceStream[];
  const below =
    streams.length === 1
      ? `stream_seq <= ${marks[markKey(t, streams[0]!)] ?? 0}`
      : `(${streams.map((s) => `(source_stream = '${s}' AND stream_seq <= ${marks[markKey(t, s)] ?? 0})`).join(' OR ')})`;
  return `${inRange} AND ${below}`;
}

const count = async (engine: ClickHouseEngine, sql: string) => Number((await engine.query<{ n: number | string }>(sql))[0]?.n ?? 0);

/** Refuses when a materialized view reads a table to rebuild and is not one the rebuild knows. */
async function checkViews(engine: ClickHouseEngine, tables: StoreTable[]): Promise<void> {
  const views = await engine.query<{ name: string; q: string }>(`SELECT name, create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND engine = 'MaterializedView'`);
  for (const v of views) {
    for (const t of tables) {
      if (!new RegExp(`\\bFROM\\s+(\\S+\\.)?\`?${t}\`?(\\s|$)`, 'i').test(v.q)) continue;
      if (!TABLE_AGGREGATES[t].some((a) => a.view === v.name)) {
        throw new RebuildRefused(`materialized view ${v.name} reads ${t} and the rebuild does not know how to rebuild what it fills: it would count the rebuilt rows twice. Add it to TABLE_AGGREGATES (src/sink/rebuild.ts).`);
      }
    }
  }
}

export async function rebuildRange(bus: Bus, engine: ClickHouseEngine, o: RebuildOptions): Promise<RebuildResult> {
  const problem = rangeProblem(o.fromMs, o.toMs);
  if (problem) throw new RebuildRefused(problem);
  if (o.tables.length === 0) throw new RebuildRefused('no table to rebuild');
  await checkViews(engine, o.tables);
  await bus.jsm.streams.info(ARCHIVE_STREAM).catch(() => {
    throw new RebuildRefused(`there is no ${ARCHIVE_STREAM} stream on this NATS server: the archive is made by the topology (any tapflow role at start); a range can be rebuilt only from messages archived since`);
  });

  // 1. Marks.
  const marks: Record<string, number> = { ...(await highWaterMarks(engine)) };
  for (const s of Object.keys(SINK_CONSUMER) as SourceStream[]) {
    const info = await bus.jsm.consumers.info(Streams[s].name, SINK_CONSUMER[s]).catch(() => undefined);
    const floor = info?.ack_floor.stream_seq ?? 0;
    for (const t of REBUILD_TABLES) if ((TABLE_SOURCE_STREAMS[t] as readonly string[]).includes(s)) marks[markKey(t, s)] = Math.max(marks[markKey(t, s)] ?? 0, floor);
  }
  const wanted = new Set(o.tables);
  const fromDay = dayOf(o.fromMs);
  const toDay = dayOf(o.toMs);

  // 2. Scan the archive into the staging tables.
  for (const t of o.tables) {
    await engine.exec(`DROP TABLE IF EXISTS ${staging(t)}`);
    await engine.exec(`CREATE TABLE ${staging(t)} AS ${t}`);
  }
  const result: RebuildResult = { applied: false, archived: 0, used: 0, skipped: 0, marks, tables: [] };
  const rebuilt = new Map<StoreTable, number>(o.tables.map((t) => [t, 0]));
  /** Per stream, the sequences of the messages the archive holds (at or below a mark). */
  const archivedSeqs = new Map<SourceStream, Set<number>>();
  /** Per stream and message, the tables it gave rows to (a replayed dead letter adds the rest only, as in the sink). */
  const wrote = new Map<string, Set<StoreTable>>();
  const batches = new Map<StoreTable, InsertBatch>();
  let chunk = 0;
  const runId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const flush = async (all: boolean) => {
    for (const [t, b] of batches) {
      if (b.rows === 0 || (!all && b.rows < 50_000)) continue;
      await engine.insert(staging(t), b, { dedupToken: `rebuild:${runId}:${t}:${chunk++}` });
      rebuilt.set(t, rebuilt.get(t)! + b.rows);
      batches.delete(t);
    }
  };
  const skipped = { count: 0 };
  try {
    for await (const a of readArchive(bus, skipped)) {
      result.archived++;
      const { stream, seq } = a.origin;
      const tables = o.tables.filter((t) => (TABLE_SOURCE_STREAMS[t] as readonly string[]).includes(stream) && seq <= (marks[markKey(t, stream)] ?? 0));
      if (tables.length === 0) continue;
      result.used++;
      let seqs = archivedSeqs.get(stream);
      if (!seqs) archivedSeqs.set(stream, (seqs = new Set()));
      seqs.add(seq);
      const originals = replayedWholeOriginals(a.msg, stream);
      const already = new Set(originals.flatMap((s) => [...(wrote.get(`${stream}:${s}`) ?? [])]));
      const mine = new Set<StoreTable>();
      // Made from a replay: only rows whose key the rebuilt range does not hold yet, as in the sink.
      let guard: RowKeyGuard | undefined;
      if (isReplayDerived(a.msg)) {
        await flush(true);
        const keys = new Map([...messageRowKeys(stream, a.msg.data, seq)].filter(([t]) => wanted.has(t)));
        guard = new RowKeyGuard(await storedRowKeys(engine, staging, keys));
      }
      writeMessageRows(stream, a.msg.data, seq, {
        wants: (t) => tables.includes(t) && wanted.has(t) && !already.has(t),
        rows: (t, fact, key) => {
          if (BY_BUSINESS_DAY.has(t) ? !(fact.businessDay! >= fromDay && fact.businessDay! < toDay) : fact.deviceTime < o.fromMs || fact.deviceTime >= o.toMs) return undefined;
          if (guard && !guard.admit(t, key, true)) return undefined;
          mine.add(t);
          let b = batches.get(t);
          if (!b) batches.set(t, (b = new InsertBatch()));
          return b;
        },
        eachPart: (_kind, parts, write) => parts.forEach((raw) => write(raw)),
      });
      if (mine.size > 0) wrote.set(`${stream}:${seq}`, mine);
      if (result.archived % 1000 === 0) {
        await flush(false);
        o.onProgress?.({ messages: result.archived, rows: [...rebuilt.values()].reduce((x, y) => x + y, 0) + [...batches.values()].reduce((x, b) => x + b.rows, 0) });
      }
    }
    await flush(true);
    result.skipped = skipped.count;

    // 3. Every message the range's rows came from must be in the archive.
    for (const t of o.tables) {
      for (const s of TABLE_SOURCE_STREAMS[t] as readonly SourceStream[]) {
        const cond = `${rangeCondition(t, o, marks)}${TABLE_SOURCE_STREAMS[t].length > 1 ? ` AND source_stream = '${s}'` : ''}`;
        const seqsInTable = (await engine.query<{ s: number }>(`SELECT DISTINCT stream_seq AS s FROM ${t} WHERE ${cond}`)).map((r) => Number(r.s));
        const held = archivedSeqs.get(s) ?? new Set<number>();
        const missing = seqsInTable.filter((x) => !held.has(x));
        if (missing.length > 0) {
          throw new RebuildRefused(
            `${t}: rows of the range came from ${missing.length} message(s) of ${s} the archive no longer holds (first: ${Math.min(...missing)}): rebuilding would lose them. Nothing was changed. The archive keeps TAPFLOW_ARCHIVE_MAX_AGE_S and TAPFLOW_ARCHIVE_MAX_BYTES.`,
          );
        }
      }
      result.tables.push({ table: t, before: await count(engine, `SELECT count() AS n FROM ${t} WHERE ${rangeCondition(t, o, marks)}`), rebuilt: rebuilt.get(t)! });
    }

    // 4. Apply.
    if (!o.dryRun) {
      for (const r of result.tables) {
        const t = r.table;
        await engine.exec(`ALTER TABLE ${t} DELETE WHERE ${rangeCondition(t, o, marks)} SETTINGS mutations_sync = 2`);
        for (const agg of TABLE_AGGREGATES[t]) {
          if (agg.kind === 'max') continue;
          const range = agg.kind === 'day' ? `${agg.bucket} >= toDate('${dayOf(o.fromMs)}') AND ${agg.bucket} < toDate('${dayOf(o.toMs)}')` : `toUnixTimestamp(${agg.bucket}) >= ${o.fromMs / 1000} AND toUnixTimestamp(${agg.bucket}) < ${o.toMs / 1000}`;
          await engine.exec(`ALTER TABLE ${agg.table} DELETE WHERE ${range} SETTINGS mutations_sync = 2`);
        }
        await engine.exec(`INSERT INTO ${t} SELECT * FROM ${staging(t)} SETTINGS insert_deduplicate = 0`);
        r.after = await count(engine, `SELECT count() AS n FROM ${t} WHERE ${rangeCondition(t, o, marks)}`);
      }
      result.applied = true;
    }
  } finally {
    for (const t of o.tables) await engine.exec(`DROP TABLE IF EXISTS ${staging(t)}`).catch(() => undefined);
  }
  return result;
}
