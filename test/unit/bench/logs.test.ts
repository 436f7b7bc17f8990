/**
 * tapflow's log lines at warn level and above, counted by message across processes, with
 * `lease lost` and a hand-over that gave up counted apart (issue 10's "no lease lost"). Pure.
 */
import { describe, expect, it } from 'vitest';
import { emptyLogSummary, summarizeLog } from '../../../bench/lib/logs.js';

describe('bench tapflow log - warnings by message', () => {
  it('counts warn and error lines by process and message, and the ones the targets name', () => {
    const validator = [
      '{"level":30,"msg":"partition acquired"}',
      '{"level":40,"role":"validator","partition":3,"msg":"lease lost"}',
      '{"level":40,"role":"validator","partition":4,"msg":"lease lost"}',
      '{"level":40,"msg":"batch failed; redelivering after a backoff"}',
      'not json',
      '{"level":50,"msg":"unbalanced ledger entries"}',
    ].join('\n');
    const s = summarizeLog('validator', validator);
    summarizeLog('settler', '{"level":40,"msg":"messages of a previous owner did not come back within twice the ack wait; going on without them"}\n', s);
    expect(s).toMatchObject({ lease_lost: 2, handover_gave_up: 1, batch_failed: 1, errors: 1 });
    expect(s.by_message['validator: lease lost']).toBe(2);
    expect(Object.keys(s.by_message)).toHaveLength(4);
    expect(summarizeLog('x', '')).toEqual(emptyLogSummary());
  });
});
