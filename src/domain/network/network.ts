/**
 * A rail network as a graph, and the fare path through it.
 *
 * Graph: one node per (station, line). A ride edge joins adjacent stations of a line (both
 * directions, the line's segment distance, one station ridden); a transfer edge joins two nodes
 * of the same station name (an in-station transfer) or the two ends of a listed out-of-station
 * ("virtual") transfer; transfer edges have no distance and ride no station. The fare path is the
 * cheapest path under one of two metrics:
 *
 * - `distance`: shortest total distance (ties: fewer stations ridden, then fewer transfers);
 * - `stations`: fewest stations ridden (ties: shortest distance).
 *
 * Lines named in `penalizedLines` (separately gated lines with their own fare, e.g. the airport
 * lines) carry a very large extra cost per ride edge, so a path uses them only when the entry or
 * exit station cannot be reached otherwise, and then as little as possible.
 *
 * Dijkstra runs lazily, once per (metric, penalised lines, source station), and its result is
 * cached together with every reconstructed path: the hot path of the settler only looks answers up.
 */
import type { Region } from '../types.js';

/** Where the distance of a segment comes from. */
export type DistanceSource = 'official' | 'estimated';

export interface Station {
  /** Station name in Chinese: the key of the station inside its network. */
  name: string;
  /** English name or pinyin; display only. */
  nameEn: string;
  /** Lines serving the station. */
  lines: string[];
  /** WGS84 (OpenStreetMap); absent when the data has none. */
  lat?: number;
  lon?: number;
  /** Provenance of the coordinates (`gtfs:…`, `osm:…`, `missing`). */
  coordSource: string;
}

export interface Line {
  name: string;
  nameEn: string;
  loop: boolean;
  /** Station names in running order (one direction). */
  stations: string[];
}

/** Distance between two adjacent stations of a line. */
export interface Segment {
  line: string;
  from: string;
  to: string;
  /** Integer metres. */
  distanceM: number;
  /** True when computed from coordinates (haversine × the network's factor), not published. */
  estimated: boolean;
  /** True when at least one end had no coordinates and its position was interpolated. */
  interpolated: boolean;
}

export interface VirtualTransfer {
  from: string;
  to: string;
  fromLine: string;
  toLine: string;
  minutes: number;
}

export type PathMetric = 'distance' | 'stations';

export interface PathOptions {
  /** @default 'distance' */
  metric?: PathMetric;
  /** Lines used only when unavoidable (separately gated lines with their own fare). */
  penalizedLines?: readonly string[];
}

/** One stretch of a path on one line. */
export interface PathLeg {
  line: string;
  from: string;
  to: string;
  distanceM: number;
  /** Stations ridden on this line (segments). */
  stations: number;
  estimated: boolean;
}

export interface PathResult {
  from: string;
  to: string;
  /** Total ride distance, integer metres. */
  distanceM: number;
  /** Stations ridden (segments travelled); the origin is not counted; transfers add nothing. */
  stationCount: number;
  /** Line changes, in-station or virtual. */
  transfers: number;
  /** True when any segment of the path has an estimated distance. */
  estimated: boolean;
  legs: PathLeg[];
}

/** What {@link Network} is built from (see load.ts for the file format). */
export interface NetworkSpec {
  id: string;
  name: string;
  city: string;
  region: Region;
  operatorId: string;
  version: string;
  distanceSource: DistanceSource;
  /** Factor applied to haversine distances when estimating (1.06 for the shipped networks). */
  estimateFactor: number;
  stations: Station[];
  lines: Line[];
  segments: Segment[];
  virtualTransfers: VirtualTransfer[];
}

interface Edge {
  to: number;
  distanceM: number;
  /** Line of a ride edge; '' for a transfer. */
  line: string;
  estimated: boolean;
}

interface SourceTree {
  cost: Float64Array;
  prev: Int32Array;
  prevEdge: (Edge | undefined)[];
}

// Integer costs (exact in a double up to 2^53): see the header comment for the metrics.
const PENALTY = 2 ** 40;
const HOP_STATIONS = 2 ** 30;
const DISTANCE_SCALE = 64;
/** Bound on cached reconstructed paths per network (the Beijing network has 425² pairs). */
const MAX_CACHED_PATHS = 250_000;
const NONE: readonly string[] = [];

export class Network {
  readonly id: string;
  readonly name: string;
  readonly city: string;
  readonly region: Region;
  readonly operatorId: string;
  readonly version: string;
  readonly distanceSource: DistanceSource;
  readonly estimateFactor: number;
  readonly stations: ReadonlyMap<string, Station>;
  readonly lines: readonly Line[];
  readonly segments: readonly Segment[];
  readonly virtualTransfers: readonly VirtualTransfer[];

  private readonly nodeStation: string[] = [];
  private readonly nodeLine: string[] = [];
  private readonly nodesOfStation = new Map<string, number[]>();
  private readonly adjacency: Edge[][] = [];
  private readonly trees = new Map<string, SourceTree>();
  private readonly paths = new Map<string, PathResult | null>();
  /** Cache keys of penalised-line lists, by list identity (tariffs pass the same array). */
  private readonly linesKeys = new WeakMap<readonly string[], string>();

  constructor(spec: NetworkSpec) {
    this.id = spec.id;
    this.name = spec.name;
    this.city = spec.city;
    this.region = spec.region;
    this.operatorId = spec.operatorId;
    this.version = spec.version;
    this.distanceSource = spec.distanceSource;
    this.estimateFactor = spec.estimateFactor;
    this.stations = new Map(spec.stations.map((s) => [s.name, s]));
    this.lines = spec.lines;
    this.segments = spec.segments;
    this.virtualTransfers = spec.virtualTransfers;
    this.buildGraph();
  }

  /** True when the station name is in this network. */
  hasStation(name: string): boolean {
    return this.nodesOfStation.has(name);
  }

  /**
   * The fare path between two stations, or undefined when either is unknown or they are not
   * connected. From a station to itself: distance 0, no stations.
   */
  shortestPath(from: string, to: string, options: PathOptions = {}): PathResult | undefined {
    const metric = options.metric ?? 'distance';
    const lines = options.penalizedLines ?? NONE;
    let linesKey = this.linesKeys.get(lines);
    if (linesKey === undefined) {
      linesKey = [...lines].sort().join('\u0002');
      this.linesKeys.set(lines, linesKey);
    }
    const treeKey = `${metric}\u0001${linesKey}\u0001${from}`;
    const pathKey = `${treeKey}\u0001${to}`;
    const cached = this.paths.get(pathKey);
    if (cached !== undefined) return cached ?? undefined;
    const result = this.computePath(from, to, metric, new Set(lines), treeKey);
    if (this.paths.size >= MAX_CACHED_PATHS) this.paths.clear();
    this.paths.set(pathKey, result ?? null);
    return result;
  }

  private buildGraph(): void {
    const nodeOf = new Map<string, number>();
    const node = (station: string, line: string): number => {
      const key = `${station}\u0000${line}`;
      let n = nodeOf.get(key);
      if (n === undefined) {
        n = this.nodeStation.length;
        nodeOf.set(key, n);
        this.nodeStation.push(station);
        this.nodeLine.push(line);
        this.adjacency.push([]);
        const list = this.nodesOfStation.get(station) ?? [];
        list.push(n);
        this.nodesOfStation.set(station, list);
      }
      return n;
    };
    for (const line of this.lines) for (const s of line.stations) node(s, line.name);
    for (const seg of this.segments) {
      const a = node(seg.from, seg.line);
      const b = node(seg.to, seg.line);
      this.adjacency[a]!.push({ to: b, distanceM: seg.distanceM, line: seg.line, estimated: seg.estimated });
      this.adjacency[b]!.push({ to: a, distanceM: seg.distanceM, line: seg.line, estimated: seg.estimated });
    }
    const transfer = (a: number, b: number): void => {
      this.adjacency[a]!.push({ to: b, distanceM: 0, line: '', estimated: false });
      this.adjacency[b]!.push({ to: a, distanceM: 0, line: '', estimated: false });
    };
    for (const nodes of this.nodesOfStation.values()) {
      for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) transfer(nodes[i]!, nodes[j]!);
    }
    for (const vt of this.virtualTransfers) {
      const a = nodeOf.get(`${vt.from}\u0000${vt.fromLine}`);
      const b = nodeOf.get(`${vt.to}\u0000${vt.toLine}`);
      if (a !== undefined && b !== undefined) transfer(a, b);
    }
  }

  private edgeCost(e: Edge, metric: PathMetric, penalized: ReadonlySet<string>): number {
    if (e.line === '') return 1;
    const base = metric === 'distance' ? e.distanceM * DISTANCE_SCALE + 1 : HOP_STATIONS + e.distanceM;
    return penalized.has(e.line) ? base + PENALTY : base;
  }

  private tree(from: string, metric: PathMetric, penalized: ReadonlySet<string>, key: string): SourceTree | undefined {
    const cached = this.trees.get(key);
    if (cached) return cached;
    const sources = this.nodesOfStation.get(from);
    if (!sources) return undefined;
    const n = this.nodeStation.length;
    const cost = new Float64Array(n).fill(Infinity);
    const prev = new Int32Array(n).fill(-1);
    const prevEdge: (Edge | undefined)[] = new Array(n);
    const heap = new MinHeap();
    for (const s of sources) {
      cost[s] = 0;
      heap.push(0, s);
    }
    while (heap.size > 0) {
      const [c, u] = heap.pop();
      if (c > cost[u]!) continue;
      for (const e of this.adjacency[u]!) {
        const nc = c + this.edgeCost(e, metric, penalized);
        if (nc < cost[e.to]!) {
          cost[e.to] = nc;
          prev[e.to] = u;
          prevEdge[e.to] = e;
          heap.push(nc, e.to);
        }
      }
    }
    const tree = { cost, prev, prevEdge };
    this.trees.set(key, tree);
    return tree;
  }

  private computePath(
    from: string,
    to: string,
    metric: PathMetric,
    penalized: ReadonlySet<string>,
    treeKey: string,
  ): PathResult | undefined {
    const targets = this.nodesOfStation.get(to);
    const tree = this.tree(from, metric, penalized, treeKey);
    if (!targets || !tree) return undefined;
    let best = -1;
    for (const t of targets) if (best < 0 || tree.cost[t]! < tree.cost[best]!) best = t;
    if (best < 0 || !Number.isFinite(tree.cost[best]!)) return undefined;
    const edges: Edge[] = [];
    const nodes: number[] = [best];
    for (let v = best; tree.prev[v]! >= 0; v = tree.prev[v]!) {
      edges.push(tree.prevEdge[v]!);
      nodes.push(tree.prev[v]!);
    }
    edges.reverse();
    nodes.reverse();
    const legs: PathLeg[] = [];
    for (let i = 0; i < edges.length; i++) {
      const e = edges[i]!;
      if (e.line === '') continue;
      const last = legs[legs.length - 1];
      const here = this.nodeStation[nodes[i]!]!;
      const there = this.nodeStation[nodes[i + 1]!]!;
      if (last && last.line === e.line && last.to === here) {
        last.to = there;
        last.distanceM += e.distanceM;
        last.stations += 1;
        last.estimated ||= e.estimated;
      } else legs.push({ line: e.line, from: here, to: there, distanceM: e.distanceM, stations: 1, estimated: e.estimated });
    }
    // Count line changes from the legs: a path may start or end with a transfer edge inside the
    // entry or exit station (it reached the cheapest node of that station), which is no change.
    const transfers = Math.max(0, legs.length - 1);
    return {
      from,
      to,
      distanceM: legs.reduce((s, l) => s + l.distanceM, 0),
      stationCount: legs.reduce((s, l) => s + l.stations, 0),
      transfers,
      estimated: legs.some((l) => l.estimated),
      legs,
    };
  }
}

/** Binary min-heap of (cost, node). */
class MinHeap {
  private readonly costs: number[] = [];
  private readonly nodes: number[] = [];
  get size(): number {
    return this.costs.length;
  }
  push(cost: number, node: number): void {
    const c = this.costs;
    const n = this.nodes;
    c.push(cost);
    n.push(node);
    let i = c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (c[p]! <= c[i]!) break;
      [c[p], c[i]] = [c[i]!, c[p]!];
      [n[p], n[i]] = [n[i]!, n[p]!];
      i = p;
    }
  }
  pop(): [number, number] {
    const c = this.costs;
    const n = this.nodes;
    const top: [number, number] = [c[0]!, n[0]!];
    const lastC = c.pop()!;
    const lastN = n.pop()!;
    if (c.length > 0) {
      c[0] = lastC;
      n[0] = lastN;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < c.length && c[l]! < c[m]!) m = l;
        if (r < c.length && c[r]! < c[m]!) m = r;
        if (m === i) break;
        [c[m], c[i]] = [c[i]!, c[m]!];
        [n[m], n[i]] = [n[i]!, n[m]!];
        i = m;
      }
    }
    return top;
  }
}
