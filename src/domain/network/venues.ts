/**
 * The venue directory: every place a card is tapped, built once at start-up from the rail
 * networks and the sample venue files in `<dataDir>/venues/` (format: data/venues/README.md).
 *
 * Venue ids (stable, used by the application project list, taps and settlements):
 * - rail stations: `<network>:<station>` e.g. `bj-subway:西直门` (the Chinese station name);
 * - bus stops: `<network>:<route>:<stopIndex>` e.g. `bj-bus:1:0` (index 0 is the first stop);
 * - everything else: `<kind>:<region>:<slug>` e.g. `museum:BJ:capital-museum`, ASCII only.
 */
import { z } from 'zod';
import { Regions, type InstitutionLevel, type Region, type Scene, type Venue, type VenueDirectory } from '../types.js';
import { readDataFile } from './data-file.js';
import { DataFileError } from './errors.js';
import { loadNetworks } from './load.js';
import type { Network } from './network.js';

export const VenueKinds = [
  'station',
  'bus-stop',
  'clinic',
  'hospital',
  'pharmacy',
  'museum',
  'library',
  'park',
  'scenic',
  'service',
] as const;
export type VenueKind = (typeof VenueKinds)[number];

const SCENE_OF_KIND: Record<VenueKind, Scene> = {
  station: 'RAIL',
  'bus-stop': 'BUS',
  clinic: 'MEDICAL',
  hospital: 'MEDICAL',
  pharmacy: 'MEDICAL',
  museum: 'CULTURE',
  library: 'CULTURE',
  park: 'CULTURE',
  scenic: 'CULTURE',
  service: 'SERVICE',
};

/** A venue with what the directory knows beyond {@link Venue}. */
export interface VenueInfo extends Venue {
  kind: VenueKind;
  nameEn?: string;
  /** Bus stops: route id and position on the route. */
  route?: string;
  stopIndex?: number;
  /** Medical venues: the institution level that selects the reimbursement ratio. */
  institutionLevel?: InstitutionLevel;
}

/** One bus route of the sample data. */
export interface BusRoute {
  network: string;
  route: string;
  name: string;
  region: Region;
  operatorId: string;
  /** Stop venue ids in order. */
  stops: string[];
  /** Length of the route in metres (position of the last stop). */
  lengthM: number;
}

/** {@link VenueDirectory} with typed lookups for the settler. */
export interface VenueCatalog extends VenueDirectory {
  info(venueId: string): VenueInfo | undefined;
  busRoute(network: string, route: string): BusRoute | undefined;
  busRoutes(): Iterable<BusRoute>;
}

const NON_TRANSIT_ID = /^([a-z]+):(BJ|TJ|HE):([a-z0-9]+(?:-[a-z0-9]+)*)$/;
const ASCII_ID = /^[a-z0-9-]+$/;

const BusFileSchema = z
  .object({
    version: z.string().min(1),
    routes: z.array(
      z
        .object({
          network: z.string().regex(ASCII_ID),
          region: z.enum(Regions),
          operator: z.string().min(1),
          route: z.string().regex(/^[A-Za-z0-9-]+$/),
          name: z.string().min(1),
          stops: z
            .array(
              z
                .object({
                  name: z.string().min(1),
                  km: z.number().nonnegative(),
                  lat: z.number().min(-90).max(90),
                  lon: z.number().min(-180).max(180),
                })
                .strict(),
            )
            .min(2),
        })
        .strict(),
    ),
  })
  .strict();

const PlaceFileSchema = z
  .object({
    version: z.string().min(1),
    venues: z.array(
      z
        .object({
          id: z.string().regex(NON_TRANSIT_ID, 'must be <kind>:<BJ|TJ|HE>:<ascii-slug>'),
          kind: z.enum(['clinic', 'hospital', 'pharmacy', 'museum', 'library', 'park', 'scenic', 'service']),
          name: z.string().min(1),
          nameEn: z.string().optional(),
          level: z.enum(['PRIMARY', 'SECONDARY', 'TERTIARY']).optional(),
          /** Operator id for the ledger (`operator:<id>`). @default the venue id */
          operator: z.string().optional(),
          lat: z.number().min(-90).max(90),
          lon: z.number().min(-180).max(180),
        })
        .strict(),
    ),
  })
  .strict();

/** Venue files read from `<dataDir>/venues/`, in this order. */
export const VENUE_FILES = ['bus.yaml', 'medical.yaml', 'culture.yaml', 'service.yaml'] as const;

/**
 * Builds the venue directory: all stations of the given networks (loaded from `dataDir` when not
 * given) and the sample venues. The version names every source: `<networks version>+<file versions>`.
 */
export function loadVenueDirectory(dataDir = 'data', networks: Map<string, Network> = loadNetworks(dataDir)): VenueCatalog {
  const venues = new Map<string, VenueInfo>();
  const routes = new Map<string, BusRoute>();
  const versions: string[] = [];
  const add = (v: VenueInfo, file: string): void => {
    if (venues.has(v.id)) throw new DataFileError(file, `duplicate venue id ${v.id}`);
    venues.set(v.id, v);
  };

  const netVersions = new Set<string>();
  for (const net of networks.values()) {
    netVersions.add(net.version);
    for (const s of net.stations.values()) {
      const v: VenueInfo = {
        id: `${net.id}:${s.name}`,
        kind: 'station',
        region: net.region,
        scene: 'RAIL',
        operatorId: net.operatorId,
        name: s.name,
        nameEn: s.nameEn,
        network: net.id,
        station: s.name,
      };
      if (s.lat !== undefined && s.lon !== undefined) {
        v.lat = s.lat;
        v.lon = s.lon;
      }
      add(v, `networks/${net.city}`);
    }
  }
  versions.push(...[...netVersions].sort());

  const busFile = 'venues/bus.yaml';
  const bus = readDataFile(dataDir, busFile, BusFileSchema);
  versions.push(bus.version);
  for (const r of bus.routes) {
    const key = `${r.network}:${r.route}`;
    if (routes.has(key)) throw new DataFileError(busFile, `duplicate route ${key}`);
    const stops: string[] = [];
    r.stops.forEach((s, i) => {
      if (i > 0 && s.km <= r.stops[i - 1]!.km) throw new DataFileError(busFile, `${key}: stop ${i} km must increase`);
      const id = `${key}:${i}`;
      stops.push(id);
      add(
        {
          id,
          kind: 'bus-stop',
          region: r.region,
          scene: 'BUS',
          operatorId: r.operator,
          name: `${r.name} ${s.name}`,
          network: r.network,
          station: s.name,
          routeKm: s.km,
          route: r.route,
          stopIndex: i,
          lat: s.lat,
          lon: s.lon,
        },
        busFile,
      );
    });
    const lastKm = r.stops[r.stops.length - 1]!.km;
    routes.set(key, {
      network: r.network,
      route: r.route,
      name: r.name,
      region: r.region,
      operatorId: r.operator,
      stops,
      lengthM: Math.round(lastKm * 1000),
    });
  }

  for (const f of VENUE_FILES.slice(1)) {
    const rel = `venues/${f}`;
    const file = readDataFile(dataDir, rel, PlaceFileSchema);
    versions.push(file.version);
    for (const p of file.venues) {
      const [, kind, region] = NON_TRANSIT_ID.exec(p.id)!;
      if (kind !== p.kind) throw new DataFileError(rel, `${p.id}: id kind ${kind} differs from kind ${p.kind}`);
      const scene = SCENE_OF_KIND[p.kind];
      if (scene === 'MEDICAL' && !p.level) throw new DataFileError(rel, `${p.id}: medical venues need a level`);
      const v: VenueInfo = {
        id: p.id,
        kind: p.kind,
        region: region as Region,
        scene,
        operatorId: p.operator ?? p.id,
        name: p.name,
        lat: p.lat,
        lon: p.lon,
      };
      if (p.nameEn) v.nameEn = p.nameEn;
      if (p.level) v.institutionLevel = p.level;
      add(v, rel);
    }
  }

  const version = versions.join('+');
  return {
    version,
    get: (id) => venues.get(id),
    info: (id) => venues.get(id),
    all: () => venues.values(),
    busRoute: (network, route) => routes.get(`${network}:${route}`),
    busRoutes: () => routes.values(),
  };
}
