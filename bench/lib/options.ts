/**
 * The bench's options: one validated object, built from the command line (bench/run.ts) with
 * per-profile defaults. A bad value stops the bench with a message naming the flag.
 */
import { DEFAULT_BAD_SHARES, type BadShares } from './fleet.js';
import type { Mode } from './tapflow.js';
import type { Arrivals, RateShape } from './schedule.js';

export const PROFILES = ['constant', 'ramp', 'rush-hour', 'offline-burst', 'batch'] as const;
export type Profile = (typeof PROFILES)[number];

export interface BenchOptions {
  profile: Profile;
  mode: Mode;
  /** Offered taps/s: constant rate, top of a ramp, peak of the rush hour, batch upload rate. */
  rate: number;
  /** Start of a ramp, taps/s. */
  rateFrom: number;
  /** Measured window, s (live and batch profiles). */
  durationS: number;
  /** Taps of an offline burst or of a batch run. */
  taps: number;
  /** Terminal budget (live: gates, validators, counters; burst: buses of the depot). */
  terminals: number;
  /** HTTP/2 connections the terminals share (dev-secrets only). */
  channels: number;
  /** How terminals authenticate: mutual TLS (a connection and certificate per terminal) or dev-secrets. */
  auth: 'mtls' | 'dev-secrets';
  batchSize: number;
  bad: BadShares;
  arrivals: Arrivals;
  seed: number;
  partitions: number;
  /** Results folder; a run writes into <out>/<run id>/. */
  out: string;
  ceilings: boolean;
  ceilingSeconds: number;
  profileCpu: boolean;
  drainTimeoutS: number;
  keepData: boolean;
  /** Upload warm entries before a live window (exits of journeys begun before it). */
  warm: boolean;
  /** Offline device times go back this far, ms (batch and burst). */
  offlineWindowMs: number;
  /** Seconds of the window before the RSS level that later samples are held to (bounded-memory check). */
  rssWarmupS: number;
}

/** Defaults by profile (what `npm run bench` runs with no flags is the constant profile). */
export const PROFILE_DEFAULTS: Record<Profile, { rate: number; durationS: number; taps: number; terminals: number }> = {
  constant: { rate: 500, durationS: 20, taps: 0, terminals: 3000 },
  ramp: { rate: 5000, durationS: 60, taps: 0, terminals: 3000 },
  'rush-hour': { rate: 5000, durationS: 60, taps: 0, terminals: 3000 },
  batch: { rate: 50000, durationS: 10, taps: 0, terminals: 1200 },
  'offline-burst': { rate: 0, durationS: 0, taps: 300_000, terminals: 200 },
};

/** The rate shape of a live profile. */
export function shapeOf(o: BenchOptions): RateShape {
  switch (o.profile) {
    case 'constant':
      return { kind: 'constant', rate: o.rate };
    case 'ramp':
      return { kind: 'ramp', from: o.rateFrom, to: o.rate };
    case 'rush-hour':
      return { kind: 'rush-hour', peak: o.rate };
    default:
      return { kind: 'burst' };
  }
}

export function isLive(p: Profile): boolean {
  return p === 'constant' || p === 'ramp' || p === 'rush-hour';
}

const BAD_KEYS: Record<string, keyof BadShares> = {
  hotlisted: 'hotlisted',
  'qr-replay': 'qrReplay',
  'impossible-travel': 'impossibleTravel',
  malformed: 'malformed',
  unlisted: 'unlisted',
};

/** Parses "hotlisted=0.01,qr-replay=0.005,…" over the defaults; "none" sets every share to 0. */
export function parseBad(text: string | undefined): BadShares {
  const out = { ...DEFAULT_BAD_SHARES };
  if (!text) return out;
  if (text === 'none') return { hotlisted: 0, qrReplay: 0, impossibleTravel: 0, malformed: 0, unlisted: 0 };
  for (const part of text.split(',')) {
    const [k, v] = part.split('=').map((s) => s.trim());
    const key = BAD_KEYS[k ?? ''];
    const n = Number(v);
    if (!key) throw new Error(`--bad: unknown kind "${k}" (known: ${Object.keys(BAD_KEYS).join(', ')})`);
    if (!(n >= 0 && n <= 0.5)) throw new Error(`--bad: ${k} must be a share from 0 to 0.5, got ${v}`);
    out[key] = n;
  }
  return out;
}

/** Raw flag values as commander gives them (strings), checked and defaulted. */
export function resolveOptions(f: Record<string, string | boolean | undefined>): BenchOptions {
  const profile = String(f.profile ?? 'constant') as Profile;
  if (!PROFILES.includes(profile)) throw new Error(`--profile: unknown profile "${profile}" (known: ${PROFILES.join(', ')})`);
  const d = PROFILE_DEFAULTS[profile];
  const num = (name: string, v: string | boolean | undefined, def: number, o: { min?: number; int?: boolean } = {}) => {
    if (v === undefined || v === false) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < (o.min ?? 0) || (o.int && !Number.isInteger(n))) throw new Error(`--${name}: expected ${o.int ? 'an integer' : 'a number'} ≥ ${o.min ?? 0}, got ${String(v)}`);
    return n;
  };
  const mode = String(f.mode ?? 'all-in-one') as Mode;
  if (mode !== 'all-in-one' && mode !== 'separate') throw new Error(`--mode: expected all-in-one or separate, got ${mode}`);
  const arrivals = String(f.arrivals ?? 'poisson') as Arrivals;
  if (arrivals !== 'poisson' && arrivals !== 'uniform') throw new Error(`--arrivals: expected poisson or uniform, got ${arrivals}`);
  const auth = String(f.auth ?? 'mtls') as BenchOptions['auth'];
  if (auth !== 'mtls' && auth !== 'dev-secrets') throw new Error(`--auth: expected mtls or dev-secrets, got ${auth}`);
  const rate = num('rate', f.rate, d.rate, { min: 1 });
  const durationS = num('duration', f.duration, d.durationS, { min: 1 });
  const batchSize = num('batch-size', f.batchSize, 500, { min: 1, int: true });
  const taps = num('taps', f.taps, profile === 'batch' ? Math.round(rate * durationS) : d.taps, { min: 1, int: true });
  return {
    profile,
    mode,
    rate,
    rateFrom: num('rate-from', f.rateFrom, Math.max(1, Math.round(rate / 20)), { min: 0 }),
    // A batch run lasts as long as its taps take at its rate.
    durationS: profile === 'batch' ? taps / rate : durationS,
    taps,
    terminals: num('terminals', f.terminals, d.terminals, { min: 1, int: true }),
    channels: num('channels', f.channels, 4, { min: 1, int: true }),
    auth,
    batchSize,
    bad: parseBad(typeof f.bad === 'string' ? f.bad : undefined),
    arrivals,
    seed: num('seed', f.seed, 1, { int: true }),
    partitions: num('partitions', f.partitions, 16, { min: 1, int: true }),
    out: String(f.out ?? 'bench/results'),
    ceilings: f.ceilings !== false,
    ceilingSeconds: num('ceiling-seconds', f.ceilingSeconds, 5, { min: 1 }),
    profileCpu: f.profileCpu === true,
    drainTimeoutS: num('drain-timeout', f.drainTimeout, 120, { min: 1 }),
    keepData: f.keepData === true,
    warm: f.warm !== false,
    offlineWindowMs: num('offline-hours', f.offlineHours, 2, { min: 0.1 }) * 3_600_000,
    rssWarmupS: num('rss-warmup', f.rssWarmup, 10, { min: 1 }),
  };
}
