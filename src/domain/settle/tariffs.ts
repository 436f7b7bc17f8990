/**
 * Transit tariffs as data: `<dataDir>/tariffs/tariffs.yaml` (format: data/tariffs/README.md),
 * compiled once at start-up into band tables and rules the fare code reads without parsing.
 *
 * A network's Beijing-style fare rules can come from a `fareRules` JSON file in the format of
 * data/networks/beijing/fare_rules.json: the group without `lines` is the main distance table
 * (`end` inclusive, in metres: the edges at …099 m are the source's 100 m allowance); groups with
 * `lines` price the separately gated lines on them (basis `distance` or `single`); a group with
 * `derive_from` + `starting_stations` + `apply_time` is the early-morning discount.
 */
import { z } from 'zod';
import { DataFileError } from '../network/errors.js';
import { readDataFile } from '../network/data-file.js';
import { RiderCategories, type Fen, type RiderCategory } from '../types.js';

/** One fare band: up to `upTo` (inclusive; metres or stations) costs `fareFen`. */
export interface Band {
  upTo?: number;
  fareFen: Fen;
}

/** Bands in increasing order; `beyond` continues the last closed band in steps. */
export interface BandTable {
  bands: Band[];
  beyond?: { everyM: number; addFen: Fen };
}

/** A separately gated line group with its own fare (airport lines, trams). */
export interface SpecialFareGroup {
  name: string;
  lines: string[];
  basis: 'distance' | 'single';
  table?: BandTable;
  flatFen?: Fen;
}

/** Early-morning discount: entries at listed stations on weekdays before a local time. */
export interface OffPeakRule {
  name: string;
  payPercent: number;
  stations: ReadonlySet<string>;
  /** Minutes after local midnight; the entry must be strictly before. */
  beforeMinute: number;
  /** Monday–Friday only (no public-holiday calendar: documented simplification). */
  weekdaysOnly: boolean;
}

export interface MonthlyTier {
  /** Month-to-date paid amount at which this tier starts. */
  fromFen: Fen;
  payPercent: number;
}

export type Pairing = 'entry-exit' | 'single';
export type FareBasis = 'distance' | 'stations' | 'route-distance' | 'flat';

export interface NetworkTariff {
  network: string;
  scene: 'RAIL' | 'BUS';
  pairing: Pairing;
  basis: FareBasis;
  table?: BandTable;
  flatFen?: Fen;
  specialGroups: SpecialFareGroup[];
  /** Lines of the special groups, sorted: avoided by the fare path unless unavoidable. */
  penalizedLines: readonly string[];
  offPeak?: OffPeakRule;
  maxFareFen: Fen;
  /** `route`: an incomplete bus journey pays the whole route's fare. */
  incompleteFare: 'max' | 'route';
  timeLimitMs: number;
  overtimeSupplementFen: Fen;
  pairWithinMs: number;
  categories: Record<RiderCategory, number>;
  monthlyTiers?: MonthlyTier[];
}

export interface TransferRule {
  networks: string[];
  withinMs: number;
  discountFen: Fen;
}

export interface Tariffs {
  version: string;
  rerate: { windowMs: number; maxTaps: number };
  networks: ReadonlyMap<string, NetworkTariff>;
  transfers: TransferRule[];
}

const Fen = z.number().int().nonnegative();
const Percent = z.number().int().min(0).max(100);
const BandSchema = z.object({ upTo: z.number().int().positive().optional(), fareFen: Fen }).strict();
const CategoriesSchema = z.object(Object.fromEntries(RiderCategories.map((c) => [c, Percent])) as Record<RiderCategory, typeof Percent>).strict();

const NetworkTariffSchema = z
  .object({
    scene: z.enum(['RAIL', 'BUS']),
    pairing: z.enum(['entry-exit', 'single']),
    basis: z.enum(['distance', 'stations', 'route-distance', 'flat']),
    /** Path (under the data directory) of a fare_rules.json file. */
    fareRules: z.string().optional(),
    /** Apply the early-morning group of `fareRules`. @default false */
    offPeak: z.boolean().default(false),
    bands: z.array(BandSchema).min(1).optional(),
    beyond: z.object({ everyM: z.number().int().positive(), addFen: Fen }).strict().optional(),
    flatFen: Fen.optional(),
    maxFareFen: Fen,
    incompleteFare: z.enum(['max', 'route']).default('max'),
    /** Journey time limit, minutes. @default 240 */
    timeLimitMin: z.number().positive().default(240),
    /** Added to the fare when a journey exceeds the time limit. @default 0 */
    overtimeSupplementFen: Fen.default(0),
    /** An exit pairs with the open entry up to this long after it, minutes. @default 1440 */
    pairWithinMin: z.number().positive().default(1440),
    categories: CategoriesSchema,
    monthlyDiscount: z.array(z.object({ fromFen: Fen, payPercent: z.number().int().min(1).max(100) }).strict()).optional(),
  })
  .strict();

const TariffFileSchema = z
  .object({
    version: z.string().min(1),
    rerating: z.object({ windowHours: z.number().positive(), maxTaps: z.number().int().min(16) }).strict(),
    networks: z.record(z.string().regex(/^[a-z0-9-]+$/), NetworkTariffSchema),
    transfers: z
      .array(
        z
          .object({
            networks: z.array(z.string()).min(2),
            withinMin: z.number().positive(),
            discountFen: Fen,
          })
          .strict(),
      )
      .default([]),
  })
  .strict();

const FareRulesSchema = z.object({
  rule_groups: z.array(
    z.object({
      name: z.string(),
      basis: z.enum(['distance', 'single']).optional(),
      lines: z.array(z.string()).optional(),
      rules: z.array(z.object({ fare: z.number().positive(), start: z.number().int().optional(), end: z.number().int().optional() })).optional(),
      derive_from: z.object({ name: z.string(), portion: z.number().positive().max(1) }).optional(),
      apply_time: z.array(z.object({ date_group: z.string(), end: z.string().regex(/^\d\d:\d\d$/) })).optional(),
      starting_stations: z.array(z.string()).optional(),
    }),
  ),
});

const FILE = 'tariffs/tariffs.yaml';

/** Loads and compiles `<dataDir>/tariffs/tariffs.yaml`. */
export function loadTariffs(dataDir = 'data'): Tariffs {
  const raw = readDataFile(dataDir, FILE, TariffFileSchema);
  const networks = new Map<string, NetworkTariff>();
  for (const [id, t] of Object.entries(raw.networks)) {
    const where = `networks.${id}`;
    let table: BandTable | undefined;
    let specialGroups: SpecialFareGroup[] = [];
    let offPeak: OffPeakRule | undefined;
    if (t.fareRules) {
      const fr = compileFareRules(dataDir, t.fareRules, t.beyond);
      table = fr.main;
      specialGroups = fr.special;
      if (t.offPeak) offPeak = fr.offPeak;
    } else if (t.bands) {
      table = { bands: t.bands, ...(t.beyond ? { beyond: t.beyond } : {}) };
    }
    if (t.pairing === 'single' && t.basis !== 'flat') throw new DataFileError(FILE, `${where}: pairing single needs basis flat`);
    if (t.basis === 'flat' && t.flatFen === undefined) throw new DataFileError(FILE, `${where}: basis flat needs flatFen`);
    if (t.basis !== 'flat' && !table) throw new DataFileError(FILE, `${where}: basis ${t.basis} needs bands or fareRules`);
    if (table) checkBands(table, `${where}.bands`);
    if (t.monthlyDiscount) {
      const tiers = t.monthlyDiscount;
      if (tiers[0]!.fromFen !== 0 || tiers.some((x, i) => i > 0 && x.fromFen <= tiers[i - 1]!.fromFen)) {
        throw new DataFileError(FILE, `${where}.monthlyDiscount: tiers must start at 0 and increase`);
      }
    }
    const nt: NetworkTariff = {
      network: id,
      scene: t.scene,
      pairing: t.pairing,
      basis: t.basis,
      specialGroups,
      penalizedLines: specialGroups.flatMap((g) => g.lines).sort(),
      maxFareFen: t.maxFareFen,
      incompleteFare: t.incompleteFare,
      timeLimitMs: t.timeLimitMin * 60_000,
      overtimeSupplementFen: t.overtimeSupplementFen,
      pairWithinMs: t.pairWithinMin * 60_000,
      categories: t.categories,
    };
    if (table) nt.table = table;
    if (t.flatFen !== undefined) nt.flatFen = t.flatFen;
    if (offPeak) nt.offPeak = offPeak;
    if (t.monthlyDiscount) nt.monthlyTiers = t.monthlyDiscount;
    networks.set(id, nt);
  }
  const transfers = raw.transfers.map((r, i) => {
    for (const n of r.networks) if (!networks.has(n)) throw new DataFileError(FILE, `transfers.${i}: unknown network ${n}`);
    return { networks: r.networks, withinMs: r.withinMin * 60_000, discountFen: r.discountFen };
  });
  return {
    version: raw.version,
    rerate: { windowMs: raw.rerating.windowHours * 3_600_000, maxTaps: raw.rerating.maxTaps },
    networks,
    transfers,
  };
}

function checkBands(t: BandTable, where: string): void {
  t.bands.forEach((b, i) => {
    const last = i === t.bands.length - 1;
    if (!last && b.upTo === undefined) throw new DataFileError(FILE, `${where}.${i}: only the last band may be open`);
    if (i > 0 && b.upTo !== undefined && b.upTo <= t.bands[i - 1]!.upTo!) throw new DataFileError(FILE, `${where}.${i}: upTo must increase`);
  });
  if (t.beyond && t.bands[t.bands.length - 1]!.upTo === undefined) {
    throw new DataFileError(FILE, `${where}: beyond needs a closed last band`);
  }
}

const yuanToFen = (y: number): Fen => Math.round(y * 100);

/** Converts a fare_rules.json file into the main table, special groups and off-peak rule. */
function compileFareRules(
  dataDir: string,
  rel: string,
  beyond: BandTable['beyond'],
): { main: BandTable; special: SpecialFareGroup[]; offPeak?: OffPeakRule } {
  const fr = readDataFile(dataDir, rel, FareRulesSchema);
  const toTable = (rules: { fare: number; start?: number | undefined; end?: number | undefined }[], ext?: BandTable['beyond']): BandTable => {
    const bands: Band[] = rules.map((r) => (r.end !== undefined ? { upTo: r.end, fareFen: yuanToFen(r.fare) } : { fareFen: yuanToFen(r.fare) }));
    const last = bands[bands.length - 1]!;
    const lastRule = rules[rules.length - 1]!;
    // An open last band followed by "+addFen every everyM": close it one step after its start,
    // keeping the source's edge convention (start …100 m → end …099 m).
    if (ext && last.upTo === undefined && lastRule.start !== undefined) last.upTo = lastRule.start + ext.everyM - 1;
    return ext && last.upTo !== undefined ? { bands, beyond: ext } : { bands };
  };
  const mainGroup = fr.rule_groups.find((g) => !g.lines && !g.derive_from && g.rules);
  if (!mainGroup) throw new DataFileError(rel, 'no main rule group (a group without lines and derive_from)');
  const main = toTable(mainGroup.rules!, beyond);
  const special: SpecialFareGroup[] = fr.rule_groups
    .filter((g) => g.lines && g.rules)
    .map((g) => {
      const basis = g.basis === 'single' ? 'single' : 'distance';
      return basis === 'single'
        ? { name: g.name, lines: g.lines!, basis, flatFen: yuanToFen(g.rules![0]!.fare) }
        : { name: g.name, lines: g.lines!, basis, table: toTable(g.rules!) };
    });
  const op = fr.rule_groups.find((g) => g.derive_from && g.starting_stations && g.apply_time);
  let offPeak: OffPeakRule | undefined;
  if (op) {
    if (op.derive_from!.name !== mainGroup.name) throw new DataFileError(rel, `${op.name}: derives from an unknown group`);
    const at = op.apply_time![0]!;
    const [h, m] = at.end.split(':').map(Number) as [number, number];
    offPeak = {
      name: op.name,
      payPercent: Math.round(op.derive_from!.portion * 100),
      stations: new Set(op.starting_stations),
      beforeMinute: h * 60 + m,
      weekdaysOnly: at.date_group === '工作日',
    };
  }
  return offPeak ? { main, special, offPeak } : { main, special };
}

/**
 * The fare of a band table for `x` (metres or stations): the first band with `x ≤ upTo`;
 * beyond the last closed band, + `addFen` per started `everyM`.
 */
export function bandFare(t: BandTable, x: number): { fareFen: Fen; readonly band: string } {
  let lower = 0;
  for (const b of t.bands) {
    if (b.upTo === undefined || x <= b.upTo) {
      const from = lower;
      return {
        fareFen: b.fareFen,
        get band() {
          return `${from}–${b.upTo ?? '∞'}`;
        },
      };
    }
    lower = b.upTo + 1;
  }
  const last = t.bands[t.bands.length - 1]!;
  const beyond = t.beyond;
  if (!beyond) return { fareFen: last.fareFen, band: `>${last.upTo}` };
  const steps = Math.ceil((x - last.upTo!) / beyond.everyM);
  return {
    fareFen: last.fareFen + steps * beyond.addFen,
    get band() {
      return `>${last.upTo} +${steps}×${beyond.everyM}`;
    },
  };
}
