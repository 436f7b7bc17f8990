/** Ingest's memory of recent (terminal_id, seq) (src/ingest/seq-memory.ts): bounded, oldest out first. */
import { describe, expect, it } from 'vitest';
import { SeqMemory } from '../../../src/ingest/seq-memory.js';

describe('seq memory', () => {
  it('remembers the digest of each (terminal, seq)', () => {
    const m = new SeqMemory(10);
    m.remember('A', 1, 'd1');
    m.remember('B', 1, 'd2');
    expect([m.get('A', 1), m.get('B', 1), m.get('A', 2)]).toEqual(['d1', 'd2', undefined]);
  });

  it('keeps the first digest of a seq', () => {
    const m = new SeqMemory(10);
    m.remember('A', 1, 'first');
    m.remember('A', 1, 'second');
    expect(m.get('A', 1)).toBe('first');
    expect(m.size).toBe(1);
  });

  it('forgets the oldest taps first, across terminals, and never holds more than its capacity', () => {
    const m = new SeqMemory(3);
    m.remember('A', 1, 'a1');
    m.remember('B', 1, 'b1');
    m.remember('A', 2, 'a2');
    m.remember('C', 1, 'c1');
    expect([m.get('A', 1), m.get('B', 1), m.get('A', 2), m.get('C', 1)]).toEqual([undefined, 'b1', 'a2', 'c1']);
    for (let s = 3; s < 1000; s++) m.remember('A', s, `a${s}`);
    expect(m.size).toBe(3);
    expect([m.get('A', 997), m.get('A', 998), m.get('A', 999), m.get('B', 1)]).toEqual(['a997', 'a998', 'a999', undefined]);
  });

  it('remembers nothing with capacity 0', () => {
    const m = new SeqMemory(0);
    m.remember('A', 1, 'x');
    expect(m.get('A', 1)).toBeUndefined();
  });
});
