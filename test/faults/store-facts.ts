/**
 * Reads what one fault-suite run stored, in a process of its own (the embedded ClickHouse locks
 * its data directory to one process: the sinks of the run have exited when this runs, and the
 * test process never opens it). Configured like a role, through TAPFLOW_DATA_DIR and
 * CLICKHOUSE_DATABASE; prints one JSON object (StoreFacts) on stdout.
 *
 *   node --import tsx test/faults/store-facts.ts
 */
import { loadConfig } from '../../src/config/config.js';
import { openStore } from '../../src/store/open.js';

export interface StoreFacts {
  /** Event id → decision rows (every decided tap). */
  decisions: Record<string, number>;
  /** Card token → [settlement rows, sum of amount_fen] (fares and claims). */
  fenPerCard: Record<string, [number, number]>;
  /** Claim id → [rows, status, medfee_sumamt, hifp_pay]. */
  claims: Record<string, [number, string, number, number]>;
  /** Rows stored more than once: "table key ×n (stream seqs [a,b])". */
  duplicates: string[];
  /** Settlements whose ledger entries do not balance: "id: debits != credits". */
  unbalanced: string[];
  ledger: { entries: number; debits: number; credits: number };
}

const cfg = loadConfig();
const engine = await openStore(cfg);
try {
  const q = <T>(sql: string) => engine.query<T>(sql);
  const facts: StoreFacts = { decisions: {}, fenPerCard: {}, claims: {}, duplicates: [], unbalanced: [], ledger: { entries: 0, debits: 0, credits: 0 } };
  for (const r of await q<{ event_id: string; n: number }>('SELECT event_id, count() AS n FROM decisions GROUP BY event_id')) facts.decisions[r.event_id] = Number(r.n);
  for (const r of await q<{ card_token: string; n: number; fen: number }>('SELECT card_token, count() AS n, sum(amount_fen) AS fen FROM settlements GROUP BY card_token')) facts.fenPerCard[r.card_token] = [Number(r.n), Number(r.fen)];
  for (const r of await q<{ claim_id: string; n: number; status: string; fee: number; fund: number }>('SELECT claim_id, count() AS n, any(status) AS status, sum(medfee_sumamt) AS fee, sum(hifp_pay) AS fund FROM claims GROUP BY claim_id')) {
    facts.claims[r.claim_id] = [Number(r.n), r.status, Number(r.fee), Number(r.fund)];
  }
  for (const [table, key] of [
    ['decisions', 'event_id'],
    ['settlements', 'settlement_id'],
    ['ledger', 'entry_id'],
    ['claims', 'claim_id'],
    ['risk_flags', 'flag_id'],
  ] as const) {
    for (const r of await q<{ k: string; n: number; seqs: string }>(`SELECT ${key} AS k, count() AS n, toString(groupArray(stream_seq)) AS seqs FROM ${table} GROUP BY k HAVING n > 1 LIMIT 20`)) {
      facts.duplicates.push(`${table} ${r.k} ×${r.n} (stream seqs ${r.seqs})`);
    }
  }
  facts.unbalanced = (await q<{ settlement_id: string; d: number; c: number }>('SELECT settlement_id, sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger GROUP BY settlement_id HAVING d != c LIMIT 20')).map((r) => `${r.settlement_id}: ${r.d} != ${r.c}`);
  const l = (await q<{ n: number; d: number; c: number }>('SELECT count() AS n, sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger'))[0]!;
  facts.ledger = { entries: Number(l.n), debits: Number(l.d), credits: Number(l.c) };
  process.stdout.write(`${JSON.stringify(facts)}\n`);
} finally {
  await engine.close();
}
