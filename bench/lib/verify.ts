/**
 * The zero-loss check, after the run, against what tapflow stored in ClickHouse:
 *
 * - every tap answered ACCEPTED_DURABLE or DUPLICATE is in `decisions` exactly once (by
 *   event_id = "<terminal_id>:<seq>"); `missing` and `duplicated` list the ones that are not;
 * - every tap got the verdict the simulator expected: INVALID at ingest for a malformed tap and
 *   for no other; each stored decision ACCEPTED or REJECTED as expected, where a QR code
 *   presented twice is expected accepted on the presentation that became durable first
 *   (bench/lib/durable-order.ts). A mismatch fails the run (counts by kind, examples);
 * - the settlements add up, per card and in total, to what the settle core gives for the taps
 *   the simulator sent (bench/lib/expect.ts); claims' splits likewise; the ledger balances;
 * - latencies from the decisions' stored_time: end-to-end from the intended send time (the
 *   device time of a live tap) to the row stored, and the stored throughput per second.
 *
 * Reads the embedded engine's data directory once the sink process has stopped (chdb allows one
 * process per data directory; tapflow serves no arbitrary-query endpoint), or a ClickHouse
 * server when CLICKHOUSE_URL was given.
 */
import { TapStatus } from '../../src/gen/tapflow/v1/ingest.js';
import type { ClickHouseEngine } from '../../src/store/mod.js';
import { EXPECTED_REASON, type Expect, type SimTap } from './fleet.js';
import type { QrOrderReport } from './durable-order.js';
import type { TapResult } from './fleet-client.js';
import type { Expectation } from './expect.js';
import { newHistogram, recordMs, summarize, type LatencySummary, Timeline } from './recorder.js';

export interface StoredDecision {
  event_id: string;
  verdict: string;
  reason: string;
  device_ms: number;
  /** When ingest received the attempt it published (epoch ms): the tap's place in the durable order. */
  ingest_ms: number;
  stored_ms: number;
}

/** Reads every decision row (one scan; a few hundred thousand rows read in seconds). */
export async function readDecisions(engine: ClickHouseEngine): Promise<StoredDecision[]> {
  return engine.query<StoredDecision>(
    'SELECT event_id, verdict, reason, toUnixTimestamp64Milli(device_time) AS device_ms, toUnixTimestamp64Milli(ingest_time) AS ingest_ms, toUnixTimestamp64Milli(stored_time) AS stored_ms FROM decisions',
  );
}

export interface LossReport {
  /** Taps answered ACCEPTED_DURABLE or DUPLICATE. */
  acked: number;
  /** Of those, stored (at least once). */
  stored: number;
  missing: number;
  /** Event ids stored more than once (whole table). */
  duplicated: number;
  /** Up to 20 examples of each. */
  missing_examples: string[];
  duplicated_examples: string[];
  /** Stored although the simulator had no durable answer (e.g. answered after a timeout). */
  stored_unacked: number;
  /** Taps never answered at all (timed out at the end). */
  unanswered: number;
  /** False when the pipeline had not drained when the bench gave up waiting: "missing" may then be late, not lost. */
  complete: boolean;
  ok: boolean;
}

export interface VerdictReport {
  /** Taps whose verdict was checked: every stored decision and every tap answered INVALID. */
  checked: number;
  mismatched: number;
  /** By kind, "expected → stored verdict/reason" or "expected → INVALID at ingest": count, most frequent first. */
  mismatches: Record<string, number>;
  /** Up to 5 taps of each kind: "<event id> (<attempts> attempts)". */
  mismatch_examples: Record<string, string[]>;
  /** Same verdict, other reason (e.g. a replay refused as PASSBACK): count. Not a failure. */
  other_reason: Record<string, number>;
  /** QR codes presented more than once: which presentation the expectation accepts, and why. */
  qr_order: QrOrderReport | null;
  /** No mismatch. */
  ok: boolean;
}

export interface MoneyReport {
  expected_fen: number;
  stored_fen: number;
  /** stored − expected. */
  diff_fen: number;
  expected_by_kind: Record<string, { settlements: number; fen: number }>;
  stored_by_kind: Record<string, { settlements: number; fen: number }>;
  /** Cards whose stored sum differs from the expected one. */
  cards_mismatched: number;
  cards_examples: { card_token: string; expected_fen: number; stored_fen: number }[];
  duplicated_settlements: number;
  ledger: { debit_fen: number; credit_fen: number; balanced: boolean };
  claims: { expected: Expectation['claims']; stored: Expectation['claims'] };
  open_journeys: number;
  ok: boolean;
}

export interface VerifyInput {
  taps: SimTap[];
  /** Every decision row ({@link readDecisions}). */
  rows: StoredDecision[];
  results: Map<SimTap, TapResult>;
  /** The expectation of each tap (default its `expect`; see bench/lib/durable-order.ts). */
  expectOf?: (s: SimTap) => Expect;
  qrOrder?: QrOrderReport;
  expectation: Expectation;
  /** Epoch ms of the window start (intended time 0). */
  windowStartMs: number;
  timeline: Timeline;
}

export interface VerifyOutput {
  loss: LossReport;
  verdicts: VerdictReport;
  money: MoneyReport;
  /** Intended send time → decision row stored, measured taps only (not warm-up). */
  stored: LatencySummary;
  /** Device time → decision row stored (live taps: the same unless the window started late). */
  deviceToStored: LatencySummary;
  /** Decision rows of measured taps stored, and the span from the window start to the last one (s). */
  storedTaps: number;
  lastStoredS: number;
}

const isDurable = (s: TapStatus) => s === TapStatus.ACCEPTED_DURABLE || s === TapStatus.DUPLICATE;

/** Zero loss, verdicts, money and stored latencies of a run (module comment). */
export async function verify(engine: ClickHouseEngine, input: VerifyInput): Promise<VerifyOutput> {
  return { ...checkTaps(input), money: await checkMoney(engine, input.expectation) };
}

/** The per-tap checks (loss, verdicts, stored latency), from the rows already read: pure. */
export function checkTaps(input: Omit<VerifyInput, 'expectation'>): Omit<VerifyOutput, 'money'> {
  const { rows } = input;
  const expectOf = input.expectOf ?? ((s: SimTap) => s.expect);
  const count = new Map<string, number>();
  const byId = new Map<string, StoredDecision>();
  for (const r of rows) {
    count.set(r.event_id, (count.get(r.event_id) ?? 0) + 1);
    byId.set(r.event_id, r);
  }
  const duplicatedIds = [...count.entries()].filter(([, n]) => n > 1).map(([id]) => id);

  const loss: LossReport = { acked: 0, stored: 0, missing: 0, duplicated: duplicatedIds.length, missing_examples: [], duplicated_examples: duplicatedIds.slice(0, 20), stored_unacked: 0, unanswered: 0, complete: true, ok: false };
  const verdicts: VerdictReport = { checked: 0, mismatched: 0, mismatches: {}, mismatch_examples: {}, other_reason: {}, qr_order: input.qrOrder ?? null, ok: true };
  const mismatch = (kind: string, id: string, r: TapResult | undefined) => {
    verdicts.mismatched++;
    verdicts.mismatches[kind] = (verdicts.mismatches[kind] ?? 0) + 1;
    const ex = (verdicts.mismatch_examples[kind] ??= []);
    if (ex.length < 5) ex.push(`${id} (${r?.attempts ?? 0} attempts)`);
  };
  const storedHist = newHistogram();
  const deviceHist = newHistogram();
  let storedTaps = 0;
  let lastStored = 0;
  for (const s of input.taps) {
    const id = `${s.tap.terminalId}:${s.tap.seq}`;
    const r = input.results.get(s);
    const row = byId.get(id);
    if (!r) loss.unanswered++;
    if (r && isDurable(r.status)) {
      loss.acked++;
      if (row) loss.stored++;
      else {
        loss.missing++;
        if (loss.missing_examples.length < 20) loss.missing_examples.push(id);
      }
    } else if (row) loss.stored_unacked++;
    const exp = expectOf(s);
    if (r?.status === TapStatus.INVALID) {
      // Refused at ingest: only a malformed tap should be (a malformed tap stored is a mismatch below).
      verdicts.checked++;
      if (exp !== 'malformed') mismatch(`${exp} → INVALID at ingest (${r.reason.split(':').slice(0, 2).join(':')})`, id, r);
    }
    if (row) {
      verdicts.checked++;
      const want = exp === 'ok' ? 'ACCEPTED' : 'REJECTED';
      if (row.verdict !== want || exp === 'malformed') {
        mismatch(`${exp} → ${row.verdict}/${row.reason}`, id, r);
      } else if (row.reason !== EXPECTED_REASON[exp]) {
        const k = `${exp} → ${row.reason}`;
        verdicts.other_reason[k] = (verdicts.other_reason[k] ?? 0) + 1;
      }
      if (s.phase !== 'warm' && r) {
        const intendedEpoch = input.windowStartMs + r.intended;
        const latency = row.stored_ms - intendedEpoch;
        recordMs(storedHist, Math.max(0, latency));
        recordMs(deviceHist, Math.max(0, row.stored_ms - row.device_ms));
        input.timeline.store(row.stored_ms - input.windowStartMs, r.intended, Math.max(0, latency));
        storedTaps++;
        lastStored = Math.max(lastStored, row.stored_ms - input.windowStartMs);
      }
    }
  }
  loss.ok = loss.missing === 0 && loss.duplicated === 0;
  verdicts.ok = verdicts.mismatched === 0;
  verdicts.mismatches = top(verdicts.mismatches, 50);
  verdicts.other_reason = top(verdicts.other_reason, 10);

  return { loss, verdicts, stored: summarize(storedHist), deviceToStored: summarize(deviceHist), storedTaps, lastStoredS: lastStored / 1000 };
}

/** The money check: stored settlements, claims and ledger against the expectation. */
export async function checkMoney(engine: ClickHouseEngine, e: Expectation): Promise<MoneyReport> {
  const [perCard, kinds, dup, ledger, claims] = await Promise.all([
    engine.query<{ card_token: string; fen: number }>('SELECT card_token, sum(amount_fen) AS fen FROM settlements GROUP BY card_token'),
    engine.query<{ kind: string; settlements: number; fen: number }>('SELECT kind, count() AS settlements, sum(amount_fen) AS fen FROM settlements GROUP BY kind ORDER BY kind'),
    engine.query<{ n: number }>('SELECT count() AS n FROM (SELECT settlement_id FROM settlements GROUP BY settlement_id HAVING count() > 1)'),
    engine.query<{ d: number; c: number }>('SELECT sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger'),
    engine.query<{ n: number; medfee: number; hifp: number; acct: number; cash: number }>(
      'SELECT count() AS n, sum(medfee_sumamt) AS medfee, sum(hifp_pay) AS hifp, sum(acct_pay) AS acct, sum(cash_payamt) AS cash FROM claims',
    ),
  ]);
  const stored = new Map(perCard.map((r) => [r.card_token, Number(r.fen)]));
  const cards = new Set([...stored.keys(), ...e.byCard.keys()]);
  const examples: MoneyReport['cards_examples'] = [];
  let mismatched = 0;
  for (const c of cards) {
    const want = e.byCard.get(c) ?? 0;
    const got = stored.get(c) ?? 0;
    if (want !== got) {
      mismatched++;
      if (examples.length < 10) examples.push({ card_token: c, expected_fen: want, stored_fen: got });
    }
  }
  const storedFen = perCard.reduce((n, r) => n + Number(r.fen), 0);
  const d = Number(ledger[0]?.d ?? 0);
  const c = Number(ledger[0]?.c ?? 0);
  const cl = claims[0];
  const storedClaims = { count: Number(cl?.n ?? 0), medfee_sumamt: Number(cl?.medfee ?? 0), hifp_pay: Number(cl?.hifp ?? 0), acct_pay: Number(cl?.acct ?? 0), cash_payamt: Number(cl?.cash ?? 0) };
  const claimsOk = JSON.stringify(storedClaims) === JSON.stringify(e.claims);
  const duplicated = Number(dup[0]?.n ?? 0);
  return {
    expected_fen: e.fen,
    stored_fen: storedFen,
    diff_fen: storedFen - e.fen,
    expected_by_kind: e.byKind,
    stored_by_kind: Object.fromEntries(kinds.map((k) => [k.kind, { settlements: Number(k.settlements), fen: Number(k.fen) }])),
    cards_mismatched: mismatched,
    cards_examples: examples,
    duplicated_settlements: duplicated,
    ledger: { debit_fen: d, credit_fen: c, balanced: d === c },
    claims: { expected: e.claims, stored: storedClaims },
    open_journeys: e.openJourneys,
    ok: storedFen === e.fen && mismatched === 0 && duplicated === 0 && d === c && claimsOk,
  };
}

function top(m: Record<string, number>, n: number): Record<string, number> {
  return Object.fromEntries(Object.entries(m).sort((a, b) => b[1] - a[1]).slice(0, n));
}
