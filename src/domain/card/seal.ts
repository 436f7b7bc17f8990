/**
 * Sealing of card credentials between ingest and validators.
 *
 * Validators must check a chip card's MAC (its key is derived from the card number) and a QR
 * code's signature (over bytes that name the card), yet no raw card number may sit in
 * JetStream. Ingest therefore seals the credentials with AES-256-GCM under a key shared only by
 * ingest and validators; the bus carries the sealed bytes and the card token. Layout of a
 * sealed value: version byte 0x01 | 12-byte IV | ciphertext | 16-byte GCM tag. The event id is
 * bound as additional authenticated data, so sealed credentials cannot be moved to another tap.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 0x01;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * GCM needs a nonce never repeated under one key. Deterministic construction (NIST SP 800-38D
 * 8.2.1): a random 64-bit field chosen per process (and again after 2^32 seals) followed by a
 * 32-bit counter — unique without drawing random bytes for every tap.
 */
let nonceField = randomBytes(8);
let nonceCounter = 0;

function nextIv(): Buffer {
  if (nonceCounter === 0xffff_ffff) {
    nonceField = randomBytes(8);
    nonceCounter = 0;
  }
  const iv = Buffer.allocUnsafe(IV_BYTES);
  nonceField.copy(iv, 0);
  iv.writeUInt32BE(nonceCounter++, 8);
  return iv;
}

export function seal(key: Uint8Array, plaintext: Uint8Array, aad: string): Buffer {
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, body, cipher.getAuthTag()]);
}

/** Opens a sealed value; returns undefined when the key, the AAD or the bytes are wrong. */
export function unseal(key: Uint8Array, sealed: Uint8Array, aad: string): Buffer | undefined {
  if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== VERSION) return undefined;
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const iv = buf.subarray(1, 1 + IV_BYTES);
  const tag = buf.subarray(buf.length - TAG_BYTES);
  const body = buf.subarray(1 + IV_BYTES, buf.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    return undefined;
  }
}
