/**
 * Culture and tourism entries: the price of one entry at a venue from its entry policy
 * (`<dataDir>/tariffs/entries.yaml`, format in data/tariffs/README.md): a list price, and a pay
 * percentage per rider category (the file's defaults, overridden per venue). A venue without its
 * own policy takes the default of its kind (free in the shipped data).
 */
import { z } from 'zod';
import { readDataFile } from '../network/data-file.js';
import type { VenueInfo } from '../network/venues.js';
import { RiderCategories, type Fen, type RiderCategory, type TraceStep } from '../types.js';
import { percentOf } from './money.js';

export interface EntryPolicy {
  priceFen: Fen;
  payPercent: Record<RiderCategory, number>;
}

export interface EntryPolicies {
  version: string;
  /** Policy of a venue (own, else the default of its kind, else free). */
  policyOf(venue: VenueInfo): EntryPolicy & { source: string };
}

const Percent = z.number().int().min(0).max(100);
const PartialCategories = z.object(Object.fromEntries(RiderCategories.map((c) => [c, Percent.optional()])) as Record<RiderCategory, z.ZodOptional<typeof Percent>>).strict();
const PolicySchema = z.object({ priceFen: z.number().int().nonnegative(), payPercent: PartialCategories.optional() }).strict();

const EntriesFileSchema = z
  .object({
    version: z.string().min(1),
    categories: z.object(Object.fromEntries(RiderCategories.map((c) => [c, Percent])) as Record<RiderCategory, typeof Percent>).strict(),
    defaults: z.record(z.string(), PolicySchema).default({}),
    venues: z.record(z.string(), PolicySchema).default({}),
  })
  .strict();

/** Loads `<dataDir>/tariffs/entries.yaml`. */
export function loadEntryPolicies(dataDir = 'data'): EntryPolicies {
  const raw = readDataFile(dataDir, 'tariffs/entries.yaml', EntriesFileSchema);
  const compile = (p: z.output<typeof PolicySchema>): EntryPolicy => ({
    priceFen: p.priceFen,
    payPercent: { ...raw.categories, ...stripUndefined(p.payPercent ?? {}) },
  });
  const venues = new Map(Object.entries(raw.venues).map(([id, p]) => [id, compile(p)]));
  const defaults = new Map(Object.entries(raw.defaults).map(([kind, p]) => [kind, compile(p)]));
  const free: EntryPolicy = { priceFen: 0, payPercent: raw.categories };
  return {
    version: raw.version,
    policyOf(venue) {
      const own = venues.get(venue.id);
      if (own) return { ...own, source: venue.id };
      const byKind = defaults.get(venue.kind);
      if (byKind) return { ...byKind, source: `default:${venue.kind}` };
      return { ...free, source: 'free' };
    },
  };
}

function stripUndefined<T extends object>(o: T): { [K in keyof T]-?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]-?: Exclude<T[K], undefined> };
}

/** The price of one entry for a rider category, with its trace. */
export function priceEntry(policies: EntryPolicies, venue: VenueInfo, category: RiderCategory): { amountFen: Fen; baseFen: Fen; trace: TraceStep[] } {
  const p = policies.policyOf(venue);
  const pct = p.payPercent[category];
  const amountFen = percentOf(p.priceFen, pct);
  return {
    amountFen,
    baseFen: p.priceFen,
    trace: [
      {
        rule: 'entry-policy',
        version: policies.version,
        detail: `${venue.id} (${p.source}): price ${p.priceFen} fen, ${category} pays ${pct}% → ${amountFen} fen`,
      },
    ],
  };
}
