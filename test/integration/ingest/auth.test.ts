/**
 * Terminal identity at the gRPC front door, with a file registry (TAPFLOW_TERMINALS_FILE): no
 * anonymous path (UNAUTHENTICATED without or with a wrong secret, on every call), a disabled
 * terminal is PERMISSION_DENIED, a terminal cannot send as another, and a terminal sends only for
 * the venues it serves (PERMISSION_DENIED for others, in streams, batches and claims).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { CatalogueClass, Direction, InstitutionLevel, Region, Scene, TapStatus, Treatment, type ClaimResult } from '../../../src/gen/tapflow/v1/ingest.js';
import { codeOf, metadata, stream, tap, uploadBatch, type CallResult } from './grpc-taps.js';

const GATE = { id: 'BJ-GATE-7001', secret: 'gate-secret-7001' };
const DISABLED = { id: 'BJ-GATE-7002', secret: 'gate-secret-7002' };
const CLINIC = { id: 'BJ-CLINIC-7003', secret: 'clinic-secret-7003' };
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let p: TestPipeline;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tapflow-registry-'));
  const file = join(dir, 'terminals.yaml');
  await writeFile(
    file,
    `terminals:
  - { id: ${GATE.id}, region: BJ, venues: [bj-subway:西直门, "museum:BJ:*"], operator: bj-subway-line-4, secret_sha256: ${sha(GATE.secret)} }
  - { id: ${DISABLED.id}, region: BJ, venues: [bj-subway:西直门], secret_sha256: ${sha(DISABLED.secret)}, disabled: true }
  - { id: ${CLINIC.id}, region: BJ, venues: [hospital:BJ:pumch], secret_sha256: ${sha(CLINIC.secret)} }
`,
  );
  p = await startTestPipeline({ TAPFLOW_TERMINALS_FILE: file });
}, 120_000);

afterAll(async () => {
  await p?.stop();
  await rm(dir, { recursive: true, force: true });
});

function settleClaim(md: grpc.Metadata, terminalId: string, institutionId = 'hospital:BJ:pumch', claimId = 'AUTH-1'): Promise<CallResult<ClaimResult>> {
  const c = {
    claimId,
    terminalId,
    institutionId,
    institutionLevel: InstitutionLevel.TERTIARY,
    treatment: Treatment.OUTPATIENT,
    card: { $case: 'chip' as const, value: { cardNumber: '110000000001', counter: 1, mac: Buffer.alloc(8) } },
    idNumber: '11010519800101001X',
    insuredRegion: Region.BJ,
    deviceTime: Date.now(),
    items: [{ code: 'A1', name: 'a', catalogueClass: CatalogueClass.CLASS_A, amountFen: 100 }],
    reversesClaimId: '',
    personalAccountBalanceFen: 0,
  };
  return new Promise((resolve) => p.client.settleClaim(c, md, (error, value) => resolve(error ? { ok: false, error } : { ok: true, value })));
}

describe('ingest - terminal identity (file registry)', () => {
  it('a registered terminal with its secret gets its taps acknowledged durable', async () => {
    const out = await stream(p.client, metadata(GATE.id, GATE.secret), [tap(GATE.id, 1), tap(GATE.id, 2)]);
    expect(out.error).toBeUndefined();
    expect(out.acks.map((a) => TapStatus[a.status]).sort()).toEqual(['ACCEPTED_DURABLE', 'ACCEPTED_DURABLE']);
    // The operator comes from the registry entry.
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${GATE.id}'`))[0]!.n >= 2, 30_000, 'decisions');
    const ops = await p.query<{ operator_id: string }>(`SELECT DISTINCT operator_id FROM decisions WHERE terminal_id = '${GATE.id}'`);
    expect(ops.map((o) => o.operator_id)).toEqual(['bj-subway-line-4']);
  });

  it.each([
    ['no metadata', metadata()],
    ['no secret', metadata(GATE.id)],
    ['no terminal id', metadata(undefined, GATE.secret)],
    ['a wrong secret', metadata(GATE.id, 'gate-secret-7003')],
    ["another terminal's secret", metadata(GATE.id, DISABLED.secret)],
    ['an unknown terminal', metadata('BJ-GATE-9999', GATE.secret)],
    // The demo registry is off when a file is configured: a demo-style id gets nowhere.
    ['a demo-registry id', metadata('BJ-RAIL-0001', 'whatever')],
  ])('UNAUTHENTICATED with %s, on StreamTaps, UploadBatch and SettleClaim', async (_what, md) => {
    const s = await stream(p.client, md, [tap(GATE.id, 100)]);
    expect(s.acks).toEqual([]);
    expect(s.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    const b = await uploadBatch(p.client, md, { terminalId: GATE.id, taps: [tap(GATE.id, 101)] });
    expect(codeOf(b)).toBe(grpc.status.UNAUTHENTICATED);
    const c = await settleClaim(md, GATE.id);
    expect(codeOf(c)).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('PERMISSION_DENIED for a disabled terminal with its right secret', async () => {
    const md = metadata(DISABLED.id, DISABLED.secret);
    const s = await stream(p.client, md, [tap(DISABLED.id, 1)]);
    expect(s.acks).toEqual([]);
    expect(s.error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(s.error?.details).toContain('disabled');
    expect(codeOf(await uploadBatch(p.client, md, { terminalId: DISABLED.id, taps: [tap(DISABLED.id, 2)] }))).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('a terminal cannot send as another: PERMISSION_DENIED for a batch, INVALID terminal_id for a streamed tap', async () => {
    const md = metadata(GATE.id, GATE.secret);
    const b = await uploadBatch(p.client, md, { terminalId: DISABLED.id, taps: [tap(DISABLED.id, 3)] });
    expect(codeOf(b)).toBe(grpc.status.PERMISSION_DENIED);
    const s = await stream(p.client, md, [tap(DISABLED.id, 4), tap(GATE.id, 3)]);
    expect(s.error).toBeUndefined();
    const bySeq = Object.fromEntries(s.acks.map((a) => [`${a.terminalId}:${a.seq}`, a]));
    expect(TapStatus[bySeq[`${DISABLED.id}:4`]!.status]).toBe('INVALID');
    expect(bySeq[`${DISABLED.id}:4`]!.reason).toContain('terminal_id');
    expect(TapStatus[bySeq[`${GATE.id}:3`]!.status]).toBe('ACCEPTED_DURABLE');
  });

  it('a terminal sends only for the venues it serves: others are INVALID with reason PERMISSION_DENIED, the stream goes on', async () => {
    const md = metadata(GATE.id, GATE.secret);
    const s = await stream(p.client, md, [
      tap(GATE.id, 10),
      tap(GATE.id, 11, { venueId: 'bj-subway:国贸' }),
      tap(GATE.id, 12, { venueId: 'museum:BJ:capital-museum', scene: Scene.CULTURE, direction: Direction.SINGLE }),
      tap(GATE.id, 13, { venueId: 'tj-metro:刘园' }),
    ]);
    expect(s.error).toBeUndefined();
    const bySeq = Object.fromEntries(s.acks.map((a) => [a.seq, `${TapStatus[a.status]} ${a.reason}`.trim()]));
    expect(bySeq).toEqual({
      10: 'ACCEPTED_DURABLE',
      11: `INVALID PERMISSION_DENIED: venue_id: terminal ${GATE.id} does not serve venue bj-subway:国贸; it serves bj-subway:西直门, museum:BJ:*`,
      12: 'ACCEPTED_DURABLE',
      13: `INVALID PERMISSION_DENIED: venue_id: terminal ${GATE.id} does not serve venue tj-metro:刘园; it serves bj-subway:西直门, museum:BJ:*`,
    });
    const b = await uploadBatch(p.client, md, { terminalId: GATE.id, taps: [tap(GATE.id, 14), tap(GATE.id, 15, { venueId: 'bj-subway:国贸' })] });
    expect(b.ok && b.value.acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE', 'INVALID']);
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${GATE.id}' AND seq >= 10`))[0]!.n >= 3, 30_000, 'decisions');
    await new Promise((r) => setTimeout(r, 300));
    const seqs = await p.query<{ seq: number }>(`SELECT seq FROM decisions WHERE terminal_id = '${GATE.id}' AND seq >= 10 ORDER BY seq`);
    expect(seqs.map((r) => Number(r.seq))).toEqual([10, 12, 14]);
  });

  it('a clinic claims only for the institutions it serves: PERMISSION_DENIED naming the institution', async () => {
    const md = metadata(CLINIC.id, CLINIC.secret);
    const other = await settleClaim(md, CLINIC.id, 'hospital:BJ:chaoyang-hospital', 'AUTH-2');
    expect(other.ok ? 'ok' : [other.error.code, other.error.details]).toEqual([
      grpc.status.PERMISSION_DENIED,
      `TF_INGEST_PERMISSION_DENIED: institution_id: terminal ${CLINIC.id} does not serve venue hospital:BJ:chaoyang-hospital; it serves hospital:BJ:pumch`,
    ]);
    // Its own institution: the claim goes on to be decided (a MAC of zeros: REJECTED, not refused at the door).
    const own = await settleClaim(md, CLINIC.id, 'hospital:BJ:pumch', 'AUTH-3');
    expect(own.ok ? 'answered' : own.error.details).toBe('answered');
  });

  it('counts refused calls by failure code in /metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text();
    const value = (code: string) => Number(new RegExp(`^tapflow_ingest_refused_total\\{code="${code}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    // 7 cases × 3 calls each above, and 2 calls of the disabled terminal (+1 batch as another).
    expect(value('TF_INGEST_UNAUTHENTICATED')).toBeGreaterThanOrEqual(21);
    // … and 3 taps and a claim for venues the terminals do not serve.
    expect(value('TF_INGEST_PERMISSION_DENIED')).toBeGreaterThanOrEqual(2 + 4);
  });
});
