/**
 * Medical claims are decided like taps before any money moves (issue 8), through gRPC and the
 * whole pipeline: the card's credentials (chip MAC and counter; QR signature, validity window,
 * single use), the hotlist, and the institution, which must be on the application project list
 * for MEDICAL in the region of the submitting terminal — its level and region come from the list.
 * A claim that fails is REJECTED with the reason code, with no settlement row and no ledger
 * entries; amounts are bounded at ingest; a claim id belongs to the terminal that first sent it.
 */
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { ClaimStatus, InstitutionLevel, type ClaimResult, type MedicalClaim } from '../../../src/gen/tapflow/v1/ingest.js';
import { ed25519Signer } from '../../../src/domain/card/keys.js';
import { makeQrBody, signQr } from '../../../src/domain/card/qr-sign.js';
import { tokenize } from '../../../src/domain/card/token.js';
import { putHotlistEntry } from '../../../src/validate/data-store.js';
import { readIssuerKeys } from '../../support/scenario.js';
import { CLASS_A, DEVICE_TIME, TJ_COUNTER, claim, getClaim, item, ok, settleClaim, signClaimsWith, signed } from './grpc-claims.js';

let p: TestPipeline;
let md: grpc.Metadata;

beforeAll(async () => {
  p = await startTestPipeline();
  md = p.metadata(TJ_COUNTER);
  signClaimsWith(p.dataDir);
  await p.until(async () => (await p.app.ctx.metrics.partitionsOwned.get()).values.some((v) => v.labels.role === 'settler' && v.value === p.cfg.TAPFLOW_PARTITIONS), 30_000, 'settler partitions');
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

/** A card of its own per test, so that counters and nonces never interact. */
let cardSeq = 0;
function card(prefix = '11'): string {
  return `${prefix}${String(70_000_000 + ++cardSeq).padStart(10, '0')}`;
}

function chip(cardNumber: string, mac = Buffer.alloc(8), counter = 1): MedicalClaim['card'] {
  return { $case: 'chip', value: { cardNumber, counter, mac } };
}

/** A QR claim signed with the issuer's development key (or `forge` for another key). */
function qrClaim(id: string, cardNumber: string, o: { issuedAt: number; deviceTime: number; forge?: boolean }): MedicalClaim {
  const keys = readIssuerKeys(`${p.dataDir}/keys/trust.json`);
  const body = makeQrBody({ cardNumber, issuedAt: o.issuedAt, level: 2 });
  const key = o.forge ? keys.regions.TJ!.qrPrivateKey! : keys.regions.BJ!.qrPrivateKey!;
  const payload = signQr(ed25519Signer, typeof key === 'string' ? createPrivateKey(key) : key, body);
  return claim(id, { card: { $case: 'qr', value: { payload } }, deviceTime: o.deviceTime });
}

const amounts = (r: ClaimResult) => [r.medfeeSumamt, r.hifpPay, r.acctPay, r.cashPayamt];

async function rowsOf(claimId: string) {
  const [claims, settlements, ledger] = await Promise.all([
    p.query<{ status: string; reason: string }>(`SELECT status, reason FROM claims WHERE claim_id = '${claimId}'`),
    p.query<{ n: number }>(`SELECT count() AS n FROM settlements WHERE claim_id = '${claimId}'`),
    p.query<{ n: number }>(`SELECT count() AS n FROM ledger WHERE settlement_id LIKE '${claimId}:%'`),
  ]);
  return { claims, settlements: Number(settlements[0]!.n), ledger: Number(ledger[0]!.n) };
}

/** Asserts the claim was REJECTED with `reason`, moved no money and is stored as a claim row only. */
async function expectRejected(claimId: string, r: ClaimResult, reason: string): Promise<void> {
  expect([ClaimStatus[r.status], r.reason]).toEqual(['REJECTED', reason]);
  expect(amounts(r)).toEqual([0, 0, 0, 0]);
  await p.until(async () => (await rowsOf(claimId)).claims.length === 1, 30_000, `claim row of ${claimId}`);
  expect(await rowsOf(claimId)).toEqual({ claims: [{ status: 'REJECTED', reason }], settlements: 0, ledger: 0 });
}

describe('claims - the card is checked before money moves', () => {
  it('settles a claim with a genuine chip card (the baseline)', async () => {
    const r = ok(await settleClaim(p.client, md, claim('K-ok', { card: chip(card()) })));
    expect(ClaimStatus[r.status]).toBe('SETTLED');
    expect(r.medfeeSumamt).toBe(100_000);
  });

  it('rejects a chip card with a wrong MAC: CHIP_MAC_INVALID', async () => {
    const r = ok(await settleClaim(p.client, md, claim('K-mac', { card: chip(card(), Buffer.alloc(8, 7)) })));
    await expectRejected('K-mac', r, 'CHIP_MAC_INVALID');
  });

  it('rejects a replayed chip counter: CHIP_COUNTER_REPLAY', async () => {
    const n = card();
    ok(await settleClaim(p.client, md, signed(claim('K-first', { card: chip(n) }), 5)));
    const r = ok(await settleClaim(p.client, md, signed(claim('K-replay', { card: chip(n) }), 5)));
    await expectRejected('K-replay', r, 'CHIP_COUNTER_REPLAY');
  });

  it('rejects a QR code with a forged signature: QR_BAD_SIGNATURE', async () => {
    const now = Date.now();
    const r = ok(await settleClaim(p.client, md, qrClaim('K-forged', card(), { issuedAt: now - 1000, deviceTime: now, forge: true })));
    await expectRejected('K-forged', r, 'QR_BAD_SIGNATURE');
  });

  it('rejects a QR code that expired an hour ago: QR_EXPIRED', async () => {
    const now = Date.now();
    const r = ok(await settleClaim(p.client, md, qrClaim('K-expired', card(), { issuedAt: now - 3_600_000, deviceTime: now })));
    await expectRejected('K-expired', r, 'QR_EXPIRED');
  });

  it('settles with a fresh QR code, and rejects the same code presented again: QR_REPLAYED', async () => {
    const now = Date.now();
    const n = card();
    const first = qrClaim('K-qr', n, { issuedAt: now - 1000, deviceTime: now });
    expect(ClaimStatus[ok(await settleClaim(p.client, md, first)).status]).toBe('SETTLED');
    const again = ok(await settleClaim(p.client, md, { ...first, claimId: 'K-qr-again' }));
    await expectRejected('K-qr-again', again, 'QR_REPLAYED');
  });

  it('rejects a hotlisted card: HOTLIST_LOST', async () => {
    const n = card();
    // Lost since before the claim's device time (the hotlist applies at the device time).
    await putHotlistEntry(p.app.ctx.buckets.hotlist, { cardToken: tokenize(p.app.ctx.keys.tokenKey, 'card', n), reason: 'LOST', since: DEVICE_TIME - 86_400_000, note: 'test' });
    await new Promise((r) => setTimeout(r, 500)); // the validators' watch
    const r = ok(await settleClaim(p.client, md, claim('K-lost', { card: chip(n) })));
    await expectRejected('K-lost', r, 'HOTLIST_LOST');
  });
});

describe('claims - the institution comes from the application project list', () => {
  it('rejects a bus stop as institution: SCENE_NOT_LISTED', async () => {
    const r = ok(await settleClaim(p.client, md, claim('K-bus', { card: chip(card()), institutionId: 'tj-bus:1:0' })));
    await expectRejected('K-bus', r, 'SCENE_NOT_LISTED');
  });

  it('rejects an institution that is not listed: VENUE_NOT_LISTED', async () => {
    const r = ok(await settleClaim(p.client, md, claim('K-nowhere', { card: chip(card()), institutionId: 'hospital:TJ:does-not-exist' })));
    await expectRejected('K-nowhere', r, 'VENUE_NOT_LISTED');
  });

  it('rejects an institution of another region than the terminal: INSTITUTION_NOT_IN_REGION', async () => {
    const r = ok(await settleClaim(p.client, md, claim('K-region', { card: chip(card()), institutionId: 'hospital:BJ:pumch' })));
    await expectRejected('K-region', r, 'INSTITUTION_NOT_IN_REGION');
  });

  it('splits with the level on the list, not the one the claim states', async () => {
    // The claim calls a tertiary hospital PRIMARY (90 % in BJ's illustrative outpatient policy
    // would pay more); the list's TERTIARY (70 %) applies: 300,000 in scope, 180,000 deductible,
    // 70 % of 120,000 = 84,000 from the fund.
    // A person of its own: nothing of the year's deductible used yet.
    const person = { idNumber: '110105199002020022' };
    const r = ok(await settleClaim(p.client, md, claim('K-level', { ...person, card: chip(card()), institutionLevel: InstitutionLevel.PRIMARY, items: [item('A1', CLASS_A, 300_000)], personalAccountBalanceFen: 0 })));
    expect([ClaimStatus[r.status], r.deductibleAmt, r.hifpPay]).toEqual(['SETTLED', 180_000, 84_000]);
  });

  it('refuses a 5,000-character institution id at ingest: INVALID_ARGUMENT', async () => {
    const r = await settleClaim(p.client, md, claim('K-long', { card: chip(card()), institutionId: 'x'.repeat(5000) }));
    expect(r.ok ? 'ok' : [r.error.code, r.error.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'TF_INGEST_INVALID: institution_id: at most 128 characters, got 5000']);
  });
});

describe('claims - amounts are bounded at ingest', () => {
  it.each([
    ['an item of 10^12 fen', [item('A1', CLASS_A, 1_000_000_000_000)], 'items[0].amount_fen: must be an integer from 0 to 100000000, got 1000000000000'],
    ['items adding up beyond the claim bound', Array.from({ length: 11 }, (_, i) => item(`A${i}`, CLASS_A, 100_000_000)), 'items: the items add up to 1100000000 fen, at most 1000000000'],
    ['more than 1,000 items', Array.from({ length: 1001 }, (_, i) => item(`A${i}`, CLASS_A, 1)), 'items: at most 1000 items, got 1001'],
  ])('refuses %s with INVALID_ARGUMENT naming the field', async (_what, items, details) => {
    const r = await settleClaim(p.client, md, claim(`K-amount-${items.length}`, { card: chip(card()), items }));
    expect(r.ok ? 'ok' : [r.error.code, r.error.details]).toEqual([grpc.status.INVALID_ARGUMENT, `TF_INGEST_INVALID: ${details}`]);
  });
});

describe('claims - ids belong to the terminal that first sent them', () => {
  it('refuses another terminal the same claim id at once (ALREADY_EXISTS); GetClaim still answers the first', async () => {
    const first = ok(await settleClaim(p.client, md, claim('K-shared', { card: chip(card()) })));
    expect(ClaimStatus[first.status]).toBe('SETTLED');
    const otherTerminal = 'TJ-CLINIC-0002';
    const t0 = performance.now();
    const r = await settleClaim(p.client, p.metadata(otherTerminal), claim('K-shared', { terminalId: otherTerminal, card: chip(card()) }));
    expect(r.ok ? 'ok' : r.error.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(r.ok ? '' : r.error.details).toMatch(/^TF_CLAIM_ID_TAKEN: claim_id K-shared was first sent by another terminal/);
    expect(performance.now() - t0).toBeLessThan(p.cfg.TAPFLOW_CLAIM_WAIT_MS);
    expect(ok(await getClaim(p.client, md, 'K-shared'))).toEqual(first);
    const theirs = await getClaim(p.client, p.metadata(otherTerminal), 'K-shared');
    expect(theirs.ok ? 'ok' : theirs.error.code).toBe(grpc.status.NOT_FOUND);
  });

  it('refuses a reversal of another institution\'s claim (as not found), and settles nothing for it', async () => {
    ok(await settleClaim(p.client, md, claim('K-theirs', { card: chip(card()) })));
    const r = ok(await settleClaim(p.client, md, claim('K-rev-other', { card: chip(card()), institutionId: 'hospital:TJ:first-central-hospital', items: [], reversesClaimId: 'K-theirs' })));
    await expectRejected('K-rev-other', r, 'CLAIM_NOT_FOUND');
  });
});
