/**
 * Loads the rail networks listed in `<dataDir>/networks/networks.yaml` (format in
 * data/networks/README.md): per network folder `network.csv` (line, seq, station, station_en,
 * lat, lon, dist_to_next_m), `lines.csv` (line, loop, …), `stations.csv` (station, station_en,
 * lines, lat, lon, coord_source) and optionally a virtual-transfer CSV.
 *
 * Distances:
 * - `distances: official`: `dist_to_next_m` as published; the last row of a loop line holds the
 *   closing segment back to seq 1. A missing value on an official network is estimated as below
 *   (and flagged), or is an error when coordinates are missing too.
 * - `distances: estimated`: haversine between the rows' WGS84 coordinates × `estimateFactor`,
 *   rounded to the metre, every such segment flagged `estimated: true`.
 * - A row without coordinates (Tianjin 瑞景新苑, Shijiazhuang 塔坛) gets a position interpolated
 *   linearly (by running order) between the nearest rows of the same line that have coordinates;
 *   its segments are flagged `interpolated`. At a line end with no known neighbour on one side,
 *   the segment takes the median estimated segment length of that line. Interpolated positions
 *   are used only for distances: the station keeps no coordinates (venues show none).
 */
import { join } from 'node:path';
import { z } from 'zod';
import { Regions } from '../types.js';
import { parseCsv } from './csv.js';
import { readDataFile, readDataText } from './data-file.js';
import { DataFileError } from './errors.js';
import { haversineM } from './geo.js';
import { Network, type Line, type Segment, type Station, type VirtualTransfer } from './network.js';

const ManifestSchema = z
  .object({
    version: z.string().min(1),
    attribution: z.string().min(1),
    networks: z.array(
      z
        .object({
          id: z.string().regex(/^[a-z0-9-]+$/),
          name: z.string().min(1),
          dir: z.string().min(1),
          region: z.enum(Regions),
          operator: z.string().min(1),
          distances: z.enum(['official', 'estimated']),
          /** Multiplier for haversine estimates. @default 1.06 */
          estimateFactor: z.number().positive().default(1.06),
          virtualTransfers: z.string().optional(),
        })
        .strict(),
    ),
  })
  .strict();

export type NetworkManifest = z.output<typeof ManifestSchema>;

/** Reads the network manifest (`<dataDir>/networks/networks.yaml`). */
export function readNetworkManifest(dataDir = 'data'): NetworkManifest {
  return readDataFile(dataDir, 'networks/networks.yaml', ManifestSchema);
}

/**
 * Loads every network of the manifest. Keys are network ids ('bj-subway', 'tj-metro',
 * 'sjz-metro' in the shipped data). Throws {@link DataFileError} on a malformed file.
 */
export function loadNetworks(dataDir = 'data'): Map<string, Network> {
  const manifest = readNetworkManifest(dataDir);
  const out = new Map<string, Network>();
  for (const m of manifest.networks) {
    const dir = join('networks', m.dir);
    const rows = csv(dataDir, join(dir, 'network.csv'), ['line', 'seq', 'station', 'lat', 'lon', 'dist_to_next_m']);
    const lineRows = csv(dataDir, join(dir, 'lines.csv'), ['line', 'loop']);
    const stationRows = csv(dataDir, join(dir, 'stations.csv'), ['station', 'lines', 'lat', 'lon', 'coord_source']);
    const vtRows = m.virtualTransfers
      ? csv(dataDir, join(dir, m.virtualTransfers), ['from_station', 'to_station', 'from_line', 'to_line', 'minutes'])
      : [];
    const file = join(dataDir, dir, 'network.csv');

    const loops = new Map(lineRows.map((r) => [r.line!, r.loop === 'yes']));
    const enNames = new Map(lineRows.map((r) => [r.line!, r.line_en ?? '']));
    const byLine = new Map<string, Record<string, string>[]>();
    for (const r of rows) {
      const list = byLine.get(r.line!) ?? [];
      list.push(r);
      byLine.set(r.line!, list);
    }
    const lines: Line[] = [];
    const segments: Segment[] = [];
    for (const [name, list] of byLine) {
      list.sort((a, b) => Number(a.seq) - Number(b.seq));
      const loop = loops.get(name) ?? false;
      lines.push({ name, nameEn: enNames.get(name) ?? '', loop, stations: list.map((r) => r.station!) });
      segments.push(...lineSegments(file, name, list, loop, m.distances === 'estimated', m.estimateFactor));
    }
    const stations: Station[] = stationRows.map((r) => {
      const s: Station = {
        name: r.station!,
        nameEn: r.station_en ?? '',
        lines: r.lines ? r.lines.split('|') : [],
        coordSource: r.coord_source ?? 'missing',
      };
      const lat = num(r.lat);
      const lon = num(r.lon);
      if (lat !== undefined && lon !== undefined) {
        s.lat = lat;
        s.lon = lon;
      }
      return s;
    });
    const known = new Set(stations.map((s) => s.name));
    for (const l of lines) {
      for (const s of l.stations) {
        if (!known.has(s)) throw new DataFileError(join(dataDir, dir, 'stations.csv'), `station ${s} of ${l.name} missing`);
      }
    }
    const virtualTransfers: VirtualTransfer[] = vtRows.map((r) => ({
      from: r.from_station!,
      to: r.to_station!,
      fromLine: r.from_line!,
      toLine: r.to_line!,
      minutes: Number(r.minutes),
    }));
    out.set(
      m.id,
      new Network({
        id: m.id,
        name: m.name,
        city: m.dir,
        region: m.region,
        operatorId: m.operator,
        version: manifest.version,
        distanceSource: m.distances,
        estimateFactor: m.estimateFactor,
        stations,
        lines,
        segments,
        virtualTransfers,
      }),
    );
  }
  return out;
}

function csv(dataDir: string, rel: string, required: string[]): Record<string, string>[] {
  const rows = parseCsv(readDataText(dataDir, rel));
  for (const col of required) {
    if (rows.length > 0 && !(col in rows[0]!)) throw new DataFileError(join(dataDir, rel), `missing column ${col}`);
  }
  return rows;
}

function num(s: string | undefined): number | undefined {
  if (s === undefined || s === '') return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

interface Pos {
  lat: number;
  lon: number;
  interpolated: boolean;
}

/** Segments of one line in running order (plus the closing segment of a loop). */
function lineSegments(
  file: string,
  line: string,
  rows: Record<string, string>[],
  loop: boolean,
  estimateAll: boolean,
  factor: number,
): Segment[] {
  const pos = positions(rows);
  const pairs: [number, number][] = [];
  for (let i = 0; i + 1 < rows.length; i++) pairs.push([i, i + 1]);
  if (loop && rows.length > 2) pairs.push([rows.length - 1, 0]);

  const estimate = (i: number, j: number): number | undefined => {
    const a = pos[i];
    const b = pos[j];
    if (!a || !b) return undefined;
    return Math.round(haversineM(a.lat, a.lon, b.lat, b.lon) * factor);
  };
  const known = pairs.map(([i, j]) => estimate(i, j)).filter((d): d is number => d !== undefined);
  const median = known.length ? [...known].sort((x, y) => x - y)[known.length >> 1]! : undefined;

  return pairs.map(([i, j]) => {
    const from = rows[i]!.station!;
    const to = rows[j]!.station!;
    const official = estimateAll ? undefined : num(rows[i]!.dist_to_next_m);
    if (official !== undefined) {
      return { line, from, to, distanceM: Math.round(official), estimated: false, interpolated: false };
    }
    const est = estimate(i, j) ?? median;
    if (est === undefined) throw new DataFileError(file, `${line} ${from}→${to}: no distance and no coordinates to estimate it`);
    return {
      line,
      from,
      to,
      distanceM: est,
      estimated: true,
      interpolated: Boolean(pos[i]?.interpolated || pos[j]?.interpolated || estimate(i, j) === undefined),
    };
  });
}

/** Row coordinates, missing ones interpolated between the nearest known rows of the line. */
function positions(rows: Record<string, string>[]): (Pos | undefined)[] {
  const raw = rows.map((r) => {
    const lat = num(r.lat);
    const lon = num(r.lon);
    return lat !== undefined && lon !== undefined ? { lat, lon, interpolated: false } : undefined;
  });
  return raw.map((p, i) => {
    if (p) return p;
    let a = i - 1;
    while (a >= 0 && !raw[a]) a--;
    let b = i + 1;
    while (b < raw.length && !raw[b]) b++;
    const pa = raw[a];
    const pb = raw[b];
    if (!pa || !pb) return undefined;
    const t = (i - a) / (b - a);
    return { lat: pa.lat + (pb.lat - pa.lat) * t, lon: pa.lon + (pb.lon - pa.lon) * t, interpolated: true };
  });
}
