/**
 * Key material of the card forms and the algorithms that use it, each behind an interface so a
 * deployment can swap them (SM4/3DES for the chip MAC, SM2 for the QR signature) without
 * touching the validator.
 *
 * - Chip cards: every region has a chip master key. A card's key is derived from its issuer's
 *   master key and its card number; the card computes a MAC over each transaction with it
 *   (src/domain/card/chip.ts). Default {@link hmacSha256Mac}: card key = HMAC-SHA-256(master,
 *   "tapflow/chip-key/v1" 0x00 cardNumber), MAC = HMAC-SHA-256(card key, input) truncated to 8 bytes.
 * - QR codes: every region's platform signs its electronic cards' codes with its private key;
 *   validators trust the three public keys (mutual recognition). Default {@link ed25519Signer}.
 *
 * Keys file (JSON, UTF-8), written by `tapflow keys generate` and read by validators:
 *
 *   {
 *     "format": "tapflow-keys/1",
 *     "version": "test-1",                 // names the key set in decision traces
 *     "macAlgorithm": "hmac-sha256-t8",     // a MacAlgorithm id
 *     "qrAlgorithm": "ed25519",             // a QrSigner id
 *     "regions": {
 *       "BJ": {
 *         "chipMasterKey": "<base64, 16..64 bytes>",            // optional per region
 *         "qrPublicKey":  "-----BEGIN PUBLIC KEY-----\n…",       // optional, SPKI PEM
 *         "qrPrivateKey": "-----BEGIN PRIVATE KEY-----\n…"       // optional, PKCS#8 PEM; only in
 *       },                                                       // files used to sign test codes
 *       "TJ": { … }, "HE": { … }
 *     }
 *   }
 *
 * A deployment may split the key set over several files (one per region, or the chip master keys
 * apart from the QR public keys); {@link loadTrustStore} merges them and refuses contradictions.
 * Real keys are configured files, never committed; the chip master keys are secrets.
 */
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  createHash,
  generateKeyPairSync,
  randomBytes,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';
import { Regions, type Region } from '../types.js';

/** Derives per-card keys from a master key and computes transaction MACs. */
export interface MacAlgorithm {
  /** Stable id, written in key files and traces. */
  readonly id: string;
  deriveCardKey(master: Uint8Array, cardNumber: string): Uint8Array;
  mac(cardKey: Uint8Array, input: Uint8Array): Uint8Array;
}

/** Signs and verifies QR bodies. Keys are node:crypto KeyObjects, created once at load time. */
export interface QrSigner {
  /** Stable id, written in key files and traces. */
  readonly id: string;
  sign(privateKey: KeyObject, body: Uint8Array): Uint8Array;
  verify(publicKey: KeyObject, body: Uint8Array, signature: Uint8Array): boolean;
}

/** Domain separation label of the default chip key derivation. */
const CHIP_KEY_LABEL = Buffer.from('tapflow/chip-key/v1\0', 'utf8');
/** Length of the default chip MAC, in bytes (like the 8-byte MAC/TAC of card standards). */
export const CHIP_MAC_BYTES = 8;

/** Default chip MAC: HMAC-SHA-256 key derivation, HMAC-SHA-256 MAC truncated to 8 bytes. */
export const hmacSha256Mac: MacAlgorithm = {
  id: 'hmac-sha256-t8',
  deriveCardKey(master, cardNumber) {
    return createHmac('sha256', master).update(CHIP_KEY_LABEL).update(cardNumber, 'utf8').digest();
  },
  mac(cardKey, input) {
    return createHmac('sha256', cardKey).update(input).digest().subarray(0, CHIP_MAC_BYTES);
  },
};

/** Default QR signature: Ed25519 (node:crypto, no digest parameter). */
export const ed25519Signer: QrSigner = {
  id: 'ed25519',
  sign(privateKey, body) {
    return cryptoSign(null, body, privateKey);
  },
  verify(publicKey, body, signature) {
    try {
      return cryptoVerify(null, body, publicKey, signature);
    } catch {
      // A key of the wrong type or a signature of the wrong length is a failed verification.
      return false;
    }
  },
};

/** Algorithms known by id when reading key files; pass more to {@link loadTrustStore}. */
export const DEFAULT_MAC_ALGORITHMS: readonly MacAlgorithm[] = [hmacSha256Mac];
export const DEFAULT_QR_SIGNERS: readonly QrSigner[] = [ed25519Signer];

/** What a validator trusts: the chip master keys and QR public keys of the regions, and the algorithms. */
export interface TrustStore {
  chipMasterKeys: Partial<Record<Region, Uint8Array>>;
  qrPublicKeys: Partial<Record<Region, KeyObject>>;
  mac: MacAlgorithm;
  qrSigner: QrSigner;
  /** Names the key set in decision traces. */
  version: string;
}

/** Key material of one region as held in memory. */
export interface RegionKeys {
  chipMasterKey?: Uint8Array;
  qrPublicKey?: KeyObject;
  qrPrivateKey?: KeyObject;
}

/** A parsed keys file. */
export interface KeysFile {
  version: string;
  macAlgorithm: string;
  qrAlgorithm: string;
  regions: Partial<Record<Region, RegionKeys>>;
}

/** A key file that cannot be used; `field` names the offending JSON field. */
export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${message}`, options);
  }
}

export const KEYS_FILE_FORMAT = 'tapflow-keys/1';

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Ed25519 key pair from a 32-byte seed (deterministic test keys). */
export function ed25519FromSeed(seed: Uint8Array): { privateKey: KeyObject; publicKey: KeyObject } {
  if (seed.length !== 32) throw new RangeError(`Ed25519 seed must be 32 bytes, got ${seed.length}`);
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/**
 * Test key set for the three regions: a 32-byte chip master key and an Ed25519 key pair each.
 * With `seed`, the keys are derived from it (SHA-256 of seed, region and purpose), so tests and
 * scripted scenarios get the same keys every run; without it they are random.
 */
export function generateTestKeys(options: { seed?: string; version?: string } = {}): KeysFile {
  const regions: Partial<Record<Region, RegionKeys>> = {};
  for (const region of Regions) {
    const material = (purpose: string): Buffer =>
      options.seed === undefined ? randomBytes(32) : createHash('sha256').update(`${options.seed}\0${region}\0${purpose}`).digest();
    let pair: { privateKey: KeyObject; publicKey: KeyObject };
    if (options.seed === undefined) pair = generateKeyPairSync('ed25519');
    else pair = ed25519FromSeed(material('qr'));
    regions[region] = { chipMasterKey: material('chip'), qrPublicKey: pair.publicKey, qrPrivateKey: pair.privateKey };
  }
  return {
    version: options.version ?? (options.seed === undefined ? `test-${randomBytes(4).toString('hex')}` : `test-seed-${options.seed}`),
    macAlgorithm: hmacSha256Mac.id,
    qrAlgorithm: ed25519Signer.id,
    regions,
  };
}

/** Drops the QR private keys: what a validator's trust file holds. */
export function withoutPrivateKeys(keys: KeysFile): KeysFile {
  const regions: Partial<Record<Region, RegionKeys>> = {};
  for (const [region, k] of Object.entries(keys.regions) as [Region, RegionKeys][]) {
    regions[region] = { ...(k.chipMasterKey && { chipMasterKey: k.chipMasterKey }), ...(k.qrPublicKey && { qrPublicKey: k.qrPublicKey }) };
  }
  return { ...keys, regions };
}

/** Serialises a key set as a keys file (format in the module comment). */
export function serializeKeysFile(keys: KeysFile): string {
  const regions: Record<string, Record<string, string>> = {};
  for (const region of Regions) {
    const k = keys.regions[region];
    if (!k) continue;
    const out: Record<string, string> = {};
    if (k.chipMasterKey) out.chipMasterKey = Buffer.from(k.chipMasterKey).toString('base64');
    if (k.qrPublicKey) out.qrPublicKey = k.qrPublicKey.export({ type: 'spki', format: 'pem' }).toString();
    if (k.qrPrivateKey) out.qrPrivateKey = k.qrPrivateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    regions[region] = out;
  }
  return `${JSON.stringify(
    { format: KEYS_FILE_FORMAT, version: keys.version, macAlgorithm: keys.macAlgorithm, qrAlgorithm: keys.qrAlgorithm, regions },
    null,
    2,
  )}\n`;
}

/**
 * Parses a keys file. Throws {@link KeyFileError} naming the field (prefixed by `source` when
 * given, e.g. the file name). A region whose QR private key is given without a public key gets
 * the public key derived from it.
 */
export function parseKeyFile(text: string, source = 'keys'): KeysFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new KeyFileError(source, 'not valid JSON', { cause: err });
  }
  if (!isObject(raw)) throw new KeyFileError(source, 'expected a JSON object');
  if (raw.format !== KEYS_FILE_FORMAT) throw new KeyFileError(`${source}.format`, `expected "${KEYS_FILE_FORMAT}"`);
  const version = raw.version;
  if (typeof version !== 'string' || version.length === 0) throw new KeyFileError(`${source}.version`, 'expected a non-empty string');
  const macAlgorithm = raw.macAlgorithm ?? hmacSha256Mac.id;
  const qrAlgorithm = raw.qrAlgorithm ?? ed25519Signer.id;
  if (typeof macAlgorithm !== 'string') throw new KeyFileError(`${source}.macAlgorithm`, 'expected a string');
  if (typeof qrAlgorithm !== 'string') throw new KeyFileError(`${source}.qrAlgorithm`, 'expected a string');
  if (!isObject(raw.regions)) throw new KeyFileError(`${source}.regions`, 'expected an object keyed by BJ, TJ, HE');
  const regions: Partial<Record<Region, RegionKeys>> = {};
  for (const [name, value] of Object.entries(raw.regions)) {
    const field = `${source}.regions.${name}`;
    if (!(Regions as readonly string[]).includes(name)) throw new KeyFileError(field, 'region must be BJ, TJ or HE');
    if (!isObject(value)) throw new KeyFileError(field, 'expected an object');
    const k: RegionKeys = {};
    if (value.chipMasterKey !== undefined) {
      if (typeof value.chipMasterKey !== 'string') throw new KeyFileError(`${field}.chipMasterKey`, 'expected base64 text');
      const bytes = Buffer.from(value.chipMasterKey, 'base64');
      if (bytes.length < 16 || bytes.length > 64) throw new KeyFileError(`${field}.chipMasterKey`, `expected 16 to 64 bytes, got ${bytes.length}`);
      k.chipMasterKey = bytes;
    }
    if (value.qrPrivateKey !== undefined) {
      if (typeof value.qrPrivateKey !== 'string') throw new KeyFileError(`${field}.qrPrivateKey`, 'expected PKCS#8 PEM text');
      try {
        k.qrPrivateKey = createPrivateKey(value.qrPrivateKey);
      } catch (err) {
        throw new KeyFileError(`${field}.qrPrivateKey`, 'not a readable private key', { cause: err });
      }
    }
    if (value.qrPublicKey !== undefined) {
      if (typeof value.qrPublicKey !== 'string') throw new KeyFileError(`${field}.qrPublicKey`, 'expected SPKI PEM text');
      try {
        k.qrPublicKey = createPublicKey(value.qrPublicKey);
      } catch (err) {
        throw new KeyFileError(`${field}.qrPublicKey`, 'not a readable public key', { cause: err });
      }
    } else if (k.qrPrivateKey) {
      k.qrPublicKey = createPublicKey(k.qrPrivateKey);
    }
    if (k.qrPublicKey && k.qrPrivateKey && !sameKey(createPublicKey(k.qrPrivateKey), k.qrPublicKey)) {
      throw new KeyFileError(`${field}.qrPublicKey`, 'does not belong to qrPrivateKey');
    }
    regions[name as Region] = k;
  }
  return { version, macAlgorithm, qrAlgorithm, regions };
}

/** Options of {@link loadTrustStore}. */
export interface TrustStoreOptions {
  /** Extra MAC algorithms to resolve `macAlgorithm` ids. @default [hmacSha256Mac] */
  macAlgorithms?: readonly MacAlgorithm[];
  /** Extra signers to resolve `qrAlgorithm` ids. @default [ed25519Signer] */
  qrSigners?: readonly QrSigner[];
}

/**
 * Builds a validator's trust store from one or more keys files (their text; the caller reads
 * the files). Files are merged region by region; two files giving different keys for the same
 * region and purpose, or different algorithms, are an error. Private keys are ignored. The
 * store's version is the files' versions, sorted, joined by "+".
 */
export function loadTrustStore(files: ReadonlyArray<{ name: string; text: string } | KeysFile>, options: TrustStoreOptions = {}): TrustStore {
  if (files.length === 0) throw new KeyFileError('keys', 'no key file given');
  const parsed = files.map((f) => ('text' in f ? { name: f.name, keys: parseKeyFile(f.text, f.name) } : { name: f.version, keys: f }));
  const macAlgorithms = [...(options.macAlgorithms ?? []), ...DEFAULT_MAC_ALGORITHMS];
  const qrSigners = [...(options.qrSigners ?? []), ...DEFAULT_QR_SIGNERS];
  const first = parsed[0]!;
  const chipMasterKeys: Partial<Record<Region, Uint8Array>> = {};
  const qrPublicKeys: Partial<Record<Region, KeyObject>> = {};
  for (const { name, keys } of parsed) {
    if (keys.macAlgorithm !== first.keys.macAlgorithm) throw new KeyFileError(`${name}.macAlgorithm`, `differs from ${first.name} (${first.keys.macAlgorithm})`);
    if (keys.qrAlgorithm !== first.keys.qrAlgorithm) throw new KeyFileError(`${name}.qrAlgorithm`, `differs from ${first.name} (${first.keys.qrAlgorithm})`);
    for (const region of Regions) {
      const k = keys.regions[region];
      if (!k) continue;
      if (k.chipMasterKey) {
        const seen = chipMasterKeys[region];
        if (seen && !Buffer.from(seen).equals(Buffer.from(k.chipMasterKey))) throw new KeyFileError(`${name}.regions.${region}.chipMasterKey`, 'contradicts another file');
        chipMasterKeys[region] = k.chipMasterKey;
      }
      if (k.qrPublicKey) {
        const seen = qrPublicKeys[region];
        if (seen && !sameKey(seen, k.qrPublicKey)) throw new KeyFileError(`${name}.regions.${region}.qrPublicKey`, 'contradicts another file');
        qrPublicKeys[region] = k.qrPublicKey;
      }
    }
  }
  const mac = macAlgorithms.find((a) => a.id === first.keys.macAlgorithm);
  if (!mac) throw new KeyFileError(`${first.name}.macAlgorithm`, `unknown algorithm "${first.keys.macAlgorithm}"`);
  const qrSigner = qrSigners.find((s) => s.id === first.keys.qrAlgorithm);
  if (!qrSigner) throw new KeyFileError(`${first.name}.qrAlgorithm`, `unknown algorithm "${first.keys.qrAlgorithm}"`);
  const version = [...new Set(parsed.map((p) => p.keys.version))].sort().join('+');
  return { chipMasterKeys, qrPublicKeys, mac, qrSigner, version };
}

function sameKey(a: KeyObject, b: KeyObject): boolean {
  return a.export({ type: 'spki', format: 'der' }).equals(b.export({ type: 'spki', format: 'der' }));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
