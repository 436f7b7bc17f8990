/**
 * The store's alert figures, read by the active sink on a timer (src/sink/store-gauges.ts) and
 * exported as bounded gauges (docs/runbook.md). Each reads a small aggregate, never the base
 * tables: the ledger per day (ledger_per_day), decisions per venue and 5 minutes of device time
 * (venue_decisions_per_5min) and the last tap of each terminal by ingest time (terminal_last_seen).
 */
import type { ClickHouseEngine } from './engine.js';

/** Sum of debits minus sum of credits of the whole ledger (fen); 0 when it balances. */
export async function ledgerImbalanceFen(engine: ClickHouseEngine): Promise<number> {
  const rows = await engine.query<{ d: number | string }>(`SELECT sum(debit_fen) - sum(credit_fen) AS d FROM ledger_per_day`);
  return Number(rows[0]?.d ?? 0);
}

/** How a venue's acceptance is judged against its own history (docs/runbook.md, venue-acceptance). */
export const VENUE_CHECK = {
  /** The recent window: the 5-minute buckets that started in the last quarter hour (10 to 15 minutes). */
  recentBuckets: 3,
  /** The history: the 24 hours before the recent window. */
  historyMinutes: 24 * 60,
  /** Least decisions in the recent window and in the history for a venue to be judged. */
  minRecent: 20,
  minHistory: 100,
  /** A drop: the accepted share fell by at least this much (0.2 = 20 points). */
  dropPoints: 0.2,
  /** A surge: at least this many rejects in the recent window, and per minute at least `surgeFactor` × the history's. */
  minRecentRejects: 10,
  surgeFactor: 3,
  /** The venues exported by name: at most this many, the worst first. */
  topK: 10,
} as const;

export interface VenueAcceptance {
  venueId: string;
  region: string;
  scene: string;
  recentAcceptance: number;
  historyAcceptance: number;
  recentRejectsPerMinute: number;
  historyRejectsPerMinute: number;
  drop: boolean;
  surge: boolean;
}

export interface VenueCheck {
  /** Venues whose acceptance dropped / whose refusals surged. */
  drops: number;
  surges: number;
  /** The flagged venues, worst first (largest acceptance drop, then rejects per minute), at most VENUE_CHECK.topK. */
  worst: VenueAcceptance[];
}

const FIVE_MIN_S = 300;

/** Venues whose acceptance dropped or whose refusals surged, at `nowMs` (art. 24). */
export async function venueAcceptance(engine: ClickHouseEngine, nowMs: number = Date.now()): Promise<VenueCheck> {
  const c = VENUE_CHECK;
  const nowS = Math.floor(nowMs / 1000);
  const recentStart = Math.floor(nowS / FIVE_MIN_S) * FIVE_MIN_S - (c.recentBuckets - 1) * FIVE_MIN_S;
  const historyStart = recentStart - c.historyMinutes * 60;
  const recentMinutes = Math.max(1, (nowS - recentStart) / 60);
  const rows = await engine.query<{ venue_id: string; region: string; scene: string; recent_n: number; recent_acc: number; hist_n: number; hist_acc: number }>(
    `SELECT venue_id, any(terminal_region) AS region, any(scene) AS scene,
            sumIf(decisions, five_min >= toDateTime({recentStart:UInt32}, 'Asia/Shanghai')) AS recent_n,
            sumIf(accepted, five_min >= toDateTime({recentStart:UInt32}, 'Asia/Shanghai')) AS recent_acc,
            sumIf(decisions, five_min < toDateTime({recentStart:UInt32}, 'Asia/Shanghai')) AS hist_n,
            sumIf(accepted, five_min < toDateTime({recentStart:UInt32}, 'Asia/Shanghai')) AS hist_acc
       FROM venue_decisions_per_5min
      WHERE five_min >= toDateTime({historyStart:UInt32}, 'Asia/Shanghai') AND five_min <= toDateTime({now:UInt32}, 'Asia/Shanghai')
      GROUP BY venue_id
     HAVING recent_n >= {minRecent:UInt32} AND hist_n >= {minHistory:UInt32}
        AND (hist_acc / hist_n - recent_acc / recent_n >= {dropPoints:Float64} - 1e-9
             OR (recent_n - recent_acc >= {minRecentRejects:UInt32}
                 AND (recent_n - recent_acc) / {recentMinutes:Float64} >= {surgeFactor:Float64} * (hist_n - hist_acc) / {historyMinutes:Float64} - 1e-9))`,
    { historyStart, recentStart, now: nowS, minRecent: c.minRecent, minHistory: c.minHistory, dropPoints: c.dropPoints, minRecentRejects: c.minRecentRejects, recentMinutes, surgeFactor: c.surgeFactor, historyMinutes: c.historyMinutes },
  );
  const venues = rows.map((r): VenueAcceptance => {
    const recentN = Number(r.recent_n);
    const histN = Number(r.hist_n);
    const recentAcceptance = Number(r.recent_acc) / recentN;
    const historyAcceptance = Number(r.hist_acc) / histN;
    const recentRejects = recentN - Number(r.recent_acc);
    const recentRejectsPerMinute = recentRejects / recentMinutes;
    const historyRejectsPerMinute = (histN - Number(r.hist_acc)) / c.historyMinutes;
    return {
      venueId: r.venue_id,
      region: r.region,
      scene: r.scene,
      recentAcceptance,
      historyAcceptance,
      recentRejectsPerMinute,
      historyRejectsPerMinute,
      drop: historyAcceptance - recentAcceptance >= c.dropPoints - 1e-9,
      surge: recentRejects >= c.minRecentRejects && recentRejectsPerMinute >= c.surgeFactor * historyRejectsPerMinute - 1e-9,
    };
  });
  venues.sort((a, b) => b.historyAcceptance - b.recentAcceptance - (a.historyAcceptance - a.recentAcceptance) || b.recentRejectsPerMinute - a.recentRejectsPerMinute || a.venueId.localeCompare(b.venueId));
  return { drops: venues.filter((v) => v.drop).length, surges: venues.filter((v) => v.surge).length, worst: venues.slice(0, c.topK) };
}

export interface SilentTerminals {
  region: string;
  scene: string;
  /** Terminals that sent taps in the last 24 hours. */
  seen: number;
  /** Of which none in the last `silentMinutes`. */
  silent: number;
}

/**
 * Terminals seen (by ingest time) in the last 24 hours and, of those, silent for the last
 * `silentMinutes`, by terminal region and scene.
 */
export async function silentTerminals(engine: ClickHouseEngine, silentMinutes: number, nowMs: number = Date.now()): Promise<SilentTerminals[]> {
  const rows = await engine.query<{ region: string; scene: string; seen: number; silent: number }>(
    `SELECT terminal_region AS region, scene, count() AS seen, countIf(last < fromUnixTimestamp64Milli({silentSince:Int64}, 'Asia/Shanghai')) AS silent
       FROM (SELECT terminal_region, scene, terminal_id, max(last_seen) AS last
               FROM terminal_last_seen GROUP BY terminal_region, scene, terminal_id)
      WHERE last >= fromUnixTimestamp64Milli({daySince:Int64}, 'Asia/Shanghai')
      GROUP BY region, scene
      ORDER BY region, scene`,
    { silentSince: nowMs - silentMinutes * 60_000, daySince: nowMs - 24 * 3600_000 },
  );
  return rows.map((r) => ({ region: r.region, scene: r.scene, seen: Number(r.seen), silent: Number(r.silent) }));
}
