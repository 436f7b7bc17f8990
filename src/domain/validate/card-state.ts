/**
 * Per-card validation state: what a validator must remember about a card between taps. Kept by
 * the partition's owner in memory, durable as MessagePack in its changelog and KV bucket keyed by
 * card token (partition-state.ts); bounded by ValidatorSettings.memory and stateHorizonMs, so a
 * card's value stays a few kilobytes.
 *
 * Layout (version 1, shown as JSON):
 *   {
 *     "v": 1,
 *     "hiT": <latest device time of any decided tap, epoch ms>,
 *     "taps":   [{"e": eventId, "t": deviceTime, "v": venueId, "d": direction, "s": scene}],   accepted taps, ascending t
 *     "chip":   [{"n": counter, "t": deviceTime}],                ascending t (and so ascending n)
 *     "nonces": [{"n": nonce, "until": expiry + skew}],           QR nonces seen, ascending until
 *     "decided":[{"e": eventId, "t": deviceTime, "d"?: content digest, "lv"?, "rg"?}],  events applied, latest last
 *     "risk":   {"<ruleId>": {"ver", "ev": [[t, amountFen, rejected]], "flagT"?}} card rule windows
 *   }
 */
import type { Direction, Scene } from '../types.js';
import { DataFormatError, isPlainObject } from './data-format.js';
import type { CardRiskWindow } from './risk-windows.js';

/** An accepted tap, as the behaviour rules need it. */
export interface TapMemo {
  e: string;
  t: number;
  v: string;
  d: Direction;
  s: Scene;
}

/** A chip counter the card produced (MAC verified), at a device time. */
export interface ChipMemo {
  n: number;
  t: number;
}

/** A QR nonce, remembered until `until` (its expiry plus skew; pruned later, see decideTap). */
export interface NonceMemo {
  n: string;
  until: number;
}

/**
 * An event the card's state has applied: a redelivery or a re-send of it is recognised and
 * produces nothing new (its outputs were published before the state that records it).
 */
export interface DecidedMemo {
  /** Event id ("<terminal>:<seq>", or "claim:<key>"). */
  e: string;
  /** Device time, epoch ms (the memory keeps stateHorizonMs of it). */
  t: number;
  /** Content digest of the event (taps), to tell a re-send from a reused seq. */
  d?: string;
}

export interface CardValidationState {
  v: 1;
  hiT: number;
  taps: TapMemo[];
  chip: ChipMemo[];
  nonces: NonceMemo[];
  decided: DecidedMemo[];
  risk: Record<string, CardRiskWindow>;
}

/** The state of a card never seen: decideTap uses it when given `undefined`. */
export function emptyCardState(): CardValidationState {
  return { v: 1, hiT: Number.MIN_SAFE_INTEGER, taps: [], chip: [], nonces: [], decided: [], risk: {} };
}

/**
 * Checks decoded JSON (a KV value) is a version-1 card state. Shallow: the lists must be lists;
 * entries are trusted, since only decideTap writes them. Throws DataFormatError otherwise.
 */
export function cardStateFromData(raw: unknown): CardValidationState {
  if (!isPlainObject(raw)) throw new DataFormatError('cardState', 'expected an object');
  if (raw.v !== 1) throw new DataFormatError('cardState.v', `unsupported state version ${JSON.stringify(raw.v)}`);
  if (!Number.isSafeInteger(raw.hiT)) throw new DataFormatError('cardState.hiT', 'expected integer epoch ms');
  for (const k of ['taps', 'chip', 'nonces', 'decided'] as const) {
    if (!Array.isArray(raw[k])) throw new DataFormatError(`cardState.${k}`, 'expected a list');
  }
  if (!isPlainObject(raw.risk)) throw new DataFormatError('cardState.risk', 'expected an object');
  return raw as unknown as CardValidationState;
}

/** Index at which an entry of device time `t` goes to keep `list` ascending (after equal times). */
export function insertionIndex(list: readonly { t: number }[], t: number): number {
  let i = list.length;
  while (i > 0 && list[i - 1]!.t > t) i--;
  return i;
}
