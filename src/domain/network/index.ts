/**
 * Rail networks (stations, lines, segment distances, fare paths) and the venue directory.
 * Loaded once at start-up from the data directory; lookups afterwards are in memory.
 */
export { loadNetworks, readNetworkManifest, type NetworkManifest } from './load.js';
export {
  Network,
  type DistanceSource,
  type Line,
  type NetworkSpec,
  type PathLeg,
  type PathMetric,
  type PathOptions,
  type PathResult,
  type Segment,
  type Station,
  type VirtualTransfer,
} from './network.js';
export {
  loadVenueDirectory,
  VenueKinds,
  VENUE_FILES,
  type BusRoute,
  type VenueCatalog,
  type VenueInfo,
  type VenueKind,
} from './venues.js';
export { DataFileError } from './errors.js';
export { haversineM } from './geo.js';
