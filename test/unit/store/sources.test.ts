/** Which streams feed which table, and the mark keys and insert tokens named after them (src/store/sources.ts). */
import { describe, expect, it } from 'vitest';
import { MARK_KEYS, TABLE_SOURCE_STREAMS, dedupToken, markKey } from '../../../src/store/sources.js';

describe('store sources - streams, mark keys, tokens', () => {
  it('risk_flags is fed by three streams, every other table by one', () => {
    expect(TABLE_SOURCE_STREAMS).toEqual({
      decisions: ['DECISIONS'],
      settlements: ['SETTLEMENTS'],
      ledger: ['SETTLEMENTS'],
      claims: ['SETTLEMENTS'],
      risk_flags: ['DECISIONS', 'SETTLEMENTS', 'RISK'],
    });
    expect(MARK_KEYS).toEqual([
      'decisions:DECISIONS',
      'settlements:SETTLEMENTS',
      'ledger:SETTLEMENTS',
      'claims:SETTLEMENTS',
      'risk_flags:DECISIONS',
      'risk_flags:SETTLEMENTS',
      'risk_flags:RISK',
    ]);
  });

  it('markKey names a (table, stream) pair and refuses a stream that does not feed the table', () => {
    expect(markKey('risk_flags', 'SETTLEMENTS')).toBe('risk_flags:SETTLEMENTS');
    expect(markKey('ledger', 'SETTLEMENTS')).toBe('ledger:SETTLEMENTS');
    expect(() => markKey('decisions', 'RISK')).toThrow(/stream RISK does not feed table decisions/);
  });

  it('dedupToken names table, stream, message range and row count, so streams never share a token', () => {
    expect(dedupToken('risk_flags', 'DECISIONS', 100, 200, 37)).toBe('risk_flags:DECISIONS:100-200:37');
    expect(dedupToken('risk_flags', 'RISK', 100, 200, 37)).not.toBe(dedupToken('risk_flags', 'DECISIONS', 100, 200, 37));
    expect(dedupToken('decisions', 'DECISIONS', 2 ** 53 - 1, 2 ** 53 - 1, 1)).toBe(`decisions:DECISIONS:${2 ** 53 - 1}-${2 ** 53 - 1}:1`);
    expect(() => dedupToken('decisions', 'DECISIONS', 5, 4, 1)).toThrow(/below/);
    expect(() => dedupToken('decisions', 'DECISIONS', -1, 4, 1)).toThrow(RangeError);
    expect(() => dedupToken('decisions', 'SETTLEMENTS', 1, 4, 1)).toThrow(/does not feed/);
  });
});
