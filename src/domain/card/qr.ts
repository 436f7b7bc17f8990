/**
 * Electronic social security card QR codes.
 *
 * Wire format of Tap.qr.payload:  "TFQR1.<base64url(body)>.<base64url(signature)>"
 *   body       UTF-8 JSON {"c": card number, "r": issuing region, "iat": issued at (epoch ms),
 *              "exp": expires at (epoch ms), "n": nonce (base64url, 16 bytes), "l": level (1|2)}
 *   signature  over the exact body bytes, by the issuing region's platform key (Ed25519 by
 *              default; see src/domain/validate for verification).
 * Ingest only parses (to tokenise the card); validators verify.
 */
import { Regions, type Region } from '../types.js';

export const QR_PREFIX = 'TFQR1';

export interface QrBody {
  cardNumber: string;
  issuer: Region;
  issuedAt: number;
  expiresAt: number;
  nonce: string;
  level: number;
}

export interface ParsedQr {
  body: QrBody;
  bodyBytes: Buffer;
  signature: Buffer;
}

export type QrParseResult = { ok: true; qr: ParsedQr } | { ok: false; error: string };

export function encodeQrBody(body: QrBody): Buffer {
  return Buffer.from(
    JSON.stringify({ c: body.cardNumber, r: body.issuer, iat: body.issuedAt, exp: body.expiresAt, n: body.nonce, l: body.level }),
    'utf8',
  );
}

export function formatQrPayload(bodyBytes: Uint8Array, signature: Uint8Array): string {
  return `${QR_PREFIX}.${Buffer.from(bodyBytes).toString('base64url')}.${Buffer.from(signature).toString('base64url')}`;
}

/**
 * The base64url alphabet, without padding. Node's decoder skips any other character, so without
 * this check a payload could carry arbitrary text (up to three bytes a character) and still parse.
 */
const BASE64URL = /^[A-Za-z0-9_-]*$/;

export function parseQrPayload(payload: string): QrParseResult {
  const parts = payload.split('.');
  if (parts.length !== 3 || parts[0] !== QR_PREFIX) return { ok: false, error: `expected "${QR_PREFIX}.<body>.<signature>"` };
  if (!BASE64URL.test(parts[1]!) || !BASE64URL.test(parts[2]!)) return { ok: false, error: 'body and signature must be base64url (A-Z, a-z, 0-9, - and _, no padding)' };
  const bodyBytes = Buffer.from(parts[1]!, 'base64url');
  const signature = Buffer.from(parts[2]!, 'base64url');
  let raw: unknown;
  try {
    raw = JSON.parse(bodyBytes.toString('utf8'));
  } catch {
    return { ok: false, error: 'body is not JSON' };
  }
  if (typeof raw !== 'object' || raw === null) return { ok: false, error: 'body is not an object' };
  const o = raw as Record<string, unknown>;
  if (typeof o.c !== 'string' || o.c.length === 0) return { ok: false, error: 'body.c (card number) missing' };
  if (typeof o.r !== 'string' || !(Regions as readonly string[]).includes(o.r)) return { ok: false, error: 'body.r (issuer) must be BJ, TJ or HE' };
  if (!Number.isSafeInteger(o.iat) || !Number.isSafeInteger(o.exp)) return { ok: false, error: 'body.iat and body.exp must be epoch milliseconds' };
  if (typeof o.n !== 'string' || o.n.length === 0) return { ok: false, error: 'body.n (nonce) missing' };
  if (o.l !== 1 && o.l !== 2) return { ok: false, error: 'body.l (level) must be 1 or 2' };
  if (signature.length === 0) return { ok: false, error: 'signature missing' };
  return {
    ok: true,
    qr: {
      body: { cardNumber: o.c, issuer: o.r as Region, issuedAt: o.iat as number, expiresAt: o.exp as number, nonce: o.n, level: o.l },
      bodyBytes,
      signature,
    },
  };
}
