/**
 * Every ClickHouse panel of every dashboard, on data the real pipeline produced (gRPC ingest,
 * JetStream, validator, settler, sink, embedded ClickHouse): the scripted run of
 * test/support/dashboard-scenario.ts — taps accepted and refused for several reasons at several
 * venues, journeys priced in the three regions and across them, culture entries, medical claims,
 * risk flags of several rules, clearing — and each panel's rows compared with what the run did,
 * computed from the script and the answers of ingest (taps, fen per region, flags per rule, …),
 * never from the store.
 *
 * The panels' SQL is read from grafana/dashboards/*.json and expanded as the Grafana ClickHouse
 * plugin expands it (src/store/panels.ts, `grafana` mode: $__timeFilter both ends included,
 * $__timeInterval one minute), over a range holding the whole run. A panel this test has no
 * expectation for fails it: add one when adding a panel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { expectedFlags, runDashboardScenario, type DashboardScenario, type ExpectedTap } from '../../support/dashboard-scenario.js';
import { expandPanelSql, loadPanelQueries, type PanelQuery } from '../../../src/store/panels.js';
import { businessDay } from '../../../src/domain/settle/time.js';

type Row = Record<string, unknown>;
const MIN = 60_000;
const HOUR = 3_600_000;
const SHANGHAI = 8 * HOUR;
/** 'YYYY-MM-DD hh:mm:ss' in Asia/Shanghai of the minute holding `ms`, as ClickHouse prints a DateTime. */
const minuteText = (ms: number) => new Date(Math.floor(ms / MIN) * MIN + SHANGHAI).toISOString().slice(0, 19).replace('T', ' ');

/** Counts and sums of `items` grouped by `key` (a JSON array of the group's values). */
function groupBy<T>(items: readonly T[], key: (t: T) => unknown[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const t of items) {
    const k = JSON.stringify(key(t));
    m.set(k, [...(m.get(k) ?? []), t]);
  }
  return m;
}

/** Rows in a canonical order, for panels whose ORDER BY leaves ties. */
const canonical = (rows: readonly Row[]) => [...rows].map((r) => JSON.stringify(r)).sort();

/** What the run did, by what it is about. */
interface Facts {
  sc: DashboardScenario;
  decided: ExpectedTap[];
  /** Every settlement the run made: the taps' fares and entries, and the claims. */
  settlements: { day: string; kind: string; network: string; cardRegion: string; terminalRegion: string; amountFen: number; deviceTime: number }[];
  /** What crosses between regions per settlement: `clearing:<card region>:<terminal region>`. */
  clearing: { day: string; account: string; amountFen: number }[];
}

function factsOf(sc: DashboardScenario): Facts {
  const settlements: Facts['settlements'] = [];
  const clearing: Facts['clearing'] = [];
  for (const t of sc.taps) {
    if (!t.settlement || t.verdict !== 'ACCEPTED') continue;
    settlements.push({ day: businessDay(t.deviceTime), kind: t.settlement.kind, network: t.settlement.network, cardRegion: t.cardRegion, terminalRegion: t.terminalRegion, amountFen: t.settlement.amountFen, deviceTime: t.deviceTime });
    if (t.cardRegion !== t.terminalRegion) clearing.push({ day: businessDay(t.deviceTime), account: `clearing:${t.cardRegion}:${t.terminalRegion}`, amountFen: t.settlement.amountFen });
  }
  for (const c of sc.claims) {
    const r = c.result;
    // A claim's settlement amount is what the card side pays: personal account and cash
    // (src/domain/settle/medical.ts); the pooled fund's part is the insured region's.
    settlements.push({ day: businessDay(c.deviceTime), kind: 'MEDICAL', network: '', cardRegion: c.insuredRegion, terminalRegion: c.treatmentRegion, amountFen: r.acctPay + r.cashPayamt, deviceTime: c.deviceTime });
    // Across regions, the insured region owes the treating one what its funds pay (pooled fund
    // and personal account); the cash is paid at the counter, in the treating region.
    if (c.insuredRegion !== c.treatmentRegion && r.hifpPay + r.acctPay > 0) clearing.push({ day: businessDay(c.deviceTime), account: `clearing:${c.insuredRegion}:${c.treatmentRegion}`, amountFen: r.hifpPay + r.acctPay });
  }
  return { sc, decided: sc.taps, settlements, clearing };
}

/**
 * What each panel must show, by `<dashboard uid> / <panel title>`, and how its rows are compared:
 * `ordered` when the panel's ORDER BY fixes the order, else as a set.
 */
const EXPECTATIONS: Record<string, (f: Facts) => { rows: Row[]; ordered: boolean }> = {
  'tapflow-finance / Ledger per business day (fen)': (f) => {
    // Double entry, per settlement: a fare or entry is the card's debit and the operator's
    // credit; across regions also a clearing credit and its receivable's debit (4 entries). A
    // claim debits each payer with a share (cash, personal account, pooled fund) and credits the
    // institution; across regions plus the clearing pair. Debits = credits = the amounts paid plus
    // what crosses between regions.
    const days = new Map<string, { entries: number; debits: number }>();
    const add = (day: string, entries: number, fen: number) => {
      const d = days.get(day) ?? { entries: 0, debits: 0 };
      days.set(day, { entries: d.entries + entries, debits: d.debits + fen });
    };
    for (const t of f.sc.taps) if (t.settlement && t.verdict === 'ACCEPTED') add(businessDay(t.deviceTime), 2, t.settlement.amountFen);
    for (const c of f.sc.claims) {
      const r = c.result;
      const payers = [r.cashPayamt, r.acctPay, r.hifpPay].filter((x) => x > 0).length;
      add(businessDay(c.deviceTime), payers + 1, r.medfeeSumamt);
    }
    for (const c of f.clearing) add(c.day, 2, c.amountFen);
    return {
      rows: [...days].sort(([a], [b]) => b.localeCompare(a)).map(([day, d]) => ({ business_day: day, ledger_entries: d.entries, debits_fen: d.debits, credits_fen: d.debits, difference_fen: 0 })),
      ordered: true,
    };
  },
  'tapflow-finance / Net positions of the clearing accounts (fen, range)': (f) => ({
    rows: [...groupBy(f.clearing, (c) => [c.account])].map(([k, cs]) => {
      const fen = cs.reduce((n, c) => n + c.amountFen, 0);
      return { account: JSON.parse(k)[0], debits_fen: 0, credits_fen: fen, net_debit_fen: -fen };
    }).sort((a, b) => a.account.localeCompare(b.account)),
    ordered: true,
  }),
  'tapflow-finance / Cross-region net positions by region (fen, range)': (f) => {
    const net = new Map<string, { receivable: number; payable: number }>();
    for (const s of f.settlements.filter((x) => x.cardRegion !== x.terminalRegion)) {
      const t = net.get(s.terminalRegion) ?? { receivable: 0, payable: 0 };
      net.set(s.terminalRegion, { ...t, receivable: t.receivable + s.amountFen });
      const c = net.get(s.cardRegion) ?? { receivable: 0, payable: 0 };
      net.set(s.cardRegion, { ...c, payable: c.payable + s.amountFen });
    }
    return { rows: [...net].sort(([a], [b]) => a.localeCompare(b)).map(([region, n]) => ({ region, receivable: n.receivable, payable: n.payable, net: n.receivable - n.payable })), ordered: true };
  },
  'tapflow-finance / Cross-region amounts, card region → terminal region (fen, range)': (f) => ({
    rows: [...groupBy(f.settlements.filter((s) => s.cardRegion !== s.terminalRegion), (s) => [s.cardRegion, s.terminalRegion])].sort(([a], [b]) => a.localeCompare(b)).map(([k, ss]) => {
      const [card_region, terminal_region] = JSON.parse(k) as string[];
      return { card_region, terminal_region, settlement_count: ss.length, amount_total_fen: ss.reduce((n, s) => n + s.amountFen, 0) };
    }),
    ordered: true,
  }),
  'tapflow-finance / Fares per business day by network and terminal region (fen)': (f) => ({
    rows: [...groupBy(f.settlements, (s) => [s.day, s.network, s.terminalRegion])].map(([k, ss]) => {
      const [business_day, network, terminal_region] = JSON.parse(k) as string[];
      return { business_day, network, terminal_region, settlement_count: ss.length, fares_fen: ss.reduce((n, s) => n + s.amountFen, 0) };
    }),
    ordered: false, // ORDER BY business_day DESC, fares_fen DESC: ties in fares_fen (checked below)
  }),
  'tapflow-finance / Medical splits by insured and treating region (fen, range)': (f) => ({
    rows: [...groupBy(f.sc.claims, (c) => [c.insuredRegion, c.treatmentRegion])].sort(([a], [b]) => a.localeCompare(b)).map(([k, cs]) => {
      const [insured_region, treatment_region] = JSON.parse(k) as string[];
      const sum = (g: (r: (typeof cs)[number]['result']) => number) => cs.reduce((n, c) => n + g(c.result), 0);
      return { insured_region, treatment_region, claims_settled: cs.length, claims_reversed: 0, medfee_sumamt_fen: sum((r) => r.medfeeSumamt), hifp_pay_fen: sum((r) => r.hifpPay), acct_pay_fen: sum((r) => r.acctPay), cash_payamt_fen: sum((r) => r.cashPayamt) };
    }),
    ordered: true,
  }),
  'tapflow-risk / Risk flags by rule, event time (ClickHouse)': (f) => ({
    rows: [...groupBy(expectedFlags(f.decided), (x) => [minuteText(x.deviceTime), x.ruleId])].map(([k, xs]) => {
      const [time, rule_id] = JSON.parse(k) as string[];
      return { time, rule_id, flags: xs.length };
    }),
    ordered: false, // ORDER BY time: rules within a minute in any order
  }),
  'tapflow-risk / Rejects by venue and reason (ClickHouse)': (f) => ({
    rows: [...groupBy(f.decided.filter((t) => t.verdict === 'REJECTED'), (t) => [t.venue, t.scene, t.terminalRegion, t.reason])].map(([k, ts]) => {
      const [venue_id, scene, terminal_region, reason] = JSON.parse(k) as string[];
      return { venue_id, scene, terminal_region, reason, rejects: ts.length };
    }),
    ordered: false, // ORDER BY rejects DESC: ties (checked below); fewer than its LIMIT 50
  }),
  'tapflow-risk / Rejects by reason (ClickHouse)': (f) => ({
    rows: [...groupBy(f.decided.filter((t) => t.verdict === 'REJECTED'), (t) => [t.reason])]
      .map(([k, ts]) => ({ reason: JSON.parse(k)[0] as string, rejects: ts.length }))
      .sort((a, b) => b.rejects - a.rejects || a.reason.localeCompare(b.reason)),
    ordered: true,
  }),
  'tapflow-risk / Risk flags by rule and severity (ClickHouse, range)': (f) => ({
    rows: [...groupBy(expectedFlags(f.decided), (x) => [x.ruleId, x.severity])]
      .map(([k, xs]) => {
        const [rule_id, severity] = JSON.parse(k) as [string, string];
        return { rule_id, severity, flags: xs.length };
      })
      .sort((a, b) => b.flags - a.flags || a.rule_id.localeCompare(b.rule_id) || a.severity.localeCompare(b.severity)),
    ordered: true,
  }),
  'tapflow-risk / Venues with dropping acceptance: last hour vs the 24 hours before (ClickHouse)': (f) => {
    // The panel reads now(): the run's last-hour taps are 2–40 minutes old and the others at
    // least 80 minutes old when it runs, so each falls on the same side of "an hour ago".
    const now = f.sc.now;
    const rows: Row[] = [];
    for (const [k, ts] of groupBy(f.decided.filter((t) => t.deviceTime >= now - 25 * HOUR && t.deviceTime <= now), (t) => [t.venue])) {
      const last = ts.filter((t) => t.deviceTime >= now - HOUR);
      const before = ts.filter((t) => t.deviceTime < now - HOUR);
      const share = (xs: ExpectedTap[]) => (xs.length === 0 ? null : Math.round((1000 * xs.filter((t) => t.verdict === 'ACCEPTED').length) / xs.length) / 1000);
      const [a, b] = [share(last), share(before)];
      const drop = a === null || b === null ? null : Math.round(1000 * (b - a)) / 1000;
      if (last.length < 20 || drop === null || !(drop > 0.05)) continue;
      rows.push({ venue_id: JSON.parse(k)[0], venue_scene: ts[0]!.scene, region: ts[0]!.terminalRegion, taps_last_hour: last.length, taps_per_hour_before: Math.round((10 * before.length) / 24) / 10, acceptance_last_hour: a, acceptance_before: b, acceptance_drop: drop });
    }
    return { rows, ordered: true };
  },
  'tapflow-risk / Culture venue entries (accepted, range, ClickHouse)': (f) => ({
    rows: [...groupBy(f.decided.filter((t) => t.scene === 'CULTURE' && t.verdict === 'ACCEPTED' && (t.direction === 'ENTRY' || t.direction === 'SINGLE')), (t) => [t.venue, t.terminalRegion, t.cardRegion])].map(([k, ts]) => {
      const [venue_id, terminal_region, card_region] = JSON.parse(k) as string[];
      return { venue_id, terminal_region, card_region, accepted_entries: ts.length };
    }),
    ordered: false, // ORDER BY accepted_entries DESC: ties
  }),
  'tapflow-operations / Taps by verdict, event time (ClickHouse)': (f) => ({
    rows: [...groupBy(f.decided, (t) => [minuteText(t.deviceTime), t.verdict])].map(([k, ts]) => {
      const [time, verdict] = JSON.parse(k) as string[];
      return { time, verdict, taps: ts.length };
    }),
    ordered: false, // compared as a set; ORDER BY time, verdict checked below
  }),
};

let p: TestPipeline;
let sc: DashboardScenario;
let facts: Facts;
let panels: PanelQuery[];

beforeAll(async () => {
  p = await startTestPipeline();
  sc = await runDashboardScenario(p);
  facts = factsOf(sc);
  panels = loadPanelQueries();
}, 180_000);

afterAll(async () => {
  await p?.stop();
});

const key = (q: PanelQuery) => `${q.dashboardUid} / ${q.panelTitle}`;
/** The grafana range of the run: an hour before its first tap to a few minutes after it. */
const run = async (q: PanelQuery) => p.query<Row>(expandPanelSql(q, { fromMs: sc.rangeFrom - HOUR, toMs: sc.now + 5 * MIN, mode: 'grafana' }));

describe('ops - every ClickHouse panel on the data of a pipeline run', () => {
  it('has an expectation for every ClickHouse panel, and none for a panel that is gone', () => {
    const keys = panels.map(key);
    expect(keys.length).toBeGreaterThanOrEqual(13);
    expect(keys.filter((k) => !(k in EXPECTATIONS)), 'panels without an expectation here: add one').toEqual([]);
    expect(Object.keys(EXPECTATIONS).filter((k) => !keys.includes(k)), 'expectations for panels that do not exist').toEqual([]);
  });

  it('the run has what the panels are about: refusals, flags, fares in every region, claims, clearing', () => {
    expect(new Set(facts.decided.filter((t) => t.verdict === 'REJECTED').map((t) => t.reason)).size).toBeGreaterThanOrEqual(4);
    expect(new Set(expectedFlags(facts.decided).map((x) => x.ruleId)).size).toBeGreaterThanOrEqual(2);
    expect(new Set(facts.settlements.filter((s) => s.kind === 'FARE').map((s) => s.terminalRegion))).toEqual(new Set(['BJ', 'TJ', 'HE']));
    expect(facts.sc.claims.length).toBeGreaterThanOrEqual(2);
    expect(facts.clearing.length).toBeGreaterThanOrEqual(3);
  });

  for (const name of Object.keys(EXPECTATIONS)) {
    it(`shows what the run did: ${name}`, async () => {
      const q = panels.find((x) => key(x) === name);
      expect(q, `panel ${name}`).toBeDefined();
      const rows = await run(q!);
      const want = EXPECTATIONS[name]!(facts);
      expect(want.rows.length, 'the run gives this panel something to show').toBeGreaterThan(0);
      if (want.ordered) expect(rows).toEqual(want.rows);
      else expect(canonical(rows)).toEqual(canonical(want.rows));
    });
  }

  it('keeps the order the unordered comparisons leave out', async () => {
    const byTitle = (t: string) => run(panels.find((x) => x.panelTitle === t)!);
    const fares = await byTitle('Fares per business day by network and terminal region (fen)');
    for (let i = 1; i < fares.length; i++) {
      const [a, b] = [fares[i - 1]!, fares[i]!];
      expect(String(a.business_day) > String(b.business_day) || (a.business_day === b.business_day && Number(a.fares_fen) >= Number(b.fares_fen))).toBe(true);
    }
    const rejects = await byTitle('Rejects by venue and reason (ClickHouse)');
    for (let i = 1; i < rejects.length; i++) expect(Number(rejects[i - 1]!.rejects)).toBeGreaterThanOrEqual(Number(rejects[i]!.rejects));
    const taps = await byTitle('Taps by verdict, event time (ClickHouse)');
    const order = taps.map((r) => `${r.time} ${r.verdict}`);
    expect(order).toEqual([...order].sort());
  });
});
