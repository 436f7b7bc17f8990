/**
 * Terminals are bound to their venues: the venues a terminal serves, and the check each of its
 * taps makes against them before anything is published. A tap for a venue the terminal does not
 * serve, or for a venue of another region than the terminal's, is refused (TapAck INVALID with
 * reason "PERMISSION_DENIED: venue_id: …"; a claim for an institution it does not serve:
 * PERMISSION_DENIED). The check is a map lookup and, for listed prefixes, a few string
 * comparisons: nothing is allocated for a tap that passes.
 *
 * Registry entries (`venues:` of a terminal in TAPFLOW_TERMINALS_FILE), as in the application
 * project list: a venue id (`bj-subway:西直门`, `hospital:BJ:pumch`) or a prefix ending in `*`
 * (`bj-subway:*` a whole network, `bj-bus:52:*` one bus route, `museum:BJ:*` the museums of
 * Beijing); no spaces, `*` only at the end, not `*` alone. The demo registry has no lists: a
 * demo terminal ("<REGION>-…") serves the venues of its region.
 *
 * A venue's region is the venue directory's (src/domain/network/venues.ts); for an id the
 * directory does not hold, what the id says: `<kind>:<REGION>:<slug>` of a kind the directory
 * has (museum, clinic, …), or `<network>:…` of a network the directory knows. A demo terminal may send only for venues whose region is known
 * and its own; a listed venue whose region nothing tells is served as listed.
 */
import { VenueKinds } from '../domain/network/index.js';
import { Regions, type Region, type VenueDirectory } from '../domain/types.js';

export type VenueScope =
  /** Every venue of the terminal's region (the demo registry). */
  | { kind: 'region' }
  /** The venues listed in the registry: ids, and prefixes (without their `*`). */
  | { kind: 'listed'; ids: ReadonlySet<string>; prefixes: readonly string[]; text: string };

/** The scope of a demo terminal. */
export const WHOLE_REGION: VenueScope = { kind: 'region' };

/** A venue id or a prefix ending in "*": no spaces, "*" only at the end. */
const ENTRY_PATTERN = /^[^\s*]+\*?$/;

const KINDS: ReadonlySet<string> = new Set(VenueKinds);

/** A terminal's `venues:` list as a scope; throws naming the entry that is not a venue or a prefix. */
export function listedScope(entries: readonly string[]): VenueScope {
  if (entries.length === 0) throw new Error('venues: at least one venue id or prefix');
  const ids = new Set<string>();
  const prefixes: string[] = [];
  for (const [i, e] of entries.entries()) {
    if (!ENTRY_PATTERN.test(e)) throw new Error(`venues[${i}]: expected a venue id or a prefix ending in "*" (no spaces, "*" only at the end, not "*" alone), got ${JSON.stringify(e)}`);
    if (e.endsWith('*')) prefixes.push(e.slice(0, -1));
    else ids.add(e);
  }
  return { kind: 'listed', ids, prefixes, text: entries.join(', ') };
}

/** The region of any venue id, as far as the directory or the id itself tells it. */
export class VenueRegions {
  private readonly networks = new Map<string, Region>();

  constructor(private readonly venues: VenueDirectory) {
    for (const v of venues.all()) if (v.network) this.networks.set(v.network, v.region);
  }

  /** `known`: the directory's entry when the caller looked it up already. */
  regionOf(venueId: string, known = this.venues.get(venueId)): Region | undefined {
    if (known) return known.region;
    const colon = venueId.indexOf(':');
    if (colon <= 0) return undefined;
    // Only ids the directory does not hold get here: slicing their first part costs nothing to
    // the taps of known venues.
    const first = venueId.slice(0, colon);
    // <kind>:<REGION>:<slug>
    if (KINDS.has(first) && venueId.charCodeAt(colon + 3) === 58 /* ':' */) {
      for (const r of Regions) if (venueId.startsWith(r, colon + 1)) return r;
    }
    // <network>:<station or route:stop> of a known network.
    return this.networks.get(first);
  }
}

/**
 * Why terminal `t` may not send for `venueId` (a message naming the venue and what the terminal
 * serves), or undefined when it may. `venueRegion`: {@link VenueRegions.regionOf} the venue.
 * `checkRegion` false leaves the region to the caller (claims: the validator decides it from the
 * project list, INSTITUTION_NOT_IN_REGION).
 */
export function venueRefusal(t: { id: string; region: Region; venues: VenueScope }, venueId: string, venueRegion: Region | undefined, checkRegion = true): string | undefined {
  const s = t.venues;
  if (s.kind === 'listed' && !s.ids.has(venueId) && !startsWithAny(venueId, s.prefixes)) {
    return `terminal ${t.id} does not serve venue ${venueId}; it serves ${s.text}`;
  }
  if (!checkRegion) return undefined;
  if (venueRegion === undefined) {
    return s.kind === 'region' ? `terminal ${t.id} serves the venues of ${t.region}; venue ${venueId} is not one tapflow knows the region of` : undefined;
  }
  if (venueRegion !== t.region) return `venue ${venueId} is in ${venueRegion}; terminal ${t.id} serves ${t.region}`;
  return undefined;
}

function startsWithAny(s: string, prefixes: readonly string[]): boolean {
  for (let i = 0; i < prefixes.length; i++) if (s.startsWith(prefixes[i]!)) return true;
  return false;
}
