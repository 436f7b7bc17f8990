import { describe, expect, it } from 'vitest';
import { batchLength } from '../../../src/bus/partitions.js';

const msgs = (...sizes: number[]) => sizes.map((n) => ({ data: new Uint8Array(n) }));

describe('batchLength - a batch bounded in messages and in bytes', () => {
  it('takes up to the message bound when the bytes allow', () => {
    expect(batchLength(msgs(10, 10, 10, 10), 3, 1000)).toBe(3);
    expect(batchLength(msgs(10, 10), 3, 1000)).toBe(2);
    expect(batchLength([], 3, 1000)).toBe(0);
  });
  it('stops before the message that would pass the byte bound', () => {
    expect(batchLength(msgs(400, 400, 400), 10, 1000)).toBe(2);
    expect(batchLength(msgs(400, 600, 1), 10, 1000)).toBe(2);
    expect(batchLength(msgs(400, 601, 1), 10, 1000)).toBe(1);
  });
  it('always takes the first message, however large', () => {
    expect(batchLength(msgs(5000, 10), 10, 1000)).toBe(1);
  });
});
