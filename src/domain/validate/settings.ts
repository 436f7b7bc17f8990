/**
 * Validator settings: time bounds of the card form and behaviour rules, and how much per-card
 * memory the state keeps. Resolved once at start-up by {@link resolveValidatorSettings}, which
 * fills defaults and stops on a bad value with a message naming the field.
 */
import { Scenes, type Scene } from '../types.js';
import { DataFormatError, isPlainObject, parseDuration, rejectUnknownFields, requireListOf } from './data-format.js';

/** Bounds of the per-card state: each list keeps at most this many entries. */
export interface StateMemoryLimits {
  /** Accepted taps kept for duplicate, passback and travel checks. @default 8 */
  taps: number;
  /** Chip counters kept (with their device times) for replay and backwards checks. @default 16 */
  chipCounters: number;
  /** QR nonces kept until their expiry plus skew. @default 32 */
  nonces: number;
  /** Event ids the card's state applied (with content digests), for redeliveries and re-sends, within stateHorizonMs. @default 64 */
  decided: number;
  /** Events kept per card risk rule window (at least threshold + 1 for count rules). @default 32 */
  riskEvents: number;
}

export interface ValidatorSettings {
  /** Names these settings in decision traces. @default "defaults-1" */
  version: string;
  /** Clock skew allowed between a QR issuer and a terminal, ms, on both ends of the validity window. @default 30_000 (30 s) */
  qrSkewMs: number;
  /** Longest validity window (expiry − issue time) a QR code may carry, ms. @default 60_000 (60 s) */
  qrMaxValidityMs: number;
  /** Scenes where a level-1 electronic card is accepted (identity use); every other scene needs level 2. @default ["SERVICE"] */
  qrLevel1Scenes: Scene[];
  /** Passback time per scene, ms: re-entry at the same venue within it is refused. Absent or 0: no passback rule. */
  passbackMs: Partial<Record<Scene, number>>;
  /** Same card, same venue, same direction within this time is a duplicate, ms (inclusive). @default 10_000 (10 s) */
  duplicateWindowMs: number;
  /** Highest plausible speed between two taps, km/h (inclusive). 350 covers high-speed rail. @default 350 */
  maxSpeedKmh: number;
  /** Taps closer than this, km, are never impossible travel (station coordinates are centroids). @default 1 */
  travelToleranceKm: number;
  /** How far back in device time, from the card's latest tap, state keeps taps and nonces, ms. @default 86_400_000 (24 h) */
  stateHorizonMs: number;
  memory: StateMemoryLimits;
}

/** Defaults, with units. */
export const DEFAULT_VALIDATOR_SETTINGS: Readonly<ValidatorSettings> = Object.freeze({
  version: 'defaults-1',
  qrSkewMs: 30_000, // 30 seconds
  qrMaxValidityMs: 60_000, // 60 seconds
  qrLevel1Scenes: ['SERVICE'],
  passbackMs: {
    RAIL: 600_000, // 10 minutes
    BUS: 300_000, // 5 minutes
    CULTURE: 1_800_000, // 30 minutes
  },
  duplicateWindowMs: 10_000, // 10 seconds
  maxSpeedKmh: 350,
  travelToleranceKm: 1,
  stateHorizonMs: 86_400_000, // 24 hours
  memory: { taps: 8, chipCounters: 16, nonces: 32, decided: 64, riskEvents: 32 },
}) as Readonly<ValidatorSettings>;

const FIELDS = [
  'version',
  'qrSkewMs',
  'qrMaxValidityMs',
  'qrLevel1Scenes',
  'passbackMs',
  'duplicateWindowMs',
  'maxSpeedKmh',
  'travelToleranceKm',
  'stateHorizonMs',
  'memory',
] as const;

/**
 * Validated settings from a partial object (e.g. a config file section): missing fields take
 * their defaults; durations may be milliseconds or text ("30s", "10m"). Throws DataFormatError
 * naming the field.
 */
export function resolveValidatorSettings(input: unknown = {}, field = 'validator'): ValidatorSettings {
  if (!isPlainObject(input)) throw new DataFormatError(field, 'expected an object');
  rejectUnknownFields(input, FIELDS, field);
  const d = DEFAULT_VALIDATOR_SETTINGS;
  const duration = (key: string, def: number): number => (input[key] === undefined ? def : parseDuration(input[key], `${field}.${key}`));
  const positive = (key: string, def: number): number => {
    const v = input[key] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new DataFormatError(`${field}.${key}`, `expected a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const version = input.version ?? d.version;
  if (typeof version !== 'string' || version.length === 0) throw new DataFormatError(`${field}.version`, 'expected a non-empty string');

  let passbackMs: Partial<Record<Scene, number>> = { ...d.passbackMs };
  if (input.passbackMs !== undefined) {
    if (!isPlainObject(input.passbackMs)) throw new DataFormatError(`${field}.passbackMs`, 'expected an object keyed by scene');
    passbackMs = {};
    for (const [scene, v] of Object.entries(input.passbackMs)) {
      if (!(Scenes as readonly string[]).includes(scene)) throw new DataFormatError(`${field}.passbackMs.${scene}`, `unknown scene (allowed: ${Scenes.join(', ')})`);
      passbackMs[scene as Scene] = parseDuration(v, `${field}.passbackMs.${scene}`);
    }
  }

  const memory = { ...d.memory };
  if (input.memory !== undefined) {
    if (!isPlainObject(input.memory)) throw new DataFormatError(`${field}.memory`, 'expected an object');
    rejectUnknownFields(input.memory, Object.keys(d.memory), `${field}.memory`);
    for (const [k, v] of Object.entries(input.memory)) {
      if (!Number.isSafeInteger(v) || (v as number) < 1 || (v as number) > 1024) throw new DataFormatError(`${field}.memory.${k}`, `expected an integer 1..1024, got ${JSON.stringify(v)}`);
      memory[k as keyof StateMemoryLimits] = v as number;
    }
  }

  const settings: ValidatorSettings = {
    version,
    qrSkewMs: duration('qrSkewMs', d.qrSkewMs),
    qrMaxValidityMs: duration('qrMaxValidityMs', d.qrMaxValidityMs),
    qrLevel1Scenes: input.qrLevel1Scenes === undefined ? [...d.qrLevel1Scenes] : requireListOf(input.qrLevel1Scenes, Scenes, `${field}.qrLevel1Scenes`, { nonEmpty: false }),
    passbackMs,
    duplicateWindowMs: duration('duplicateWindowMs', d.duplicateWindowMs),
    maxSpeedKmh: positive('maxSpeedKmh', d.maxSpeedKmh),
    travelToleranceKm: input.travelToleranceKm === 0 ? 0 : positive('travelToleranceKm', d.travelToleranceKm),
    stateHorizonMs: duration('stateHorizonMs', d.stateHorizonMs),
    memory,
  };
  if (settings.qrMaxValidityMs === 0) throw new DataFormatError(`${field}.qrMaxValidityMs`, 'must be positive');
  return settings;
}
