/**
 * Per-card settlement: journeys, late re-rating, culture entries and no-charge scenes.
 *
 * ## Journeys (transit taps, scenes RAIL and BUS)
 * The card's transit taps are kept in device-time order (ties: event id) and rated as a whole,
 * from a checkpoint, by one deterministic pass:
 * - an EXIT pairs with the open ENTRY when it is on the same network (for buses: the same route)
 *   and at most `pairWithinMin` after it: a journey, charged on the exit tap (over the time limit,
 *   the fare plus the network's over-time supplement);
 * - any other tap closes an open ENTRY as an incomplete journey (two entries in a row, an exit on
 *   another network, a bus tap…), charged on the entry tap: the network's max fare (for buses the
 *   fare to the far end of the route), through the same discounts;
 * - an EXIT with no open entry is an incomplete journey too, charged on the exit tap;
 * - on a tap-once network (flat buses) SINGLE and ENTRY taps pay the flat fare, an EXIT pays 0;
 *   a SINGLE tap on a tap-on/tap-off network is an incomplete journey;
 * - the last ENTRY, still open, is charged as incomplete only once its time limit has passed before
 *   the sweep horizon (the latest `nowMs` given to {@link sweepExpired}); until then it costs 0.
 * Taps at venues without a tariff are charged 0 and do not close an open entry.
 *
 * ## Late taps and adjustments
 * Each tap remembers what has been posted for the charge it owns (`pa`). After every new tap the
 * whole retained sequence is re-rated; a charge never posted is emitted as FARE
 * `<ownerEventId>:fare`, a posted charge whose amount changed as ADJUSTMENT
 * `<triggerEventId>:adj:<n>` (n counts in tap order) carrying the delta. Earlier settlements are
 * never rewritten, and the sum of everything emitted for a card equals the rating of its taps in
 * device-time order, whatever the arrival order — per card and per month, because every
 * settlement of a charge carries the device time of the tap that owns it.
 *
 * ## Bounded state
 * Taps older than the card's newest tap minus `rerating.windowHours` (tariffs.yaml), or beyond
 * `rerating.maxTaps`, are folded into the checkpoint (month-to-date spend, last leg) and dropped,
 * never splitting an open entry from its successor. A tap that arrives older than the checkpoint
 * cannot be re-rated: it is settled NO_CHARGE (`<eventId>:late`) and reported as a notice.
 */
import type { VenueInfo } from '../network/venues.js';
import type { Decision, EpochMs, Fen, Region, RiderCategory, Settlement, SettlementKind, TraceStep } from '../types.js';
import { ACCOUNTS } from './accounts.js';
import type { SettlerData } from './data.js';
import { priceEntry } from './entries.js';
import { applyDiscounts, baseFare, type LegSpec, type RateContext } from './fares.js';
import { postCardPayment } from './ledger.js';
import type { NetworkTariff } from './tariffs.js';
import { businessDay, shanghaiMonth } from './time.js';

/** A transit tap as the card state keeps it (short keys: the state is a KV value). */
export interface StoredTap {
  /** Event id. */
  id: string;
  /** Device time. */
  t: EpochMs;
  /** Venue id. */
  v: string;
  /** Direction: E entry, X exit, S single. */
  d: 'E' | 'X' | 'S';
  /** Rider category. */
  c: RiderCategory;
  /** Amount the terminal debited from the purse (0 for account-based). */
  a: Fen;
  /** Terminal region and operator. */
  r: Region;
  o: string;
  /** Partition and ingest time (copied to settlements). */
  p: number;
  i: EpochMs;
  /** Amount posted so far for the charge this tap owns; absent when nothing was posted. */
  pa?: Fen;
}

/**
 * Per-card settlement state, plain data (a KV value, stored as MessagePack: partition-state.ts). Size: at most `rerating.maxTaps`
 * stored taps (about 150 bytes each in JSON) plus {@link MAX_RECENT} event ids.
 */
export interface CardSettleState {
  v: 1;
  cardToken: string;
  cardRegion: Region;
  /** Rating context after every tap up to `cursor` (folded, final). */
  ctx: RateContext;
  /** The last folded tap; taps ordered at or before it can no longer be re-rated. */
  cursor: { t: EpochMs; id: string } | null;
  /** Transit taps after the cursor, in (device time, event id) order. */
  taps: StoredTap[];
  /**
   * A second restart point near the tail: the rating context just before tap `at` (null: after
   * the last tap), where no journey is open. A new tap ordered at or after it is rated from here
   * instead of from the checkpoint, so in-order taps cost O(1). A pure cache: rating from the
   * checkpoint gives the same charges.
   */
  mark: { at: string | null; ctx: RateContext } | null;
  /** Sweep horizon: the latest `nowMs` of a sweep that closed an open journey. */
  horizon: EpochMs;
  /** Ids of recent non-transit and too-late events, for idempotency (newest last). */
  recent: string[];
}

/** Bound on the remembered ids of non-transit events. */
export const MAX_RECENT = 64;

/** Facts for the lead to turn into risk flags or metrics. */
export type SettleNotice =
  | { kind: 'PURSE_MISMATCH'; eventId: string; debitedFen: Fen; tariffFen: Fen }
  | { kind: 'BEYOND_RERATE_WINDOW'; eventId: string; deviceTime: EpochMs; checkpointTime: EpochMs }
  | { kind: 'UNPRICED'; eventId: string; detail: string };

export interface SettleResult {
  state: CardSettleState;
  settlements: Settlement[];
  notices: SettleNotice[];
}

interface Charge {
  amountFen: Fen;
  baseFareFen: Fen;
  distanceM: number;
  entryVenueId: string;
  /** Set when the tap could not be priced (no tariff for its venue). */
  unpriced?: string;
  /** The rule trace, rebuilt on demand: rating runs without traces (it repeats on every tap). */
  explain: () => TraceStep[];
  /** Steps added after rating (purse check). */
  extra: TraceStep[];
}

interface Resolved {
  venue: VenueInfo;
  tariff: NetworkTariff;
}

interface Trigger {
  /** Prefix of adjustment ids; the event id for taps, `<entryId>:sweep` for sweeps. */
  adjPrefix: string;
  eventId: string;
  partition: number;
  ingestTime: EpochMs;
}

const cmpTap = (a: { t: number; id: string }, b: { t: number; id: string }): number =>
  a.t - b.t || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function newState(d: Pick<Decision, 'cardToken' | 'cardRegion'>): CardSettleState {
  return { v: 1, cardToken: d.cardToken, cardRegion: d.cardRegion, ctx: { spend: {} }, cursor: null, taps: [], mark: null, horizon: 0, recent: [] };
}

function cloneState(s: CardSettleState): CardSettleState {
  // Taps, contexts and spend maps are replaced, never updated in place: shallow copies suffice.
  return { ...s, taps: [...s.taps], recent: [...s.recent] };
}

function resolve(data: SettlerData, tap: StoredTap): Resolved | undefined {
  const venue = data.venues.info(tap.v);
  const tariff = venue?.network ? data.tariffs.networks.get(venue.network) : undefined;
  return venue && tariff ? { venue, tariff } : undefined;
}

interface RatePass {
  /** Charges of the taps rated (those in [start, end)). */
  charges: Map<string, Charge>;
  /** Context after the pass. */
  ctx: RateContext;
  /** Index of the entry still open at the end (before the horizon rule), or -1. */
  openIndex: number;
  /** The last point of the pass where no journey was open: index (end = after the last tap) and context. */
  mark: { index: number; ctx: RateContext };
}

/**
 * One rating pass over `taps[start..end)` from `ctx0`, the context before `taps[start]` (where no
 * journey is open). `horizon` null: leave a trailing open entry uncharged whatever the time.
 */
function rate(
  data: SettlerData,
  ctx0: RateContext,
  taps: readonly StoredTap[],
  start: number,
  end: number,
  horizon: EpochMs | null,
): RatePass {
  // applyDiscounts replaces ctx.spend and ctx.lastLeg instead of updating them, so snapshots
  // are plain references.
  const ctx: RateContext = { ...ctx0 };
  const snapshot = (): RateContext => ({ ...ctx });
  let mark = { index: start, ctx: snapshot() };
  const charges = new Map<string, Charge>();
  let open: (Resolved & { tap: StoredTap; index: number }) | undefined;

  const fixed = (owner: StoredTap, rule: string, detail: string, unpriced = false): void => {
    const trace = [{ rule, version: data.tariffs.version, detail }];
    const c: Charge = { amountFen: 0, baseFareFen: 0, distanceM: 0, entryVenueId: '', explain: () => trace, extra: [] };
    if (unpriced) c.unpriced = detail;
    charges.set(owner.id, c);
  };
  const charge = (owner: StoredTap, r: Resolved, leg: LegSpec, entryVenueId: string): void => {
    // What applyDiscounts reads from the context, captured to replay it when explaining.
    const monthKey = r.tariff.monthlyTiers ? `${r.tariff.network}|${shanghaiMonth(owner.t)}` : undefined;
    const spentBefore = monthKey ? ctx.spend[monthKey] : undefined;
    const lastLegBefore = ctx.lastLeg;
    const input = { category: owner.c, chargeT: owner.t };
    const base = baseFare(data, r.tariff, leg, false);
    const disc = applyDiscounts(data.tariffs, r.tariff, base, ctx, input, false);
    charges.set(owner.id, {
      amountFen: disc.amountFen,
      baseFareFen: base.baseFareFen,
      distanceM: base.distanceM,
      entryVenueId,
      explain: () => {
        const replay: RateContext = { spend: monthKey && spentBefore !== undefined ? { [monthKey]: spentBefore } : {} };
        if (lastLegBefore) replay.lastLeg = lastLegBefore;
        const b = baseFare(data, r.tariff, leg, true);
        return [...b.trace, ...applyDiscounts(data.tariffs, r.tariff, b, replay, input, true).trace];
      },
      extra: [],
    });
  };
  const closeIncomplete = (why: string): void => {
    const o = open!;
    charge(o.tap, o, { kind: 'incomplete', venue: o.venue, t: o.tap.t, why }, o.venue.id);
    open = undefined;
  };

  for (let i = start; i < end; i++) {
    const tap = taps[i]!;
    if (!open && i > mark.index) mark = { index: i, ctx: snapshot() };
    const r = resolve(data, tap);
    if (!r) {
      fixed(tap, 'unpriced', `no tariff for venue ${tap.v}`, true);
      continue;
    }
    if (open) {
      const sameRoute = open.tariff.basis !== 'route-distance' || open.venue.route === r.venue.route;
      if (tap.d === 'X' && r.tariff.network === open.tariff.network && sameRoute && tap.t - open.tap.t <= open.tariff.pairWithinMs) {
        charge(tap, r, { kind: 'journey', entry: open.venue, exit: r.venue, entryT: open.tap.t, exitT: tap.t }, open.venue.id);
        open = undefined;
        continue;
      }
      closeIncomplete(tap.d === 'E' ? 'a second entry before any exit' : 'no matching exit before the next tap');
    }
    if (r.tariff.pairing === 'single') {
      if (tap.d === 'X') fixed(tap, 'tap-off', `${r.tariff.network} is tap-once: a tap-off costs nothing`);
      else charge(tap, r, { kind: 'single', venue: r.venue, t: tap.t }, '');
      continue;
    }
    if (tap.d === 'E') open = { ...r, tap, index: i };
    else if (tap.d === 'X') charge(tap, r, { kind: 'incomplete', venue: r.venue, t: tap.t, why: 'exit without an entry' }, '');
    else charge(tap, r, { kind: 'incomplete', venue: r.venue, t: tap.t, why: 'single tap on a tap-on/tap-off network' }, '');
  }
  let openIndex = -1;
  if (!open && end > mark.index) mark = { index: end, ctx: snapshot() };
  if (open) {
    if (horizon !== null && open.tap.t + open.tariff.timeLimitMs < horizon) {
      closeIncomplete(`no exit within ${open.tariff.timeLimitMs / 60_000} min`);
    } else openIndex = open.index;
  }
  return { charges, ctx, openIndex, mark };
}

/** Posts every charge whose amount differs from what was posted; replaces those taps in `st.taps`. */
function reconcile(
  data: SettlerData,
  st: CardSettleState,
  from: number,
  charges: Map<string, Charge>,
  trigger: Trigger,
  nowMs: EpochMs,
): Settlement[] {
  const out: Settlement[] = [];
  let n = 0;
  for (let i = from; i < st.taps.length; i++) {
    const tap = st.taps[i]!;
    const ch = charges.get(tap.id);
    const target = ch?.amountFen ?? 0;
    if (tap.pa === undefined) {
      if (!ch) continue;
      const own = trigger.eventId === tap.id;
      out.push(
        transitSettlement(data, st, tap, ch, 'FARE', `${tap.id}:fare`, target, {
          eventId: tap.id,
          partition: own ? trigger.partition : tap.p,
          ingestTime: own ? trigger.ingestTime : tap.i,
        }, nowMs, [...ch.explain(), ...ch.extra]),
      );
      st.taps[i] = { ...tap, pa: target };
    } else if (tap.pa !== target) {
      const trace: TraceStep[] = [
        { rule: 'rerate', version: data.tariffs.version, detail: `charge of ${tap.id}: ${tap.pa} → ${target} fen after ${trigger.eventId}` },
        ...(ch ? [...ch.explain(), ...ch.extra] : []),
      ];
      out.push(transitSettlement(data, st, tap, ch, 'ADJUSTMENT', `${trigger.adjPrefix}:adj:${n++}`, target - tap.pa, trigger, nowMs, trace));
      st.taps[i] = { ...tap, pa: target };
    }
  }
  return out;
}

function transitSettlement(
  data: SettlerData,
  st: CardSettleState,
  owner: StoredTap,
  ch: Charge | undefined,
  kind: SettlementKind,
  settlementId: string,
  amountFen: Fen,
  src: { eventId: string; partition: number; ingestTime: EpochMs },
  nowMs: EpochMs,
  trace: TraceStep[],
): Settlement {
  const venue = data.venues.info(owner.v);
  // A purse payment is taken by the terminal with the tap; later adjustments go to the account.
  const cardAccount = kind === 'FARE' && owner.a > 0 ? ACCOUNTS.purse(st.cardRegion) : ACCOUNTS.card(st.cardRegion);
  return {
    settlementId,
    eventId: src.eventId,
    kind,
    cardToken: st.cardToken,
    cardRegion: st.cardRegion,
    terminalRegion: owner.r,
    operatorId: owner.o,
    network: venue?.network ?? '',
    scene: venue?.scene === 'BUS' ? 'BUS' : 'RAIL',
    venueId: owner.v,
    entryVenueId: ch?.entryVenueId ?? '',
    deviceTime: owner.t,
    settleTime: nowMs,
    businessDay: businessDay(owner.t),
    amountFen,
    baseFareFen: ch?.baseFareFen ?? 0,
    distanceM: ch?.distanceM ?? 0,
    tariffVersion: data.tariffs.version,
    trace,
    ledger: postCardPayment({ settlementId, amountFen, cardAccount, cardRegion: st.cardRegion, terminalRegion: owner.r, operatorId: owner.o }),
    adjustsEventId: kind === 'ADJUSTMENT' ? owner.id : '',
    partition: src.partition,
    ingestTime: src.ingestTime,
  };
}

/** Folds old taps into the checkpoint (see "Bounded state" above). Mutates `st`. */
function prune(data: SettlerData, st: CardSettleState): void {
  const n = st.taps.length;
  if (n === 0) return;
  const cutoff = st.taps[n - 1]!.t - data.tariffs.rerate.windowMs;
  let k = 0;
  while (k < n && st.taps[k]!.t < cutoff) k++;
  k = Math.max(k, n - data.tariffs.rerate.maxTaps);
  while (k > 0) {
    const r = rate(data, st.ctx, st.taps, 0, k, null);
    if (r.openIndex >= 0) {
      k = r.openIndex; // never separate an open entry from the tap that closes it
      continue;
    }
    const last = st.taps[k - 1]!;
    const month = shanghaiMonth(last.t);
    // Months before the cursor's can get no new charge: their spend is dropped.
    const spend = Object.fromEntries(Object.entries(r.ctx.spend).filter(([key]) => key.slice(key.indexOf('|') + 1) >= month));
    st.ctx = { ...r.ctx, spend };
    st.cursor = { t: last.t, id: last.id };
    if (st.mark && st.mark.at !== null && st.taps.findIndex((t) => t.id === st.mark!.at) < k) st.mark = null;
    st.taps = st.taps.slice(k);
    return;
  }
}

/** Where to start rating after a change at index `lo` (old indices): the tail mark when usable. */
function restartPoint(st: CardSettleState, lo: number): { start: number; ctx: RateContext } {
  const m = st.mark;
  if (m) {
    let at = st.taps.length;
    if (m.at !== null) {
      at = -1;
      for (let i = st.taps.length - 1; i >= 0; i--) {
        if (st.taps[i]!.id === m.at) {
          at = i;
          break;
        }
      }
    }
    if (at >= 0 && at <= lo) return { start: at, ctx: m.ctx };
  }
  return { start: 0, ctx: st.ctx };
}

/**
 * Rates from the restart point, posts the differences and moves the tail mark. `inspect` sees the
 * charges before they are posted (the purse check adds its trace step there).
 */
function rerate(
  data: SettlerData,
  st: CardSettleState,
  restart: { start: number; ctx: RateContext },
  trigger: Trigger,
  nowMs: EpochMs,
  inspect?: (charges: Map<string, Charge>) => void,
): Settlement[] {
  const pass = rate(data, restart.ctx, st.taps, restart.start, st.taps.length, st.horizon);
  inspect?.(pass.charges);
  const settlements = reconcile(data, st, restart.start, pass.charges, trigger, nowMs);
  st.mark = { at: pass.mark.index < st.taps.length ? st.taps[pass.mark.index]!.id : null, ctx: pass.mark.ctx };
  return settlements;
}

function remember(st: CardSettleState, eventId: string): void {
  st.recent.push(eventId);
  if (st.recent.length > MAX_RECENT) st.recent.splice(0, st.recent.length - MAX_RECENT);
}

function plainSettlement(
  d: Decision,
  st: CardSettleState,
  kind: SettlementKind,
  settlementId: string,
  amountFen: Fen,
  baseFen: Fen,
  version: string,
  trace: TraceStep[],
  nowMs: EpochMs,
  network = '',
): Settlement {
  const cardAccount = d.amountFen > 0 ? ACCOUNTS.purse(st.cardRegion) : ACCOUNTS.card(st.cardRegion);
  return {
    settlementId,
    eventId: d.eventId,
    kind,
    cardToken: d.cardToken,
    cardRegion: d.cardRegion,
    terminalRegion: d.terminalRegion,
    operatorId: d.operatorId,
    network,
    scene: d.scene,
    venueId: d.venueId,
    entryVenueId: '',
    deviceTime: d.deviceTime,
    settleTime: nowMs,
    businessDay: businessDay(d.deviceTime),
    amountFen,
    baseFareFen: baseFen,
    distanceM: 0,
    tariffVersion: version,
    trace,
    ledger: postCardPayment({ settlementId, amountFen, cardAccount, cardRegion: d.cardRegion, terminalRegion: d.terminalRegion, operatorId: d.operatorId }),
    adjustsEventId: '',
    partition: d.partition,
    ingestTime: d.ingestTime,
  };
}

/**
 * Settles one ACCEPTED decision for its card (a REJECTED one changes nothing). Transit taps are
 * paired into journeys and re-rated (see the module comment); CULTURE taps are priced by the
 * venue's entry policy (ENTRY, `<eventId>:entry`); MEDICAL counter taps (the bill comes as a
 * claim), SERVICE and BENEFIT taps give one NO_CHARGE settlement (`<eventId>:none`), so that every
 * accepted event is counted once downstream. Idempotent: an event already applied returns no
 * settlements and the state unchanged. Deterministic: only `settleTime` uses `nowMs`.
 */
export function settleDecision(data: SettlerData, state: CardSettleState | undefined, d: Decision, nowMs: EpochMs): SettleResult {
  const st0 = state ?? newState(d);
  if (d.verdict !== 'ACCEPTED') return { state: st0, settlements: [], notices: [] };
  if (st0.recent.includes(d.eventId) || st0.taps.some((t) => t.id === d.eventId)) return { state: st0, settlements: [], notices: [] };
  const st = cloneState(st0);
  const notices: SettleNotice[] = [];

  if (d.scene === 'RAIL' || d.scene === 'BUS') {
    const tap: StoredTap = {
      id: d.eventId,
      t: d.deviceTime,
      v: d.venueId,
      d: d.direction === 'ENTRY' ? 'E' : d.direction === 'EXIT' ? 'X' : 'S',
      c: d.riderCategory,
      a: d.amountFen,
      r: d.terminalRegion,
      o: d.operatorId,
      p: d.partition,
      i: d.ingestTime,
    };
    if (st.cursor && cmpTap(tap, st.cursor) <= 0) {
      remember(st, d.eventId);
      notices.push({ kind: 'BEYOND_RERATE_WINDOW', eventId: d.eventId, deviceTime: d.deviceTime, checkpointTime: st.cursor.t });
      const trace = [{ rule: 'late', version: data.tariffs.version, detail: `device time before the card's re-rating checkpoint ${new Date(st.cursor.t).toISOString()}: not priced` }];
      return { state: st, settlements: [plainSettlement(d, st, 'NO_CHARGE', `${d.eventId}:late`, 0, 0, data.tariffs.version, trace, nowMs)], notices };
    }
    let lo = 0;
    let hi = st.taps.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmpTap(st.taps[mid]!, tap) < 0) lo = mid + 1;
      else hi = mid;
    }
    const restart = restartPoint(st, lo);
    st.taps.splice(lo, 0, tap);
    const trigger: Trigger = { adjPrefix: d.eventId, eventId: d.eventId, partition: d.partition, ingestTime: d.ingestTime };
    const settlements = rerate(data, st, restart, trigger, nowMs, (charges) => {
      const own = charges.get(tap.id);
      if (own?.unpriced) notices.push({ kind: 'UNPRICED', eventId: d.eventId, detail: own.unpriced });
      if (tap.a > 0) {
        const tariffFen = own?.amountFen ?? 0;
        own?.extra.push({
          rule: 'purse-check',
          version: data.tariffs.version,
          detail: `terminal debited ${tap.a} fen, tariff ${tariffFen} fen${tap.a === tariffFen ? '' : ': MISMATCH'}`,
        });
        if (tap.a !== tariffFen) notices.push({ kind: 'PURSE_MISMATCH', eventId: d.eventId, debitedFen: tap.a, tariffFen });
      }
    });
    prune(data, st);
    return { state: st, settlements, notices };
  }

  remember(st, d.eventId);
  const venue = data.venues.info(d.venueId);
  if (d.scene === 'CULTURE' && venue) {
    const p = priceEntry(data.entries, venue, d.riderCategory);
    if (d.amountFen > 0) {
      const ok = d.amountFen === p.amountFen;
      p.trace.push({ rule: 'purse-check', version: data.entries.version, detail: `terminal debited ${d.amountFen} fen, policy ${p.amountFen} fen${ok ? '' : ': MISMATCH'}` });
      if (!ok) notices.push({ kind: 'PURSE_MISMATCH', eventId: d.eventId, debitedFen: d.amountFen, tariffFen: p.amountFen });
    }
    return { state: st, settlements: [plainSettlement(d, st, 'ENTRY', `${d.eventId}:entry`, p.amountFen, p.baseFen, data.entries.version, p.trace, nowMs)], notices };
  }
  let detail: string;
  if (d.scene === 'CULTURE') {
    detail = `unknown culture venue ${d.venueId}: no entry policy`;
    notices.push({ kind: 'UNPRICED', eventId: d.eventId, detail });
  } else if (d.scene === 'MEDICAL') detail = 'medical counter tap: the bill is settled by its claim';
  else detail = `${d.scene.toLowerCase()} scene: identity use, no charge`;
  const trace = [{ rule: 'no-charge', version: data.version, detail }];
  return { state: st, settlements: [plainSettlement(d, st, 'NO_CHARGE', `${d.eventId}:none`, 0, 0, data.version, trace, nowMs)], notices };
}

/** The trailing open entry of the card, if it has not been charged yet. */
function trailingOpen(data: SettlerData, st: CardSettleState): { tap: StoredTap; tariff: NetworkTariff } | undefined {
  for (let i = st.taps.length - 1; i >= 0; i--) {
    const tap = st.taps[i]!;
    const r = resolve(data, tap);
    if (!r) continue;
    return tap.d === 'E' && r.tariff.pairing === 'entry-exit' && tap.pa === undefined ? { tap, tariff: r.tariff } : undefined;
  }
  return undefined;
}

/**
 * When {@link sweepExpired} will have something to do for this card (epoch ms), or undefined when
 * the card has no open journey. For the lead's timer wheel.
 */
export function nextSweepAt(data: SettlerData, state: CardSettleState): EpochMs | undefined {
  const o = trailingOpen(data, state);
  return o ? o.tap.t + o.tariff.timeLimitMs + 1 : undefined;
}

/**
 * Closes the card's open journey when its time limit passed before `nowMs`: an incomplete journey
 * at the max fare, FARE `<entryEventId>:fare` (re-rated by ADJUSTMENT if the exit arrives later).
 * Returns the state unchanged (same object) and no settlements when nothing expired.
 */
/**
 * When sweepExpired() will first close this state's open journey (epoch ms: it closes once the
 * time passes the journey's time limit); undefined when no journey is open.
 */
export function sweepDueAt(data: SettlerData, state: CardSettleState): EpochMs | undefined {
  const o = trailingOpen(data, state);
  return o ? o.tap.t + o.tariff.timeLimitMs + 1 : undefined;
}

export function sweepExpired(data: SettlerData, state: CardSettleState, nowMs: EpochMs): SettleResult {
  const o = trailingOpen(data, state);
  if (!o || o.tap.t + o.tariff.timeLimitMs >= nowMs) return { state, settlements: [], notices: [] };
  const st = cloneState(state);
  st.horizon = Math.max(st.horizon, nowMs);
  const trigger: Trigger = { adjPrefix: `${o.tap.id}:sweep`, eventId: o.tap.id, partition: o.tap.p, ingestTime: o.tap.i };
  const settlements = rerate(data, st, restartPoint(st, st.taps.length), trigger, nowMs);
  return { state: st, settlements, notices: [] };
}
