/**
 * The fleet's certificates as node:crypto's X509Certificate reads them (issuer, validity, SAN,
 * key usage, CA flag, signature), the identity ingest takes from a peer certificate, the
 * revocation list's format and reloading, and the server's TLS settings.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initTlsDir, parseRevocationList, peerIdentity, readCa, RevocationList, revokeSerials, serialsIssuedTo, serverTlsFiles, tlsPaths, writeTerminalCert } from '../../../src/ingest/tls.js';
import { issueCa, newKeyPair, normalSerial } from '../../../src/ingest/x509.js';

const dir = mkdtempSync(join(tmpdir(), 'tapflow-tls-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const day = 86_400_000;

describe('x509 - certificates made with node:crypto', () => {
  const p = initTlsDir(join(dir, 'a'), { hosts: ['ingest.example', '127.0.0.1'], days: 30, caDays: 100 });
  const ca = new X509Certificate(readFileSync(p.caCert));
  const server = new X509Certificate(readFileSync(p.serverCert));
  const t = writeTerminalCert(p.dir, 'BJ-GATE-0001', { days: 10 });
  const terminal = new X509Certificate(readFileSync(t.certFile));

  it('a self-signed CA certificate', () => {
    expect(ca.ca).toBe(true);
    expect(ca.subject).toBe('O=tapflow\nCN=tapflow development fleet CA');
    expect(ca.issuer).toBe(ca.subject);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const life = Date.parse(ca.validTo) - Date.parse(ca.validFrom);
    expect(life).toBe(100 * day);
    expect(Date.parse(ca.validFrom)).toBeLessThanOrEqual(Date.now());
  });

  it('a server certificate for the given names, serverAuth, issued and signed by the CA', () => {
    expect(server.ca).toBe(false);
    expect(server.subjectAltName).toBe('DNS:ingest.example, IP Address:127.0.0.1');
    expect(server.checkHost('ingest.example')).toBe('ingest.example');
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(server.issuer).toBe(ca.subject);
    expect(server.checkIssued(ca)).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(Date.parse(server.validTo) - Date.parse(server.validFrom)).toBe(30 * day);
  });

  it('a terminal certificate: its id in the CN and the URI SAN, clientAuth, signed by the CA, the serial recorded', () => {
    expect(terminal.ca).toBe(false);
    expect(terminal.subject).toBe('O=tapflow\nCN=BJ-GATE-0001');
    expect(terminal.subjectAltName).toBe('URI:urn:tapflow:terminal:BJ-GATE-0001');
    expect(terminal.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(terminal.checkIssued(ca)).toBe(true);
    expect(terminal.verify(ca.publicKey)).toBe(true);
    expect(terminal.verify(server.publicKey)).toBe(false);
    expect(Date.parse(terminal.validTo) - Date.parse(terminal.validFrom)).toBe(10 * day);
    expect(normalSerial(terminal.serialNumber)).toBe(t.serial);
    expect(serialsIssuedTo(p.dir, 'BJ-GATE-0001')).toEqual([t.serial]);
    expect(new X509Certificate(readFileSync(t.certFile)).publicKey.equals(new X509Certificate(readFileSync(t.certFile)).publicKey)).toBe(true);
  });

  it('keys are written 0600, certificates 0644', () => {
    for (const f of [p.caKey, p.serverKey, t.keyFile]) expect((statSync(f).mode & 0o777).toString(8)).toBe('600');
    for (const f of [p.caCert, p.serverCert, t.certFile]) expect((statSync(f).mode & 0o777).toString(8)).toBe('644');
  });

  it('init keeps an existing CA and server certificate, and issues a new server certificate only when asked', () => {
    const again = initTlsDir(p.dir);
    expect([again.createdCa, again.createdServer]).toEqual([false, false]);
    expect(readFileSync(p.caCert, 'utf8')).toBe(ca.toString());
    const re = initTlsDir(p.dir, { reissueServer: true, hosts: ['localhost'] });
    expect([re.createdCa, re.createdServer]).toEqual([false, true]);
    expect(new X509Certificate(readFileSync(p.serverCert)).subjectAltName).toBe('DNS:localhost');
  });

  it('serials: 16 random bytes, unique; a DER-positive integer; long validity uses GeneralizedTime', () => {
    const serials = new Set(Array.from({ length: 20 }, () => issueCa('x', newKeyPair(), 1).serial));
    expect(serials.size).toBe(20);
    const far = new X509Certificate(issueCa('far', newKeyPair(), 40 * 365).pem);
    expect(new Date(far.validTo).getUTCFullYear()).toBeGreaterThanOrEqual(2060);
  });

  it('refuses a bad terminal id and a CA pair with a missing half', () => {
    expect(() => writeTerminalCert(p.dir, 'BJ GATE')).toThrow(/terminal id "BJ GATE"/);
    const half = join(dir, 'half');
    initTlsDir(half);
    rmSync(tlsPaths(half).caKey);
    expect(() => initTlsDir(half)).toThrow(/has ca\.pem without ca\.key/);
    const other = initTlsDir(join(dir, 'other'));
    expect(() => readCa(p.caCert, other.caKey)).toThrow(/not the private key of/);
  });
});

describe('x509 - several processes starting on one data dir', () => {
  it('make one CA and one server certificate, which all of them serve', async () => {
    const { spawn } = await import('node:child_process');
    const shared = join(dir, 'race');
    const code = `import('${join(import.meta.dirname, '../../../src/ingest/tls.ts')}').then((m) => { const p = m.initTlsDir(${JSON.stringify(shared)}); const fs = require('node:fs'); const c = require('node:crypto'); const ca = new c.X509Certificate(fs.readFileSync(p.caCert)); const srv = new c.X509Certificate(fs.readFileSync(p.serverCert)); console.log(JSON.stringify({ ca: ca.fingerprint256, server: srv.fingerprint256, keyMatches: srv.checkPrivateKey(c.createPrivateKey(fs.readFileSync(p.serverKey))) })); })`;
    const run = () =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d));
        child.stderr.on('data', (d: Buffer) => (err += d));
        child.on('close', (c) => (c === 0 ? resolve(out.trim()) : reject(new Error(err))));
      });
    const outs = (await Promise.all([run(), run(), run()])).map((o) => JSON.parse(o) as { ca: string; server: string; keyMatches: boolean });
    expect(new Set(outs.map((o) => o.ca)).size).toBe(1);
    expect(new Set(outs.map((o) => o.server)).size).toBe(1);
    expect(outs.every((o) => o.keyMatches)).toBe(true);
    expect(readFileSync(tlsPaths(shared).issued, 'utf8').trim().split('\n')).toHaveLength(1);
  }, 60_000);
});

describe('peer identity - the terminal a verified certificate names', () => {
  it('the one urn:tapflow:terminal URI SAN, whatever else is there', () => {
    expect(peerIdentity({ subjectaltname: 'URI:urn:tapflow:terminal:TJ-BUS-7', serialNumber: '0A1B' })).toEqual({ ok: true, terminalId: 'TJ-BUS-7', serial: 'A1B' });
    expect(peerIdentity({ subjectaltname: 'DNS:gate.example, URI:urn:tapflow:terminal:HE-X-1', serialNumber: '01' })).toEqual({ ok: true, terminalId: 'HE-X-1', serial: '1' });
  });
  it.each([
    ['no SAN', undefined, /names no terminal/],
    ['another URI', 'URI:https://example.com/BJ-GATE-1', /names no terminal/],
    ['two terminals', 'URI:urn:tapflow:terminal:BJ-A-1, URI:urn:tapflow:terminal:BJ-A-2', /names 2 terminals/],
    ['a bad id', 'URI:urn:tapflow:terminal:BJ A', /is not a valid id/],
  ])('refused: %s', (_what, san, message) => {
    const r = peerIdentity({ subjectaltname: san as string, serialNumber: 'FF' });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(message);
    expect(!r.ok && r.message).toContain('serial FF');
  });
});

describe('revocation list', () => {
  it('reads serials (hex, colons, any case, leading zeros), comments and blank lines', () => {
    expect([...parseRevocationList('# header\n\n0a:1b  # gate\nFF\n00ff\n', 'f')]).toEqual(['A1B', 'FF']);
  });
  it('names the line that is not a serial', () => {
    expect(() => parseRevocationList('FF\nBJ-GATE-1\n', 'r.txt')).toThrow('r.txt:2: not a certificate serial');
  });
  it('revokeSerials appends each serial once', () => {
    const f = join(dir, 'rev.txt');
    expect(revokeSerials(f, ['0a1b', 'FF'], 'test')).toEqual(['A1B', 'FF']);
    expect(revokeSerials(f, ['A1B'], 'test')).toEqual([]);
    expect([...parseRevocationList(readFileSync(f, 'utf8'), f)]).toEqual(['A1B', 'FF']);
  });
  it('reload: a bad or missing file keeps the last good list, and says so', () => {
    const f = join(dir, 'rl.txt');
    writeFileSync(f, 'AB\n');
    const lines: string[] = [];
    const outcomes: string[] = [];
    const list = new RevocationList(f, { info: (_o, m) => lines.push(`info ${m}`), error: (o, m) => lines.push(`error ${m} ${(o as { err: string }).err}`) }, (outcome, size) => outcomes.push(`${outcome} ${size}`));
    let changes = 0;
    list.onChange(() => changes++);
    expect(list.reload()).toBe(true);
    expect(list.has('AB')).toBe(true);
    writeFileSync(f, 'AB\nnot hex\n');
    expect(list.reload()).toBe(false);
    expect(list.has('AB')).toBe(true);
    rmSync(f);
    expect(list.reload()).toBe(false);
    expect(list.has('AB')).toBe(true);
    writeFileSync(f, 'CD\n');
    expect(list.reload()).toBe(true);
    expect([list.has('AB'), list.has('CD'), list.size]).toEqual([false, true, 1]);
    expect(outcomes).toEqual(['ok 1', 'failed 1', 'failed 1', 'ok 1']);
    expect(changes).toBe(2);
    expect(lines[1]).toMatch(/^error .*last good list stays in force .*rl.txt:2: not a certificate serial/);
  });
});

describe('server TLS settings', () => {
  it('none set: the development CA under <data dir>/tls, generated once', () => {
    const dataDir = join(dir, 'data');
    const f = serverTlsFiles({ TAPFLOW_DATA_DIR: dataDir });
    expect(f).toEqual({ caFile: join(dataDir, 'tls', 'ca.pem'), certFile: join(dataDir, 'tls', 'server.pem'), keyFile: join(dataDir, 'tls', 'server.key'), revokedFile: join(dataDir, 'tls', 'revoked.txt'), development: true });
    const ca = readFileSync(f.caFile, 'utf8');
    serverTlsFiles({ TAPFLOW_DATA_DIR: dataDir });
    expect(readFileSync(f.caFile, 'utf8')).toBe(ca);
  });
  it('all three set: those files, the revocation list beside the CA unless set', () => {
    const p = initTlsDir(join(dir, 'deploy'));
    const f = serverTlsFiles({ TAPFLOW_DATA_DIR: join(dir, 'unused'), TAPFLOW_TLS_CA_FILE: p.caCert, TAPFLOW_TLS_CERT_FILE: p.serverCert, TAPFLOW_TLS_KEY_FILE: p.serverKey });
    expect(f).toEqual({ caFile: p.caCert, certFile: p.serverCert, keyFile: p.serverKey, revokedFile: p.revoked, development: false });
  });
  it('refuses some without the others, and files that are not there, naming the variables', () => {
    expect(() => serverTlsFiles({ TAPFLOW_DATA_DIR: dir, TAPFLOW_TLS_CA_FILE: '/x/ca.pem' })).toThrow('TAPFLOW_TLS_CA_FILE set without TAPFLOW_TLS_CERT_FILE, TAPFLOW_TLS_KEY_FILE');
    expect(() => serverTlsFiles({ TAPFLOW_DATA_DIR: dir, TAPFLOW_TLS_CA_FILE: '/x/ca.pem', TAPFLOW_TLS_CERT_FILE: '/x/s.pem', TAPFLOW_TLS_KEY_FILE: '/x/s.key' })).toThrow('TAPFLOW_TLS_CA_FILE=/x/ca.pem: no such file');
  });
});
