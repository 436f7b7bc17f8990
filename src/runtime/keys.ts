/**
 * Local key material for development: when a key is not configured, it is generated once into
 * <data dir>/keys/ (mode 0600) and reused. Real deployments configure keys (never committed).
 *
 * Token keys are versioned (src/domain/card/token-keys.ts). Configured: TAPFLOW_TOKEN_KEY is the
 * current version TAPFLOW_TOKEN_KEY_VERSION, TAPFLOW_TOKEN_KEYS_PREVIOUS the versions still
 * accepted. Development: <data dir>/keys/token.key is version 1, token.v<N>.key version N, and
 * token-versions.json ({"current": N, "previous": [M, …]}, written by `tapflow token-keys rotate` and
 * `tapflow token-keys retire`) says which are in use; without it, version 1 alone.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePreviousKeys, tokenKeySet, type TokenKey, type TokenKeySet } from '../domain/card/token-keys.js';

export function keyFromHexOrFile(hex: string | undefined, dataDir: string, name: string, create = true): Buffer {
  if (hex) return Buffer.from(hex, 'hex');
  const dir = join(dataDir, 'keys');
  const path = join(dir, `${name}.key`);
  if (existsSync(path)) {
    const k = Buffer.from(readFileSync(path, 'utf8').trim(), 'hex');
    if (k.length !== 32) throw new Error(`${path}: expected 64 hex characters`);
    return k;
  }
  if (!create) throw new Error(`${path} is missing (named in ${join(dir, TOKEN_VERSIONS_FILE)})`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const k = randomBytes(32);
  writeFileSync(path, k.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return k;
}

export interface LocalKeys {
  /** The current version's HMAC key (version 1 unless rotated): tokens are made with `tokensOf(tokenKeys, …)`. */
  tokenKey: Buffer;
  /** The token keys: current version, previous versions (overlap), partition key. */
  tokenKeys: TokenKeySet;
  sealKey: Buffer;
  fleetKey: Buffer;
}

export type KeyConfig = {
  TAPFLOW_TOKEN_KEY?: string;
  TAPFLOW_TOKEN_KEY_VERSION?: number;
  TAPFLOW_TOKEN_KEYS_PREVIOUS?: string;
  TAPFLOW_PARTITION_KEY?: string;
  TAPFLOW_SEAL_KEY?: string;
  TAPFLOW_DATA_DIR: string;
};

export function localKeys(cfg: KeyConfig): LocalKeys {
  const tokenKeys = tokenKeysOf(cfg);
  return {
    tokenKey: Buffer.from(tokenKeys.current.key),
    tokenKeys,
    sealKey: keyFromHexOrFile(cfg.TAPFLOW_SEAL_KEY, cfg.TAPFLOW_DATA_DIR, 'seal'),
    fleetKey: keyFromHexOrFile(undefined, cfg.TAPFLOW_DATA_DIR, 'fleet'),
  };
}

export const TOKEN_VERSIONS_FILE = 'token-versions.json';
const devKeyName = (version: number) => (version === 1 ? 'token' : `token.v${version}`);

/** Versions in use among the development keys. */
export interface DevTokenVersions {
  current: number;
  previous: number[];
}

export function readDevTokenVersions(dataDir: string): DevTokenVersions {
  const path = join(dataDir, 'keys', TOKEN_VERSIONS_FILE);
  if (!existsSync(path)) return { current: 1, previous: [] };
  const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<DevTokenVersions>;
  if (!Number.isInteger(v.current) || !Array.isArray(v.previous) || !v.previous.every((n) => Number.isInteger(n))) {
    throw new Error(`${path}: expected {"current": <version>, "previous": [<version>, …]}`);
  }
  return { current: v.current!, previous: v.previous };
}

function writeDevTokenVersions(dataDir: string, v: DevTokenVersions): void {
  const path = join(dataDir, 'keys', TOKEN_VERSIONS_FILE);
  writeFileSync(path + '.tmp', JSON.stringify(v) + '\n', { mode: 0o600 });
  renameSync(path + '.tmp', path);
}

/** The token key set of a configuration; throws naming the setting or file that is wrong. */
export function tokenKeysOf(cfg: KeyConfig): TokenKeySet {
  const partitionKey = cfg.TAPFLOW_PARTITION_KEY ? Buffer.from(cfg.TAPFLOW_PARTITION_KEY, 'hex') : undefined;
  if (cfg.TAPFLOW_TOKEN_KEY) {
    const current: TokenKey = { version: cfg.TAPFLOW_TOKEN_KEY_VERSION ?? 1, key: Buffer.from(cfg.TAPFLOW_TOKEN_KEY, 'hex') };
    return tokenKeySet(current, parsePreviousKeys(cfg.TAPFLOW_TOKEN_KEYS_PREVIOUS ?? ''), partitionKey);
  }
  if ((cfg.TAPFLOW_TOKEN_KEY_VERSION ?? 1) !== 1 || (cfg.TAPFLOW_TOKEN_KEYS_PREVIOUS ?? '').trim() !== '') {
    throw new Error('TAPFLOW_TOKEN_KEY_VERSION and TAPFLOW_TOKEN_KEYS_PREVIOUS need TAPFLOW_TOKEN_KEY (the current key); development keys are rotated with `tapflow token-keys rotate`');
  }
  const dir = cfg.TAPFLOW_DATA_DIR;
  const v = readDevTokenVersions(dir);
  const key = (version: number): TokenKey => ({ version, key: keyFromHexOrFile(undefined, dir, devKeyName(version), version === 1) });
  // Version 1's file stays after its retirement: it is the partition key.
  const v1File = join(dir, 'keys', 'token.key');
  const pk = partitionKey ?? (v.current !== 1 && !v.previous.includes(1) && existsSync(v1File) ? keyFromHexOrFile(undefined, dir, 'token', false) : undefined);
  return tokenKeySet(key(v.current), v.previous.map(key), pk);
}

/**
 * Development keys: a new version, current from now on, with the one current before kept as a
 * previous version (the overlap). Returns the versions now in use.
 */
export function rotateDevTokenKey(dataDir: string): DevTokenVersions {
  tokenKeysOf({ TAPFLOW_DATA_DIR: dataDir }); // the keys in use are sound (and version 1 exists)
  const v = readDevTokenVersions(dataDir);
  const next = Math.max(v.current, ...v.previous) + 1;
  keyFromHexOrFile(undefined, dataDir, devKeyName(next));
  const now = { current: next, previous: [v.current, ...v.previous] };
  tokenKeysOf({ TAPFLOW_DATA_DIR: dataDir }); // checked before it is written
  writeDevTokenVersions(dataDir, now);
  return now;
}

/** Development keys: stops accepting a previous version (its key file stays: version 1's is the partition key). */
export function retireDevTokenKey(dataDir: string, version: number): DevTokenVersions {
  const v = readDevTokenVersions(dataDir);
  if (version === v.current) throw new Error(`version ${version} is the current one; rotate first`);
  if (!v.previous.includes(version)) throw new Error(`version ${version} is not a previous version (previous: ${v.previous.join(', ') || 'none'})`);
  const now = { current: v.current, previous: v.previous.filter((n) => n !== version) };
  writeDevTokenVersions(dataDir, now);
  return now;
}
