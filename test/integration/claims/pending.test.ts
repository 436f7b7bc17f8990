/**
 * SettleClaim's bounded wait running out (TAPFLOW_CLAIM_WAIT_MS=1): the clinic gets PENDING with
 * its claim id at once, and GetClaim returns the split once the settler has made it.
 */
import type * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { ClaimStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { CLASS_A, TJ_COUNTER, claim, getClaim, item, ok, settleClaim, signClaimsWith } from './grpc-claims.js';

let p: TestPipeline;
let md: grpc.Metadata;

beforeAll(async () => {
  p = await startTestPipeline({ TAPFLOW_CLAIM_WAIT_MS: '1' });
  md = p.metadata(TJ_COUNTER);
  signClaimsWith(p.dataDir);
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

describe('claims - PENDING', () => {
  it('answers PENDING within the wait, and GetClaim later returns SETTLED', async () => {
    const t0 = performance.now();
    const pending = ok(await settleClaim(p.client, md, claim('P-1', { items: [item('A1', CLASS_A, 300_000)], personalAccountBalanceFen: 0 })));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(ClaimStatus[pending.status]).toBe('PENDING');
    expect(pending.claimId).toBe('P-1');
    expect(pending.reason).toContain('GetClaim');
    expect(pending.medfeeSumamt).toBe(0);

    let settled = pending;
    await p.until(
      async () => {
        const r = await getClaim(p.client, md, 'P-1');
        if (r.ok) settled = r.value;
        return r.ok && r.value.status !== ClaimStatus.PENDING;
      },
      30_000,
      'claim P-1 settled',
    );
    // In scope 300,000: deductible 180,000, fund 70 % of 120,000 = 84,000, no account: cash 216,000.
    expect(ClaimStatus[settled.status]).toBe('SETTLED');
    expect([settled.medfeeSumamt, settled.deductibleAmt, settled.hifpPay, settled.acctPay, settled.cashPayamt]).toEqual([300_000, 180_000, 84_000, 0, 216_000]);

    // Asked again after it settled, SettleClaim returns the stored split, not PENDING.
    expect(ok(await settleClaim(p.client, md, claim('P-1', { items: [item('A1', CLASS_A, 300_000)], personalAccountBalanceFen: 0 })))).toEqual(settled);
  });
});
