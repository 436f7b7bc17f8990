import { describe, expect, it } from 'vitest';
import { generateTestKeys, loadTrustStore } from '../../../src/domain/card/keys.js';
import { encodeQrBody, formatQrPayload, parseQrPayload } from '../../../src/domain/card/qr.js';
import { makeQrBody, QR_VALIDITY_MS, signQr, verifyQr } from '../../../src/domain/card/qr-sign.js';

const keys = generateTestKeys({ seed: 'qr' });
const trust = loadTrustStore([keys]);
const body = makeQrBody({ cardNumber: '120000000002', issuedAt: 1_772_413_200_000, level: 2, nonce: 'bm9uY2Utbm9uY2UtMTIzNA' });
const sign = (b = body, region: 'BJ' | 'TJ' | 'HE' = 'TJ') => signQr(trust.qrSigner, keys.regions[region]!.qrPrivateKey!, b);

describe('qr - sign and verify', () => {
  it('a body made for a card is issued by its region and valid 60 s', () => {
    expect(body.issuer).toBe('TJ');
    expect(body.expiresAt - body.issuedAt).toBe(QR_VALIDITY_MS);
    expect(QR_VALIDITY_MS).toBe(60_000);
  });

  it('a signed code verifies and parses back to the same body', () => {
    const r = verifyQr(trust, sign());
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.qr.body).toEqual(body);
      expect(r.issuer).toBe('TJ');
    }
  });

  it('a forged body (altered level) fails the signature', () => {
    const p = parseQrPayload(sign());
    if (!p.ok) throw new Error(p.error);
    const forged = formatQrPayload(encodeQrBody({ ...body, level: 2, expiresAt: body.expiresAt + 3_600_000 }), p.qr.signature);
    expect(verifyQr(trust, forged)).toMatchObject({ ok: false, reason: 'QR_BAD_SIGNATURE' });
  });

  it('a code signed with another region key fails the signature', () => {
    expect(verifyQr(trust, sign(body, 'BJ'))).toMatchObject({ ok: false, reason: 'QR_BAD_SIGNATURE' });
  });

  it('an issuer without a trusted key is unknown', () => {
    const partial = { ...trust, qrPublicKeys: { BJ: trust.qrPublicKeys.BJ! } };
    expect(verifyQr(partial, sign())).toMatchObject({ ok: false, reason: 'QR_UNKNOWN_ISSUER' });
  });

  it('an issuer that is not the region of the card number is unknown for that card', () => {
    const r = verifyQr(trust, sign({ ...body, issuer: 'BJ' }, 'BJ'));
    expect(r).toMatchObject({ ok: false, reason: 'QR_UNKNOWN_ISSUER' });
  });

  it('garbage is malformed', () => {
    expect(verifyQr(trust, 'hello')).toMatchObject({ ok: false, reason: 'QR_MALFORMED' });
    expect(verifyQr(trust, `TFQR1.${Buffer.from('{}').toString('base64url')}.AAAA`)).toMatchObject({ ok: false, reason: 'QR_MALFORMED' });
  });
});
