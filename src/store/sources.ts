/**
 * Which JetStream streams feed which table, and the names the sink uses for them: the keys of
 * its high-water marks and its insert deduplication tokens.
 *
 * Every stored row carries `stream_seq`, the sequence of the message it came from in its source
 * stream. A table fed by one stream has one high-water mark; `risk_flags` is fed by three —
 * flags inside the validators' decision bundles (DECISIONS), inside the settlers' settlement
 * bundles (SETTLEMENTS) and alone (RISK) — and records which one in its `source_stream` column
 * (migration 0003), so it has one mark per stream. One message (a bundle) gives many rows of a
 * table, all with its stream_seq: a mark is the last message stored, not the last row.
 */

/** The streams that feed each table. */
export const TABLE_SOURCE_STREAMS = {
  decisions: ['DECISIONS'],
  settlements: ['SETTLEMENTS'],
  ledger: ['SETTLEMENTS'],
  claims: ['SETTLEMENTS'],
  risk_flags: ['DECISIONS', 'SETTLEMENTS', 'RISK'],
} as const;

export type StoreTable = keyof typeof TABLE_SOURCE_STREAMS;
/** A stream that feeds a table. */
export type SourceStream = (typeof TABLE_SOURCE_STREAMS)[StoreTable][number];
/** `"<table>:<stream>"` for every stream that feeds a table, e.g. `"risk_flags:DECISIONS"`. */
export type MarkKey = { [T in StoreTable]: `${T}:${(typeof TABLE_SOURCE_STREAMS)[T][number]}` }[StoreTable];

/** The stream of a `risk_flags` row whose source_stream was not given (the column's DEFAULT). */
export const DEFAULT_RISK_FLAG_STREAM = 'RISK' satisfies SourceStream;

/** Every mark key, tables in the order above. */
export const MARK_KEYS: readonly MarkKey[] = (Object.keys(TABLE_SOURCE_STREAMS) as StoreTable[]).flatMap((t) =>
  TABLE_SOURCE_STREAMS[t].map((s) => `${t}:${s}` as MarkKey),
);

/** Whether `stream` feeds `table`. */
export function feeds(table: StoreTable, stream: string): stream is SourceStream {
  return (TABLE_SOURCE_STREAMS[table] as readonly string[]).includes(stream);
}

/** The key of a table's high-water mark in a stream: `markKey('risk_flags', 'RISK')` is `"risk_flags:RISK"`. */
export function markKey(table: StoreTable, stream: SourceStream): MarkKey {
  if (!feeds(table, stream)) throw new RangeError(`stream ${stream} does not feed table ${table} (it is fed by ${TABLE_SOURCE_STREAMS[table].join(', ')})`);
  return `${table}:${stream}` as MarkKey;
}

/**
 * The insert_deduplication_token of the rows of `table` taken from the messages `firstSeq` to
 * `lastSeq` of `stream`: `"<table>:<stream>:<first>-<last>:<rows>"`. The stream is part of it
 * because three streams feed risk_flags and their sequences overlap: without it, flags from
 * DECISIONS 100–200 would be dropped as a repeat of flags from RISK 100–200. ClickHouse drops a
 * repeat of a token even when its rows differ, so a token must name exactly the rows sent: the
 * sink sends, for a range of messages, every row of theirs above the mark and nothing else.
 */
export function dedupToken(table: StoreTable, stream: SourceStream, firstSeq: number, lastSeq: number, rows: number): string {
  for (const [what, n] of [['firstSeq', firstSeq], ['lastSeq', lastSeq], ['rows', rows]] as const) {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
  }
  if (lastSeq < firstSeq) throw new RangeError(`lastSeq ${lastSeq} is below firstSeq ${firstSeq}`);
  return `${markKey(table, stream)}:${firstSeq}-${lastSeq}:${rows}`;
}
