/**
 * Mutual TLS of the ingest gRPC server: the fleet CA, the server's certificate, the terminals'
 * certificates and the revocation list.
 *
 * - The server serves TLS and requires a client certificate signed by the fleet CA
 *   (TAPFLOW_TLS_CA_FILE); a connection without one, or with one from another CA, fails its
 *   handshake.
 * - A terminal's identity is the URI subject alternative name `urn:tapflow:terminal:<id>` of its
 *   certificate (exactly one; the subject CN carries the id too, for people, and is not read).
 *   The registry (file or demo) gives its region and venues; an id it does not know is refused.
 * - Revocation: a list of certificate serials (TAPFLOW_TLS_REVOKED_FILE; one hex serial per line,
 *   `#` comments), read again whenever the file changes (polled each
 *   {@link REVOCATION_POLL_MS}); a call with a revoked certificate is refused UNAUTHENTICATED
 *   naming the serial, and a live stream of it is ended. A file that cannot be read keeps the
 *   last good list in force and logs why.
 * - Without TAPFLOW_TLS_* files, a development CA with a server certificate is generated once
 *   under <data dir>/tls/ (keys 0600), as the development keys are; `tapflow certs` makes the
 *   same files for a deployment's tests, and terminal certificates.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { issueCa, issueCertificate, newKeyPair, normalSerial, privateKeyPem, readPrivateKey, TERMINAL_URI_PREFIX, type Issued } from './x509.js';
import { TERMINAL_ID_PATTERN } from './terminals.js';

/** How often the revocation list's file is checked for a change (ms). */
export const REVOCATION_POLL_MS = 1000;

export const DEV_CA_NAME = 'tapflow development fleet CA';

/** The files of a TLS folder as `tapflow certs init` and the development CA lay them out. */
export function tlsPaths(dir: string) {
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    revoked: join(dir, 'revoked.txt'),
    issued: join(dir, 'issued.txt'),
    terminals: join(dir, 'terminals'),
  };
}

/** Writes a file readable by its owner only (keys), or world-readable (certificates). */
function writeNew(path: string, text: string, secret: boolean, flag = 'w'): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, text, { mode: secret ? 0o600 : 0o644, flag });
}

/**
 * Creates a key and its certificate once, when several processes start on one data dir: the key
 * is written exclusively (the process that wins also writes the certificate); the others wait
 * for that certificate (at most 10 s). False when another process made them.
 */
function createPairOnce(keyFile: string, certFile: string, make: () => { keyPem: string; certPem: string }): boolean {
  const { keyPem, certPem } = make();
  try {
    writeNew(keyFile, keyPem, true, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const until = Date.now() + 10_000;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    while (!existsSync(certFile) && Date.now() < until) Atomics.wait(nap, 0, 0, 50);
    if (!existsSync(certFile)) throw new Error(`${keyFile} exists without ${certFile}: remove the key, or restore the certificate`);
    return false;
  }
  // Whole or not at all for the processes waiting for it.
  writeNew(`${certFile}.${process.pid}.tmp`, certPem, false);
  renameSync(`${certFile}.${process.pid}.tmp`, certFile);
  return true;
}

export interface FleetCa {
  certPem: string;
  key: KeyObject;
  publicKey: KeyObject;
  commonName: string;
}

/** Reads a CA certificate and its private key. */
export function readCa(certFile: string, keyFile: string): FleetCa {
  const certPem = readFileSync(certFile, 'utf8');
  const cert = new X509Certificate(certPem);
  if (!cert.ca) throw new Error(`${certFile}: not a CA certificate`);
  const key = readPrivateKey(readFileSync(keyFile));
  const publicKey = createPublicKey(key);
  if (!cert.publicKey.equals(publicKey)) throw new Error(`${keyFile}: not the private key of ${certFile}`);
  const cn = /CN=([^\n]+)/.exec(cert.subject)?.[1] ?? DEV_CA_NAME;
  return { certPem, key, publicKey, commonName: cn };
}

/** The default host names of a server certificate: localhost, 127.0.0.1 and this host's name. */
export function defaultServerHosts(): string[] {
  return [...new Set(['localhost', '127.0.0.1', hostname()])];
}

/**
 * Creates a CA in `dir` unless one is there (ca.pem, ca.key), and a server certificate signed by
 * it unless one is there (or `reissueServer`), and an empty revocation list. Returns the paths.
 */
export function initTlsDir(dir: string, o: { hosts?: string[]; days?: number; caDays?: number; caName?: string; reissueServer?: boolean } = {}): ReturnType<typeof tlsPaths> & { createdCa: boolean; createdServer: boolean } {
  const p = tlsPaths(dir);
  let createdCa = false;
  let createdServer = false;
  if (!existsSync(p.caCert) || !existsSync(p.caKey)) {
    if (existsSync(p.caCert)) throw new Error(`${dir}: has ca.pem without ca.key; remove it or restore the key`);
    createdCa = createPairOnce(p.caKey, p.caCert, () => {
      const keys = newKeyPair();
      return { keyPem: privateKeyPem(keys.privateKey), certPem: issueCa(o.caName ?? DEV_CA_NAME, keys, o.caDays ?? 3650).pem };
    });
  }
  const hosts = o.hosts && o.hosts.length > 0 ? o.hosts : defaultServerHosts();
  const issueServer = () => {
    const ca = readCa(p.caCert, p.caKey);
    const keys = newKeyPair();
    const cert = issueCertificate({ kind: 'server', commonName: hosts[0]!, hosts, publicKey: keys.publicKey, signingKey: ca.key, issuer: ca, days: o.days ?? 825 });
    return { keyPem: privateKeyPem(keys.privateKey), certPem: cert.pem, serial: cert.serial };
  };
  let server: ReturnType<typeof issueServer> | undefined;
  if (o.reissueServer) {
    server = issueServer();
    writeNew(p.serverKey, server.keyPem, true);
    writeNew(p.serverCert, server.certPem, false);
  } else if (!existsSync(p.serverKey) || !existsSync(p.serverCert)) {
    if (existsSync(p.serverCert)) throw new Error(`${dir}: has server.pem without server.key; remove it or restore the key (or tapflow certs init --reissue-server)`);
    server = issueServer();
    if (!createPairOnce(p.serverKey, p.serverCert, () => server!)) server = undefined;
  }
  if (server) {
    recordIssued(p.issued, { pem: server.certPem, serial: server.serial }, `server ${hosts.join(',')}`);
    createdServer = true;
  }
  if (!existsSync(p.revoked)) writeNew(p.revoked, '# Revoked terminal certificates: one serial (hex) per line. tapflow certs revoke adds to it; ingest reads it again when it changes.\n', false);
  return { ...p, createdCa, createdServer };
}

/** Appends "<serial> <what> <notAfter>" to the record of issued certificates. */
function recordIssued(file: string, cert: Issued, what: string): void {
  const validTo = new Date(new X509Certificate(cert.pem).validTo).toISOString();
  const line = `${cert.serial} ${what} ${validTo}\n`;
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, line, { flag: 'a', mode: 0o644 });
}

export interface TerminalCert {
  certPem: string;
  keyPem: string;
  serial: string;
}

/** Issues a terminal's certificate (and key) from a CA, in memory. */
export function issueTerminalCert(ca: FleetCa, terminalId: string, days = 365): TerminalCert {
  if (!TERMINAL_ID_PATTERN.test(terminalId)) throw new Error(`terminal id ${JSON.stringify(terminalId)}: letters, digits, '.', '_' and '-', at most 64`);
  const keys = newKeyPair();
  const cert = issueCertificate({ kind: 'terminal', commonName: terminalId, terminalId, publicKey: keys.publicKey, signingKey: ca.key, issuer: ca, days });
  return { certPem: cert.pem, keyPem: privateKeyPem(keys.privateKey), serial: cert.serial };
}

/** Issues a terminal certificate from the CA in `dir` into `<dir>/terminals/<id>.pem|.key` (or `outDir`). */
export function writeTerminalCert(dir: string, terminalId: string, o: { days?: number; outDir?: string } = {}): TerminalCert & { certFile: string; keyFile: string } {
  const p = tlsPaths(dir);
  if (!existsSync(p.caCert) || !existsSync(p.caKey)) throw new Error(`no fleet CA in ${dir} (ca.pem and ca.key): create one with tapflow certs init --dir ${dir}`);
  const ca = readCa(p.caCert, p.caKey);
  const t = issueTerminalCert(ca, terminalId, o.days);
  const out = o.outDir ?? p.terminals;
  const certFile = join(out, `${terminalId}.pem`);
  const keyFile = join(out, `${terminalId}.key`);
  writeNew(keyFile, t.keyPem, true);
  writeNew(certFile, t.certPem, false);
  recordIssued(p.issued, { pem: t.certPem, serial: t.serial }, `terminal ${terminalId}`);
  return { ...t, certFile, keyFile };
}

/** The serials issued to a terminal id, from `<dir>/issued.txt`. */
export function serialsIssuedTo(dir: string, terminalId: string): string[] {
  const file = tlsPaths(dir).issued;
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === 'terminal' && f[2] === terminalId)
    .map((f) => f[0]!);
}

/** Adds serials to a revocation list file (each once), with a comment naming why. */
export function revokeSerials(file: string, serials: string[], note: string): string[] {
  const current = existsSync(file) ? parseRevocationList(readFileSync(file, 'utf8'), file) : new Set<string>();
  const added = serials.map(normalSerial).filter((s) => !current.has(s));
  if (added.length > 0) {
    const when = new Date().toISOString();
    writeFileSync(file, added.map((s) => `${s}  # ${note}, revoked ${when}\n`).join(''), { flag: 'a', mode: 0o644 });
  }
  return added;
}

/**
 * Reads a revocation list: one serial per line (hex, colons and spaces allowed), `#` starts a
 * comment. A line that is not a serial makes the whole file invalid (naming the line).
 */
export function parseRevocationList(text: string, file: string): Set<string> {
  const out = new Set<string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    if (!/^[0-9A-Fa-f:]+$/.test(line) || line.replace(/:/g, '').length > 40) throw new Error(`${file}:${i + 1}: not a certificate serial (hex, at most 20 bytes): ${JSON.stringify(line.slice(0, 60))}`);
    out.add(normalSerial(line));
  }
  return out;
}

export interface RevocationLog {
  info(o: object, msg: string): void;
  error(o: object, msg: string): void;
}

/**
 * The revocation list in force, read again when its file changes. `has` is a Set lookup.
 * A file that cannot be read (missing, or a bad line) keeps the last good list.
 */
export class RevocationList {
  private serials = new Set<string>();
  private lastMtimeMs = -1;
  private readonly listeners: ((serials: ReadonlySet<string>) => void)[] = [];
  private watching = false;

  constructor(
    readonly file: string,
    private readonly log: RevocationLog,
    private readonly onReload: (outcome: 'ok' | 'failed', size: number) => void = () => {},
  ) {}

  has(serial: string): boolean {
    return this.serials.has(serial);
  }

  get size(): number {
    return this.serials.size;
  }

  /** Called after each reload that succeeded. */
  onChange(fn: (serials: ReadonlySet<string>) => void): void {
    this.listeners.push(fn);
  }

  /** Reads the file now; false (and the last good list kept) when it cannot be read. */
  reload(): boolean {
    try {
      const st = statSync(this.file);
      const next = parseRevocationList(readFileSync(this.file, 'utf8'), this.file);
      this.lastMtimeMs = st.mtimeMs;
      const added = [...next].filter((s) => !this.serials.has(s)).length;
      this.serials = next;
      this.onReload('ok', next.size);
      this.log.info({ file: this.file, revoked: next.size, added }, 'terminal certificate revocation list read');
      for (const fn of this.listeners) fn(next);
      return true;
    } catch (err) {
      this.onReload('failed', this.serials.size);
      this.log.error({ file: this.file, err: (err as Error).message, keptRevoked: this.serials.size }, 'terminal certificate revocation list could not be read; the last good list stays in force');
      return false;
    }
  }

  /** Polls the file for changes (size or mtime) and reads it again on each (call reload() first). */
  start(): void {
    if (this.watching) return;
    this.watching = true;
    watchFile(this.file, { interval: REVOCATION_POLL_MS, persistent: false }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.mtimeMs !== this.lastMtimeMs) this.reload();
    });
  }

  stop(): void {
    if (this.watching) unwatchFile(this.file);
    this.watching = false;
  }
}

/** Who a verified client certificate names, or why it names nobody. */
export type PeerIdentity = { ok: true; terminalId: string; serial: string } | { ok: false; message: string };

/** The terminal id of a peer certificate: its one `urn:tapflow:terminal:<id>` URI SAN. */
export function peerIdentity(peer: Pick<PeerCertificate, 'subjectaltname' | 'serialNumber'>): PeerIdentity {
  const serial = normalSerial(peer.serialNumber ?? '');
  const ids = (peer.subjectaltname ?? '')
    .split(', ')
    .filter((n) => n.startsWith(`URI:${TERMINAL_URI_PREFIX}`))
    .map((n) => n.slice(4 + TERMINAL_URI_PREFIX.length));
  if (ids.length !== 1) return { ok: false, message: `client certificate serial ${serial} names ${ids.length === 0 ? 'no terminal' : `${ids.length} terminals`}: it needs exactly one subject alternative name ${TERMINAL_URI_PREFIX}<terminal id>` };
  if (!TERMINAL_ID_PATTERN.test(ids[0]!)) return { ok: false, message: `client certificate serial ${serial}: terminal id ${JSON.stringify(ids[0]!.slice(0, 70))} is not a valid id` };
  return { ok: true, terminalId: ids[0]!, serial };
}

/**
 * Peer identities by certificate fingerprint (a connection's certificate is read once, not per
 * call); bounded, oldest first out.
 */
export class PeerIdentityCache {
  private readonly byFingerprint = new Map<string, PeerIdentity>();
  constructor(private readonly max = 100_000) {}

  identify(peer: PeerCertificate): PeerIdentity {
    const key = peer.fingerprint256;
    let id = this.byFingerprint.get(key);
    if (!id) {
      id = peerIdentity(peer);
      if (this.byFingerprint.size >= this.max) this.byFingerprint.delete(this.byFingerprint.keys().next().value!);
      this.byFingerprint.set(key, id);
    }
    return id;
  }
}

/** The PEM files the server serves with. */
export interface ServerTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
  revokedFile: string;
  /** True when they are the development CA's, generated under the data dir. */
  development: boolean;
}

/**
 * The server's TLS files from the settings: all three of CA, certificate and key, or none (the
 * development CA under <data dir>/tls/, generated at the first start).
 */
export function serverTlsFiles(cfg: { TAPFLOW_DATA_DIR: string; TAPFLOW_TLS_CA_FILE?: string; TAPFLOW_TLS_CERT_FILE?: string; TAPFLOW_TLS_KEY_FILE?: string; TAPFLOW_TLS_REVOKED_FILE?: string }): ServerTlsFiles {
  const given = { TAPFLOW_TLS_CA_FILE: cfg.TAPFLOW_TLS_CA_FILE, TAPFLOW_TLS_CERT_FILE: cfg.TAPFLOW_TLS_CERT_FILE, TAPFLOW_TLS_KEY_FILE: cfg.TAPFLOW_TLS_KEY_FILE };
  const set = Object.entries(given).filter(([, v]) => v);
  const devDir = join(cfg.TAPFLOW_DATA_DIR, 'tls');
  if (set.length === 0) {
    const p = initTlsDir(devDir);
    return { caFile: p.caCert, certFile: p.serverCert, keyFile: p.serverKey, revokedFile: cfg.TAPFLOW_TLS_REVOKED_FILE ?? p.revoked, development: true };
  }
  if (set.length < 3) {
    const missing = Object.entries(given).filter(([, v]) => !v).map(([k]) => k);
    throw new Error(`${set.map(([k]) => k).join(', ')} set without ${missing.join(', ')}: give the CA, the server certificate and its key together (or none, for the development CA under ${devDir})`);
  }
  for (const [k, v] of set) if (!existsSync(v!)) throw new Error(`${k}=${v}: no such file`);
  const revokedFile = cfg.TAPFLOW_TLS_REVOKED_FILE ?? join(dirname(cfg.TAPFLOW_TLS_CA_FILE!), 'revoked.txt');
  return { caFile: cfg.TAPFLOW_TLS_CA_FILE!, certFile: cfg.TAPFLOW_TLS_CERT_FILE!, keyFile: cfg.TAPFLOW_TLS_KEY_FILE!, revokedFile, development: false };
}

/** The CA (with its key) that issues the demo fleet's certificates: ca.key beside the CA file. */
export function demoIssuingCa(caFile: string): FleetCa {
  const keyFile = join(dirname(caFile), 'ca.key');
  if (!existsSync(keyFile)) throw new Error(`the demo fleet issues its terminals' certificates with the CA's key, looked for at ${keyFile}: not there (unset TAPFLOW_TLS_* to use the development CA, or put ca.key beside ${caFile})`);
  return readCa(caFile, keyFile);
}
