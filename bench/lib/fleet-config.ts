/**
 * The fleet's proportions (bench/fleet.yaml): share of taps by region and scene, card forms,
 * rider categories, trip lengths per network, claim rate, terminal spread. Checked once at
 * start-up; a bad value stops the bench with a message naming the field.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';
import { Regions, type Region, type RiderCategory, type Scene } from '../../src/domain/types.js';

const share = z.number().min(0).max(1);
const sceneShares = z.object({ RAIL: share, BUS: share, CULTURE: share, MEDICAL: share, SERVICE: share }).partial().strict();

const FleetFileSchema = z
  .object({
    version: z.string().min(1),
    taps: z.object({ BJ: sceneShares, TJ: sceneShares, HE: sceneShares }).strict(),
    crossRegionShare: share,
    qrShare: share,
    riders: z.object({ ADULT: share, STUDENT: share, SENIOR: share, DISABLED: share }).strict(),
    trips: z.record(
      z.string(),
      z
        .object({
          medianKm: z.number().positive().optional(),
          sigma: z.number().positive().optional(),
          meanStops: z.number().positive().optional(),
          speedKmh: z.number().positive().max(300),
          accessMin: z.number().nonnegative(),
        })
        .strict(),
    ),
    claimShare: share,
    terminalWeights: sceneShares,
  })
  .strict();

export type TripSpec = z.output<typeof FleetFileSchema>['trips'][string];

/** The loaded fleet proportions, normalised. */
export interface FleetConfig {
  version: string;
  /** (region, scene) with its share of live taps; shares sum to 1. */
  tapShares: { region: Region; scene: Scene; share: number }[];
  crossRegionShare: number;
  qrShare: number;
  riders: { rider: RiderCategory; share: number }[];
  trips: Record<string, TripSpec>;
  claimShare: number;
  terminalWeights: Partial<Record<Scene, number>>;
}

export const DEFAULT_FLEET_FILE = fileURLToPath(new URL('../fleet.yaml', import.meta.url));

/** Parses and normalises a fleet file's text; throws naming the field on a bad value. */
export function parseFleetConfig(text: string, source = 'fleet.yaml'): FleetConfig {
  const parsed = FleetFileSchema.safeParse(parse(text));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`${source}: ${problems}`);
  }
  const f = parsed.data;
  const tapShares: FleetConfig['tapShares'] = [];
  for (const region of Regions) for (const [scene, s] of Object.entries(f.taps[region])) if (s! > 0) tapShares.push({ region, scene: scene as Scene, share: s! });
  const total = tapShares.reduce((n, t) => n + t.share, 0);
  if (!(total > 0)) throw new Error(`${source}: taps: every share is 0`);
  for (const t of tapShares) t.share /= total;
  const riders = Object.entries(f.riders).map(([rider, s]) => ({ rider: rider as RiderCategory, share: s }));
  const riderTotal = riders.reduce((n, r) => n + r.share, 0);
  if (!(riderTotal > 0)) throw new Error(`${source}: riders: every share is 0`);
  for (const r of riders) r.share /= riderTotal;
  return { version: f.version, tapShares, crossRegionShare: f.crossRegionShare, qrShare: f.qrShare, riders, trips: f.trips, claimShare: f.claimShare, terminalWeights: f.terminalWeights };
}

/** Reads a fleet file (default: bench/fleet.yaml). */
export function loadFleetConfig(path = DEFAULT_FLEET_FILE): FleetConfig {
  return parseFleetConfig(readFileSync(path, 'utf8'), path);
}
