/** The pure parts of `tapflow store rebuild`: the archived message's origin and the range check. */
import { describe, expect, it } from 'vitest';
import { archivedOrigin } from '../../../src/bus/archive.js';
import { rangeProblem } from '../../../src/sink/rebuild.js';

describe('archivedOrigin', () => {
  it('reads the stream and sequence of a Nats-Stream-Source header', () => {
    expect(archivedOrigin('DECISIONS 42 > >')).toEqual({ stream: 'DECISIONS', seq: 42 });
    expect(archivedOrigin('SETTLEMENTS:a1b2c3 7 tapflow.settlements.> >')).toEqual({ stream: 'SETTLEMENTS', seq: 7 });
    expect(archivedOrigin('RISK 1')).toEqual({ stream: 'RISK', seq: 1 });
  });

  it('refuses what is not the origin of a message the sink stores', () => {
    for (const h of [undefined, '', 'TAPS 5 > >', 'DECISIONS', 'DECISIONS x', 'DECISIONS 0', 'DECISIONS -3', 'DECISIONS 1.5']) expect(archivedOrigin(h), String(h)).toBeUndefined();
  });
});

describe('rangeProblem', () => {
  const day = (d: string) => Date.parse(`${d}T00:00:00+08:00`);

  it('accepts whole business days (midnight Asia/Shanghai)', () => {
    expect(rangeProblem(day('2026-11-28'), day('2026-11-29'))).toBeUndefined();
    expect(rangeProblem(day('2026-10-01'), day('2026-11-01'))).toBeUndefined();
  });

  it('refuses an empty or reversed range, and an instant that is not midnight in Asia/Shanghai', () => {
    expect(rangeProblem(day('2026-11-29'), day('2026-11-29'))).toMatch(/--to .* must be after --from/);
    expect(rangeProblem(day('2026-11-29'), day('2026-11-28'))).toMatch(/--to .* must be after --from/);
    expect(rangeProblem(Date.parse('2026-11-28T00:00:00Z'), day('2026-11-29'))).toMatch(/--from 2026-11-28T00:00:00.000Z is not midnight in Asia\/Shanghai: .* \(e.g. --from 2026-11-28\)/);
    expect(rangeProblem(day('2026-11-28'), day('2026-11-29') + 1)).toMatch(/--to .* is not midnight/);
  });
});
