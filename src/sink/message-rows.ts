/**
 * The rows one bus message gives in the store: the sink's row mapping, message by message. The
 * sink (role.ts) and `tapflow store rebuild` (src/store/rebuild.ts) both write rows through
 * here, so a rebuilt row is made exactly as the sink made the original.
 *
 * - DECISIONS: a decision bundle — a `decisions` row per decision, a `risk_flags` row per flag;
 * - SETTLEMENTS: a settlement bundle — per settlement a `settlements` row (none for a rejected
 *   claim: it moved no money), its `ledger` entries and, for a medical claim, a `claims` row;
 *   a `risk_flags` row per flag;
 * - RISK: one risk flag — a `risk_flags` row.
 * Every row records the message's sequence in its stream (stream_seq); risk flags also the
 * stream (source_stream).
 *
 * A message made from a replayed dead letter (src/bus/replay.ts `isReplayDerived`) may repeat
 * rows its original already gave: its rows are kept only where no row of the same key
 * ({@link ROW_KEY_COLUMN}) is stored — {@link RowKeyGuard}.
 */
import { decodeDecision, decodeRiskFlag, decodeSettlement, splitDecisionBundle, splitSettlementBundle } from '../bus/codec.js';
import type { Decision } from '../domain/types.js';
import type { ClickHouseEngine } from '../store/engine.js';
import { writeClaim, writeDecision, writeLedger, writeRiskFlag, writeSettlement, type RowWriter, type SourceStream, type StoreTable } from '../store/mod.js';

export interface MessageRowTarget {
  /** Whether rows of `table` are wanted from this message at all (checked before decoding). */
  wants(table: StoreTable): boolean;
  /**
   * Where a row of `table` about a fact of `deviceTime` (and, for settlements, ledger entries
   * and claims, of business day `businessDay`) goes, or undefined to leave it out. `key` is the
   * row's identity in the table ({@link ROW_KEY_COLUMN}).
   */
  rows(table: StoreTable, fact: { deviceTime: number; businessDay?: string }, key: string): RowWriter | undefined;
  /**
   * Runs `write` on each part of a bundle. The sink dead-letters a part that throws, alone;
   * the rebuild lets it throw.
   */
  eachPart(kind: 'decision' | 'settlement' | 'flag', parts: Uint8Array[], write: (raw: Uint8Array) => void): void;
  /** Called with each decision written (the sink's tap-to-store latency). */
  onDecision?(d: Decision): void;
}

/** Writes the rows of the message `seq` of `stream` (its bytes `data`) into the target. */
export function writeMessageRows(stream: SourceStream, data: Uint8Array, seq: number, t: MessageRowTarget): void {
  const flag = (raw: Uint8Array) => {
    if (!t.wants('risk_flags')) return;
    const f = decodeRiskFlag(raw);
    const w = t.rows('risk_flags', f, f.flagId);
    if (w) writeRiskFlag(w, f, seq, stream);
  };
  if (stream === 'DECISIONS') {
    const b = splitDecisionBundle(data);
    t.eachPart('decision', b.decisions, (raw) => {
      if (!t.wants('decisions')) return;
      const d = decodeDecision(raw);
      const w = t.rows('decisions', d, d.eventId);
      if (!w) return;
      writeDecision(w, d, seq);
      t.onDecision?.(d);
    });
    t.eachPart('flag', b.flags, flag);
  } else if (stream === 'SETTLEMENTS') {
    const b = splitSettlementBundle(data);
    t.eachPart('settlement', b.settlements, (raw) => {
      const st = decodeSettlement(raw);
      // A rejected claim moved no money: it is a row of `claims` only, no settlement.
      const settlements = st.claim?.status !== 'REJECTED' && t.wants('settlements') ? t.rows('settlements', st, st.settlementId) : undefined;
      if (settlements) writeSettlement(settlements, st, seq);
      const ledger = t.wants('ledger') ? t.rows('ledger', st, st.settlementId) : undefined;
      if (ledger) writeLedger(ledger, st, seq);
      const claims = st.claim && t.wants('claims') ? t.rows('claims', st, st.settlementId) : undefined;
      if (claims) writeClaim(claims, st, seq, st.personToken);
    });
    t.eachPart('flag', b.flags, flag);
  } else {
    t.eachPart('flag', [data], flag);
  }
}

/**
 * The column that identifies a row of each table: a decision by its event, a settlement, its
 * ledger entries and its claim row by the settlement, a risk flag by its id.
 */
export const ROW_KEY_COLUMN = {
  decisions: 'event_id',
  settlements: 'settlement_id',
  ledger: 'settlement_id',
  claims: 'settlement_id',
  risk_flags: 'flag_id',
} as const satisfies Record<StoreTable, string>;

/** The keys of the rows a message gives, per table (its parts that cannot be read give none). */
export function messageRowKeys(stream: SourceStream, data: Uint8Array, seq: number): Map<StoreTable, Set<string>> {
  const keys = new Map<StoreTable, Set<string>>();
  writeMessageRows(stream, data, seq, {
    wants: () => true,
    rows: (table, _fact, key) => {
      let set = keys.get(table);
      if (!set) keys.set(table, (set = new Set()));
      set.add(key);
      return undefined;
    },
    eachPart: (_kind, parts, write) =>
      parts.forEach((raw) => {
        try {
          write(raw);
        } catch {
          // Dead-lettered by the pass that writes.
        }
      }),
  });
  return keys;
}

/**
 * Keeps a derived message's rows out where their key is already stored: built from the keys the
 * store holds (`stored`), it then learns every key written after, in order, so that an original
 * and its derived copy in one batch give one row. Messages that are not derived are always kept.
 */
export class RowKeyGuard {
  constructor(private readonly stored: Map<StoreTable, Set<string>>) {}

  /** Whether the row `key` of `table` from a message (`derived` or not) is to be written; remembers it. */
  admit(table: StoreTable, key: string, derived: boolean): boolean {
    let set = this.stored.get(table);
    if (!set) this.stored.set(table, (set = new Set()));
    if (derived && set.has(key)) return false;
    set.add(key);
    return true;
  }
}

/** Of the keys asked for, those a table (by its physical name: a rebuild's staging copy, say) holds. */
export async function storedRowKeys(engine: ClickHouseEngine, physical: (t: StoreTable) => string, keys: Map<StoreTable, Set<string>>): Promise<Map<StoreTable, Set<string>>> {
  const out = new Map<StoreTable, Set<string>>();
  for (const [t, set] of keys) {
    if (set.size === 0) continue;
    const col = ROW_KEY_COLUMN[t];
    const rows = await engine.query<{ k: string }>(`SELECT DISTINCT ${col} AS k FROM ${physical(t)} WHERE ${col} IN {keys:Array(String)}`, { keys: [...set] });
    out.set(t, new Set(rows.map((r) => r.k)));
  }
  return out;
}
