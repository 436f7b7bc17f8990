/**
 * The application project list (应用项目清单, art. 8): which venue accepts the card, for which
 * scene, in which forms, from when to when. Format documented in data/projects/README.md.
 *
 * Matching a tap: among the items for the tap's scene whose `venue` matches the tap's venue id,
 * the most specific wins — an exact id beats a prefix ("bj-subway:*"), a longer prefix beats a
 * shorter one — so one prefix line can list a whole network and an exact line can override it
 * for one station (e.g. CHIP only while QR readers are replaced). The winning item then decides:
 * its validity window (validFrom inclusive, validTo exclusive, at the tap's device time) and its
 * accepted forms. Operator and region of an item are recorded for audit and the trace; they do
 * not reject taps.
 */
import { CardForms, Regions, Scenes, type CardForm, type InstitutionLevel, type Region, type Scene } from '../types.js';
import {
  DataFormatError,
  formatInstant,
  isPlainObject,
  optionalString,
  parseDataText,
  parseInstant,
  rejectUnknownFields,
  requireListOf,
  requireOneOf,
  requireString,
} from './data-format.js';

export interface ProjectItem {
  /** A venue id ("museum:BJ:capital-museum"), or a prefix ending in "*" ("bj-subway:*"). */
  venue: string;
  scene: Scene;
  /** Card forms accepted at the venue for this scene. */
  forms: CardForm[];
  /** Operating institution or company. */
  operator: string;
  region: Region;
  /** Epoch ms, inclusive. */
  validFrom: number;
  /** Epoch ms, exclusive; absent: open-ended. */
  validTo?: number;
  /** Display name. */
  name?: string;
  /**
   * MEDICAL items: the institution's level, which decides the reimbursement ratio of its claims.
   * Without it the institution's claims are refused (INSTITUTION_LEVEL_UNKNOWN).
   */
  level?: InstitutionLevel;
}

export const InstitutionLevels = ['PRIMARY', 'SECONDARY', 'TERTIARY'] as const satisfies readonly InstitutionLevel[];

export type ProjectRejection = 'VENUE_NOT_LISTED' | 'SCENE_NOT_LISTED' | 'FORM_NOT_ACCEPTED' | 'ITEM_NOT_YET_VALID' | 'ITEM_EXPIRED';

export type ProjectLookup =
  | { ok: true; item: ProjectItem }
  | { ok: false; reason: ProjectRejection; item?: ProjectItem; detail: string };

interface PrefixEntry {
  prefix: string;
  byScene: Map<Scene, ProjectItem>;
}

/** A validated, indexed project list. Immutable. */
export class ProjectList {
  readonly version: string;
  readonly items: readonly ProjectItem[];
  private readonly exact = new Map<string, Map<Scene, ProjectItem>>();
  /** Longest prefix first. */
  private readonly prefixes: PrefixEntry[] = [];

  /** Builds the index; throws DataFormatError when two items share venue and scene. */
  constructor(version: string, items: readonly ProjectItem[]) {
    if (version.length === 0) throw new DataFormatError('version', 'expected a non-empty string');
    this.version = version;
    this.items = items;
    const prefixIndex = new Map<string, PrefixEntry>();
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const key = itemKey(item);
      const earlier = seen.get(key);
      if (earlier !== undefined) throw new DataFormatError(`items[${i}]`, `same venue and scene as items[${earlier}] (${key})`);
      seen.set(key, i);
      let byScene: Map<Scene, ProjectItem>;
      if (item.venue.endsWith('*')) {
        const prefix = item.venue.slice(0, -1);
        let entry = prefixIndex.get(prefix);
        if (!entry) prefixIndex.set(prefix, (entry = { prefix, byScene: new Map() }));
        byScene = entry.byScene;
      } else {
        byScene = this.exact.get(item.venue) ?? new Map();
        this.exact.set(item.venue, byScene);
      }
      byScene.set(item.scene, item);
    });
    this.prefixes = [...prefixIndex.values()].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** The item that decides a tap of this scene at this venue, and whether a venue is listed at all. */
  match(venueId: string, scene: Scene): { item?: ProjectItem; venueListed: boolean } {
    let venueListed = false;
    const exact = this.exact.get(venueId);
    if (exact) {
      venueListed = true;
      const item = exact.get(scene);
      if (item) return { item, venueListed };
    }
    for (const p of this.prefixes) {
      if (!venueId.startsWith(p.prefix)) continue;
      venueListed = true;
      const item = p.byScene.get(scene);
      if (item) return { item, venueListed };
    }
    return { venueListed };
  }

  /** Plain data in the file format (instants as China-time ISO strings). */
  toJSON(): { version: string; items: Record<string, unknown>[] } {
    return { version: this.version, items: this.items.map(itemToData) };
  }
}

function itemKey(item: Pick<ProjectItem, 'venue' | 'scene'>): string {
  return `${item.venue} ${item.scene}`;
}

function itemToData(item: ProjectItem): Record<string, unknown> {
  return {
    venue: item.venue,
    scene: item.scene,
    forms: item.forms,
    operator: item.operator,
    region: item.region,
    validFrom: formatInstant(item.validFrom),
    ...(item.validTo !== undefined && { validTo: formatInstant(item.validTo) }),
    ...(item.name !== undefined && { name: item.name }),
    ...(item.level !== undefined && { level: item.level }),
  };
}

const LIST_FIELDS = ['version', 'description', 'items'] as const;
const ITEM_FIELDS = ['venue', 'scene', 'forms', 'operator', 'region', 'validFrom', 'validTo', 'name', 'level'] as const;
const VENUE_PATTERN = /^[^\s*]+\*?$/;

/**
 * Parses a project list file (YAML or JSON; format in data/projects/README.md). Throws
 * DataFormatError naming the item index and field, e.g. `items[3].forms[1]: expected one of CHIP, QR`.
 */
export function parseProjectList(text: string, format: 'yaml' | 'json'): ProjectList {
  return projectListFromData(parseDataText(text, format));
}

/** Validates already-parsed data (e.g. a KV value decoded as JSON) into a ProjectList. */
export function projectListFromData(raw: unknown): ProjectList {
  if (!isPlainObject(raw)) throw new DataFormatError('', 'expected an object with "version" and "items"');
  rejectUnknownFields(raw, LIST_FIELDS, '');
  const version = raw.version;
  if (typeof version !== 'string' && typeof version !== 'number') throw new DataFormatError('version', 'expected a non-empty string');
  if (String(version).length === 0) throw new DataFormatError('version', 'expected a non-empty string');
  if (!Array.isArray(raw.items)) throw new DataFormatError('items', 'expected a list of items');
  const items = raw.items.map((it, i) => parseItem(it, `items[${i}]`));
  return new ProjectList(String(version), items);
}

function parseItem(raw: unknown, field: string): ProjectItem {
  if (!isPlainObject(raw)) throw new DataFormatError(field, 'expected an object');
  rejectUnknownFields(raw, ITEM_FIELDS, field);
  const venue = requireString(raw, 'venue', field);
  if (!VENUE_PATTERN.test(venue) || venue === '*') {
    throw new DataFormatError(`${field}.venue`, `expected a venue id or a prefix ending in "*" (no spaces, "*" only at the end, not "*" alone), got ${JSON.stringify(venue)}`);
  }
  const scene = requireOneOf(raw.scene, Scenes, `${field}.scene`);
  const forms = requireListOf(raw.forms, CardForms, `${field}.forms`);
  const operator = requireString(raw, 'operator', field);
  const region = requireOneOf(raw.region, Regions, `${field}.region`);
  if (raw.validFrom === undefined) throw new DataFormatError(`${field}.validFrom`, 'required (a date, a date-time with zone, or epoch ms)');
  const validFrom = parseInstant(raw.validFrom, `${field}.validFrom`);
  const validTo = raw.validTo === undefined || raw.validTo === null ? undefined : parseInstant(raw.validTo, `${field}.validTo`);
  if (validTo !== undefined && validTo <= validFrom) throw new DataFormatError(`${field}.validTo`, 'must be after validFrom');
  const name = optionalString(raw, 'name', field);
  let level: InstitutionLevel | undefined;
  if (raw.level !== undefined) {
    if (scene !== 'MEDICAL') throw new DataFormatError(`${field}.level`, `only MEDICAL items carry a level (this item is ${scene})`);
    level = requireOneOf(raw.level, InstitutionLevels, `${field}.level`);
  }
  return { venue, scene, forms, operator, region, validFrom, ...(validTo !== undefined && { validTo }), ...(name !== undefined && { name }), ...(level !== undefined && { level }) };
}

/**
 * Decides a tap against the list, in this order: venue listed (VENUE_NOT_LISTED), listed for
 * the scene (SCENE_NOT_LISTED), the deciding item valid at the device time (ITEM_NOT_YET_VALID,
 * ITEM_EXPIRED), form accepted (FORM_NOT_ACCEPTED).
 */
export function lookupProject(list: ProjectList, venueId: string, scene: Scene, form: CardForm, deviceTime: number): ProjectLookup {
  const { item, venueListed } = list.match(venueId, scene);
  if (!item) {
    return venueListed
      ? { ok: false, reason: 'SCENE_NOT_LISTED', detail: `${venueId} is not listed for ${scene}` }
      : { ok: false, reason: 'VENUE_NOT_LISTED', detail: `${venueId} is not listed` };
  }
  if (deviceTime < item.validFrom) return { ok: false, reason: 'ITEM_NOT_YET_VALID', item, detail: `item ${itemKey(item)} valid from ${formatInstant(item.validFrom)}` };
  if (item.validTo !== undefined && deviceTime >= item.validTo) return { ok: false, reason: 'ITEM_EXPIRED', item, detail: `item ${itemKey(item)} expired ${formatInstant(item.validTo)}` };
  if (!item.forms.includes(form)) return { ok: false, reason: 'FORM_NOT_ACCEPTED', item, detail: `item ${itemKey(item)} accepts ${item.forms.join(',')}` };
  return { ok: true, item };
}

export interface ProjectListDiff {
  added: ProjectItem[];
  removed: ProjectItem[];
  changed: { before: ProjectItem; after: ProjectItem }[];
}

/** What changes from list `a` to list `b`; items are identified by venue and scene. */
export function diffProjectLists(a: ProjectList, b: ProjectList): ProjectListDiff {
  const before = new Map(a.items.map((i) => [itemKey(i), i]));
  const after = new Map(b.items.map((i) => [itemKey(i), i]));
  const diff: ProjectListDiff = { added: [], removed: [], changed: [] };
  for (const [key, item] of after) {
    const old = before.get(key);
    if (!old) diff.added.push(item);
    else if (JSON.stringify(itemToData(old)) !== JSON.stringify(itemToData(item))) diff.changed.push({ before: old, after: item });
  }
  for (const [key, item] of before) if (!after.has(key)) diff.removed.push(item);
  return diff;
}

/**
 * How a list covers a venue directory: venues no item matches (for the venue's own scene), and
 * items that match no venue (typos, or venues the directory does not have). For `apply` to warn.
 */
export function projectListCoverage(
  list: ProjectList,
  venues: Iterable<{ id: string; scene: Scene }>,
): { uncoveredVenues: string[]; unmatchedItems: ProjectItem[] } {
  const used = new Set<ProjectItem>();
  const uncoveredVenues: string[] = [];
  for (const v of venues) {
    const { item } = list.match(v.id, v.scene);
    if (item) used.add(item);
    else uncoveredVenues.push(v.id);
  }
  return { uncoveredVenues, unmatchedItems: list.items.filter((i) => !used.has(i)) };
}
