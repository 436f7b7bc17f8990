/**
 * Read queries for the CLI, the sink and the tests. They read the base tables (exact, whatever
 * the state of background merges); dashboards read the materialized aggregates of migration 0002.
 * Every number is a JS number (fen, counts, sequences are far below 2^53).
 */
import { Regions, type Region } from '../domain/types.js';
import { TapflowError } from '../domain/reasons.js';
import { shanghaiTime } from '../domain/settle/time.js';
import type { ClickHouseEngine } from './engine.js';
import { MARK_KEYS, type MarkKey, type SourceStream, type StoreTable, TABLE_SOURCE_STREAMS, feeds, markKey } from './sources.js';

/**
 * The sink's high-water marks: for every table and every stream that feeds it, the last message
 * of that stream whose rows the table holds (max(stream_seq) of its rows from that stream), 0
 * when it holds none. Keyed by {@link markKey}: `"decisions:DECISIONS"`, `"settlements:SETTLEMENTS"`,
 * `"ledger:SETTLEMENTS"`, `"claims:SETTLEMENTS"`, `"risk_flags:DECISIONS"`,
 * `"risk_flags:SETTLEMENTS"`, `"risk_flags:RISK"`.
 *
 * The sink consumes each stream in order and skips a redelivered message at or below the mark
 * of each table it feeds, per table: a message whose settlement row was stored but whose ledger
 * rows were not gets only its ledger rows. Marks are per message, not per row: a bundle's rows
 * share its stream_seq, and are inserted together in one INSERT per table.
 *
 * Cost: one scan of the stream_seq column per table (and source_stream of risk_flags) — meant
 * for start-up, not per batch.
 */
export async function highWaterMarks(engine: ClickHouseEngine): Promise<HighWaterMarks> {
  const tables = Object.keys(TABLE_SOURCE_STREAMS) as StoreTable[];
  const sql = tables
    .map((t) =>
      TABLE_SOURCE_STREAMS[t].length > 1
        ? `SELECT '${t}' AS table_name, toString(source_stream) AS stream, max(stream_seq) AS hwm FROM ${t} GROUP BY stream`
        : `SELECT '${t}' AS table_name, '${TABLE_SOURCE_STREAMS[t][0]}' AS stream, max(stream_seq) AS hwm FROM ${t}`,
    )
    .join('\nUNION ALL\n');
  const rows = await engine.query<{ table_name: StoreTable; stream: string; hwm: number | string }>(sql);
  const marks = Object.fromEntries(MARK_KEYS.map((k) => [k, 0])) as Record<MarkKey, number>;
  for (const r of rows) {
    if (!feeds(r.table_name, r.stream)) {
      throw new TapflowError('TF_STORE_FAILED', `${r.table_name} holds rows from stream ${JSON.stringify(r.stream)}, which does not feed it`);
    }
    const hwm = Number(r.hwm);
    if (!Number.isSafeInteger(hwm)) throw new TapflowError('TF_STORE_FAILED', `${r.table_name} stream_seq ${r.hwm} is beyond 2^53`);
    marks[markKey(r.table_name, r.stream)] = hwm;
  }
  return marks;
}

/** High-water marks by {@link MarkKey}. */
export type HighWaterMarks = Record<MarkKey, number>;

/**
 * Which of the tables `stream` feeds hold rows of the messages `seqs` of that stream, by sequence.
 * For a replayed dead letter (src/bus/replay.ts): a message whose first attempt stored some of
 * its tables before the others failed must add only the rows still missing. One indexed-column
 * scan per table; replays are rare.
 */
export async function tablesHoldingMessages(engine: ClickHouseEngine, stream: SourceStream, seqs: readonly number[]): Promise<Map<number, Set<StoreTable>>> {
  const held = new Map<number, Set<StoreTable>>();
  if (seqs.length === 0) return held;
  for (const s of seqs) if (!Number.isSafeInteger(s) || s < 0) throw new RangeError(`stream sequence ${s} is not a non-negative integer`);
  const list = seqs.join(', ');
  const sql = (Object.keys(TABLE_SOURCE_STREAMS) as StoreTable[])
    .filter((t) => feeds(t, stream))
    .map((t) => `SELECT DISTINCT '${t}' AS table_name, stream_seq FROM ${t} WHERE stream_seq IN (${list})${TABLE_SOURCE_STREAMS[t].length > 1 ? ` AND source_stream = '${stream}'` : ''}`)
    .join('\nUNION ALL\n');
  for (const r of await engine.query<{ table_name: StoreTable; stream_seq: number | string }>(sql)) {
    const seq = Number(r.stream_seq);
    let tables = held.get(seq);
    if (!tables) held.set(seq, (tables = new Set()));
    tables.add(r.table_name);
  }
  return held;
}

/** Which facts a summary covers. */
export interface SummaryFilter {
  /**
   * Only events ingested at or after this time (epoch ms): decisions and settlements by their
   * ingest time (an adjustment carries the ingest time of the tap whose charge it corrects),
   * ledger entries by their settlement, risk flags by when they were raised. One run of
   * `tapflow start --demo` is the events ingested since it started. @default every event
   */
  sinceMs?: number;
  /**
   * Only events whose device (event) time is at or after this time (epoch ms): decisions,
   * settlements, ledger entries and risk flags by their device time. @default no lower bound
   */
  fromMs?: number;
  /** Only events whose device time is before this time (epoch ms, excluded). @default no upper bound */
  toMs?: number;
}

/** One part of a region's figure: settlements of one scene and kind. */
export interface RegionPart {
  terminalRegion: string;
  /** RAIL, BUS (transit fares) or CULTURE (entries). */
  scene: string;
  /** FARE, ADJUSTMENT, ENTRY, NO_CHARGE, … */
  kind: string;
  settlements: number;
  amountFen: number;
}

export interface StoreSummary {
  /** The filter applied, echoed (absent: everything stored). */
  sinceMs?: number;
  fromMs?: number;
  toMs?: number;
  /** All decided taps. */
  taps: number;
  /** Taps per verdict, e.g. { ACCEPTED: 120, REJECTED: 3 }. */
  byVerdict: Record<string, number>;
  /** Reasons of rejected taps, most frequent first (at most 10). */
  topReasons: { reason: string; taps: number }[];
  /** Transit settlements (RAIL and BUS, adjustments included) by terminal region and network. */
  fares: { terminalRegion: string; network: string; settlements: number; amountFen: number }[];
  /**
   * Transit and culture settlements by terminal region, scene and kind: what each region's fare
   * total is made of (fares, adjustments) and its culture entries.
   */
  regionParts: RegionPart[];
  /** All settlements by kind (FARE, ENTRY, MEDICAL, ADJUSTMENT, …). */
  settlementsByKind: { kind: string; settlements: number; amountFen: number }[];
  settlements: number;
  ledger: { entries: number; debitFen: number; creditFen: number };
  /** Risk flags by rule and severity, most frequent first. */
  riskFlags: { ruleId: string; severity: string; flags: number }[];
}

/** WHERE conditions of a filter, per table (ClickHouse query parameters: {since:Int64}, {from:Int64}, {to:Int64}). */
function summaryConditions(f: SummaryFilter): { decisions: string; settlements: string; ledger: string; riskFlags: string; params: Record<string, unknown> } {
  const decisions: string[] = [];
  const settlements: string[] = [];
  const ledger: string[] = [];
  const riskFlags: string[] = [];
  const params: Record<string, unknown> = {};
  const bound = (name: 'since' | 'from' | 'to', v: number | undefined) => {
    if (v === undefined) return false;
    if (!Number.isSafeInteger(v)) throw new RangeError(`${name}Ms must be epoch milliseconds, got ${v}`);
    params[name] = v;
    return true;
  };
  if (bound('since', f.sinceMs)) {
    const since = 'fromUnixTimestamp64Milli({since:Int64})';
    decisions.push(`ingest_time >= ${since}`);
    settlements.push(`ingest_time >= ${since}`);
    ledger.push(`settlement_id IN (SELECT settlement_id FROM settlements WHERE ingest_time >= ${since})`);
    riskFlags.push(`flag_time >= ${since}`);
  }
  for (const [name, op] of [['from', '>='], ['to', '<']] as const) {
    if (!bound(name, name === 'from' ? f.fromMs : f.toMs)) continue;
    const c = `device_time ${op} fromUnixTimestamp64Milli({${name}:Int64})`;
    for (const list of [decisions, settlements, ledger, riskFlags]) list.push(c);
  }
  const all = (list: string[]) => (list.length === 0 ? '1' : list.join(' AND '));
  return { decisions: all(decisions), settlements: all(settlements), ledger: all(ledger), riskFlags: all(riskFlags), params };
}

/** Transit and culture settlements by region, scene and kind (see {@link StoreSummary.regionParts}). */
export async function regionParts(engine: ClickHouseEngine, filter: SummaryFilter = {}): Promise<RegionPart[]> {
  const w = summaryConditions(filter);
  return engine.query<RegionPart>(
    `SELECT terminal_region AS terminalRegion, scene, kind, count() AS settlements, sum(amount_fen) AS amountFen
     FROM settlements WHERE scene IN ('RAIL', 'BUS', 'CULTURE') AND ${w.settlements}
     GROUP BY terminalRegion, scene, kind ORDER BY terminalRegion, scene, kind`,
    w.params,
  );
}

/** The main aggregates, for `tapflow` commands and tests; all stored events, or those of the filter. */
export async function summary(engine: ClickHouseEngine, filter: SummaryFilter = {}): Promise<StoreSummary> {
  const w = summaryConditions(filter);
  const [verdicts, reasons, fares, parts, kinds, ledger, flags] = await Promise.all([
    engine.query<{ verdict: string; taps: number }>(`SELECT verdict, count() AS taps FROM decisions WHERE ${w.decisions} GROUP BY verdict ORDER BY verdict`, w.params),
    engine.query<{ reason: string; taps: number }>(
      `SELECT reason, count() AS taps FROM decisions WHERE verdict = 'REJECTED' AND ${w.decisions} GROUP BY reason ORDER BY taps DESC, reason LIMIT 10`,
      w.params,
    ),
    engine.query<{ terminalRegion: string; network: string; settlements: number; amountFen: number }>(
      `SELECT terminal_region AS terminalRegion, network, count() AS settlements, sum(amount_fen) AS amountFen
       FROM settlements WHERE scene IN ('RAIL', 'BUS') AND ${w.settlements}
       GROUP BY terminalRegion, network ORDER BY terminalRegion, network`,
      w.params,
    ),
    regionParts(engine, filter),
    engine.query<{ kind: string; settlements: number; amountFen: number }>(
      `SELECT kind, count() AS settlements, sum(amount_fen) AS amountFen FROM settlements WHERE ${w.settlements} GROUP BY kind ORDER BY kind`,
      w.params,
    ),
    engine.query<{ entries: number; debitFen: number; creditFen: number }>(
      `SELECT count() AS entries, sum(debit_fen) AS debitFen, sum(credit_fen) AS creditFen FROM ledger WHERE ${w.ledger}`,
      w.params,
    ),
    engine.query<{ ruleId: string; severity: string; flags: number }>(
      `SELECT rule_id AS ruleId, severity, count() AS flags FROM risk_flags WHERE ${w.riskFlags} GROUP BY ruleId, severity ORDER BY flags DESC, ruleId, severity`,
      w.params,
    ),
  ]);
  const byVerdict: Record<string, number> = {};
  for (const v of verdicts) byVerdict[v.verdict] = v.taps;
  return {
    ...(filter.sinceMs !== undefined && { sinceMs: filter.sinceMs }),
    ...(filter.fromMs !== undefined && { fromMs: filter.fromMs }),
    ...(filter.toMs !== undefined && { toMs: filter.toMs }),
    taps: verdicts.reduce((n, v) => n + v.taps, 0),
    byVerdict,
    topReasons: reasons,
    fares,
    regionParts: parts,
    settlementsByKind: kinds,
    settlements: kinds.reduce((n, k) => n + k.settlements, 0),
    ledger: ledger[0] ?? { entries: 0, debitFen: 0, creditFen: 0 },
    riskFlags: flags,
  };
}

export interface AccountTotal {
  account: string;
  entries: number;
  debitFen: number;
  creditFen: number;
  /** debitFen − creditFen */
  netFen: number;
}

export interface ClearingReport {
  /** The (first) business day reported. */
  businessDay: string;
  /** The last business day reported (the same as businessDay for one day). */
  lastBusinessDay: string;
  /** Every account posted on the day, by name. */
  accounts: AccountTotal[];
  totals: { debitFen: number; creditFen: number; balanced: boolean };
  /**
   * Net positions between regions, one per pair that owes anything: `debtor` owes `creditor`
   * `amountFen` (> 0) after netting both directions.
   */
  positions: { debtor: Region; creditor: Region; amountFen: number }[];
  /** Per region: what the others owe it minus what it owes them (sums to 0). */
  regionNet: Record<Region, number>;
  /** Accounts under the clearing prefix whose name is not `<prefix><REGION>:<REGION>`. */
  unparsedClearingAccounts: string[];
}

export interface ClearingOptions {
  /**
   * Name prefix of the inter-region clearing accounts. An account `<prefix>A:B` (A, B region
   * codes) holds what region A owes region B: its credit balance (credits − debits) is A's
   * obligation to B. Align with the chart of accounts in src/domain/settle.
   * @default 'clearing:'
   */
  clearingPrefix?: string;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * Per-account debits and credits of one business day (YYYY-MM-DD, Asia/Shanghai), or of the
 * business days from `day` to `opts.lastDay` included, and the net positions between BJ, TJ and
 * HE from the inter-region clearing accounts.
 */
export async function clearingReport(engine: ClickHouseEngine, day: string, opts: ClearingOptions & { lastDay?: string } = {}): Promise<ClearingReport> {
  const lastDay = opts.lastDay ?? day;
  for (const d of [day, lastDay]) if (!DAY.test(d)) throw new RangeError(`business day must be YYYY-MM-DD, got ${JSON.stringify(d)}`);
  if (lastDay < day) throw new RangeError(`last business day ${lastDay} is before the first, ${day}`);
  const prefix = opts.clearingPrefix ?? 'clearing:';
  const rows = await engine.query<Omit<AccountTotal, 'netFen'>>(
    `SELECT account, count() AS entries, sum(debit_fen) AS debitFen, sum(credit_fen) AS creditFen
     FROM ledger WHERE business_day >= {day:Date} AND business_day <= {lastDay:Date}
     GROUP BY account ORDER BY account`,
    { day, lastDay },
  );
  const accounts = rows.map((r) => ({ ...r, netFen: r.debitFen - r.creditFen }));
  const debitFen = accounts.reduce((n, a) => n + a.debitFen, 0);
  const creditFen = accounts.reduce((n, a) => n + a.creditFen, 0);

  // owes[a][b]: what region a owes region b, before netting.
  const owes = new Map<string, number>();
  const unparsed: string[] = [];
  for (const a of accounts) {
    if (!a.account.startsWith(prefix)) continue;
    const [from, to, ...rest] = a.account.slice(prefix.length).split(':');
    if (!isRegion(from) || !isRegion(to) || from === to || rest.length > 0) {
      unparsed.push(a.account);
      continue;
    }
    const key = `${from}>${to}`;
    owes.set(key, (owes.get(key) ?? 0) + (a.creditFen - a.debitFen));
  }
  const positions: ClearingReport['positions'] = [];
  const regionNet = Object.fromEntries(Regions.map((r) => [r, 0])) as Record<Region, number>;
  for (const [i, a] of Regions.entries()) {
    for (const b of Regions.slice(i + 1)) {
      const net = (owes.get(`${a}>${b}`) ?? 0) - (owes.get(`${b}>${a}`) ?? 0);
      if (net === 0) continue;
      const [debtor, creditor, amountFen] = net > 0 ? [a, b, net] : [b, a, -net];
      positions.push({ debtor, creditor, amountFen });
      regionNet[creditor] += amountFen;
      regionNet[debtor] -= amountFen;
    }
  }
  return {
    businessDay: day,
    lastBusinessDay: lastDay,
    accounts,
    totals: { debitFen, creditFen, balanced: debitFen === creditFen },
    positions,
    regionNet,
    unparsedClearingAccounts: unparsed,
  };
}

function isRegion(s: string | undefined): s is Region {
  return (Regions as readonly string[]).includes(s ?? '');
}

export interface LedgerBalance {
  entries: number;
  debitFen: number;
  creditFen: number;
  /** Overall sum of debits = sum of credits. */
  balanced: boolean;
  /** Per business day, oldest first. */
  days: { businessDay: string; entries: number; debitFen: number; creditFen: number; balanced: boolean }[];
  /** Settlements whose own entries do not balance (should be 0: every posting is balanced). */
  unbalancedSettlements: number;
}

/** The double-entry invariant, overall, per day and per settlement. */
export async function ledgerBalance(engine: ClickHouseEngine): Promise<LedgerBalance> {
  const [days, unbalanced] = await Promise.all([
    engine.query<{ businessDay: string; entries: number; debitFen: number; creditFen: number }>(
      `SELECT business_day AS businessDay, count() AS entries, sum(debit_fen) AS debitFen, sum(credit_fen) AS creditFen
       FROM ledger GROUP BY businessDay ORDER BY businessDay`,
    ),
    engine.query<{ n: number }>(
      `SELECT count() AS n FROM
         (SELECT settlement_id FROM ledger GROUP BY settlement_id HAVING sum(debit_fen) != sum(credit_fen))`,
    ),
  ]);
  const entries = days.reduce((n, d) => n + d.entries, 0);
  const debitFen = days.reduce((n, d) => n + d.debitFen, 0);
  const creditFen = days.reduce((n, d) => n + d.creditFen, 0);
  return {
    entries,
    debitFen,
    creditFen,
    balanced: debitFen === creditFen,
    days: days.map((d) => ({ ...d, balanced: d.debitFen === d.creditFen })),
    unbalancedSettlements: unbalanced[0]?.n ?? 0,
  };
}

export interface VenueHourEntries {
  hour: string;
  venueId: string;
  entries: number;
  /** Of which by cards of another region than the venue's. */
  crossRegion: number;
}

/**
 * Culture and tourism entries per venue and hour, from the materialized aggregate
 * venue_entries_per_hour (summed: SummingMergeTree merges lazily): of a business day
 * (YYYY-MM-DD, Asia/Shanghai), or of the hours that start in [fromMs, toMs) (epoch ms; the
 * aggregate's resolution is the hour, so a range is exact when its ends are whole hours).
 */
export async function venueEntries(engine: ClickHouseEngine, range: string | { fromMs: number; toMs: number }): Promise<VenueHourEntries[]> {
  let r: { fromMs: number; toMs: number };
  if (typeof range === 'string') {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(range)) throw new RangeError(`day must be YYYY-MM-DD, got ${JSON.stringify(range)}`);
    const start = shanghaiTime(range);
    r = { fromMs: start, toMs: start + 86_400_000 };
  } else r = range;
  for (const v of [r.fromMs, r.toMs]) if (!Number.isSafeInteger(v)) throw new RangeError(`range ends must be epoch ms, got ${v}`);
  const rows = await engine.query<{ hour_text: string; venue_id: string; n: number; cross_region: number }>(
    `SELECT formatDateTime(hour, '%Y-%m-%d %H:00') AS hour_text, venue_id, sum(entries) AS n,
            sumIf(entries, card_region != terminal_region) AS cross_region
       FROM venue_entries_per_hour
      WHERE hour >= fromUnixTimestamp64Milli({from:Int64}) AND hour < fromUnixTimestamp64Milli({to:Int64})
      GROUP BY hour_text, venue_id
      ORDER BY hour_text, venue_id`,
    { from: r.fromMs, to: r.toMs },
  );
  return rows.map((r) => ({ hour: r.hour_text, venueId: r.venue_id, entries: Number(r.n), crossRegion: Number(r.cross_region) }));
}
