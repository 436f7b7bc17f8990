/**
 * The keys of a message's rows and the guard that keeps a replay-derived message's rows out where
 * their key is stored (src/sink/message-rows.ts), pure: which key each table's rows carry, what a
 * guard admits from derived and plain messages, and that it learns the keys written after it.
 */
import { describe, expect, it } from 'vitest';
import { encodeDecision, encodeDecisionBundle, encodeFields, encodeSettlementBundle } from '../../../src/bus/codec.js';
import { messageRowKeys, ROW_KEY_COLUMN, RowKeyGuard, writeMessageRows } from '../../../src/sink/message-rows.js';
import { decision, fare, riskFlag } from '../../integration/store/fixtures.js';

describe('message rows - keys', () => {
  it('a decision bundle: a decision by its event id, a flag by its id', () => {
    const keys = messageRowKeys('DECISIONS', encodeDecisionBundle([decision(1), decision(2)], [riskFlag(7)]), 5);
    expect(Object.fromEntries([...keys].map(([t, k]) => [t, [...k]]))).toEqual({ decisions: ['bj-gate-001:1', 'bj-gate-001:2'], risk_flags: ['flag-7'] });
  });

  it('a settlement bundle: the settlement and its ledger entries by the settlement id', () => {
    const keys = messageRowKeys('SETTLEMENTS', encodeSettlementBundle([fare('e1', 300), fare('e2', 400)], []), 9);
    expect(Object.fromEntries([...keys].map(([t, k]) => [t, [...k]]))).toEqual({ settlements: ['fare:e1', 'fare:e2'], ledger: ['fare:e1', 'fare:e2'] });
  });

  it('a part that cannot be read gives no key; the others do', () => {
    const bundle = encodeFields([[1, [encodeDecision(decision(1)), Uint8Array.from([0xff, 0xff]), encodeDecision(decision(3))]]]);
    const keys = messageRowKeys('DECISIONS', bundle, 1);
    expect([...keys.get('decisions')!]).toEqual(['bj-gate-001:1', 'bj-gate-001:3']);
  });

  it('the row writer is told each row’s key, the column the table keys by', () => {
    const seen: [string, string][] = [];
    writeMessageRows('SETTLEMENTS', encodeSettlementBundle([fare('e1', 300)], [riskFlag(2)]), 3, {
      wants: () => true,
      rows: (t, _fact, key) => void seen.push([ROW_KEY_COLUMN[t], key]),
      eachPart: (_k, parts, write) => parts.forEach((p) => write(p)),
    });
    expect(seen).toEqual([
      ['settlement_id', 'fare:e1'],
      ['settlement_id', 'fare:e1'],
      ['flag_id', 'flag-2'],
    ]);
  });
});

describe('message rows - the guard of derived messages', () => {
  it('keeps a derived row out where its key is stored, lets a new one in once, and never holds back a plain message', () => {
    const guard = new RowKeyGuard(new Map([['decisions', new Set(['a'])]]));
    expect(guard.admit('decisions', 'a', true)).toBe(false);
    expect(guard.admit('decisions', 'b', true)).toBe(true);
    // Learned: the same row again from another derived message of the batch stays out.
    expect(guard.admit('decisions', 'b', true)).toBe(false);
    // A table with no stored key of the message's.
    expect(guard.admit('ledger', 'a', true)).toBe(true);
    // A message that is no replay is always written (a real event is never suppressed).
    expect(guard.admit('decisions', 'a', false)).toBe(true);
  });

  it('an original and its derived copy in one batch: the copy stays out', () => {
    const guard = new RowKeyGuard(new Map());
    expect(guard.admit('settlements', 's1', false)).toBe(true);
    expect(guard.admit('settlements', 's1', true)).toBe(false);
  });
});
