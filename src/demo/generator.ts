/**
 * A simulated terminal fleet's taps: cards of the three regions riding metro and buses, visiting
 * museums and parks, and a configurable share of bad events. Used by `tapflow demo` and by the
 * bench harness. Chip taps carry a correct counter and MAC, QR taps a valid signature, both made
 * with the local test keys, so they pass the validators unless meant to fail.
 *
 * Journeys are kept physically plausible (the validators check impossible travel): a card's
 * next tap is at a venue reachable from its last one in the time between them.
 */
import type { KeyObject } from 'node:crypto';
import { computeChipMac } from '../domain/card/chip.js';
import { hmacSha256Mac, ed25519Signer, type KeysFile } from '../domain/card/keys.js';
import { makeQrBody, signQr } from '../domain/card/qr-sign.js';
import { haversineM, type VenueCatalog, type VenueInfo } from '../domain/network/index.js';
import type { Region, RiderCategory, Scene } from '../domain/types.js';
import { Direction, RiderCategory as PbRider, Scene as PbScene, type Tap } from '../gen/tapflow/v1/ingest.js';

/** Shares of deliberately bad events (0..1 each). */
export interface BadShares {
  hotlisted: number;
  unlistedVenue: number;
  malformed: number;
  qrReplay: number;
  impossibleTravel: number;
}

export const DEFAULT_BAD_SHARES: BadShares = { hotlisted: 0.01, unlistedVenue: 0.01, malformed: 0.005, qrReplay: 0.005, impossibleTravel: 0.003 };

export interface GeneratorOptions {
  venues: VenueCatalog;
  keys: KeysFile;
  /** Cards in the pool. */
  cards: number;
  /** Terminals per (region, scene). */
  terminalsPerGroup: number;
  /** Share of QR taps (the rest are chip). */
  qrShare?: number;
  bad?: BadShares;
  /** Deterministic pseudo-random stream. */
  seed?: number;
  /**
   * First sequence number of every terminal. @default 1. The demo starts at its start time in
   * ms: a second run against the same JetStream within the duplicate window must not look like
   * re-sends of the first run's (terminal_id, seq) — which ingest answers DUPLICATE — and a
   * terminal sends far less than one tap per millisecond, so a later run's numbers are higher.
   */
  firstSeq?: number;
}

export interface FleetCard {
  number: string;
  /** Issuing region. */
  region: Region;
  /** Where the card is used during the run: its home region, or another one for visitors. */
  city: Region;
  counter: number;
  rider: RiderCategory;
  /** Open journey: network, entry venue, entry time. */
  open?: { venue: VenueInfo; at: number };
  last?: { venue: VenueInfo; at: number };
  hotlisted: boolean;
}

export type GeneratedEvent =
  | { kind: 'tap'; terminalId: string; tap: Tap; expect: 'ok' | 'hotlisted' | 'unlisted' | 'malformed' | 'qr-replay' | 'impossible-travel' }
  | { kind: 'idle' };

/** mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PROVINCE: Record<Region, string> = { BJ: '11', TJ: '12', HE: '13' };
const RIDER_TO_PB: Record<RiderCategory, PbRider> = { ADULT: PbRider.ADULT, STUDENT: PbRider.STUDENT, SENIOR: PbRider.SENIOR, DISABLED: PbRider.DISABLED };
const SCENE_TO_PB: Record<Scene, PbScene> = { RAIL: PbScene.RAIL, BUS: PbScene.BUS, MEDICAL: PbScene.MEDICAL, CULTURE: PbScene.CULTURE, SERVICE: PbScene.SERVICE, BENEFIT: PbScene.BENEFIT };
/** Plausible travel speed used to pick reachable venues (km/h); well under the validators' bound. */
const TRAVEL_KMH = 60;

export class TapGenerator {
  readonly cards: FleetCard[] = [];
  private readonly random: () => number;
  private readonly seqs = new Map<string, number>();
  private readonly byRegionScene = new Map<string, VenueInfo[]>();
  private readonly privateKeys: Partial<Record<Region, KeyObject>> = {};
  private readonly usedQr: string[] = [];
  private readonly bad: BadShares;
  private readonly qrShare: number;

  constructor(private readonly o: GeneratorOptions) {
    this.random = rng(o.seed ?? 1);
    this.bad = o.bad ?? DEFAULT_BAD_SHARES;
    this.qrShare = o.qrShare ?? 0.3;
    for (const v of o.venues.all() as Iterable<VenueInfo>) {
      if (v.lat === undefined || v.lon === undefined) continue;
      const key = `${v.region}:${v.scene}`;
      let list = this.byRegionScene.get(key);
      if (!list) this.byRegionScene.set(key, (list = []));
      list.push(v);
    }
    for (const [r, k] of Object.entries(o.keys.regions) as [Region, { qrPrivateKey?: KeyObject }][]) if (k.qrPrivateKey) this.privateKeys[r] = k.qrPrivateKey;
    const regions: Region[] = ['BJ', 'BJ', 'BJ', 'BJ', 'BJ', 'TJ', 'TJ', 'HE', 'HE', 'HE'];
    // Card numbers start at a seed-dependent offset, so that runs with different seeds use
    // different cards (validators remember cards' counters and last taps across runs).
    const base = 10_000_000 + Math.floor(this.random() * 8_000_000_000);
    for (let i = 0; i < o.cards; i++) {
      const region = regions[i % regions.length]!;
      const r = this.random();
      const rider: RiderCategory = r < 0.8 ? 'ADULT' : r < 0.9 ? 'STUDENT' : r < 0.98 ? 'SENIOR' : 'DISABLED';
      // About one card in six is a visitor from another region: cross-region taps are cleared.
      const visit = this.random();
      const city: Region = visit < 0.84 ? region : (['BJ', 'TJ', 'HE'] as const).filter((x) => x !== region)[visit < 0.92 ? 0 : 1]!;
      this.cards.push({ number: `${PROVINCE[region]}${String(base + i).padStart(10, '0')}`, region, city, counter: Math.floor(this.random() * 1000), rider, hotlisted: false });
    }
  }

  /** Marks a share of the pool as hotlisted (the caller puts them on the hotlist). */
  pickHotlisted(n: number): FleetCard[] {
    const picked: FleetCard[] = [];
    for (let i = 0; i < n && i < this.cards.length; i++) {
      const c = this.cards[this.cards.length - 1 - i]!;
      c.hotlisted = true;
      picked.push(c);
    }
    return picked;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.random() * xs.length)]!;
  }

  private terminalFor(region: Region, scene: Scene): string {
    const n = 1 + Math.floor(this.random() * this.o.terminalsPerGroup);
    return `${region}-${scene}-${String(n).padStart(4, '0')}`;
  }

  private nextSeq(terminalId: string): number {
    const s = (this.seqs.get(terminalId) ?? (this.o.firstSeq ?? 1) - 1) + 1;
    this.seqs.set(terminalId, s);
    return s;
  }

  /** Venues of a region and scene reachable from `from` within `ms`. */
  private reachable(region: Region, scene: Scene, from: VenueInfo | undefined, ms: number, network?: string): VenueInfo[] {
    const all = (this.byRegionScene.get(`${region}:${scene}`) ?? []).filter((v) => !network || v.network === network);
    if (!from || from.lat === undefined) return all;
    const maxM = (TRAVEL_KMH * 1000 * ms) / 3_600_000;
    return all.filter((v) => haversineM(from.lat!, from.lon!, v.lat!, v.lon!) <= maxM);
  }

  /** The card credentials for a tap: chip with counter and MAC, or a fresh signed QR code. */
  private card(c: FleetCard, terminalId: string, venueId: string, now: number, amountFen: number): Tap['card'] {
    if (this.random() < this.qrShare && this.privateKeys[c.region]) {
      const body = makeQrBody({ cardNumber: c.number, issuedAt: now - 1000, level: 2 });
      const payload = signQr(ed25519Signer, this.privateKeys[c.region]!, { ...body, issuer: c.region });
      this.usedQr.push(payload);
      if (this.usedQr.length > 1000) this.usedQr.shift();
      return { $case: 'qr', value: { payload } };
    }
    c.counter++;
    const master = this.o.keys.regions[c.region]?.chipMasterKey;
    const mac = master ? computeChipMac(hmacSha256Mac, master, { cardNumber: c.number, counter: c.counter, terminalId, deviceTime: now, amountFen, venueId }) : new Uint8Array(8);
    return { $case: 'chip', value: { cardNumber: c.number, counter: c.counter, mac: Buffer.from(mac) } };
  }

  private tap(c: FleetCard, venue: VenueInfo, direction: Direction, now: number): { terminalId: string; tap: Tap } {
    const terminalId = this.terminalFor(venue.region, venue.scene);
    const seq = this.nextSeq(terminalId);
    const tap: Tap = {
      terminalId,
      seq,
      deviceTime: now,
      scene: SCENE_TO_PB[venue.scene],
      venueId: venue.id,
      direction,
      card: this.card(c, terminalId, venue.id, now, 0),
      amountFen: 0,
      riderCategory: RIDER_TO_PB[c.rider],
    };
    c.last = { venue, at: now };
    return { terminalId, tap };
  }

  /** The next event at time `now` (epoch ms). */
  next(now: number): GeneratedEvent {
    const r = this.random();
    const b = this.bad;
    let edge = b.malformed;
    if (r < edge) {
      const c = this.pick(this.cards);
      const v = this.pick(this.byRegionScene.get(`${c.city}:RAIL`) ?? []);
      const t = this.tap(c, v, Direction.ENTRY, now);
      t.tap.venueId = '';
      return { kind: 'tap', ...t, expect: 'malformed' };
    }
    if (r < (edge += b.unlistedVenue)) {
      const c = this.pick(this.cards);
      const terminalId = this.terminalFor(c.city, 'CULTURE');
      const seq = this.nextSeq(terminalId);
      const venueId = `museum:${c.city}:not-on-the-list`;
      return {
        kind: 'tap',
        terminalId,
        tap: { terminalId, seq, deviceTime: now, scene: PbScene.CULTURE, venueId, direction: Direction.SINGLE, card: this.card(c, terminalId, venueId, now, 0), amountFen: 0, riderCategory: RIDER_TO_PB[c.rider] },
        expect: 'unlisted',
      };
    }
    if (r < (edge += b.qrReplay) && this.usedQr.length > 0) {
      const c = this.pick(this.cards);
      const v = this.pick(this.byRegionScene.get(`${c.city}:CULTURE`) ?? []);
      const t = this.tap(c, v, Direction.SINGLE, now);
      t.tap.card = { $case: 'qr', value: { payload: this.pick(this.usedQr) } };
      return { kind: 'tap', ...t, expect: 'qr-replay' };
    }
    if (r < (edge += b.impossibleTravel)) {
      // A Beijing card that just tapped in Beijing, now at a Shijiazhuang station.
      const c = this.cards.find((x) => x.city === 'BJ' && x.last && now - x.last.at < 10 * 60_000 && !x.open && !x.hotlisted);
      const sjz = this.byRegionScene.get('HE:RAIL') ?? [];
      if (c && sjz.length > 0) return { kind: 'tap', ...this.tap(c, this.pick(sjz), Direction.ENTRY, now), expect: 'impossible-travel' };
    }
    if (r < (edge += b.hotlisted)) {
      const hot = this.cards.filter((x) => x.hotlisted);
      if (hot.length > 0) {
        const c = this.pick(hot);
        const v = this.pick(this.byRegionScene.get(`${c.city}:CULTURE`) ?? []);
        return { kind: 'tap', ...this.tap(c, v, Direction.SINGLE, now), expect: 'hotlisted' };
      }
    }
    // A normal event for a random card that is not hotlisted.
    const c = this.pick(this.cards);
    if (c.hotlisted) return { kind: 'idle' };
    if (c.last && now - c.last.at < 20_000) return { kind: 'idle' }; // a card taps at most every 20 s
    if (c.open) {
      // Close the journey at a reachable station (or stop) of the same network.
      const elapsed = now - c.open.at;
      const scene = c.open.venue.scene;
      const options = this.reachable(c.city, scene, c.open.venue, elapsed, c.open.venue.network).filter((v) => v.id !== c.open!.venue.id);
      const exit = options.length > 0 ? this.pick(options) : c.open.venue;
      c.open = undefined;
      return { kind: 'tap', ...this.tap(c, exit, Direction.EXIT, now), expect: 'ok' };
    }
    const sinceLast = c.last ? now - c.last.at : 3_600_000;
    const s = this.random();
    const scene: Scene = s < 0.62 ? 'RAIL' : s < 0.9 ? 'BUS' : 'CULTURE';
    const options = this.reachable(c.city, scene, c.last?.venue, sinceLast);
    if (options.length === 0) return { kind: 'idle' };
    const v = this.pick(options);
    const flat = scene === 'BUS' && v.region !== 'BJ';
    if (scene === 'CULTURE' || flat) return { kind: 'tap', ...this.tap(c, v, Direction.SINGLE, now), expect: 'ok' };
    c.open = { venue: v, at: now };
    return { kind: 'tap', ...this.tap(c, v, Direction.ENTRY, now), expect: 'ok' };
  }
}
