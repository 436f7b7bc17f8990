import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { seal, unseal } from '../../../src/domain/card/seal.js';

describe('card - sealing credentials', () => {
  const key = randomBytes(32);
  const plain = Buffer.from('chip:110000000001:7');

  it('opens what it sealed, bound to the event id', () => {
    const s = seal(key, plain, 'T-1:5');
    expect(unseal(key, s, 'T-1:5')).toEqual(plain);
    expect(unseal(key, s, 'T-1:6')).toBeUndefined(); // moved to another tap
    expect(unseal(randomBytes(32), s, 'T-1:5')).toBeUndefined(); // another key
    const tampered = Buffer.from(s);
    tampered[tampered.length - 20]! ^= 1;
    expect(unseal(key, tampered, 'T-1:5')).toBeUndefined();
  });

  it('never repeats a nonce: 100,000 seals, 100,000 distinct IVs', () => {
    const ivs = new Set<string>();
    for (let i = 0; i < 100_000; i++) ivs.add(seal(key, plain, 'x').subarray(1, 13).toString('hex'));
    expect(ivs.size).toBe(100_000);
  });
});
