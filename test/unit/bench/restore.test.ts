/**
 * Partition restore times from tapflow's /metrics: the histogram
 * tapflow_partition_restore_seconds by role (count, sum, the highest bucket holding a restore),
 * merged over processes; "not reported by this tapflow" when it has none. Pure.
 */
import { describe, expect, it } from 'vitest';
import { bundleReport, histogramBy, parseLabels, restoreReport } from '../../../bench/lib/restore.js';

const validator = [
  '# HELP tapflow_partition_restore_seconds Time to restore a partition on acquisition.',
  '# TYPE tapflow_partition_restore_seconds histogram',
  'tapflow_partition_restore_seconds_bucket{le="0.1",role="validator"} 10',
  'tapflow_partition_restore_seconds_bucket{le="0.5",role="validator"} 15',
  'tapflow_partition_restore_seconds_bucket{le="1",role="validator"} 16',
  'tapflow_partition_restore_seconds_bucket{le="+Inf",role="validator"} 16',
  'tapflow_partition_restore_seconds_sum{role="validator"} 1.93',
  'tapflow_partition_restore_seconds_count{role="validator"} 16',
  'tapflow_partition_restore_seconds_bucket{role="settler",le="0.1"} 0',
  'tapflow_partition_restore_seconds_bucket{role="settler",le="1"} 1',
  'tapflow_partition_restore_seconds_bucket{role="settler",le="+Inf"} 2',
  'tapflow_partition_restore_seconds_sum{role="settler"} 7.5',
  'tapflow_partition_restore_seconds_count{role="settler"} 2',
  'tapflow_ack_latency_seconds_count 99',
].join('\n');

describe('bench restore times - tapflow_partition_restore_seconds', () => {
  it('reads labels in any order, with escapes', () => {
    expect(parseLabels('le="0.5",role="validator"')).toEqual({ le: '0.5', role: 'validator' });
    expect(parseLabels('a="x\\"y",b="z"')).toEqual({ a: 'x"y', b: 'z' });
  });

  it('gives count, sum and the highest bucket holding a restore per role', () => {
    const r = restoreReport([validator]);
    expect(r.reported).toBe(true);
    expect(r.by_role).toEqual({
      settler: { count: 2, sum_s: 7.5, max_bucket_s: null, over_s: 1 },
      validator: { count: 16, sum_s: 1.93, max_bucket_s: 1, over_s: null },
    });
    expect(r.note).toBe('settler 2 restore(s), 7.5 s in all, some > 1 s; validator 16 restore(s), 1.93 s in all, each ≤ 1 s');
  });

  it('adds up the processes of separate mode', () => {
    const other = ['tapflow_partition_restore_seconds_bucket{le="0.1",role="validator",partition="3"} 2', 'tapflow_partition_restore_seconds_bucket{le="+Inf",role="validator",partition="3"} 2', 'tapflow_partition_restore_seconds_count{role="validator",partition="3"} 2', 'tapflow_partition_restore_seconds_sum{role="validator",partition="3"} 0.1'].join('\n');
    const s = histogramBy([validator, other], 'tapflow_partition_restore_seconds', 'role').get('validator')!;
    expect(s.count).toBe(18);
    expect(s.buckets.get(0.1)).toBe(12);
    expect(s.sum).toBeCloseTo(2.03, 6);
  });

  it('says so when this tapflow does not report restore times, or none happened', () => {
    const r = restoreReport(['tapflow_ack_latency_seconds_count 99', '']);
    expect(r).toMatchObject({ reported: false, by_role: {}, note: 'not reported by this tapflow' });
    expect(restoreReport([''], ['tapflow']).note).toBe('not reported by this tapflow (metrics of tapflow could not be read)');
    expect(restoreReport(['# TYPE tapflow_partition_restore_seconds histogram']).note).toBe('no partition restore observed');
  });
});

describe('bench bundle sizes - tapflow_bundle_taps', () => {
  it('sums the histogram over the processes and gives the mean taps per bundle', () => {
    const a = 'tapflow_bundle_taps_bucket{le="1"} 10\ntapflow_bundle_taps_sum 300\ntapflow_bundle_taps_count 40\n';
    const b = 'tapflow_bundle_taps_sum 100\ntapflow_bundle_taps_count 10\n';
    expect(bundleReport([a, b])).toEqual({ bundles: 50, taps: 400, mean: 8 });
  });
  it('says when no process reports it', () => {
    expect(bundleReport(['tapflow_role_up{role="sink"} 1\n', ''])).toEqual({ bundles: 0, taps: 0, mean: null });
  });
});
