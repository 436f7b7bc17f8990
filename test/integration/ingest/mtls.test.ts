/**
 * Terminal identity on mutual TLS (TAPFLOW_INGEST_AUTH=mtls, the default), with real grpc-js
 * clients over real TLS: the ingest serves the development CA generated under its data dir, and
 * each terminal's certificate is issued from that CA as `tapflow certs terminal` issues it.
 * A terminal is who its certificate names (URI SAN urn:tapflow:terminal:<id>); the registry
 * (a file here) says whether it may send and for which venues; a revoked serial is refused from
 * the next call on, and its open streams end, while other terminals go on.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { CatalogueClass, InstitutionLevel, Region, TapStatus, TerminalIngestClient, Treatment, type ClaimResult, type Tap, type TapAck } from '../../../src/gen/tapflow/v1/ingest.js';
import { initTlsDir, readCa, revokeSerials, tlsPaths, writeTerminalCert, issueTerminalCert } from '../../../src/ingest/tls.js';
import { codeOf, metadata, stream, tap, uploadBatch, type CallResult } from './grpc-taps.js';

const GATE = 'BJ-GATE-8001';
const GATE2 = 'BJ-GATE-8002';
const DISABLED = 'BJ-GATE-8003';
const CLINIC = 'BJ-CLINIC-8004';
const LEGACY = { id: 'BJ-GATE-8005', secret: 'legacy-secret-8005' };

let p: TestPipeline;
let dir: string;
let tls: ReturnType<typeof tlsPaths>;
const clients: TerminalIngestClient[] = [];

function clientWith(creds: grpc.ChannelCredentials): TerminalIngestClient {
  const c = new TerminalIngestClient(`127.0.0.1:${p.grpcPort}`, creds);
  clients.push(c);
  return c;
}

/** A client presenting the certificate issued to `id` (from the running ingest's CA). */
async function terminalClient(id: string): Promise<{ client: TerminalIngestClient; serial: string }> {
  const t = writeTerminalCert(tls.dir, id, { outDir: join(dir, 'issued') });
  const client = clientWith(grpc.credentials.createSsl(await readFile(tls.caCert), await readFile(t.keyFile), await readFile(t.certFile)));
  return { client, serial: t.serial };
}

const refusedCount = async (code: string) => {
  const text = await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text();
  return Number(new RegExp(`^tapflow_ingest_refused_total\\{code="${code}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
};
const metric = async (name: string) => {
  const text = await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text();
  return Number(new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
};

function settleClaim(client: TerminalIngestClient, md: grpc.Metadata, terminalId: string, institutionId: string, claimId: string): Promise<CallResult<ClaimResult>> {
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
  return new Promise((resolve) => client.settleClaim(c, md, { deadline: Date.now() + 15_000 }, (error, value) => resolve(error ? { ok: false, error } : { ok: true, value })));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tapflow-mtls-'));
  const file = join(dir, 'terminals.yaml');
  const sha = createHash('sha256').update(LEGACY.secret).digest('hex');
  await writeFile(
    file,
    `terminals:
  - { id: ${GATE}, region: BJ, venues: [bj-subway:西直门], operator: bj-subway-line-4 }
  - { id: ${GATE2}, region: BJ, venues: [bj-subway:西直门] }
  - { id: ${DISABLED}, region: BJ, venues: [bj-subway:西直门], disabled: true }
  - { id: ${CLINIC}, region: BJ, venues: [hospital:BJ:pumch] }
  - { id: ${LEGACY.id}, region: BJ, venues: [bj-subway:西直门], secret_sha256: ${sha} }
`,
  );
  p = await startTestPipeline({ TAPFLOW_TERMINALS_FILE: file, TAPFLOW_INGEST_AUTH: 'mtls' });
  // The development CA the ingest generated at its start (no TAPFLOW_TLS_* files).
  tls = tlsPaths(join(p.dataDir, 'tls'));
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await p?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('ingest - terminal identity on mutual TLS', () => {
  it('generated the development CA and server certificate under the data dir, keys 0600', async () => {
    const { statSync } = await import('node:fs');
    for (const f of [tls.caKey, tls.serverKey]) expect((statSync(f).mode & 0o777).toString(8)).toBe('600');
    expect(readCa(tls.caCert, tls.caKey).commonName).toBe('tapflow development fleet CA');
  });

  it('a terminal with a valid certificate gets its taps acknowledged durable, as the terminal its certificate names', async () => {
    const { client } = await terminalClient(GATE);
    // No x-terminal-id needed: the certificate says who it is.
    const out = await stream(client, new grpc.Metadata(), [tap(GATE, 1), tap(GATE, 2)]);
    expect(out.error).toBeUndefined();
    expect(out.acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE', 'ACCEPTED_DURABLE']);
    const b = await uploadBatch(client, metadata(GATE), { terminalId: GATE, taps: [tap(GATE, 3)] });
    expect(b.ok && b.value.acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${GATE}'`))[0]!.n >= 3, 30_000, 'decisions');
    const ops = await p.query<{ operator_id: string }>(`SELECT DISTINCT operator_id FROM decisions WHERE terminal_id = '${GATE}'`);
    expect(ops.map((o) => o.operator_id)).toEqual(['bj-subway-line-4']);
  });

  it('refuses a connection without a client certificate, a plaintext one, and a certificate of another CA, at the handshake', async () => {
    const caPem = await readFile(tls.caCert);
    // Another CA with a certificate for a registered terminal.
    const other = initTlsDir(join(dir, 'other-ca'), { hosts: ['localhost'] });
    const forged = issueTerminalCert(readCa(other.caCert, other.caKey), GATE);
    const cases: [string, grpc.ChannelCredentials][] = [
      ['no client certificate', grpc.credentials.createSsl(caPem)],
      ['plaintext', grpc.credentials.createInsecure()],
      ['a certificate of another CA', grpc.credentials.createSsl(caPem, Buffer.from(forged.keyPem), Buffer.from(forged.certPem))],
    ];
    for (const [what, creds] of cases) {
      const client = clientWith(creds);
      const s = await stream(client, metadata(GATE), [tap(GATE, 50)], 10_000);
      expect(s.acks, what).toEqual([]);
      expect(s.error?.code, what).toBe(grpc.status.UNAVAILABLE);
      const b = await uploadBatch(client, metadata(GATE), { terminalId: GATE, taps: [tap(GATE, 51)] });
      expect(codeOf(b), what).toBe(grpc.status.UNAVAILABLE);
    }
    await new Promise((r) => setTimeout(r, 500));
    const stored = await p.query<{ n: number }>(`SELECT count() AS n FROM decisions WHERE terminal_id = '${GATE}' AND seq IN (50, 51)`);
    expect(Number(stored[0]!.n)).toBe(0);
  });

  it('refuses a fleet certificate whose terminal is not in the registry (UNAUTHENTICATED), or disabled (PERMISSION_DENIED)', async () => {
    const { client: unknown } = await terminalClient('BJ-GATE-9999');
    const s = await stream(unknown, new grpc.Metadata(), [tap('BJ-GATE-9999', 1)]);
    expect(s.acks).toEqual([]);
    expect(s.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(s.error?.details).toContain('BJ-GATE-9999');
    expect(s.error?.details).toContain('not in the terminal registry');
    const { client: disabled } = await terminalClient(DISABLED);
    const d = await stream(disabled, new grpc.Metadata(), [tap(DISABLED, 1)]);
    expect(d.error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(d.error?.details).toContain('disabled');
  });

  it('a terminal sends only for its own id: another id in metadata or a batch is PERMISSION_DENIED, a streamed tap of another is INVALID', async () => {
    const { client } = await terminalClient(GATE2);
    const asOther = await stream(client, metadata(GATE), [tap(GATE, 60)]);
    expect(asOther.acks).toEqual([]);
    expect(asOther.error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(asOther.error?.details).toBe(`TF_INGEST_PERMISSION_DENIED: x-terminal-id ${GATE} is not the terminal ${GATE2} that the client certificate names`);
    const b = await uploadBatch(client, new grpc.Metadata(), { terminalId: GATE, taps: [tap(GATE, 61)] });
    expect(codeOf(b)).toBe(grpc.status.PERMISSION_DENIED);
    const s = await stream(client, new grpc.Metadata(), [tap(GATE, 62), tap(GATE2, 1)]);
    expect(s.error).toBeUndefined();
    const by = Object.fromEntries(s.acks.map((a) => [`${a.terminalId}:${a.seq}`, a]));
    expect(TapStatus[by[`${GATE}:62`]!.status]).toBe('INVALID');
    expect(by[`${GATE}:62`]!.reason).toContain('terminal_id');
    expect(TapStatus[by[`${GATE2}:1`]!.status]).toBe('ACCEPTED_DURABLE');
  });

  it('a terminal sends only for its venues: a tap elsewhere is INVALID PERMISSION_DENIED, a claim for another institution PERMISSION_DENIED', async () => {
    const { client } = await terminalClient(GATE2);
    const s = await stream(client, new grpc.Metadata(), [tap(GATE2, 10, { venueId: 'bj-subway:国贸' })]);
    expect(s.acks.map((a) => `${TapStatus[a.status]} ${a.reason}`)).toEqual([
      `INVALID PERMISSION_DENIED: venue_id: terminal ${GATE2} does not serve venue bj-subway:国贸; it serves bj-subway:西直门`,
    ]);
    const { client: clinic } = await terminalClient(CLINIC);
    const other = await settleClaim(clinic, new grpc.Metadata(), CLINIC, 'hospital:BJ:chaoyang-hospital', 'MTLS-1');
    expect(other.ok ? 'ok' : other.error.code).toBe(grpc.status.PERMISSION_DENIED);
    const own = await settleClaim(clinic, new grpc.Metadata(), CLINIC, 'hospital:BJ:pumch', 'MTLS-2');
    expect(own.ok ? 'answered' : own.error.details).toBe('answered');
  });

  it('the static-secret path is off: a registered secret alone gets nowhere, and does not override the certificate', async () => {
    const caPem = await readFile(tls.caCert);
    const noCert = clientWith(grpc.credentials.createSsl(caPem));
    const s = await stream(noCert, metadata(LEGACY.id, LEGACY.secret), [tap(LEGACY.id, 1)], 10_000);
    expect(s.error?.code).toBe(grpc.status.UNAVAILABLE);
    const plain = clientWith(grpc.credentials.createInsecure());
    expect((await stream(plain, metadata(LEGACY.id, LEGACY.secret), [tap(LEGACY.id, 2)], 10_000)).error?.code).toBe(grpc.status.UNAVAILABLE);
    // Another terminal's certificate with LEGACY's id and secret in metadata: the certificate decides.
    const { client } = await terminalClient(GATE2);
    const o = await stream(client, metadata(LEGACY.id, LEGACY.secret), [tap(LEGACY.id, 3)]);
    expect(o.error?.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it("the bench's fleet client: each terminal on a TLS connection of its own, with its own certificate", async () => {
    const { FleetClient } = await import('../../../bench/lib/fleet-client.js');
    const { Timeline } = await import('../../../bench/lib/recorder.js');
    const { Tap: TapCodec } = await import('../../../src/gen/tapflow/v1/ingest.js');
    const fleet = new FleetClient({ target: `127.0.0.1:${p.grpcPort}`, channels: 1, fleetKey: new Uint8Array(32), timeline: new Timeline(), tls: { ca: readCa(tls.caCert, tls.caKey) } });
    const sims = [tap(GATE, 300), tap(GATE2, 300), tap(GATE, 301)].map((t) => ({ tap: t, expect: 'ok', cardNumber: '', terminalRegion: 'BJ', phase: 'window' }) as unknown as import('../../../bench/lib/fleet.js').SimTap);
    fleet.startWindow();
    for (const sim of sims) fleet.sendLive({ at: fleet.now(), sim, bytes: Buffer.from(TapCodec.encode(sim.tap).finish()) });
    await p.until(async () => fleet.results.size === sims.length, 20_000, 'the fleet client\'s acks');
    fleet.close();
    expect(sims.map((s) => TapStatus[fleet.results.get(s)!.status])).toEqual(['ACCEPTED_DURABLE', 'ACCEPTED_DURABLE', 'ACCEPTED_DURABLE']);
    expect(fleet.streamErrors).toBe(0);
  });

  it('a certificate revoked while the server runs is refused from the next call on and its open stream ends; other terminals go on', async () => {
    const reloadsBefore = await metric('tapflow_tls_revocation_reloads_total{outcome="ok"}');
    const revokedBefore = await refusedCount('TF_INGEST_UNAUTHENTICATED');
    const victim = await terminalClient(GATE);
    const bystander = await terminalClient(GATE2);
    // An open stream of the victim, answered once before the revocation.
    const call = victim.client.streamTaps(new grpc.Metadata(), { deadline: Date.now() + 60_000 });
    const victimAcks: TapAck[] = [];
    const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
      call.on('error', (e: grpc.ServiceError) => resolve(e));
      call.on('end', () => resolve(undefined));
    });
    const acked = new Promise<void>((resolve) => call.on('data', (a: TapAck) => (victimAcks.push(a), resolve())));
    call.write(tap(GATE, 100));
    await acked;
    expect(TapStatus[victimAcks[0]!.status]).toBe('ACCEPTED_DURABLE');

    expect(revokeSerials(tls.revoked, [victim.serial], `terminal ${GATE}`)).toEqual([victim.serial]);
    const error = await ended;
    expect(error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(error?.details).toBe(`TF_INGEST_UNAUTHENTICATED: client certificate serial ${victim.serial} was revoked; this stream ends`);
    // The next call with that certificate, on the same connection, is refused naming the serial.
    const next = await stream(victim.client, new grpc.Metadata(), [tap(GATE, 101)]);
    expect(next.acks).toEqual([]);
    expect(next.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(next.error?.details).toBe(`TF_INGEST_UNAUTHENTICATED: client certificate serial ${victim.serial} of terminal ${GATE} is revoked`);
    expect(codeOf(await uploadBatch(victim.client, new grpc.Metadata(), { terminalId: GATE, taps: [tap(GATE, 102)] }))).toBe(grpc.status.UNAUTHENTICATED);
    // Another certificate of the same terminal (a replacement) and other terminals are unaffected.
    const replacement = await terminalClient(GATE);
    expect((await stream(replacement.client, new grpc.Metadata(), [tap(GATE, 103)])).acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
    expect((await stream(bystander.client, new grpc.Metadata(), [tap(GATE2, 100)])).acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
    expect(await metric('tapflow_tls_revocation_reloads_total{outcome="ok"}')).toBeGreaterThan(reloadsBefore);
    expect(await metric('tapflow_tls_revoked_certificates')).toBe(1);
    expect(await refusedCount('TF_INGEST_UNAUTHENTICATED')).toBeGreaterThanOrEqual(revokedBefore + 3);

    // A revocation list that cannot be read keeps the last good one in force.
    const good = await readFile(tls.revoked, 'utf8');
    const failedBefore = (await metric('tapflow_tls_revocation_reloads_total{outcome="failed"}')) || 0;
    await writeFile(tls.revoked, `${good}not a serial\n`);
    await p.until(async () => ((await metric('tapflow_tls_revocation_reloads_total{outcome="failed"}')) || 0) > failedBefore, 10_000, 'the failed reload');
    expect((await stream(victim.client, new grpc.Metadata(), [tap(GATE, 104)])).error?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(await metric('tapflow_tls_revoked_certificates')).toBe(1);
    await writeFile(tls.revoked, good);
  });
});
