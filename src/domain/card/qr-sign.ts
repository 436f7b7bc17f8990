/**
 * Signing and verifying electronic social security card QR codes (payload format in qr.ts).
 *
 * {@link verifyQr} checks what cryptography can: the payload parses, the issuer is trusted and
 * is the issuer of the card number it names, and the signature verifies. Time validity, single
 * use and the issuance level are the validator's rules (src/domain/validate), since they need
 * the tap's time, the card's state and the scene.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import type { Region } from '../types.js';
import type { QrSigner, TrustStore } from './keys.js';
import { encodeQrBody, formatQrPayload, parseQrPayload, type ParsedQr, type QrBody } from './qr.js';
import { regionOfCardNumber } from './token.js';

/** Nominal validity of an electronic card QR code: 60 seconds. */
export const QR_VALIDITY_MS = 60_000;

/** Signs a QR body; returns the full payload string "TFQR1.<body>.<signature>". */
export function signQr(signer: QrSigner, privateKey: KeyObject, body: QrBody): string {
  const bodyBytes = encodeQrBody(body);
  return formatQrPayload(bodyBytes, signer.sign(privateKey, bodyBytes));
}

/** A fresh random nonce: 16 bytes, base64url. */
export function newQrNonce(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * A QR body for a card, issued at `issuedAt`, valid `validityMs` (default 60 s). The issuer is
 * the region of the card number. Throws when the card number is not of BJ, TJ or HE.
 */
export function makeQrBody(args: { cardNumber: string; issuedAt: number; level: 1 | 2; nonce?: string; validityMs?: number }): QrBody {
  const issuer = regionOfCardNumber(args.cardNumber);
  if (!issuer) throw new RangeError('card number is not of a BJ, TJ or HE card');
  return {
    cardNumber: args.cardNumber,
    issuer,
    issuedAt: args.issuedAt,
    expiresAt: args.issuedAt + (args.validityMs ?? QR_VALIDITY_MS),
    nonce: args.nonce ?? newQrNonce(),
    level: args.level,
  };
}

export type QrVerifyFailure = 'QR_MALFORMED' | 'QR_UNKNOWN_ISSUER' | 'QR_BAD_SIGNATURE';

export type QrVerifyResult =
  | { ok: true; qr: ParsedQr; issuer: Region }
  | { ok: false; reason: QrVerifyFailure; detail: string; qr?: ParsedQr };

/**
 * Verifies a QR payload against the trust store, in this order: parse (QR_MALFORMED), issuer
 * (QR_UNKNOWN_ISSUER: no trusted key for the region, or the region is not the issuer of the
 * card number named in the code), signature (QR_BAD_SIGNATURE).
 */
export function verifyQr(trust: Pick<TrustStore, 'qrPublicKeys' | 'qrSigner'>, payload: string): QrVerifyResult {
  const parsed = parseQrPayload(payload);
  if (!parsed.ok) return { ok: false, reason: 'QR_MALFORMED', detail: parsed.error };
  const { qr } = parsed;
  const issuer = qr.body.issuer;
  const key = trust.qrPublicKeys[issuer];
  if (!key) return { ok: false, reason: 'QR_UNKNOWN_ISSUER', detail: `no trusted QR key for ${issuer}`, qr };
  const cardRegion = regionOfCardNumber(qr.body.cardNumber);
  if (cardRegion !== issuer) {
    return { ok: false, reason: 'QR_UNKNOWN_ISSUER', detail: `${issuer} is not the issuer of a ${cardRegion ?? 'non-BJ/TJ/HE'} card`, qr };
  }
  if (!trust.qrSigner.verify(key, qr.bodyBytes, qr.signature)) {
    return { ok: false, reason: 'QR_BAD_SIGNATURE', detail: `signature does not verify with the ${issuer} key`, qr };
  }
  return { ok: true, qr, issuer };
}
