/**
 * A Bloom filter of the keys a partition has in its KV bucket, so that a key never written there
 * (a card seen for the first time) is known to be new without a KV read: "not in the filter"
 * is certain, "in the filter" means read it (about 1% of new keys with 200,000 keys per
 * partition; more beyond, which costs reads, never answers).
 *
 * Every key a checkpoint writes is added before the checkpoint mark moves, and the filter is
 * saved with the checkpoint (partition-state.ts), so the filter of a partition covers every key
 * in the bucket up to its mark; keys changed after the mark are replayed from the changelog into
 * memory and need no read.
 *
 * Layout when saved: byte 0 = format (1), byte 1 = hash count, then the bit array.
 */

/** Bits of a partition's filter: 2^21 = 256 KiB. */
export const FILTER_BITS = 1 << 21;
const HASHES = 5;
const FORMAT = 1;

export class KeyFilter {
  private constructor(private readonly bits: Uint8Array) {}

  static empty(bits = FILTER_BITS): KeyFilter {
    if (bits <= 0 || bits % 8 !== 0) throw new Error(`filter size ${bits} is not a positive multiple of 8`);
    return new KeyFilter(new Uint8Array(bits / 8));
  }

  /** A saved filter; throws on a format it does not know. */
  static decode(data: Uint8Array): KeyFilter {
    if (data.length < 3 || data[0] !== FORMAT || data[1] !== HASHES) throw new Error(`not a key filter of format ${FORMAT} (${data.length} bytes, first ${data[0]})`);
    return new KeyFilter(data.slice(2));
  }

  encode(): Uint8Array {
    const out = new Uint8Array(this.bits.length + 2);
    out[0] = FORMAT;
    out[1] = HASHES;
    out.set(this.bits, 2);
    return out;
  }

  add(key: string): void {
    const n = this.bits.length * 8;
    const [h1, h2] = hashes(key);
    for (let i = 0; i < HASHES; i++) {
      const b = (h1 + i * h2) % n;
      this.bits[b >>> 3]! |= 1 << (b & 7);
    }
  }

  /** False: the key was never added. True: it may have been. */
  mayHave(key: string): boolean {
    const n = this.bits.length * 8;
    const [h1, h2] = hashes(key);
    for (let i = 0; i < HASHES; i++) {
      const b = (h1 + i * h2) % n;
      if ((this.bits[b >>> 3]! & (1 << (b & 7))) === 0) return false;
    }
    return true;
  }
}

/** Two independent 32-bit FNV-1a hashes (different offsets) for double hashing; h2 is odd. */
function hashes(key: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  return [a >>> 0, (b | 1) >>> 0];
}
