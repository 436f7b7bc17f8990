/**
 * Local key material for development: when a key is not configured, it is generated once into
 * <data dir>/keys/ (mode 0600) and reused. Real deployments configure keys (never committed).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function keyFromHexOrFile(hex: string | undefined, dataDir: string, name: string): Buffer {
  if (hex) return Buffer.from(hex, 'hex');
  const dir = join(dataDir, 'keys');
  const path = join(dir, `${name}.key`);
  if (existsSync(path)) {
    const k = Buffer.from(readFileSync(path, 'utf8').trim(), 'hex');
    if (k.length !== 32) throw new Error(`${path}: expected 64 hex characters`);
    return k;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const k = randomBytes(32);
  writeFileSync(path, k.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return k;
}

export interface LocalKeys {
  tokenKey: Buffer;
  sealKey: Buffer;
  fleetKey: Buffer;
}

export function localKeys(cfg: { TAPFLOW_TOKEN_KEY?: string; TAPFLOW_SEAL_KEY?: string; TAPFLOW_DATA_DIR: string }): LocalKeys {
  return {
    tokenKey: keyFromHexOrFile(cfg.TAPFLOW_TOKEN_KEY, cfg.TAPFLOW_DATA_DIR, 'token'),
    sealKey: keyFromHexOrFile(cfg.TAPFLOW_SEAL_KEY, cfg.TAPFLOW_DATA_DIR, 'seal'),
    fleetKey: keyFromHexOrFile(undefined, cfg.TAPFLOW_DATA_DIR, 'fleet'),
  };
}
