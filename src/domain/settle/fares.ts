/**
 * Fares: the price of one leg, in two steps that both the settler and `tapflow fares quote` use.
 *
 * 1. {@link baseFare}: the tariff's list price of the leg — a journey (fare path through the
 *    network, or the distance between two stops of a bus route), a single ride (flat fare), or an
 *    incomplete journey (the network's max fare, or for buses the fare from the stop to the far end
 *    of the route) — plus the over-time supplement when a journey exceeds the time limit, and the
 *    early-morning discount of the Beijing fare rules.
 * 2. {@link applyDiscounts}, in this order (each in integer fen, percentages rounded half up):
 *    transfer discount (fixed fen, before any percentage: "applied before card discounts"), the
 *    rider category / card discount of the network, then the monthly spend tiers.
 *
 * Monthly tiers (Beijing subway: before 100 yuan spent in the month full fare, from 100 yuan 80 %,
 * from 150 yuan 50 %, from 400 yuan full fare again) count what the card has *paid* on the network
 * in the calendar month (Asia/Shanghai, by the device time of the charge) before the ride. That
 * amount picks one tier and the whole ride is charged at its rate: a ride is never split across
 * tiers, and the ride that takes the month past a threshold still pays the old rate (see
 * {@link applyMonthlyTiers}). Incomplete journeys and over-time supplements go through the same
 * tiers and count as spend.
 */
import type { Network, PathResult } from '../network/network.js';
import type { VenueCatalog, VenueInfo } from '../network/venues.js';
import { fen, type EpochMs, type Fen, type RiderCategory, type TraceStep } from '../types.js';
import { percentOf } from './money.js';
import { bandFare, type MonthlyTier, type NetworkTariff, type Tariffs } from './tariffs.js';
import { shanghaiMinuteOfDay, shanghaiMonth, shanghaiWeekday } from './time.js';

/** The data fares are computed from (a subset of SettlerData). */
export interface FareData {
  tariffs: Tariffs;
  networks: ReadonlyMap<string, Network>;
  venues: VenueCatalog;
}

/**
 * What fares carry from one leg to the next, per card. JSON-serialisable (part of the card state).
 */
export interface RateContext {
  /** Paid amount per network with monthly tiers and month: key `<network>|<YYYY-MM>`. */
  spend: Record<string, Fen>;
  /** The last complete leg (journey or single ride), for transfer discounts. */
  lastLeg?: { network: string; endT: EpochMs };
}

/** A leg to price. Quotes may give a distance or a station count instead of venues. */
export type LegSpec =
  | { kind: 'journey'; entry: VenueInfo; exit: VenueInfo; entryT: EpochMs; exitT: EpochMs }
  | { kind: 'measured'; distanceM?: number; stationCount?: number; entryStation?: string; entryT: EpochMs; exitT: EpochMs }
  | { kind: 'single'; venue?: VenueInfo; t: EpochMs }
  | { kind: 'incomplete'; venue?: VenueInfo; t: EpochMs; why: string };

export interface BaseFare {
  /** List price of the leg, supplements included, before discounts. */
  baseFareFen: Fen;
  /** Fare distance in metres (0 when not distance based or unknown). */
  distanceM: number;
  stationCount?: number;
  /** True when the fare distance uses estimated segment distances. */
  estimated: boolean;
  path?: PathResult;
  /** False for incomplete journeys: no transfer discount, not a previous leg for transfers. */
  complete: boolean;
  startT: EpochMs;
  endT: EpochMs;
  trace: TraceStep[];
}

/** The list price of a leg on a network (step 1). */
export function baseFare(data: FareData, tariff: NetworkTariff, leg: LegSpec, tracing = true): BaseFare {
  const v = data.tariffs.version;
  const trace: TraceStep[] = [];
  // Trace details are built only when asked for: rating re-runs on every tap, explaining does not.
  const step = (rule: string, detail: () => string, version = v): void => {
    if (tracing) trace.push({ rule, version, detail: detail() });
  };
  const incomplete = (venue: VenueInfo | undefined, t: EpochMs, why: string): BaseFare => {
    let fare = tariff.maxFareFen;
    let detail = (): string => `${why}: max fare of ${tariff.network} ${fare} fen`;
    const route = venue?.route !== undefined ? data.venues.busRoute(tariff.network, venue.route) : undefined;
    if (tariff.incompleteFare === 'route' && route && tariff.table && venue?.routeKm !== undefined) {
      // Direction unknown without a tap-off: the longer way from the stop to an end of the route.
      const atM = Math.round(venue.routeKm * 1000);
      const toEndM = Math.max(atM, route.lengthM - atM);
      fare = bandFare(tariff.table, toEndM).fareFen;
      detail = () => `${why}: fare from ${venue.station} to the far end of route ${route.route} (${toEndM} m) ${fare} fen`;
    }
    step('incomplete', detail);
    return { baseFareFen: fare, distanceM: 0, estimated: false, complete: false, startT: t, endT: t, trace };
  };

  switch (leg.kind) {
    case 'incomplete':
      return incomplete(leg.venue, leg.t, leg.why);
    case 'single': {
      if (tariff.basis !== 'flat' || tariff.flatFen === undefined) return incomplete(leg.venue, leg.t, 'single tap on a tap-on/tap-off network');
      step('flat', () => `flat fare ${tariff.flatFen} fen`);
      return { baseFareFen: tariff.flatFen, distanceM: 0, estimated: false, complete: true, startT: leg.t, endT: leg.t, trace };
    }
    case 'measured':
    case 'journey': {
      const entryT = leg.entryT;
      const exitT = leg.exitT;
      let base: Fen;
      let distanceM = 0;
      let stationCount: number | undefined;
      let estimated = false;
      let path: PathResult | undefined;
      let entryStation: string | undefined;
      if (tariff.basis === 'flat') {
        base = tariff.flatFen ?? 0;
        step('flat', () => `flat fare ${base} fen`);
      } else if (tariff.basis === 'route-distance') {
        if (leg.kind === 'journey') {
          if (leg.entry.routeKm === undefined || leg.exit.routeKm === undefined) return incomplete(leg.entry, entryT, 'stops without route position');
          distanceM = Math.round(Math.abs(leg.exit.routeKm - leg.entry.routeKm) * 1000);
          step('route-distance', () => `${leg.entry.id} → ${leg.exit.id}: ${distanceM} m`);
        } else distanceM = Math.round(leg.distanceM ?? 0);
        const b = bandFare(tariff.table!, distanceM);
        base = b.fareFen;
        step('band', () => `${distanceM} m in band ${b.band} m: ${base} fen`);
      } else {
        let x: number;
        if (leg.kind === 'journey') {
          const net = data.networks.get(tariff.network);
          entryStation = leg.entry.station;
          if (!net || !leg.entry.station || !leg.exit.station) return incomplete(leg.entry, entryT, 'stations not in the network');
          path = net.shortestPath(leg.entry.station, leg.exit.station, {
            metric: tariff.basis === 'stations' ? 'stations' : 'distance',
            penalizedLines: tariff.penalizedLines,
          });
          if (!path) return incomplete(leg.entry, entryT, `no path ${leg.entry.station} → ${leg.exit.station}`);
          const p = path;
          distanceM = path.distanceM;
          stationCount = path.stationCount;
          estimated = path.estimated;
          step(
            'path',
            () =>
              `${p.from} → ${p.to}: ${p.legs.map((l) => `${l.line} ${l.from}–${l.to} ${l.distanceM} m/${l.stations} st`).join(', ') || 'same station'}; ` +
              `${distanceM} m${estimated ? ' (estimated from coordinates)' : ''}, ${stationCount} stations`,
            net.version,
          );
          const priced = pricePath(tariff, path, tracing);
          base = priced.fareFen;
          for (const t of priced.trace) trace.push({ ...t, version: v });
        } else {
          entryStation = leg.entryStation;
          x = tariff.basis === 'stations' ? (leg.stationCount ?? 0) : Math.round(leg.distanceM ?? 0);
          if (tariff.basis === 'stations') stationCount = x;
          else distanceM = x;
          const b = bandFare(tariff.table!, x);
          base = b.fareFen;
          step('band', () => `${x} ${tariff.basis === 'stations' ? 'stations' : 'm'} in band ${b.band}: ${base} fen`);
        }
        const op = tariff.offPeak;
        if (op && entryStation && op.stations.has(entryStation) && shanghaiMinuteOfDay(entryT) < op.beforeMinute) {
          const wd = shanghaiWeekday(entryT);
          if (!op.weekdaysOnly || (wd >= 1 && wd <= 5)) {
            const before = base;
            base = percentOf(base, op.payPercent);
            step('off-peak', () => `${op.name}: entry at ${entryStation} before ${Math.floor(op.beforeMinute / 60)}:00 on a weekday, ${before} → ${base} fen`);
          }
        }
      }
      if (exitT - entryT > tariff.timeLimitMs && tariff.overtimeSupplementFen > 0) {
        base += tariff.overtimeSupplementFen;
        step('overtime', () => `journey ${Math.round((exitT - entryT) / 60_000)} min over the ${tariff.timeLimitMs / 60_000} min limit: +${tariff.overtimeSupplementFen} fen`);
      }
      const out: BaseFare = { baseFareFen: fen(base), distanceM, estimated, complete: true, startT: entryT, endT: exitT, trace };
      if (stationCount !== undefined) out.stationCount = stationCount;
      if (path) out.path = path;
      return out;
    }
  }
}

/**
 * Prices a fare path: the stretches on separately gated lines (special groups) each at their own
 * fare, the rest of the path (the main network) once, by its total distance or station count.
 */
function pricePath(tariff: NetworkTariff, path: PathResult, tracing: boolean): { fareFen: Fen; trace: Omit<TraceStep, 'version'>[] } {
  const trace: Omit<TraceStep, 'version'>[] = [];
  const groupOf = new Map<string, number>();
  tariff.specialGroups.forEach((g, i) => g.lines.forEach((l) => groupOf.set(l, i)));
  let mainX = 0;
  let onMain = path.legs.length === 0;
  let fare = 0;
  const specialRuns: { group: number; distanceM: number }[] = [];
  for (const leg of path.legs) {
    const g = groupOf.get(leg.line);
    if (g === undefined) {
      onMain = true;
      mainX += tariff.basis === 'stations' ? leg.stations : leg.distanceM;
      continue;
    }
    const last = specialRuns[specialRuns.length - 1];
    if (last && last.group === g) last.distanceM += leg.distanceM;
    else specialRuns.push({ group: g, distanceM: leg.distanceM });
  }
  if (onMain) {
    const b = bandFare(tariff.table!, mainX);
    fare += b.fareFen;
    if (tracing) trace.push({ rule: 'band', detail: `${mainX} ${tariff.basis === 'stations' ? 'stations' : 'm'} in band ${b.band}: ${b.fareFen} fen` });
  }
  for (const run of specialRuns) {
    const g = tariff.specialGroups[run.group]!;
    const f = g.basis === 'single' ? g.flatFen! : bandFare(g.table!, run.distanceM).fareFen;
    fare += f;
    if (tracing) trace.push({ rule: 'special-line', detail: `${g.name} (${g.lines.join('/')}) ${run.distanceM} m: ${f} fen` });
  }
  return { fareFen: fare, trace };
}

/** What {@link applyDiscounts} needs besides the base fare. */
export interface DiscountInput {
  category: RiderCategory;
  /** Device time that decides the month of the tiers (the charge's own tap). */
  chargeT: EpochMs;
}

/**
 * Step 2: transfer discount, category discount, monthly tiers. Updates `ctx` (month spend, last
 * leg) and returns the amount the cardholder pays.
 */
export function applyDiscounts(
  tariffs: Tariffs,
  tariff: NetworkTariff,
  base: BaseFare,
  ctx: RateContext,
  input: DiscountInput,
  tracing = true,
): { amountFen: Fen; trace: TraceStep[] } {
  const v = tariffs.version;
  const trace: TraceStep[] = [];
  let amount = base.baseFareFen;
  if (base.complete && ctx.lastLeg) {
    const prev = ctx.lastLeg;
    const gap = base.startT - prev.endT;
    const rule = tariffs.transfers.find(
      (r) => r.networks.includes(tariff.network) && r.networks.includes(prev.network) && prev.network !== tariff.network,
    );
    if (rule && gap >= 0 && gap <= rule.withinMs && amount > 0) {
      const off = Math.min(rule.discountFen, amount);
      amount -= off;
      if (tracing) trace.push({ rule: 'transfer', version: v, detail: `${prev.network} → ${tariff.network} after ${Math.round(gap / 60_000)} min (≤ ${rule.withinMs / 60_000}): −${off} fen` });
    }
  }
  const pct = tariff.categories[input.category];
  if (pct !== 100) {
    const before = amount;
    amount = percentOf(amount, pct);
    if (tracing) trace.push({ rule: 'category', version: v, detail: `${input.category} pays ${pct}%: ${before} → ${amount} fen` });
  }
  if (tariff.monthlyTiers) {
    const key = `${tariff.network}|${shanghaiMonth(input.chargeT)}`;
    const spent = ctx.spend[key] ?? 0;
    const r = applyMonthlyTiers(tariff.monthlyTiers, spent, amount);
    if (tracing && r.tier.fromFen > 0) {
      trace.push({
        rule: 'month-tier',
        version: v,
        detail: `month ${key.split('|')[1]} spent ${spent} fen before this ride: tier from ${r.tier.fromFen} fen pays ${r.tier.payPercent}%, ${amount} → ${r.payFen} fen`,
      });
    }
    amount = r.payFen;
    // A new object, never an update in place: the card state keeps snapshots that share it.
    ctx.spend = { ...ctx.spend, [key]: spent + amount };
  }
  if (base.complete) ctx.lastLeg = { network: tariff.network, endT: base.endT };
  return { amountFen: fen(amount), trace };
}

/**
 * The monthly tier of a ride and what the ride pays. `spentFen` is what the card paid on the
 * network in the calendar month before this ride; the tier is the last one whose `fromFen` that
 * amount has reached (tiers start at 0 and increase: tariffs.ts checks it), and the whole fare is
 * charged at its rate, rounded half up. 9,999 fen spent: full fare; 10,000 fen: 80 %.
 */
export function applyMonthlyTiers(tiers: readonly MonthlyTier[], spentFen: Fen, fareFen: Fen): { payFen: Fen; tier: MonthlyTier } {
  let tier = tiers[0]!;
  for (const t of tiers) if (spentFen >= t.fromFen) tier = t;
  return { payFen: percentOf(fareFen, tier.payPercent), tier };
}

/** Input of `tapflow fares quote`. */
export interface FareQuoteInput {
  network: string;
  /** Entry and exit: station names of the network, or venue ids (rail stations, bus stops). */
  from?: string;
  to?: string;
  /** Instead of from/to: the fare distance in km (distance bases) … */
  distanceKm?: number;
  /** … or the number of stations ridden (station-count bases). */
  stationCount?: number;
  /** @default 'ADULT' */
  category?: RiderCategory;
  /** Device time of the entry (or of the single tap). */
  entryTime: EpochMs;
  /** Device time of the exit. @default entryTime */
  exitTime?: EpochMs;
  /** Paid on this network in the calendar month before this journey, fen. @default 0 */
  monthToDateFen?: Fen;
  /** The previous leg, for transfer discounts. */
  previousLeg?: { network: string; endTime: EpochMs };
}

export interface FareQuote {
  network: string;
  tariffVersion: string;
  /** What the cardholder pays. */
  fareFen: Fen;
  baseFareFen: Fen;
  distanceM: number;
  stationCount?: number;
  estimated: boolean;
  path?: PathResult;
  /** Month-to-date spend after this journey (networks with monthly tiers). */
  monthToDateAfterFen?: Fen;
  trace: TraceStep[];
}

/** Prices one journey for an operator, with the exact code the settler runs per tap. */
export function quoteFare(data: FareData, q: FareQuoteInput): FareQuote {
  const tariff = data.tariffs.networks.get(q.network);
  if (!tariff) throw new RangeError(`unknown network ${q.network}; known: ${[...data.tariffs.networks.keys()].join(', ')}`);
  const exitT = q.exitTime ?? q.entryTime;
  const venue = (s: string | undefined): VenueInfo | undefined => {
    if (s === undefined) return undefined;
    const v = data.venues.info(s) ?? data.venues.info(`${q.network}:${s}`);
    if (!v) throw new RangeError(`unknown station or venue ${s} on ${q.network}`);
    return v;
  };
  const from = venue(q.from);
  const to = venue(q.to);
  let leg: LegSpec;
  if (tariff.pairing === 'single') leg = { kind: 'single', ...(from ? { venue: from } : {}), t: q.entryTime };
  else if (from && to) leg = { kind: 'journey', entry: from, exit: to, entryT: q.entryTime, exitT };
  else if (q.distanceKm !== undefined || q.stationCount !== undefined) {
    leg = { kind: 'measured', entryT: q.entryTime, exitT };
    if (q.distanceKm !== undefined) leg.distanceM = Math.round(q.distanceKm * 1000);
    if (q.stationCount !== undefined) leg.stationCount = q.stationCount;
    if (from?.station) leg.entryStation = from.station;
  } else if (from) leg = { kind: 'incomplete', venue: from, t: q.entryTime, why: 'no exit given' };
  else throw new RangeError('give from and to, or distanceKm, or stationCount');

  const key = `${q.network}|${shanghaiMonth(exitT)}`;
  const ctx: RateContext = { spend: { [key]: q.monthToDateFen ?? 0 } };
  if (q.previousLeg) ctx.lastLeg = { network: q.previousLeg.network, endT: q.previousLeg.endTime };
  const base = baseFare(data, tariff, leg);
  const d = applyDiscounts(data.tariffs, tariff, base, ctx, { category: q.category ?? 'ADULT', chargeT: exitT });
  const out: FareQuote = {
    network: q.network,
    tariffVersion: data.tariffs.version,
    fareFen: d.amountFen,
    baseFareFen: base.baseFareFen,
    distanceM: base.distanceM,
    estimated: base.estimated,
    trace: [...base.trace, ...d.trace],
  };
  if (base.stationCount !== undefined) out.stationCount = base.stationCount;
  if (base.path) out.path = base.path;
  if (tariff.monthlyTiers) out.monthToDateAfterFen = ctx.spend[key]!;
  return out;
}
