/**
 * Everything the settlers price with, loaded once at start-up from the data directory (no file
 * reads per event). `version` names every source, so a settlement's trace can be traced to data.
 */
import { DataFileError } from '../network/errors.js';
import { loadNetworks } from '../network/load.js';
import type { Network } from '../network/network.js';
import { loadVenueDirectory, type VenueCatalog } from '../network/venues.js';
import { loadEntryPolicies, type EntryPolicies } from './entries.js';
import { loadMedicalPolicies, type MedicalPolicies } from './medical.js';
import { loadTariffs, type Tariffs } from './tariffs.js';

export interface SettlerData {
  /** `<tariffs>;<entries>;<medical>;<venues>` versions. */
  version: string;
  venues: VenueCatalog;
  networks: Map<string, Network>;
  tariffs: Tariffs;
  medical: MedicalPolicies;
  entries: EntryPolicies;
}

/**
 * Loads networks, venues, tariffs, entry policies and medical policies from `dataDir`.
 * Throws DataFileError (naming the file and field) when any file is missing or malformed.
 */
export function loadSettlerData(dataDir = 'data'): SettlerData {
  const networks = loadNetworks(dataDir);
  const venues = loadVenueDirectory(dataDir, networks);
  const tariffs = loadTariffs(dataDir);
  const medical = loadMedicalPolicies(dataDir);
  const entries = loadEntryPolicies(dataDir);
  const priced = new Set<string>();
  for (const v of venues.all()) {
    if (v.network && !priced.has(v.network)) {
      if (!tariffs.networks.has(v.network)) throw new DataFileError('tariffs/tariffs.yaml', `no tariff for network ${v.network} (venue ${v.id})`);
      priced.add(v.network);
    }
  }
  return {
    version: [tariffs.version, entries.version, medical.version, venues.version].join(';'),
    venues,
    networks,
    tariffs,
    medical,
    entries,
  };
}
