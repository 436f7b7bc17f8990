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
 */
import { decodeDecision, decodeRiskFlag, decodeSettlement, splitDecisionBundle, splitSettlementBundle } from '../bus/codec.js';
import type { Decision } from '../domain/types.js';
import { writeClaim, writeDecision, writeLedger, writeRiskFlag, writeSettlement, type RowWriter, type SourceStream, type StoreTable } from '../store/mod.js';

export interface MessageRowTarget {
  /** Whether rows of `table` are wanted from this message at all (checked before decoding). */
  wants(table: StoreTable): boolean;
  /**
   * Where a row of `table` about a fact of `deviceTime` (and, for settlements, ledger entries
   * and claims, of business day `businessDay`) goes, or undefined to leave it out.
   */
  rows(table: StoreTable, fact: { deviceTime: number; businessDay?: string }): RowWriter | undefined;
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
    const w = t.rows('risk_flags', f);
    if (w) writeRiskFlag(w, f, seq, stream);
  };
  if (stream === 'DECISIONS') {
    const b = splitDecisionBundle(data);
    t.eachPart('decision', b.decisions, (raw) => {
      if (!t.wants('decisions')) return;
      const d = decodeDecision(raw);
      const w = t.rows('decisions', d);
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
      const settlements = st.claim?.status !== 'REJECTED' && t.wants('settlements') ? t.rows('settlements', st) : undefined;
      if (settlements) writeSettlement(settlements, st, seq);
      const ledger = t.wants('ledger') ? t.rows('ledger', st) : undefined;
      if (ledger) writeLedger(ledger, st, seq);
      const claims = st.claim && t.wants('claims') ? t.rows('claims', st) : undefined;
      if (claims) writeClaim(claims, st, seq, st.personToken);
    });
    t.eachPart('flag', b.flags, flag);
  } else {
    t.eachPart('flag', [data], flag);
  }
}
