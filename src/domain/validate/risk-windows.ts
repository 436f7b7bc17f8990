/**
 * Sliding windows of the risk rules (risk-rules.ts).
 *
 * Time axis: device time of the decided taps (aggregates are by event time; offline taps count
 * where they happened). A rule's window at a tap is the `windowMs` ending at the tap's device
 * time, inclusive: events with deviceTime in (t − windowMs, t]. A rule flags the tap when its
 * metric over that window is greater than the threshold (and, for reject_rate, the window holds
 * at least minSample decisions), unless the key was flagged by the rule less than `cooldownMs`
 * before (in device time). A flag's id is "<eventId>:<ruleId>", so re-deciding a tap yields the
 * same flag id (the bus drops the second copy).
 *
 * Card windows (in the per-card state) keep the individual events: exact. Other windows
 * (terminal, venue, institution: thousands of events per window) keep 60 buckets of
 * windowMs/60 each: the window then spans between 59/60 and 60/60 of windowMs, which is the
 * precision a reject-rate or frequency alarm needs.
 */
import type { RiskFlag } from '../types.js';
import { formatDuration, matchesFilter, riskKeyOf, type RiskRule, type RiskRuleSet, type RiskSubject } from './risk-rules.js';

/** Per card and rule: the rule version the window was built for, its events, the last flag's device time. */
export interface CardRiskWindow {
  ver: string;
  /** [deviceTime, amountFen, rejected 0|1], ascending device time. */
  ev: [number, number, 0 | 1][];
  flagT?: number;
}

/** Hard bound of events kept per card window, whatever the rule's threshold. */
const MAX_CARD_WINDOW_EVENTS = 1024;

/**
 * Evaluates the card-keyed rules for one decided tap. Pure: returns new windows (rules no longer
 * in `rules` are dropped) and the flags raised. `limit` is the memory bound of a window
 * (raised to threshold + 1 for count rules, so counting stays exact).
 */
export function evaluateCardRules(
  rules: readonly RiskRule[],
  windows: Readonly<Record<string, CardRiskWindow>>,
  d: RiskSubject,
  limit: number,
  nowMs: number,
): { windows: Record<string, CardRiskWindow>; flags: RiskFlag[] } {
  const out: Record<string, CardRiskWindow> = {};
  const flags: RiskFlag[] = [];
  for (const rule of rules) {
    const old = windows[rule.id];
    const w = old && old.ver === rule.version ? old : undefined;
    if (!matchesFilter(rule.filter, d)) {
      if (w) out[rule.id] = w;
      continue;
    }
    const ev = w ? w.ev.slice() : [];
    insertByTime(ev, [d.deviceTime, d.amountFen, d.verdict === 'REJECTED' ? 1 : 0]);
    const latest = ev[ev.length - 1]![0];
    let drop = 0;
    while (drop < ev.length && ev[drop]![0] <= latest - rule.windowMs) drop++;
    const cap = Math.min(MAX_CARD_WINDOW_EVENTS, rule.metric === 'count' ? Math.max(limit, rule.threshold + 1) : limit);
    drop = Math.max(drop, ev.length - cap);
    if (drop > 0) ev.splice(0, drop);

    let n = 0;
    let rejects = 0;
    let amount = 0;
    const from = d.deviceTime - rule.windowMs;
    for (const [t, a, r] of ev) {
      if (t <= from || t > d.deviceTime) continue;
      n++;
      rejects += r;
      amount += a;
    }
    const next: CardRiskWindow = { ver: rule.version, ev };
    let flagT = w?.flagT;
    const over = overThreshold(rule, n, rejects, amount);
    if (over && (flagT === undefined || Math.abs(d.deviceTime - flagT) >= rule.cooldownMs || rule.cooldownMs === 0)) {
      flags.push(makeFlag(rule, d, d.cardToken, d.cardRegion, over, nowMs));
      flagT = d.deviceTime;
    }
    if (flagT !== undefined) next.flagT = flagT;
    out[rule.id] = next;
  }
  return { windows: out, flags };
}

/** One key's buckets for one rule. */
export interface WindowSeries {
  /** Rule version the series was built for. */
  ver: string;
  /** Bucket width, ms. */
  w: number;
  /** [bucket index = floor(deviceTime / w), decisions, rejected, amountFen], ascending index. */
  b: [number, number, number, number][];
  /** Latest device time seen. */
  lastT: number;
  flagT?: number;
}

/**
 * Window state of the terminal, venue and institution rules: series keyed by
 * "<ruleId>|<key>" (see {@link windowKeysFor}). JSON-serialisable. A partial state holding only
 * the series of one decision's keys is valid input to {@link observeDecision}: with many keys,
 * store each series apart (e.g. one KV entry per series key) and pass just those.
 */
export interface WindowState {
  v: 1;
  series: Record<string, WindowSeries>;
}

/** A window state with no series yet. */
export function emptyWindowState(): WindowState {
  return { v: 1, series: {} };
}

/** Buckets per window. */
const BUCKETS = 60;

/** The series keys a decision touches: one per enabled non-card rule whose filter matches. */
export function windowKeysFor(rules: RiskRuleSet, d: RiskSubject): { rule: RiskRule; key: string; seriesKey: string }[] {
  const out: { rule: RiskRule; key: string; seriesKey: string }[] = [];
  for (const rule of rules.otherRules) {
    if (!matchesFilter(rule.filter, d)) continue;
    const key = riskKeyOf(rule.keyKind, d);
    out.push({ rule, key, seriesKey: `${rule.id}|${key}` });
  }
  return out;
}

/**
 * Adds one decision to the windows of the terminal-, venue- and institution-keyed rules and
 * returns the flags it raises. Pure: returns a new state (unchanged series are shared).
 * Card-keyed rules are not evaluated here (decideTap does, with the card's state).
 */
export function observeDecision(rules: RiskRuleSet, state: WindowState, d: RiskSubject, nowMs: number): { state: WindowState; flags: RiskFlag[] } {
  const touched = windowKeysFor(rules, d);
  if (touched.length === 0) return { state, flags: [] };
  const series = { ...state.series };
  const flags: RiskFlag[] = [];
  for (const { rule, key, seriesKey } of touched) {
    const r = observeSeries(rule, series[seriesKey], d, key, nowMs);
    series[seriesKey] = r.series;
    if (r.flag) flags.push(r.flag);
  }
  return { state: { v: 1, series }, flags };
}

/** One rule, one key: adds the decision to the series and decides whether it flags. Pure. */
export function observeSeries(
  rule: RiskRule,
  old: WindowSeries | undefined,
  d: RiskSubject,
  key: string,
  nowMs: number,
): { series: WindowSeries; flag?: RiskFlag } {
  const width = Math.max(1, Math.floor(rule.windowMs / BUCKETS));
  const span = Math.ceil(rule.windowMs / width);
  const s = old && old.ver === rule.version && old.w === width ? old : undefined;
  const b = s ? s.b.map((x) => x.slice() as WindowSeries['b'][number]) : [];
  const k = Math.floor(d.deviceTime / width);
  const rejected = d.verdict === 'REJECTED' ? 1 : 0;
  let i = b.length;
  while (i > 0 && b[i - 1]![0] > k) i--;
  if (i > 0 && b[i - 1]![0] === k) {
    const cell = b[i - 1]!;
    cell[1] += 1;
    cell[2] += rejected;
    cell[3] += d.amountFen;
  } else {
    b.splice(i, 0, [k, 1, rejected, d.amountFen]);
  }
  const lastT = Math.max(s?.lastT ?? d.deviceTime, d.deviceTime);
  const newest = Math.floor(lastT / width);
  let drop = 0;
  while (drop < b.length && b[drop]![0] <= newest - span) drop++;
  if (drop > 0) b.splice(0, drop);

  // Every window that contains the new decision: those ending at its bucket and, when it
  // arrived late, those ending after it up to the newest bucket seen. Checking only the window
  // ending at the new decision would make the answer depend on arrival order.
  const lastEnd = Math.min(newest, k + span - 1);
  const lo = k - span + 1;
  const cells = lastEnd - lo + 1;
  const cn = new Array<number>(cells).fill(0);
  const cr = new Array<number>(cells).fill(0);
  const ca = new Array<number>(cells).fill(0);
  for (const [idx, bn, br, bamt] of b) {
    if (idx < lo || idx > lastEnd) continue;
    cn[idx - lo]! += bn;
    cr[idx - lo]! += br;
    ca[idx - lo]! += bamt;
  }
  let n = 0;
  let rejects = 0;
  let amount = 0;
  for (let i2 = 0; i2 <= k - lo; i2++) {
    n += cn[i2]!;
    rejects += cr[i2]!;
    amount += ca[i2]!;
  }
  let over = overThreshold(rule, n, rejects, amount);
  for (let end = k + 1; !over && end <= lastEnd; end++) {
    const add = end - lo;
    const sub = end - span - lo;
    n += cn[add]! - (sub >= 0 ? cn[sub]! : 0);
    rejects += cr[add]! - (sub >= 0 ? cr[sub]! : 0);
    amount += ca[add]! - (sub >= 0 ? ca[sub]! : 0);
    over = overThreshold(rule, n, rejects, amount);
  }
  const series: WindowSeries = { ver: rule.version, w: width, b, lastT };
  let flagT = s?.flagT;
  let flag: RiskFlag | undefined;
  if (over && (flagT === undefined || rule.cooldownMs === 0 || Math.abs(d.deviceTime - flagT) >= rule.cooldownMs)) {
    flag = makeFlag(rule, d, key, d.terminalRegion, over, nowMs);
    flagT = d.deviceTime;
  }
  if (flagT !== undefined) series.flagT = flagT;
  return flag ? { series, flag } : { series };
}

/**
 * Drops series whose rule is gone, disabled or changed version, and series with no decision in
 * their window before `deviceTimeNow − graceMs` (graceMs lets late offline taps still count).
 */
export function pruneWindowState(rules: RiskRuleSet, state: WindowState, deviceTimeNow: number, graceMs = 0): WindowState {
  const byId = new Map(rules.otherRules.map((r) => [r.id, r]));
  const series: Record<string, WindowSeries> = {};
  for (const [key, s] of Object.entries(state.series)) {
    const rule = byId.get(key.slice(0, key.indexOf('|')));
    if (!rule || rule.version !== s.ver) continue;
    if (s.lastT <= deviceTimeNow - rule.windowMs - graceMs) continue;
    series[key] = s;
  }
  return { v: 1, series };
}

/** The detail of a flag when the metric is over the threshold, else undefined. */
function overThreshold(rule: RiskRule, n: number, rejects: number, amount: number): string | undefined {
  const win = formatDuration(rule.windowMs);
  switch (rule.metric) {
    case 'count':
      return n > rule.threshold ? `count ${n} > ${rule.threshold} in ${win}` : undefined;
    case 'amount_sum':
      return amount > rule.threshold ? `amount ${amount} fen > ${rule.threshold} fen in ${win}` : undefined;
    case 'reject_rate': {
      if (n < rule.minSample || n === 0) return undefined;
      // rejects / n > threshold, without dividing; the epsilon keeps an exact tie (3 of 10 at 0.3)
      // from flagging when threshold * n is a hair below the integer in binary floating point.
      return rejects > rule.threshold * n + 1e-9 ? `reject rate ${rejects}/${n} > ${rule.threshold} over ${win}` : undefined;
    }
  }
}

function makeFlag(rule: RiskRule, d: RiskSubject, key: string, region: RiskFlag['region'], detail: string, nowMs: number): RiskFlag {
  return {
    flagId: `${d.eventId}:${rule.id}`,
    eventId: d.eventId,
    ruleId: rule.id,
    ruleVersion: rule.version,
    severity: rule.severity,
    keyKind: rule.keyKind,
    key,
    detail,
    deviceTime: d.deviceTime,
    flagTime: nowMs,
    region,
  };
}

function insertByTime(ev: [number, number, 0 | 1][], e: [number, number, 0 | 1]): void {
  let i = ev.length;
  while (i > 0 && ev[i - 1]![0] > e[0]) i--;
  ev.splice(i, 0, e);
}
