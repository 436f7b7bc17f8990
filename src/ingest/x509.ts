/**
 * X.509 certificates for the fleet's mutual TLS, made with node:crypto alone: ECDSA P-256 keys,
 * certificates signed ecdsa-with-SHA256, written as PEM. Node's crypto makes keys and signatures
 * but no certificates, so this file encodes the few DER structures a certificate needs (RFC 5280):
 * a CA (basicConstraints CA, keyCertSign | cRLSign), a server certificate (serverAuth, DNS and IP
 * subject alternative names) and a terminal certificate (clientAuth, its terminal id in the
 * subject CN and as the URI SAN `urn:tapflow:terminal:<id>`, which is what ingest reads).
 * Node's X509Certificate reads them back (tests verify issuer, validity, SAN and key usage).
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIPv4 } from 'node:net';

/** The URI SAN naming a terminal: `urn:tapflow:terminal:<terminal id>`. */
export const TERMINAL_URI_PREFIX = 'urn:tapflow:terminal:';

// ---------------------------------------------------------------- DER

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([tag]), len(body.length), body]);
const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const explicit = (n: number, body: Buffer) => tlv(0xa0 + n, body);
const octets = (b: Buffer) => tlv(0x04, b);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
/** A BIT STRING of whole bytes. */
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));

/** A non-negative INTEGER from big-endian bytes (a leading zero added when the high bit is set). */
function uint(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}
const smallInt = (n: number) => uint(Buffer.from([n]));

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime up to 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  const year = d.getUTCFullYear();
  return year < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

const OID = {
  cn: '2.5.4.3',
  o: '2.5.4.10',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

function name(cn: string): Buffer {
  return seq(set(seq(oid(OID.o), utf8('tapflow'))), set(seq(oid(OID.cn), utf8(cn))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
}

/** The key identifier of a public key: SHA-1 of its subjectPublicKey bits (RFC 5280 4.2.1.2 (1)). */
function keyId(spki: Buffer): Buffer {
  // An EC SubjectPublicKeyInfo ends with the BIT STRING of the point: 65 bytes for P-256.
  return createHash('sha1').update(spki.subarray(spki.length - 65)).digest();
}

// ---------------------------------------------------------------- certificates

export type CertKind = 'ca' | 'server' | 'terminal';

export interface IssueOptions {
  kind: CertKind;
  /** Subject common name (the terminal id for a terminal). */
  commonName: string;
  /** The certified public key. */
  publicKey: KeyObject;
  /** The key that signs: the issuer's (the subject's own for a self-signed CA). */
  signingKey: KeyObject;
  /** The issuer's name and public key; absent: self-signed (a CA only). */
  issuer?: { commonName: string; publicKey: KeyObject };
  /** Server: DNS names and IPv4 addresses it answers on. */
  hosts?: string[];
  /** Terminal: its id (URI SAN). */
  terminalId?: string;
  notBefore?: Date;
  days: number;
  /** Serial as hex; default 16 random bytes. */
  serialHex?: string;
}

export interface Issued {
  pem: string;
  /** Upper-case hex without leading zeros, as tls.PeerCertificate.serialNumber shows it. */
  serial: string;
}

/** Serial as Node's TLS shows it: upper-case hex, no leading zeros. */
export function normalSerial(hex: string): string {
  return hex.replace(/[^0-9a-f]/gi, '').toUpperCase().replace(/^0+(?=.)/, '');
}

export function issueCertificate(o: IssueOptions): Issued {
  const serialBytes = o.serialHex ? Buffer.from(o.serialHex.length % 2 ? `0${o.serialHex}` : o.serialHex, 'hex') : randomBytes(16);
  if (!o.serialHex) serialBytes[0] = serialBytes[0]! & 0x7f || 0x01;
  const spki = o.publicKey.export({ type: 'spki', format: 'der' });
  const issuerSpki = (o.issuer?.publicKey ?? o.publicKey).export({ type: 'spki', format: 'der' });
  const exts: Buffer[] = [];
  if (o.kind === 'ca') {
    exts.push(extension(OID.basicConstraints, true, seq(bool(true), smallInt(0))));
    // keyCertSign (bit 5) and cRLSign (bit 6): 0000 0110, one unused bit.
    exts.push(extension(OID.keyUsage, true, bits(Buffer.from([0x06]), 1)));
  } else {
    exts.push(extension(OID.basicConstraints, true, seq()));
    // digitalSignature (bit 0): 1000 0000, seven unused bits.
    exts.push(extension(OID.keyUsage, true, bits(Buffer.from([0x80]), 7)));
    exts.push(extension(OID.extKeyUsage, false, seq(oid(o.kind === 'server' ? OID.serverAuth : OID.clientAuth))));
    const names: Buffer[] = [];
    if (o.kind === 'server') {
      for (const h of o.hosts ?? []) {
        names.push(isIPv4(h) ? tlv(0x87, Buffer.from(h.split('.').map(Number))) : tlv(0x82, Buffer.from(h, 'ascii')));
      }
    } else {
      if (!o.terminalId) throw new Error('a terminal certificate needs its terminal id');
      names.push(tlv(0x86, Buffer.from(TERMINAL_URI_PREFIX + o.terminalId, 'ascii')));
    }
    if (names.length === 0) throw new Error('a server certificate needs at least one host name or address');
    exts.push(extension(OID.subjectAltName, false, seq(...names)));
  }
  exts.push(extension(OID.subjectKeyId, false, octets(keyId(spki))));
  exts.push(extension(OID.authorityKeyId, false, seq(tlv(0x80, keyId(issuerSpki)))));
  const notBefore = o.notBefore ?? new Date(Date.now() - 5 * 60_000);
  const notAfter = new Date(notBefore.getTime() + o.days * 86_400_000);
  const sigAlg = seq(oid(OID.ecdsaSha256));
  const tbs = seq(
    explicit(0, smallInt(2)),
    uint(serialBytes),
    sigAlg,
    name(o.issuer?.commonName ?? o.commonName),
    seq(time(notBefore), time(notAfter)),
    name(o.commonName),
    spki,
    explicit(3, seq(...exts)),
  );
  if (!o.issuer && o.kind !== 'ca') throw new Error('only a CA certificate is self-signed');
  const signature = sign('sha256', tbs, { key: o.signingKey, dsaEncoding: 'der' });
  const der = seq(tbs, sigAlg, bits(signature));
  return { pem: toPem(der, 'CERTIFICATE'), serial: normalSerial(serialBytes.toString('hex')) };
}

function toPem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function newKeyPair(): KeyPair {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

export function privateKeyPem(k: KeyObject): string {
  return k.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function readPrivateKey(pem: string | Buffer): KeyObject {
  return createPrivateKey(pem);
}

/** A self-signed CA. */
export function issueCa(commonName: string, keys: KeyPair, days: number): Issued {
  return issueCertificate({ kind: 'ca', commonName, publicKey: keys.publicKey, signingKey: keys.privateKey, days });
}
