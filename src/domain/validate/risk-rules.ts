/**
 * Risk rules as data: a sliding-window aggregate per key with a threshold and a severity.
 * Format documented in data/risk-rules/README.md. Card-keyed rules are evaluated inside
 * decideTap (their windows live in the per-card state); terminal, venue and institution rules by
 * observeDecision (risk-windows.ts) over the stream of decisions.
 */
import { CardForms, Directions, Regions, Scenes, type CardForm, type Direction, type Region, type RiskKeyKind, type Scene, type Severity, type Verdict } from '../types.js';
import {
  DataFormatError,
  isPlainObject,
  optionalString,
  parseDataText,
  parseDuration,
  rejectUnknownFields,
  requireListOf,
  requireOneOf,
} from './data-format.js';

export const RiskMetrics = ['count', 'reject_rate', 'amount_sum'] as const;
/** count: matching decisions; reject_rate: share of REJECTED among matching decisions (0..1); amount_sum: sum of amountFen. */
export type RiskMetric = (typeof RiskMetrics)[number];
export const RiskKeyKinds = ['card', 'terminal', 'venue', 'institution'] as const satisfies readonly RiskKeyKind[];
export const Severities = ['INFO', 'WARNING', 'CRITICAL'] as const satisfies readonly Severity[];
const Verdicts = ['ACCEPTED', 'REJECTED'] as const satisfies readonly Verdict[];

/** Which decisions a rule counts. Every field is optional; absent means any. Lists mean "one of". */
export interface RiskRuleFilter {
  scenes?: Scene[];
  /** Venue id prefixes, e.g. "pharmacy:" or "clinic:BJ:". */
  venuePrefixes?: string[];
  verdict?: Verdict;
  forms?: CardForm[];
  directions?: Direction[];
  terminalRegions?: Region[];
  cardRegions?: Region[];
  /** true: only cross-region taps (card region ≠ terminal region); false: only same-region taps. */
  crossRegion?: boolean;
  /** true: only taps from offline batches; false: only live taps. */
  offline?: boolean;
}

export interface RiskRule {
  /** Stable id: lower case letters, digits, ".", "_", "-" (it becomes a metric label). */
  id: string;
  /** Recorded in every flag; a change of version restarts the rule's windows. */
  version: string;
  description?: string;
  keyKind: RiskKeyKind;
  filter: RiskRuleFilter;
  metric: RiskMetric;
  windowMs: number;
  /** Flag when the metric is greater than this: a count, fen, or a share 0..1 for reject_rate. */
  threshold: number;
  /** reject_rate only: no flag until the window holds at least this many decisions. */
  minSample: number;
  severity: Severity;
  /** After a flag for a key, no further flag for that key within this time, ms (device time). 0: every event over threshold flags. */
  cooldownMs: number;
  enabled: boolean;
}

/** A versioned set of rules, split by where they are evaluated. */
export interface RiskRuleSet {
  readonly version: string;
  readonly rules: readonly RiskRule[];
  /** Enabled card-keyed rules (decideTap). */
  readonly cardRules: readonly RiskRule[];
  /** Enabled terminal-, venue- and institution-keyed rules (observeDecision). */
  readonly otherRules: readonly RiskRule[];
}

/** Builds a rule set; throws DataFormatError on duplicate rule ids. */
export function makeRiskRuleSet(version: string, rules: readonly RiskRule[]): RiskRuleSet {
  if (version.length === 0) throw new DataFormatError('version', 'expected a non-empty string');
  const seen = new Map<string, number>();
  rules.forEach((r, i) => {
    const earlier = seen.get(r.id);
    if (earlier !== undefined) throw new DataFormatError(`rules[${i}].id`, `duplicate of rules[${earlier}].id "${r.id}"`);
    seen.set(r.id, i);
  });
  const enabled = rules.filter((r) => r.enabled);
  return {
    version,
    rules,
    cardRules: enabled.filter((r) => r.keyKind === 'card'),
    otherRules: enabled.filter((r) => r.keyKind !== 'card'),
  };
}

/** An empty rule set (no data rules; built-in flags still apply). */
export const EMPTY_RISK_RULES: RiskRuleSet = makeRiskRuleSet('none', []);

const SET_FIELDS = ['version', 'description', 'rules'] as const;
const RULE_FIELDS = ['id', 'version', 'description', 'keyKind', 'filter', 'metric', 'window', 'threshold', 'minSample', 'severity', 'cooldown', 'enabled'] as const;
const FILTER_FIELDS = ['scene', 'venuePrefix', 'verdict', 'form', 'direction', 'terminalRegion', 'cardRegion', 'crossRegion', 'offline'] as const;
const RULE_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Default minimum sample of a reject_rate rule. */
export const DEFAULT_MIN_SAMPLE = 10;

/** Parses a rules file (YAML or JSON). Throws DataFormatError naming the rule index and field. */
export function parseRiskRules(text: string, format: 'yaml' | 'json'): RiskRuleSet {
  return riskRulesFromData(parseDataText(text, format));
}

/** Validates decoded data `{version, rules: [...]}` into a rule set. */
export function riskRulesFromData(raw: unknown): RiskRuleSet {
  if (!isPlainObject(raw)) throw new DataFormatError('', 'expected an object with "version" and "rules"');
  rejectUnknownFields(raw, SET_FIELDS, '');
  if ((typeof raw.version !== 'string' && typeof raw.version !== 'number') || String(raw.version).length === 0) {
    throw new DataFormatError('version', 'expected a non-empty string');
  }
  if (!Array.isArray(raw.rules)) throw new DataFormatError('rules', 'expected a list of rules');
  return makeRiskRuleSet(String(raw.version), raw.rules.map((r, i) => riskRuleFromData(r, `rules[${i}]`)));
}

/** Validates one decoded rule (a rules file entry or a KV value). */
export function riskRuleFromData(raw: unknown, field = 'rule'): RiskRule {
  if (!isPlainObject(raw)) throw new DataFormatError(field, 'expected an object');
  rejectUnknownFields(raw, RULE_FIELDS, field);
  const id = raw.id;
  if (typeof id !== 'string' || !RULE_ID.test(id)) throw new DataFormatError(`${field}.id`, `expected lower-case letters, digits, ".", "_" or "-" (1..64), got ${JSON.stringify(id)}`);
  if ((typeof raw.version !== 'string' && typeof raw.version !== 'number') || String(raw.version).length === 0) {
    throw new DataFormatError(`${field}.version`, 'expected a non-empty string or number');
  }
  const version = String(raw.version);
  const description = optionalString(raw, 'description', field);
  const keyKind = requireOneOf(raw.keyKind, RiskKeyKinds, `${field}.keyKind`);
  const metric = requireOneOf(raw.metric, RiskMetrics, `${field}.metric`);
  if (raw.window === undefined) throw new DataFormatError(`${field}.window`, 'required (a duration like "5m" or "24h")');
  const windowMs = parseDuration(raw.window, `${field}.window`);
  if (windowMs === 0) throw new DataFormatError(`${field}.window`, 'must be longer than 0');
  const threshold = raw.threshold;
  if (typeof threshold !== 'number' || !Number.isFinite(threshold)) throw new DataFormatError(`${field}.threshold`, 'expected a number');
  if (metric === 'reject_rate') {
    if (threshold < 0 || threshold >= 1) throw new DataFormatError(`${field}.threshold`, `reject_rate threshold is a share in [0, 1), e.g. 0.3 for 30%, got ${threshold}`);
  } else if (!Number.isSafeInteger(threshold) || threshold < 0) {
    throw new DataFormatError(`${field}.threshold`, `${metric} threshold must be a non-negative integer${metric === 'amount_sum' ? ' of fen' : ''}, got ${threshold}`);
  }
  let minSample = 1;
  if (raw.minSample !== undefined) {
    if (metric !== 'reject_rate') throw new DataFormatError(`${field}.minSample`, 'only for metric reject_rate');
    if (!Number.isSafeInteger(raw.minSample) || (raw.minSample as number) < 1) throw new DataFormatError(`${field}.minSample`, 'expected a positive integer');
    minSample = raw.minSample as number;
  } else if (metric === 'reject_rate') {
    minSample = DEFAULT_MIN_SAMPLE;
  }
  const severity = requireOneOf(raw.severity, Severities, `${field}.severity`);
  const cooldownMs = raw.cooldown === undefined ? 0 : parseDuration(raw.cooldown, `${field}.cooldown`);
  if (raw.enabled !== undefined && typeof raw.enabled !== 'boolean') throw new DataFormatError(`${field}.enabled`, 'expected true or false');
  const filter = parseFilter(raw.filter, `${field}.filter`);
  if (metric === 'reject_rate' && filter.verdict !== undefined) {
    throw new DataFormatError(`${field}.filter.verdict`, 'a reject_rate rule counts both verdicts; remove the verdict filter');
  }
  return {
    id,
    version,
    ...(description !== undefined && { description }),
    keyKind,
    filter,
    metric,
    windowMs,
    threshold,
    minSample,
    severity,
    cooldownMs,
    enabled: raw.enabled !== false,
  };
}

function parseFilter(raw: unknown, field: string): RiskRuleFilter {
  if (raw === undefined || raw === null) return {};
  if (!isPlainObject(raw)) throw new DataFormatError(field, 'expected an object');
  rejectUnknownFields(raw, FILTER_FIELDS, field);
  const f: RiskRuleFilter = {};
  if (raw.scene !== undefined) f.scenes = requireListOf(raw.scene, Scenes, `${field}.scene`);
  if (raw.form !== undefined) f.forms = requireListOf(raw.form, CardForms, `${field}.form`);
  if (raw.direction !== undefined) f.directions = requireListOf(raw.direction, Directions, `${field}.direction`);
  if (raw.terminalRegion !== undefined) f.terminalRegions = requireListOf(raw.terminalRegion, Regions, `${field}.terminalRegion`);
  if (raw.cardRegion !== undefined) f.cardRegions = requireListOf(raw.cardRegion, Regions, `${field}.cardRegion`);
  if (raw.verdict !== undefined) f.verdict = requireOneOf(raw.verdict, Verdicts, `${field}.verdict`);
  if (raw.venuePrefix !== undefined) {
    const list = Array.isArray(raw.venuePrefix) ? raw.venuePrefix : [raw.venuePrefix];
    if (list.length === 0) throw new DataFormatError(`${field}.venuePrefix`, 'expected a non-empty list');
    f.venuePrefixes = list.map((p, i) => {
      if (typeof p !== 'string' || p.length === 0) throw new DataFormatError(`${field}.venuePrefix[${i}]`, 'expected a non-empty string');
      return p;
    });
  }
  for (const k of ['crossRegion', 'offline'] as const) {
    if (raw[k] === undefined) continue;
    if (typeof raw[k] !== 'boolean') throw new DataFormatError(`${field}.${k}`, 'expected true or false');
    f[k] = raw[k];
  }
  return f;
}

/** The fields of a decision that filters and keys read. */
export interface RiskSubject {
  eventId: string;
  scene: Scene;
  venueId: string;
  verdict: Verdict;
  form: CardForm;
  direction: Direction;
  terminalRegion: Region;
  cardRegion: Region;
  offline: boolean;
  deviceTime: number;
  amountFen: number;
  cardToken: string;
  terminalId: string;
  operatorId: string;
}

/** The risk subject of a tap and its verdict (fields copied one by one: see decide.ts decisionOf). */
export function riskSubjectOf(
  tap: Omit<RiskSubject, 'verdict'>,
  verdict: Verdict,
): RiskSubject {
  return {
    eventId: tap.eventId,
    scene: tap.scene,
    venueId: tap.venueId,
    verdict,
    form: tap.form,
    direction: tap.direction,
    terminalRegion: tap.terminalRegion,
    cardRegion: tap.cardRegion,
    offline: tap.offline,
    deviceTime: tap.deviceTime,
    amountFen: tap.amountFen,
    cardToken: tap.cardToken,
    terminalId: tap.terminalId,
    operatorId: tap.operatorId,
  };
}

/** True when the rule counts this decision. */
export function matchesFilter(f: RiskRuleFilter, d: RiskSubject): boolean {
  if (f.scenes && !f.scenes.includes(d.scene)) return false;
  if (f.verdict && f.verdict !== d.verdict) return false;
  if (f.forms && !f.forms.includes(d.form)) return false;
  if (f.directions && !f.directions.includes(d.direction)) return false;
  if (f.terminalRegions && !f.terminalRegions.includes(d.terminalRegion)) return false;
  if (f.cardRegions && !f.cardRegions.includes(d.cardRegion)) return false;
  if (f.crossRegion !== undefined && f.crossRegion !== (d.cardRegion !== d.terminalRegion)) return false;
  if (f.offline !== undefined && f.offline !== d.offline) return false;
  if (f.venuePrefixes && !f.venuePrefixes.some((p) => d.venueId.startsWith(p))) return false;
  return true;
}

/**
 * The key a rule aggregates by: card → card token; terminal → terminal id; venue → venue id;
 * institution → operator id (the institution or company operating the venue, e.g. a hospital).
 */
export function riskKeyOf(kind: RiskKeyKind, d: RiskSubject): string {
  switch (kind) {
    case 'card':
      return d.cardToken;
    case 'terminal':
      return d.terminalId;
    case 'venue':
      return d.venueId;
    case 'institution':
      return d.operatorId;
  }
}

/** Human-readable duration for flag details ("5m", "24h", "90s", "1500ms"). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
