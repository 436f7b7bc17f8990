/**
 * The card issuers' keys a validator trusts. Configured with TAPFLOW_TRUST_FILE (a keys file,
 * format in src/domain/card/keys.ts). Without it, a development key set for BJ, TJ and HE is
 * generated once into <data dir>/keys/trust.json — with the QR private keys, so that the demo
 * fleet and the bench can sign codes and compute MACs. Never use that file in production.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generateTestKeys, loadTrustStore, parseKeyFile, serializeKeysFile, type KeysFile, type TrustStore } from '../domain/card/keys.js';

export function trustFilePath(cfg: { TAPFLOW_TRUST_FILE?: string; TAPFLOW_DATA_DIR: string }): string {
  return cfg.TAPFLOW_TRUST_FILE ?? join(cfg.TAPFLOW_DATA_DIR, 'keys', 'trust.json');
}

/** Generates the development key set when no trust file is configured and none exists yet. */
export function ensureDevTrustFile(cfg: { TAPFLOW_TRUST_FILE?: string; TAPFLOW_DATA_DIR: string }): string {
  const path = trustFilePath(cfg);
  if (cfg.TAPFLOW_TRUST_FILE) {
    if (!existsSync(path)) throw new Error(`TAPFLOW_TRUST_FILE ${path} does not exist`);
    return path;
  }
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, serializeKeysFile(generateTestKeys({ version: `dev-${new Date().toISOString().slice(0, 10)}` })), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // Another role of this process or another process wrote it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return path;
}

export function readKeysFile(path: string): KeysFile {
  return parseKeyFile(readFileSync(path, 'utf8'), path);
}

export function loadTrust(cfg: { TAPFLOW_TRUST_FILE?: string; TAPFLOW_DATA_DIR: string }): TrustStore {
  const path = ensureDevTrustFile(cfg);
  return loadTrustStore([{ name: path, text: readFileSync(path, 'utf8') }]);
}
