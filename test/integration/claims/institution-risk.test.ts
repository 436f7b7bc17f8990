/**
 * The institution-keyed risk rules watch medical claims — money out of the insurance fund — and
 * not only the MEDICAL counter taps: through gRPC and the whole pipeline, claims at one hospital
 * add up in the risk windows (consumer risk-windows-claims) and flag the claim that takes the
 * hospital over a rule's threshold; a rejected claim (filter verdict ACCEPTED) and a claim at
 * another institution do not count. The rule is in the pipeline's data from the start (the
 * default rules plus one with a low threshold), so the run does not depend on when a rule
 * added at run time reaches the validator.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimKey } from '../../../src/domain/claim-key.js';
import { claimEventId } from '../../../src/domain/validate/index.js';
import { ClaimStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { CLASS_A, TJ_COUNTER, claim, item, ok, settleClaim, signClaimsWith } from './grpc-claims.js';

const RULE = 'institution-claims-test';
const HOSPITAL = 'hospital:TJ:tmu-general-hospital';

let p: TestPipeline;
let md: grpc.Metadata;
let dataDir: string;

beforeAll(async () => {
  // The sample data, with one more institution rule: over 1,500 yuan of accepted medical events in an hour.
  dataDir = mkdtempSync(join(tmpdir(), 'tapflow-institution-risk-'));
  for (const entry of readdirSync('data')) if (entry !== 'risk-rules') symlinkSync(resolve('data', entry), join(dataDir, entry));
  mkdirSync(join(dataDir, 'risk-rules'));
  const rule = [
    `  - id: ${RULE}`,
    '    version: 1',
    '    description: More than 1500 yuan of accepted medical events at one institution within an hour (test).',
    '    keyKind: institution',
    '    filter: { scene: MEDICAL, verdict: ACCEPTED }',
    '    metric: amount_sum',
    '    window: 1h',
    '    threshold: 150000',
    '    severity: WARNING',
    '    cooldown: 1h',
    '',
  ].join('\n');
  writeFileSync(join(dataDir, 'risk-rules', 'default.yaml'), `${readFileSync('data/risk-rules/default.yaml', 'utf8').trimEnd()}\n\n${rule}`);
  p = await startTestPipeline({ TAPFLOW_TARIFF_DIR: dataDir });
  md = p.metadata(TJ_COUNTER);
  signClaimsWith(p.dataDir);
  await p.until(async () => (await p.app.ctx.metrics.partitionsOwned.get()).values.some((v) => v.labels.role === 'settler' && v.value === p.cfg.TAPFLOW_PARTITIONS), 30_000, 'settler partitions');
}, 120_000);

afterAll(async () => {
  await p?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const flags = () => p.query<{ event_id: string; key: string; key_kind: string; severity: string }>(`SELECT event_id, key, key_kind, severity FROM risk_flags WHERE rule_id = '${RULE}' ORDER BY event_id`);

async function windowsDrained(): Promise<boolean> {
  const c = await p.app.ctx.bus.jsm.consumers.info('CLAIMS', 'risk-windows-claims');
  return c.num_pending === 0 && c.num_ack_pending === 0;
}

describe('institution risk rules over medical claims', () => {
  it('claims at one hospital add up; the claim that takes it over the threshold is flagged, by institution', async () => {
    // 1,000 yuan at the hospital: under the threshold.
    const a = ok(await settleClaim(p.client, md, claim('inst-risk-A', { items: [item('A1', CLASS_A, 100_000)] })));
    expect(a.status).toBe(ClaimStatus.SETTLED);
    // Refused (a broken MAC): 5,000 yuan that must not count.
    const bad = claim('inst-risk-BAD', { card: { $case: 'chip', value: { cardNumber: '110000007002', counter: 1, mac: Buffer.alloc(8, 1) } }, items: [item('A1', CLASS_A, 500_000)] });
    expect(ok(await settleClaim(p.client, md, bad)).status).toBe(ClaimStatus.REJECTED);
    // 1,000 yuan at another hospital: its own key (counted with the first, 2,000 yuan would flag).
    const other = claim('inst-risk-OTHER', { card: { $case: 'chip', value: { cardNumber: '110000007003', counter: 0, mac: Buffer.alloc(8) } }, institutionId: 'hospital:TJ:first-central-hospital', items: [item('A1', CLASS_A, 100_000)] });
    expect(ok(await settleClaim(p.client, md, other)).status).toBe(ClaimStatus.SETTLED);
    await p.until(windowsDrained, 30_000, 'the claim decisions seen by the risk windows');
    expect(await flags()).toEqual([]);

    // 800 yuan more at the hospital: 1,800 yuan in the hour, over 1,500: flagged.
    const b = ok(await settleClaim(p.client, md, claim('inst-risk-B', { card: { $case: 'chip', value: { cardNumber: '110000007004', counter: 0, mac: Buffer.alloc(8) } }, items: [item('A1', CLASS_A, 80_000)] })));
    expect(b.status).toBe(ClaimStatus.SETTLED);
    await p.until(async () => (await flags()).length > 0, 30_000, 'the institution flag stored');
    await p.until(windowsDrained, 30_000, 'the risk windows drained');
    expect(await flags()).toEqual([{ event_id: claimEventId(claimKey('inst-risk-B')), key: HOSPITAL, key_kind: 'institution', severity: 'WARNING' }]);
  }, 120_000);
});
