/**
 * Token key versions (rotation of the tokenisation key).
 *
 * Every token names the key version that made it: version 1 tokens are the bare 32 hex digits
 * tapflow always wrote (so existing state, bus messages and store rows keep working, and a
 * deployment that never rotates behaves exactly as before); version N ≥ 2 tokens are
 * `k<N>.<32 hex digits>`. A deployment holds a key set: the current version (every new token)
 * and the previous versions still accepted during an overlap, whose tokens ingest also computes
 * so that the validator and the settler find a card's state under its old token and re-key it.
 *
 * The partition of a card (and of a person) never changes with the key version: it is derived
 * from the token under the partition key — the version-1 key, i.e. exactly today's partition —
 * which is never rotated. It only ever yields a partition number (log2 P bits, visible on the
 * subject anyway); no token made with it is kept once version 1 is retired.
 */
import { partitionOf, tokenize, type TokenKind } from './token.js';

export interface TokenKey {
  version: number;
  key: Uint8Array;
}

export interface TokenKeySet {
  current: TokenKey;
  /** Versions still accepted (overlap), newest first; empty outside a rotation. */
  previous: readonly TokenKey[];
  /** Key of the partition token (the version-1 key): a card's partition never moves. */
  partitionKey: Uint8Array;
}

/** A value's tokens under a key set, and its partition. */
export interface Tokens {
  token: string;
  /** Its tokens under the previous versions (newest first); empty outside an overlap. */
  previous: string[];
  partition: number;
}

export const MAX_KEY_VERSION = 9999;
const MAC = /^[0-9a-f]{32}$/;
const VERSIONED = /^k([1-9][0-9]{0,3})\.([0-9a-f]{32})$/;
const NONE: string[] = [];

/** The token of a MAC made under key version `version` (version 1: the bare MAC). */
export function formatToken(version: number, mac: string): string {
  return version === 1 ? mac : `k${version}.${mac}`;
}

/** Version and MAC of a token; undefined when it is not a token. `k1.<mac>` is not written but read as version 1. */
export function parseToken(token: string): { version: number; mac: string } | undefined {
  if (MAC.test(token)) return { version: 1, mac: token };
  const m = VERSIONED.exec(token);
  return m ? { version: Number(m[1]), mac: m[2]! } : undefined;
}

/** The key version of a token or of a state key ending in one (e.g. `p.<token>`); undefined: none. */
export function tokenVersion(key: string): number | undefined {
  const m = STATE_KEY.exec(key);
  return m ? (m[1] === undefined ? 1 : Number(m[1])) : undefined;
}
/** A token at the end of a key, after its start or a dot: `<mac>`, `k<N>.<mac>`, `p.<mac>`, `p.k<N>.<mac>`. */
const STATE_KEY = /(?:^|\.)(?:k([1-9][0-9]{0,3})\.)?[0-9a-f]{32}$/;

/** The token of `value` under one key version. */
export function tokenUnder(k: TokenKey, kind: TokenKind, value: string): string {
  return formatToken(k.version, tokenize(k.key, kind, value));
}

const sameKey = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

/**
 * The tokens and partition of a card or ID number. Outside a rotation with version 1 current
 * (every deployment that never rotated) this is one HMAC, as before versions existed; during an
 * overlap one more per previous version; once version 1 is retired, one more for the partition.
 */
export function tokensOf(keys: TokenKeySet, kind: TokenKind, value: string, partitions: number): Tokens {
  const mac = tokenize(keys.current.key, kind, value);
  const token = formatToken(keys.current.version, mac);
  if (keys.previous.length === 0) {
    const partition = keys.current.version === 1 ? partitionOf(mac, partitions) : partitionOf(tokenize(keys.partitionKey, kind, value), partitions);
    return { token, previous: NONE, partition };
  }
  let partitionMac = keys.current.version === 1 ? mac : undefined;
  const previous = keys.previous.map((k) => {
    const m = tokenize(k.key, kind, value);
    if (k.version === 1) partitionMac = m;
    return formatToken(k.version, m);
  });
  return { token, previous, partition: partitionOf(partitionMac ?? tokenize(keys.partitionKey, kind, value), partitions) };
}

/**
 * Reads the previous versions: "1:<64 hex>,2:<64 hex>" (spaces allowed). Throws naming the
 * setting and the entry when an entry is malformed or a version repeats.
 */
export function parsePreviousKeys(text: string, setting = 'TAPFLOW_TOKEN_KEYS_PREVIOUS'): TokenKey[] {
  const out: TokenKey[] = [];
  for (const [i, raw] of text.split(',').entries()) {
    const entry = raw.trim();
    if (entry === '') continue;
    const m = /^([0-9]+):([0-9a-fA-F]{64})$/.exec(entry);
    if (!m) throw new Error(`${setting}: entry ${i + 1} must be <version>:<64 hex digits>, got "${entry.length > 12 ? entry.slice(0, 12) + '…' : entry}"`);
    const version = Number(m[1]);
    if (version < 1 || version > MAX_KEY_VERSION) throw new Error(`${setting}: entry ${i + 1}: version must be 1 to ${MAX_KEY_VERSION}, got ${m[1]}`);
    if (out.some((k) => k.version === version)) throw new Error(`${setting}: version ${version} appears twice`);
    out.push({ version, key: Buffer.from(m[2]!, 'hex') });
  }
  return out;
}

/**
 * A checked key set. Throws naming the problem: a previous version equal to or above the current
 * one, a key used for two versions, no partition key once version 1 is gone, or a partition key
 * that is not the version-1 key (every card would move to another partition, away from its state).
 */
export function tokenKeySet(current: TokenKey, previous: readonly TokenKey[], partitionKey?: Uint8Array): TokenKeySet {
  if (!Number.isInteger(current.version) || current.version < 1 || current.version > MAX_KEY_VERSION) throw new Error(`token key version must be 1 to ${MAX_KEY_VERSION}, got ${current.version}`);
  if (current.key.length !== 32) throw new Error(`token key of version ${current.version}: expected 32 bytes, got ${current.key.length}`);
  const seen = new Set<number>();
  for (const k of previous) {
    if (k.version >= current.version) throw new Error(`previous token key version ${k.version} is not older than the current version ${current.version}`);
    if (seen.has(k.version)) throw new Error(`previous token key version ${k.version} appears twice`);
    seen.add(k.version);
    if (k.key.length !== 32) throw new Error(`token key of version ${k.version}: expected 32 bytes, got ${k.key.length}`);
    if (sameKey(k.key, current.key)) throw new Error(`previous token key version ${k.version} is the same key as the current version ${current.version}: a rotation needs a new key`);
  }
  const v1 = current.version === 1 ? current.key : previous.find((k) => k.version === 1)?.key;
  if (partitionKey !== undefined && partitionKey.length !== 32) throw new Error(`partition key: expected 32 bytes, got ${partitionKey.length}`);
  if (partitionKey !== undefined && v1 !== undefined && !sameKey(partitionKey, v1)) {
    throw new Error('TAPFLOW_PARTITION_KEY differs from the version-1 token key: every card and person would move to another partition, away from its state. Leave it unset while version 1 is configured, or set it to the version-1 key');
  }
  const pk = partitionKey ?? v1;
  if (pk === undefined) throw new Error(`token key version 1 is no longer configured (current ${current.version}, previous ${previous.map((k) => k.version).join(', ') || 'none'}): set TAPFLOW_PARTITION_KEY to the version-1 key — the partition of every card and person is derived from it`);
  return { current, previous: [...previous].sort((a, b) => b.version - a.version), partitionKey: pk };
}
