/**
 * `tapflow certs init|terminal|revoke` as an operator runs them: the files they write, read back
 * with node:crypto's X509Certificate (issuer, validity, SAN, key usage), keys 0600, and a
 * revocation list ingest can read; default folder <TAPFLOW_DATA_DIR>/tls.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRevocationList } from '../../../src/ingest/tls.js';
import { normalSerial } from '../../../src/ingest/x509.js';
import { runCli } from './run-cli.js';

const root = mkdtempSync(join(tmpdir(), 'tapflow-certs-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('tapflow certs', { timeout: 60_000 }, () => {
  const dir = join(root, 'fleet');

  it('init: a CA and a server certificate for the given hosts, keys 0600, then keeps them', async () => {
    const r = await runCli(['certs', 'init', '--dir', dir, '--host', 'ingest.example,127.0.0.1', '--days', '90']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^CA created: .*ca\.pem \(key .*ca\.key, 0600\), O=tapflow, CN=tapflow development fleet CA, serial [0-9A-F]+, valid until 20\d\d-/m);
    expect(r.stdout).toMatch(/^server certificate issued: .*server\.pem .*DNS:ingest\.example, IP Address:127\.0\.0\.1, serial/m);
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')));
    const server = new X509Certificate(readFileSync(join(dir, 'server.pem')));
    expect(ca.ca).toBe(true);
    expect(server.checkIssued(ca) && server.verify(ca.publicKey)).toBe(true);
    expect(server.subjectAltName).toBe('DNS:ingest.example, IP Address:127.0.0.1');
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(Math.round((Date.parse(server.validTo) - Date.parse(server.validFrom)) / 86_400_000)).toBe(90);
    for (const f of ['ca.key', 'server.key']) expect((statSync(join(dir, f)).mode & 0o777).toString(8)).toBe('600');
    const again = await runCli(['certs', 'init', '--dir', dir]);
    expect(again.stdout).toMatch(/^CA kept: /m);
    expect(again.stdout).toMatch(/^server certificate kept: /m);
    expect(readFileSync(join(dir, 'server.pem'), 'utf8')).toBe(server.toString());
  });

  it('terminal: a certificate per id from that CA, the id in CN and URI SAN, clientAuth, key 0600', async () => {
    const r = await runCli(['certs', 'terminal', '--dir', dir, '--id', 'BJ-GATE-0001', '--id', 'TJ-BUS-0002', '--days', '30']);
    expect(r.code, r.stderr).toBe(0);
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')));
    for (const id of ['BJ-GATE-0001', 'TJ-BUS-0002']) {
      const line = r.stdout.split('\n').find((l) => l.startsWith(`terminal ${id}: `))!;
      expect(line).toMatch(new RegExp(`certificate .*terminals/${id}\\.pem, key .*terminals/${id}\\.key \\(0600\\), serial [0-9A-F]+$`));
      const cert = new X509Certificate(readFileSync(join(dir, 'terminals', `${id}.pem`)));
      expect(cert.subject).toBe(`O=tapflow\nCN=${id}`);
      expect(cert.subjectAltName).toBe(`URI:urn:tapflow:terminal:${id}`);
      expect(cert.issuer).toBe(ca.subject);
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
      expect(cert.ca).toBe(false);
      expect(Math.round((Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000)).toBe(30);
      expect(normalSerial(cert.serialNumber)).toBe(/serial ([0-9A-F]+)$/.exec(line)![1]);
      expect((statSync(join(dir, 'terminals', `${id}.key`)).mode & 0o777).toString(8)).toBe('600');
    }
  });

  it('revoke: by terminal id (every certificate issued to it) and by serial, each once, into a list ingest reads', async () => {
    const cert = new X509Certificate(readFileSync(join(dir, 'terminals', 'BJ-GATE-0001.pem')));
    const serial = normalSerial(cert.serialNumber);
    const r = await runCli(['certs', 'revoke', '--dir', dir, '--id', 'BJ-GATE-0001', '--serial', '0a:ff']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`revoked: serial ${serial} (terminal BJ-GATE-0001)`);
    expect(r.stdout).toContain('revoked: serial AFF (by serial)');
    const again = await runCli(['certs', 'revoke', '--dir', dir, '--serial', serial]);
    expect(again.stdout).toContain(`already revoked: serial ${serial}`);
    const list = parseRevocationList(readFileSync(join(dir, 'revoked.txt'), 'utf8'), 'revoked.txt');
    expect([...list].sort()).toEqual([serial, 'AFF'].sort());
  });

  it('refuses what it cannot do, naming why', async () => {
    const none = await runCli(['certs', 'revoke', '--dir', dir]);
    expect([none.code, none.stderr.trim()]).toEqual([1, 'tapflow: --serial or --id: which certificates to revoke (give one of them)']);
    const unknown = await runCli(['certs', 'revoke', '--dir', dir, '--id', 'HE-X-1']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/--id HE-X-1: no certificate issued to it is recorded in .*issued\.txt/);
    const badId = await runCli(['certs', 'terminal', '--dir', dir, '--id', 'BJ GATE']);
    expect(badId.code).toBe(1);
    expect(badId.stderr).toContain("argument 'BJ GATE' is invalid. Expected a terminal id");
    const noCa = await runCli(['certs', 'terminal', '--dir', join(root, 'empty'), '--id', 'BJ-A-1']);
    expect(noCa.code).toBe(1);
    expect(noCa.stderr).toMatch(/no fleet CA in .*empty \(ca\.pem and ca\.key\): create one with tapflow certs init --dir /);
  });

  it('defaults to <TAPFLOW_DATA_DIR>/tls, the development CA `tapflow start` serves', async () => {
    const dataDir = join(root, 'data');
    const r = await runCli(['certs', 'init'], { TAPFLOW_DATA_DIR: dataDir });
    expect(r.code, r.stderr).toBe(0);
    expect(new X509Certificate(readFileSync(join(dataDir, 'tls', 'ca.pem'))).ca).toBe(true);
    expect(new X509Certificate(readFileSync(join(dataDir, 'tls', 'server.pem'))).subjectAltName).toContain('DNS:localhost, IP Address:127.0.0.1');
  });
});
