/**
 * The bench's fleet simulator: cards of the three regions riding the real metro networks and
 * the sample bus routes, visiting museums, parks and clinics, with a configurable share of bad
 * events — the taps a day's terminals send, made with the local test keys so that they pass the
 * validators unless meant to fail.
 *
 * Why not src/demo/generator.ts's TapGenerator: it picks exits among stations reachable at
 * 60 km/h in the time since the entry, so in a short run almost every trip is a few hundred
 * metres (or ends where it began); it cannot put device times in the past (offline uploads);
 * and it gives a card's taps to random terminals, so a journey's exit is not at a gate of its
 * exit station. This module imports the same pure pieces (chip MAC, QR signing, venues,
 * networks, project list, the seeded random generator) and adds journeys:
 *
 * - A metro journey draws a ride distance (log-normal per network, bench/fleet.yaml) and takes
 *   the station, among a sample, whose shortest-path distance from the origin is closest to it;
 *   its duration is access time + distance at the network's average speed. A Beijing bus
 *   journey rides a geometric number of stops on one bus. Tianjin and Hebei buses are tap-once.
 * - Live runs last seconds while journeys last minutes. So that a short run sees entries and
 *   exits in their steady-state proportion (half each), half of the pair-network taps are exits:
 *   of a journey started earlier in the run when one is due, otherwise of a *warm* journey
 *   whose entry happened before the run (device time in the past). Warm entries are uploaded by
 *   the station computers (UploadBatch) before the measured window, as gates buffer them.
 * - Offline uploads (batch and burst profiles) are whole journeys with device times in a past
 *   window, grouped by the terminal that recorded them (station computers, bus validators).
 * - Cards: a card is reused only when its next tap is plausible after its last one (≥ 30 min,
 *   at most 150 km/h, not the same venue); a card used for a bad event is retired. Chip
 *   counters rise with device time; QR codes are issued 1 s before the tap, valid 60 s.
 *
 * Every tap carries what the bench expects of it (`expect`): 'ok' (ACCEPTED), a rejection
 * reason, or 'malformed' (INVALID at ingest, never published).
 */
import type { KeyObject } from 'node:crypto';
import { computeChipMac } from '../../src/domain/card/chip.js';
import { ed25519Signer, hmacSha256Mac, type KeysFile } from '../../src/domain/card/keys.js';
import { makeQrBody, signQr } from '../../src/domain/card/qr-sign.js';
import type { Network, VenueCatalog, VenueInfo } from '../../src/domain/network/index.js';
import { greatCircleKm, lookupProject, type ProjectList } from '../../src/domain/validate/index.js';
import type { CardForm, Direction, Region, RiderCategory, Scene } from '../../src/domain/types.js';
import { rng } from '../../src/demo/generator.js';
import {
  CatalogueClass,
  Direction as PbDirection,
  InstitutionLevel as PbLevel,
  Region as PbRegion,
  RiderCategory as PbRider,
  Scene as PbScene,
  Treatment as PbTreatment,
  type ClaimItem,
  type MedicalClaim,
  type Tap,
} from '../../src/gen/tapflow/v1/ingest.js';
import type { FleetConfig, TripSpec } from './fleet-config.js';

/** What the bench expects tapflow to answer for a tap. */
export type Expect = 'ok' | 'hotlisted' | 'unlisted' | 'malformed' | 'qr-replay' | 'impossible-travel';

/** The decision reason each expectation should produce ('malformed' never reaches a validator). */
export const EXPECTED_REASON: Record<Expect, string> = {
  ok: 'OK',
  hotlisted: 'HOTLIST_LOST',
  unlisted: 'VENUE_NOT_LISTED',
  malformed: '(INVALID at ingest)',
  'qr-replay': 'QR_REPLAYED',
  'impossible-travel': 'IMPOSSIBLE_TRAVEL',
};

/** Shares of deliberately bad taps (0..1 each, of all taps). */
export interface BadShares {
  hotlisted: number;
  qrReplay: number;
  impossibleTravel: number;
  malformed: number;
  unlisted: number;
}

export const DEFAULT_BAD_SHARES: BadShares = { hotlisted: 0.004, qrReplay: 0.002, impossibleTravel: 0.001, malformed: 0.002, unlisted: 0.001 };

/** How a tap reaches tapflow. */
export type Phase = 'live' | 'warm' | 'offline';

/** One simulated tap with what the bench needs to check it afterwards. */
export interface SimTap {
  tap: Tap;
  expect: Expect;
  /** The card number (tokenised by ingest; the bench tokenises it again for the checks). */
  cardNumber: string;
  terminalRegion: Region;
  phase: Phase;
}

/** One medical claim for SettleClaim. */
export interface SimClaim {
  claim: MedicalClaim;
  terminalRegion: Region;
  cardNumber: string;
}

export type TerminalKind = 'gate' | 'station-computer' | 'bus' | 'counter';

export interface TerminalSpec {
  id: string;
  region: Region;
  scene: Scene;
  kind: TerminalKind;
}

export interface FleetOptions {
  venues: VenueCatalog;
  networks: Map<string, Network>;
  keys: KeysFile;
  projects: ProjectList;
  config: FleetConfig;
  bad?: BadShares;
  /** Terminal budget: gates, bus validators and counters are spread over venues by it. */
  terminals: number;
  /** Seed of every random choice. @default 1 */
  seed?: number;
  /** Start of the live window (epoch ms): warm entries have device times before it. */
  liveStartMs: number;
  /** Hotlisted cards per region (their taps are the 'hotlisted' share). @default 50 */
  hotlistedPerRegion?: number;
}

interface SimCard {
  number: string;
  issuer: Region;
  home: Region;
  rider: RiderCategory;
  counter: number;
  last?: { venue: VenueInfo; at: number };
  retired: boolean;
}

interface Journey {
  card: SimCard;
  network: string;
  exit: VenueInfo;
  /** Terminal of the exit: a gate of the exit station, or the same bus. */
  exitTerminal: string;
  exitAt: number;
}

interface RailNet {
  network: Network;
  stations: VenueInfo[];
  gates: Map<string, number>;
  trip: TripSpec;
}

interface BusNet {
  network: string;
  region: Region;
  pairing: 'entry-exit' | 'single';
  routes: { route: string; stops: VenueInfo[]; buses: number }[];
  trip?: TripSpec;
}

const PROVINCE: Record<Region, string> = { BJ: '11', TJ: '12', HE: '13' };
const AREA: Record<Region, string> = { BJ: '110101', TJ: '120101', HE: '130102' };
const RIDER_TO_PB: Record<RiderCategory, PbRider> = { ADULT: PbRider.ADULT, STUDENT: PbRider.STUDENT, SENIOR: PbRider.SENIOR, DISABLED: PbRider.DISABLED };
const SCENE_TO_PB: Record<Scene, PbScene> = { RAIL: PbScene.RAIL, BUS: PbScene.BUS, MEDICAL: PbScene.MEDICAL, CULTURE: PbScene.CULTURE, SERVICE: PbScene.SERVICE, BENEFIT: PbScene.BENEFIT };
const DIRECTION_TO_PB: Record<Direction, PbDirection> = { ENTRY: PbDirection.ENTRY, EXIT: PbDirection.EXIT, SINGLE: PbDirection.SINGLE };
const RAIL_OF: Record<Region, string> = { BJ: 'bj-subway', TJ: 'tj-metro', HE: 'sjz-metro' };
const BUS_OF: Record<Region, string> = { BJ: 'bj-bus', TJ: 'tj-bus', HE: 'sjz-bus' };
/** Networks whose buses pair tap-on and tap-off (tariffs.yaml `pairing: entry-exit`). */
const PAIRED_BUS = new Set(['bj-bus']);
/** A card is reused for a new activity only after this long. */
const REST_MS = 30 * 60_000;
/** ... and only when it need not have moved faster than this. */
const REUSE_MAX_KMH = 150;
/** A bad event refers back to a tap at least this long before it (so that tap is decided first). */
const REFER_BACK_MIN_MS = 3_000;
/** Ride distance over straight-line distance, for choosing destinations. */
const DETOUR = 1.3;

/** Check character of a mainland ID number (ISO 7064 MOD 11-2). */
export function idCheckChar(first17: string): string {
  const w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  let s = 0;
  for (let i = 0; i < 17; i++) s += Number(first17[i]) * w[i]!;
  return '10X98765432'[s % 11]!;
}

/** A min-heap of journeys by exit time. */
class ExitQueue {
  private readonly h: Journey[] = [];
  get size(): number {
    return this.h.length;
  }
  peek(): Journey | undefined {
    return this.h[0];
  }
  push(j: Journey): void {
    const h = this.h;
    h.push(j);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.exitAt <= h[i]!.exitAt) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  pop(): Journey | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.exitAt < h[m]!.exitAt) m = l;
        if (r < h.length && h[r]!.exitAt < h[m]!.exitAt) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

export class FleetSimulator {
  private readonly random: () => number;
  private readonly bad: BadShares;
  private readonly rail = new Map<Region, RailNet>();
  private readonly bus = new Map<Region, BusNet>();
  /** Non-transit venues accepted by the project list, by region and scene, with their counters. */
  private readonly places = new Map<string, { venue: VenueInfo; counters: number }[]>();
  private readonly seqs = new Map<string, number>();
  private readonly idle = new Map<Region, SimCard[]>();
  private readonly hot = new Map<Region, SimCard[]>();
  private readonly exits = new ExitQueue();
  private readonly warmTaps: SimTap[] = [];
  private readonly recentQr: { card: SimCard; payload: string; venue: VenueInfo; direction: Direction; terminalId: string; at: number }[] = [];
  private readonly recentExits: { card: SimCard; at: number }[] = [];
  private readonly privateKeys: Partial<Record<Region, KeyObject>> = {};
  private readonly masters: Partial<Record<Region, Uint8Array>> = {};
  private cardSeq = 0;
  private nonceSeq = 0;
  private personSeq = 0;
  private claimSeq = 0;
  /** Every terminal that got a tap, by id. */
  readonly terminals = new Map<string, TerminalSpec>();

  constructor(private readonly o: FleetOptions) {
    this.random = rng(o.seed ?? 1);
    this.bad = o.bad ?? DEFAULT_BAD_SHARES;
    for (const [r, k] of Object.entries(o.keys.regions) as [Region, { qrPrivateKey?: KeyObject; chipMasterKey?: Uint8Array }][]) {
      if (k.qrPrivateKey) this.privateKeys[r] = k.qrPrivateKey;
      if (k.chipMasterKey) this.masters[r] = k.chipMasterKey;
    }
    this.buildTerminals();
    for (const region of ['BJ', 'TJ', 'HE'] as Region[]) {
      this.idle.set(region, []);
      const hot: SimCard[] = [];
      for (let i = 0; i < (o.hotlistedPerRegion ?? 50); i++) hot.push(this.newCard(region, region));
      this.hot.set(region, hot);
    }
  }

  /** Cards made so far (hotlisted ones included). */
  get cardsMade(): number {
    return this.cardSeq;
  }

  /** Cards to put on the hotlist (LOST) before the run. */
  hotlistedCards(): string[] {
    return [...this.hot.values()].flat().map((c) => c.number);
  }

  // ------------------------------------------------------------------ set-up

  private readonly listedCache = new Map<string, boolean>();

  /** Whether the project list accepts the form at the venue (items do not change during a run). */
  private listed(v: VenueInfo, form: CardForm, at: number): boolean {
    const key = `${v.id}|${form}`;
    let ok = this.listedCache.get(key);
    if (ok === undefined) this.listedCache.set(key, (ok = lookupProject(this.o.projects, v.id, v.scene, form, at).ok));
    return ok;
  }

  private buildTerminals(): void {
    const { venues, networks, config, terminals } = this.o;
    const now = this.o.liveStartMs;
    const w = config.terminalWeights;
    const wTotal = Object.values(w).reduce((n, x) => n + (x ?? 0), 0) || 1;
    const budget = (scene: Scene, region: Region) => {
      const shareInScene = config.tapShares.filter((t) => t.scene === scene);
      const sceneTotal = shareInScene.reduce((n, t) => n + t.share, 0) || 1;
      const regionShare = (shareInScene.find((t) => t.region === region)?.share ?? 0) / sceneTotal;
      return (terminals * (w[scene] ?? 0) * regionShare) / wTotal;
    };
    for (const region of ['BJ', 'TJ', 'HE'] as Region[]) {
      const net = networks.get(RAIL_OF[region]);
      const trip = config.trips[RAIL_OF[region]];
      if (net && trip) {
        const stations = [...venues.all()].filter((v) => v.network === net.id && v.scene === 'RAIL' && v.lat !== undefined && this.listed(v as VenueInfo, 'CHIP', now)) as VenueInfo[];
        const perStation = Math.max(1, Math.round(budget('RAIL', region) / Math.max(1, stations.length)));
        this.rail.set(region, { network: net, stations, gates: new Map(stations.map((s) => [s.id, perStation])), trip });
      }
      const busNet = BUS_OF[region];
      const routes = [...venues.busRoutes()].filter((r) => r.network === busNet);
      if (routes.length > 0) {
        const perRoute = Math.max(1, Math.round(budget('BUS', region) / routes.length));
        this.bus.set(region, {
          network: busNet,
          region,
          pairing: PAIRED_BUS.has(busNet) ? 'entry-exit' : 'single',
          routes: routes.map((r) => ({ route: r.route, stops: r.stops.map((id) => venues.info(id)!), buses: perRoute })),
          trip: config.trips[busNet],
        });
      }
      for (const scene of ['CULTURE', 'MEDICAL', 'SERVICE'] as Scene[]) {
        const list = [...venues.all()].filter((v) => v.region === region && v.scene === scene && this.listed(v as VenueInfo, 'CHIP', now)) as VenueInfo[];
        const per = Math.max(1, Math.round(budget(scene, region) / Math.max(1, list.length)));
        this.places.set(`${region}:${scene}`, list.map((venue) => ({ venue, counters: per })));
      }
    }
  }

  /** Sets the number of buses per route (offline burst: the depot's size). */
  setBusesPerRoute(total: number): void {
    const all = [...this.bus.values()].flatMap((b) => b.routes);
    const per = Math.max(1, Math.round(total / Math.max(1, all.length)));
    for (const r of all) r.buses = per;
  }

  private terminal(id: string, region: Region, scene: Scene, kind: TerminalKind): string {
    if (!this.terminals.has(id)) this.terminals.set(id, { id, region, scene, kind });
    return id;
  }

  private stationIndex(region: Region, venue: VenueInfo): number {
    return this.rail.get(region)!.stations.indexOf(venue);
  }

  private gateOf(venue: VenueInfo): string {
    const net = this.rail.get(venue.region)!;
    const n = net.gates.get(venue.id) ?? 1;
    const g = 1 + Math.floor(this.random() * n);
    return this.terminal(`${venue.region}-RAIL-s${String(this.stationIndex(venue.region, venue)).padStart(4, '0')}-G${g}`, venue.region, 'RAIL', 'gate');
  }

  private stationComputerOf(venue: VenueInfo): string {
    return this.terminal(`${venue.region}-RAIL-s${String(this.stationIndex(venue.region, venue)).padStart(4, '0')}-SC`, venue.region, 'RAIL', 'station-computer');
  }

  private busTerminal(region: Region, route: string, bus: number): string {
    return this.terminal(`${region}-BUS-r${route}-B${String(bus).padStart(3, '0')}`, region, 'BUS', 'bus');
  }

  private counterOf(venue: VenueInfo, counters: number): string {
    const places = this.places.get(`${venue.region}:${venue.scene}`) ?? [];
    const idx = places.findIndex((p) => p.venue.id === venue.id);
    const k = 1 + Math.floor(this.random() * counters);
    return this.terminal(`${venue.region}-${venue.scene}-v${String(Math.max(0, idx)).padStart(3, '0')}-C${k}`, venue.region, venue.scene, 'counter');
  }

  private nextSeq(terminalId: string): number {
    const s = (this.seqs.get(terminalId) ?? 0) + 1;
    this.seqs.set(terminalId, s);
    return s;
  }

  // ------------------------------------------------------------------ cards and credentials

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.random() * xs.length)]!;
  }

  private newCard(home: Region, issuer?: Region): SimCard {
    let iss = issuer;
    if (!iss) {
      iss = home;
      if (this.random() < this.o.config.crossRegionShare) {
        const others = (['BJ', 'TJ', 'HE'] as Region[]).filter((r) => r !== home);
        iss = this.pick(others);
      }
    }
    let r = this.random();
    let rider: RiderCategory = 'ADULT';
    for (const x of this.o.config.riders) {
      if (r < x.share) {
        rider = x.rider;
        break;
      }
      r -= x.share;
    }
    const number = `${PROVINCE[iss]}${String(++this.cardSeq).padStart(10, '0')}`;
    return { number, issuer: iss, home, rider, counter: 0, retired: false };
  }

  /** A card for a tap at `venue` at `at`: an idle card when plausible, else a new one. */
  private cardFor(region: Region, venue: VenueInfo, at: number): SimCard {
    const q = this.idle.get(region)!;
    while (q.length > 0 && q[0]!.retired) q.shift();
    const c = q[0];
    if (c?.last && at - c.last.at >= REST_MS && c.last.venue.id !== venue.id) {
      const km = c.last.venue.lat !== undefined && venue.lat !== undefined ? greatCircleKm({ lat: c.last.venue.lat, lon: c.last.venue.lon! }, { lat: venue.lat, lon: venue.lon! }) : 0;
      if ((km * 3_600_000) / (at - c.last.at) <= REUSE_MAX_KMH) {
        q.shift();
        return c;
      }
    }
    return this.newCard(region);
  }

  private release(card: SimCard): void {
    if (!card.retired) this.idle.get(card.home)!.push(card);
  }

  private formFor(card: SimCard, venue: VenueInfo, at: number): CardForm {
    if (this.random() < this.o.config.qrShare && this.privateKeys[card.issuer] && this.listed(venue, 'QR', at)) return 'QR';
    return 'CHIP';
  }

  private credentials(card: SimCard, form: CardForm, terminalId: string, venueId: string, at: number): Tap['card'] {
    if (form === 'QR') {
      const nonce = Math.floor(this.random() * 2 ** 52).toString(36) + (++this.nonceSeq).toString(36);
      const body = makeQrBody({ cardNumber: card.number, issuedAt: at - 1000, level: 2, nonce });
      return { $case: 'qr', value: { payload: signQr(ed25519Signer, this.privateKeys[card.issuer]!, body) } };
    }
    card.counter++;
    const master = this.masters[card.issuer];
    const mac = master ? computeChipMac(hmacSha256Mac, master, { cardNumber: card.number, counter: card.counter, terminalId, deviceTime: at, amountFen: 0, venueId }) : new Uint8Array(8);
    return { $case: 'chip', value: { cardNumber: card.number, counter: card.counter, mac: Buffer.from(mac) } };
  }

  private makeTap(card: SimCard, venue: VenueInfo, terminalId: string, direction: Direction, at: number, phase: Phase, expect: Expect = 'ok', form?: CardForm): SimTap {
    const deviceTime = Math.round(at);
    const f = form ?? this.formFor(card, venue, deviceTime);
    const tap: Tap = {
      terminalId,
      seq: this.nextSeq(terminalId),
      deviceTime,
      scene: SCENE_TO_PB[venue.scene],
      venueId: venue.id,
      direction: DIRECTION_TO_PB[direction],
      card: this.credentials(card, f, terminalId, venue.id, deviceTime),
      amountFen: 0,
      riderCategory: RIDER_TO_PB[card.rider],
    };
    if (expect === 'ok') card.last = { venue, at: deviceTime };
    if (phase === 'live' && f === 'QR' && expect === 'ok') {
      this.recentQr.push({ card, payload: (tap.card as { value: { payload: string } }).value.payload, venue, direction, terminalId, at: deviceTime });
      if (this.recentQr.length > 2000) this.recentQr.shift();
    }
    return { tap, expect, cardNumber: card.number, terminalRegion: venue.region, phase };
  }

  // ------------------------------------------------------------------ trips

  /** Standard normal from two uniforms (Box–Muller). */
  private gauss(): number {
    const u = 1 - this.random();
    const v = this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * A metro trip: origin, destination and ride time (ms). The destination is, among a sample
   * of stations, the one whose distance is closest to a drawn ride distance; distances here are
   * great-circle × {@link DETOUR} (cheap; shortest paths over the network cost more than the
   * rest of the generation), the fare distance is the settler's shortest path.
   */
  private railTrip(region: Region): { from: VenueInfo; to: VenueInfo; rideMs: number } {
    const net = this.rail.get(region)!;
    const from = this.pick(net.stations);
    const want = (net.trip.medianKm ?? 10) * Math.exp((net.trip.sigma ?? 0.6) * this.gauss());
    let best: VenueInfo | undefined;
    let bestErr = Infinity;
    let bestKm = 0;
    for (let i = 0; i < 24; i++) {
      const cand = this.pick(net.stations);
      if (cand.id === from.id) continue;
      const km = greatCircleKm({ lat: from.lat!, lon: from.lon! }, { lat: cand.lat!, lon: cand.lon! }) * DETOUR;
      const err = Math.abs(km - want);
      if (err < bestErr) {
        best = cand;
        bestErr = err;
        bestKm = km;
      }
    }
    const to = best ?? net.stations.find((s) => s.id !== from.id)!;
    const rideMs = (net.trip.accessMin + (bestKm / net.trip.speedKmh) * 60) * 60_000;
    return { from, to, rideMs };
  }

  /** A paired bus trip on one bus: stops, bus terminal, ride time (ms). */
  private busTrip(region: Region): { from: VenueInfo; to: VenueInfo; terminalId: string; rideMs: number } {
    const b = this.bus.get(region)!;
    const r = this.pick(b.routes);
    const bus = 1 + Math.floor(this.random() * r.buses);
    const mean = b.trip?.meanStops ?? 5;
    const hops = Math.max(1, Math.min(r.stops.length - 1, Math.ceil(-Math.log(1 - this.random()) * mean)));
    const forward = this.random() < 0.5;
    const start = forward ? Math.floor(this.random() * (r.stops.length - hops)) : hops + Math.floor(this.random() * (r.stops.length - hops));
    const end = forward ? start + hops : start - hops;
    const from = r.stops[start]!;
    const to = r.stops[end]!;
    const km = Math.abs((to.routeKm ?? 0) - (from.routeKm ?? 0));
    const rideMs = ((b.trip?.accessMin ?? 1) + (km / (b.trip?.speedKmh ?? 16)) * 60) * 60_000;
    return { from, to, terminalId: this.busTerminal(region, r.route, bus), rideMs };
  }

  private pairTrip(region: Region, scene: 'RAIL' | 'BUS'): { from: VenueInfo; to: VenueInfo; entryTerminal: (offline: boolean) => string; exitTerminal: (offline: boolean) => string; rideMs: number } {
    if (scene === 'RAIL') {
      const t = this.railTrip(region);
      return {
        ...t,
        entryTerminal: (offline) => (offline ? this.stationComputerOf(t.from) : this.gateOf(t.from)),
        exitTerminal: (offline) => (offline ? this.stationComputerOf(t.to) : this.gateOf(t.to)),
      };
    }
    const t = this.busTrip(region);
    return { ...t, entryTerminal: () => t.terminalId, exitTerminal: () => t.terminalId };
  }

  private isPaired(region: Region, scene: Scene): scene is 'RAIL' | 'BUS' {
    if (scene === 'RAIL') return this.rail.has(region);
    if (scene === 'BUS') return this.bus.get(region)?.pairing === 'entry-exit';
    return false;
  }

  /** A tap-once event (flat bus, culture, medical counter, service) in a region and scene. */
  private singleTap(region: Region, scene: Scene, at: number, phase: Phase): SimTap | undefined {
    if (scene === 'BUS') {
      const b = this.bus.get(region);
      if (!b) return undefined;
      const r = this.pick(b.routes);
      const stop = this.pick(r.stops);
      const terminalId = this.busTerminal(region, r.route, 1 + Math.floor(this.random() * r.buses));
      const card = this.cardFor(region, stop, at);
      const t = this.makeTap(card, stop, terminalId, 'SINGLE', at, phase);
      this.release(card);
      return t;
    }
    const places = this.places.get(`${region}:${scene}`);
    if (!places || places.length === 0) return undefined;
    const p = this.pick(places);
    const card = this.cardFor(region, p.venue, at);
    const t = this.makeTap(card, p.venue, this.counterOf(p.venue, p.counters), 'SINGLE', at, phase);
    this.release(card);
    return t;
  }

  private drawGroup(): { region: Region; scene: Scene } {
    let r = this.random();
    for (const t of this.o.config.tapShares) {
      if (r < t.share) return t;
      r -= t.share;
    }
    return this.o.config.tapShares[this.o.config.tapShares.length - 1]!;
  }

  // ------------------------------------------------------------------ bad events

  /** A bad tap of the drawn kind, or undefined when none can be made right now. */
  private badTap(kind: Expect, at: number, phase: Phase, offlineTerminal: boolean): SimTap | undefined {
    const region = this.drawGroup().region;
    switch (kind) {
      case 'hotlisted': {
        const card = this.pick(this.hot.get(region)!);
        const net = this.rail.get(region);
        if (!net) return undefined;
        const v = this.pick(net.stations);
        return this.makeTap(card, v, offlineTerminal ? this.stationComputerOf(v) : this.gateOf(v), 'ENTRY', at, phase, 'hotlisted', 'CHIP');
      }
      case 'unlisted': {
        const card = this.newCard(region);
        card.retired = true;
        const v: VenueInfo = { id: `museum:${region}:not-on-the-list`, kind: 'museum', region, scene: 'CULTURE', operatorId: 'unknown', name: 'not on the list' };
        return this.makeTap(card, v, this.terminal(`${region}-CULTURE-x-C1`, region, 'CULTURE', 'counter'), 'SINGLE', at, phase, 'unlisted', 'CHIP');
      }
      case 'malformed': {
        const card = this.newCard(region);
        card.retired = true;
        const net = this.rail.get(region);
        if (!net) return undefined;
        const v = this.pick(net.stations);
        const t = this.makeTap(card, v, offlineTerminal ? this.stationComputerOf(v) : this.gateOf(v), 'ENTRY', at, phase, 'malformed', 'CHIP');
        t.tap.venueId = '';
        return t;
      }
      case 'qr-replay': {
        // The same code again, at the same venue and direction, at least a few seconds later
        // (its first use is decided first) and within its validity.
        const candidates = this.recentQr.filter((q) => q.at <= at - REFER_BACK_MIN_MS && q.at >= at - 45_000 && !q.card.retired);
        if (candidates.length === 0) return undefined;
        const q = this.pick(candidates);
        const t = this.makeTap(q.card, q.venue, q.terminalId, q.direction, at, phase, 'qr-replay', 'CHIP');
        t.tap.card = { $case: 'qr', value: { payload: q.payload } };
        return t;
      }
      case 'impossible-travel': {
        // A card that just left a Beijing or Tianjin station, now entering a Shijiazhuang one.
        const far = this.rail.get('HE');
        if (!far) return undefined;
        const i = this.recentExits.findIndex((e) => e.at <= at - REFER_BACK_MIN_MS && e.at >= at - 10 * 60_000 && !e.card.retired && e.card.home !== 'HE');
        if (i < 0) return undefined;
        const { card } = this.recentExits.splice(i, 1)[0]!;
        card.retired = true;
        const v = this.pick(far.stations);
        return this.makeTap(card, v, offlineTerminal ? this.stationComputerOf(v) : this.gateOf(v), 'ENTRY', at, phase, 'impossible-travel', 'CHIP');
      }
      default:
        return undefined;
    }
  }

  private drawBad(): Expect | undefined {
    const b = this.bad;
    let r = this.random();
    for (const [kind, share] of [
      ['hotlisted', b.hotlisted],
      ['qr-replay', b.qrReplay],
      ['impossible-travel', b.impossibleTravel],
      ['malformed', b.malformed],
      ['unlisted', b.unlisted],
    ] as [Expect, number][]) {
      if (r < share) return kind;
      r -= share;
    }
    return undefined;
  }

  // ------------------------------------------------------------------ live

  /**
   * The live tap meant to be sent at `at` (epoch ms, ≥ liveStartMs, non-decreasing between
   * calls). May add warm entries (see {@link takeWarm}).
   */
  liveTap(at: number): SimTap {
    const bad = this.drawBad();
    if (bad) {
      const t = this.badTap(bad, at, 'live', false);
      if (t) return t;
    }
    for (;;) {
      const g = this.drawGroup();
      if (this.isPaired(g.region, g.scene)) return this.pairTap(g.region, g.scene, at);
      const t = this.singleTap(g.region, g.scene, at, 'live');
      if (t) return t;
    }
  }

  private pairTap(region: Region, scene: 'RAIL' | 'BUS', at: number): SimTap {
    const wantExit = this.random() < 0.5;
    if (wantExit) {
      const due = this.exits.peek();
      if (due && due.exitAt <= at) {
        this.exits.pop();
        const t = this.makeTap(due.card, due.exit, due.exitTerminal, 'EXIT', at, 'live');
        this.recentExits.push({ card: due.card, at: t.tap.deviceTime });
        if (this.recentExits.length > 2000) this.recentExits.shift();
        this.release(due.card);
        return t;
      }
      // A warm journey: its entry happened before the run started.
      const sinceStart = at - this.o.liveStartMs;
      const trip = this.pairTrip(region, scene);
      if (trip.rideMs > sinceStart + 5_000) {
        const card = this.newCard(region);
        const entryAt = at - trip.rideMs;
        this.warmTaps.push(this.makeTap(card, trip.from, trip.entryTerminal(true), 'ENTRY', entryAt, 'warm'));
        const t = this.makeTap(card, trip.to, trip.exitTerminal(false), 'EXIT', at, 'live');
        this.recentExits.push({ card, at: t.tap.deviceTime });
        this.release(card);
        return t;
      }
    }
    const trip = this.pairTrip(region, scene);
    const card = this.cardFor(region, trip.from, at);
    const entry = this.makeTap(card, trip.from, trip.entryTerminal(false), 'ENTRY', at, 'live');
    this.exits.push({ card, network: trip.from.network ?? '', exit: trip.to, exitTerminal: trip.exitTerminal(false), exitAt: at + trip.rideMs });
    return entry;
  }

  /** Warm entries made so far (and forgets them): upload them before the live window. */
  takeWarm(): SimTap[] {
    return this.warmTaps.splice(0);
  }

  /** Journeys still under way (their exits were not due before the end of the tape). */
  get openJourneys(): number {
    return this.exits.size;
  }

  // ------------------------------------------------------------------ claims

  /** A medical claim from a clinic counter at `at` (epoch ms). */
  claim(at: number, runId: string): SimClaim | undefined {
    const medical = this.o.config.tapShares.filter((t) => t.scene === 'MEDICAL');
    const total = medical.reduce((n, t) => n + t.share, 0);
    let r = this.random() * total;
    let region: Region = 'BJ';
    for (const m of medical) {
      if (r < m.share) {
        region = m.region;
        break;
      }
      r -= m.share;
    }
    const places = this.places.get(`${region}:MEDICAL`);
    if (!places || places.length === 0) return undefined;
    const p = this.pick(places);
    const terminalId = this.counterOf(p.venue, p.counters);
    const card = this.newCard(region);
    card.retired = true;
    const inpatient = this.random() < 0.1;
    const items: ClaimItem[] = [];
    const n = 1 + Math.floor(this.random() * 4);
    for (let i = 0; i < n; i++) {
      const c = this.random();
      const cls = c < 0.6 ? CatalogueClass.CLASS_A : c < 0.9 ? CatalogueClass.CLASS_B : CatalogueClass.SELF_PAY;
      const amountFen = inpatient ? 50_000 + Math.floor(this.random() * 1_500_000) : 1_000 + Math.floor(this.random() * 40_000);
      items.push({ code: `ITEM${String(1 + Math.floor(this.random() * 500)).padStart(4, '0')}`, name: 'bench item', catalogueClass: cls, amountFen });
    }
    const k = ++this.personSeq;
    const birth = new Date(Date.UTC(1950, 0, 1) + (k % 18_000) * 86_400_000).toISOString().slice(0, 10).replaceAll('-', '');
    const first17 = `${AREA[card.issuer]}${birth}${String(Math.floor(k / 18_000) % 1000).padStart(3, '0')}`;
    const claim: MedicalClaim = {
      claimId: `bench-${runId}-${++this.claimSeq}`,
      terminalId,
      institutionId: p.venue.id,
      institutionLevel: PbLevel[p.venue.institutionLevel ?? 'PRIMARY'],
      treatment: inpatient ? PbTreatment.INPATIENT : PbTreatment.OUTPATIENT,
      // A claim's MAC covers the bill's total as its amount and the institution as its venue.
      card: { $case: 'chip', value: { cardNumber: card.number, counter: 1, mac: Buffer.from(computeChipMac(hmacSha256Mac, this.masters[card.issuer]!, { cardNumber: card.number, counter: 1, terminalId, deviceTime: Math.round(at), amountFen: items.reduce((n, i) => n + i.amountFen, 0), venueId: p.venue.id })) } },
      idNumber: first17 + idCheckChar(first17),
      insuredRegion: PbRegion[card.issuer],
      deviceTime: Math.round(at),
      items,
      reversesClaimId: '',
      personalAccountBalanceFen: Math.floor(this.random() * 200_000),
    };
    return { claim, terminalRegion: region, cardNumber: card.number };
  }

  // ------------------------------------------------------------------ offline

  /**
   * Offline taps (whole journeys, bad shares included) with device times in [fromMs, toMs],
   * recorded by station computers (metro), bus validators and counters; per terminal in
   * device-time order with sequences from 1. `busOnly`: a bus depot (buses of every region).
   */
  offline(o: { count: number; fromMs: number; toMs: number; busOnly?: boolean }): SimTap[] {
    const out: SimTap[] = [];
    const span = Math.max(1, o.toMs - o.fromMs);
    const busShares = this.o.config.tapShares.filter((t) => t.scene === 'BUS');
    const busTotal = busShares.reduce((n, t) => n + t.share, 0);
    const drawBus = (): Region => {
      let r = this.random() * busTotal;
      for (const b of busShares) {
        if (r < b.share) return b.region;
        r -= b.share;
      }
      return 'BJ';
    };
    // Offline bad events refer back in device time, not in sending order: keep QR uses here.
    const qrUses: SimTap[] = [];
    while (out.length < o.count) {
      const at = o.fromMs + this.random() * span;
      const bad = this.drawBad();
      if (bad && !o.busOnly && bad !== 'qr-replay' && bad !== 'impossible-travel') {
        const t = this.badTap(bad, at, 'offline', true);
        if (t) {
          out.push(t);
          continue;
        }
      }
      if (bad === 'qr-replay' && qrUses.length > 0) {
        const first = this.pick(qrUses);
        if (first.tap.deviceTime + 20_000 <= o.toMs) {
          const t: SimTap = { ...first, tap: { ...first.tap, seq: 0, deviceTime: first.tap.deviceTime + 15_000 + Math.floor(this.random() * 5_000) }, expect: 'qr-replay' };
          out.push(t);
          continue;
        }
      }
      const g = o.busOnly ? { region: drawBus(), scene: 'BUS' as Scene } : this.drawGroup();
      if (this.isPaired(g.region, g.scene)) {
        const trip = this.pairTrip(g.region, g.scene);
        const entryAt = Math.min(at, o.toMs - trip.rideMs - 1000);
        if (entryAt < o.fromMs) continue;
        const card = this.newCard(g.region);
        const entry = this.makeTap(card, trip.from, trip.entryTerminal(true), 'ENTRY', entryAt, 'offline');
        const exit = this.makeTap(card, trip.to, trip.exitTerminal(true), 'EXIT', entryAt + trip.rideMs, 'offline');
        out.push(entry, exit);
        if (entry.tap.card?.$case === 'qr') qrUses.push(entry);
        continue;
      }
      const card = this.newCard(g.region);
      card.retired = true; // offline cards are not reused: activities are not drawn in time order
      const t = this.singleTapWith(card, g.region, g.scene, at);
      if (t) out.push(t);
    }
    // Per terminal, in device-time order, sequences from 1 (what a terminal's store holds).
    out.sort((a, b) => a.tap.deviceTime - b.tap.deviceTime);
    const seq = new Map<string, number>();
    for (const t of out) {
      const s = (seq.get(t.tap.terminalId) ?? 0) + 1;
      seq.set(t.tap.terminalId, s);
      t.tap.seq = s;
    }
    return out;
  }

  private singleTapWith(card: SimCard, region: Region, scene: Scene, at: number): SimTap | undefined {
    if (scene === 'BUS') {
      const b = this.bus.get(region);
      if (!b) return undefined;
      const r = this.pick(b.routes);
      const stop = this.pick(r.stops);
      return this.makeTap(card, stop, this.busTerminal(region, r.route, 1 + Math.floor(this.random() * r.buses)), 'SINGLE', at, 'offline');
    }
    const places = this.places.get(`${region}:${scene}`);
    if (!places || places.length === 0) return undefined;
    const p = this.pick(places);
    return this.makeTap(card, p.venue, this.counterOf(p.venue, p.counters), 'SINGLE', at, 'offline');
  }
}
