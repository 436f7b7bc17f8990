import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FILTER_BITS, KeyFilter } from '../../../src/bus/key-filter.js';

const tokens = (n: number) => Array.from({ length: n }, () => randomBytes(16).toString('hex'));

describe('KeyFilter - which keys a partition may have in its bucket', () => {
  it('never says a key it was given is absent', () => {
    const f = KeyFilter.empty();
    const keys = [...tokens(50_000), 'p:person', '_sweep', ''];
    for (const k of keys) f.add(k);
    expect(keys.filter((k) => !f.mayHave(k))).toEqual([]);
  });

  it('says most new keys are absent: under 2% false positives with 200,000 keys', () => {
    const f = KeyFilter.empty(FILTER_BITS);
    for (const k of tokens(200_000)) f.add(k);
    const probes = tokens(20_000);
    const fp = probes.filter((k) => f.mayHave(k)).length / probes.length;
    expect(fp).toBeLessThan(0.02);
    expect(KeyFilter.empty().mayHave('anything')).toBe(false);
  });

  it('is saved and read back bit for bit, and refuses what is not a filter', () => {
    const f = KeyFilter.empty(1024);
    const keys = tokens(50);
    for (const k of keys) f.add(k);
    const back = KeyFilter.decode(f.encode());
    expect(keys.every((k) => back.mayHave(k))).toBe(true);
    expect(back.encode()).toEqual(f.encode());
    expect(() => KeyFilter.decode(new TextEncoder().encode('{"seq":1}'))).toThrow(/not a key filter/);
    expect(() => KeyFilter.empty(12)).toThrow(/multiple of 8/);
  });
});
