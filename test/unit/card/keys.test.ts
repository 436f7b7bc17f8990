import { describe, expect, it } from 'vitest';
import {
  ed25519Signer,
  generateTestKeys,
  hmacSha256Mac,
  KeyFileError,
  loadTrustStore,
  parseKeyFile,
  serializeKeysFile,
  withoutPrivateKeys,
  type MacAlgorithm,
} from '../../../src/domain/card/keys.js';

describe('keys - test key generation', () => {
  it('gives the three regions a chip master key and an Ed25519 key pair', () => {
    const keys = generateTestKeys();
    for (const r of ['BJ', 'TJ', 'HE'] as const) {
      const k = keys.regions[r]!;
      expect(k.chipMasterKey).toHaveLength(32);
      expect(k.qrPublicKey!.asymmetricKeyType).toBe('ed25519');
      expect(k.qrPrivateKey!.asymmetricKeyType).toBe('ed25519');
    }
    expect(Buffer.from(keys.regions.BJ!.chipMasterKey!).equals(Buffer.from(keys.regions.TJ!.chipMasterKey!))).toBe(false);
  });

  it('derives the same keys from the same seed, and different keys from another seed', () => {
    const a = serializeKeysFile(generateTestKeys({ seed: 's1' }));
    const b = serializeKeysFile(generateTestKeys({ seed: 's1' }));
    const c = serializeKeysFile(generateTestKeys({ seed: 's2' }));
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('random keys differ between calls', () => {
    expect(serializeKeysFile(generateTestKeys())).not.toBe(serializeKeysFile(generateTestKeys()));
  });
});

describe('keys - keys file', () => {
  const keys = generateTestKeys({ seed: 'file', version: 'v-file' });

  it('round-trips through the JSON file format, private keys included', () => {
    const text = serializeKeysFile(keys);
    const back = parseKeyFile(text);
    expect(back.version).toBe('v-file');
    expect(serializeKeysFile(back)).toBe(text);
    const sig = ed25519Signer.sign(back.regions.TJ!.qrPrivateKey!, Buffer.from('x'));
    expect(ed25519Signer.verify(keys.regions.TJ!.qrPublicKey!, Buffer.from('x'), sig)).toBe(true);
  });

  it('withoutPrivateKeys drops the QR private keys and keeps the rest', () => {
    const text = serializeKeysFile(withoutPrivateKeys(keys));
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).toContain('PUBLIC KEY');
    const back = parseKeyFile(text);
    expect(back.regions.HE!.qrPrivateKey).toBeUndefined();
    expect(back.regions.HE!.chipMasterKey).toHaveLength(32);
  });

  it('derives a missing public key from the private key', () => {
    const o = JSON.parse(serializeKeysFile(keys));
    delete o.regions.BJ.qrPublicKey;
    const back = parseKeyFile(JSON.stringify(o));
    const sig = ed25519Signer.sign(keys.regions.BJ!.qrPrivateKey!, Buffer.from('y'));
    expect(ed25519Signer.verify(back.regions.BJ!.qrPublicKey!, Buffer.from('y'), sig)).toBe(true);
  });

  it.each([
    ['not json', (_o: any) => '{', 'trust.json'],
    ['wrong format', (o: any) => ({ ...o, format: 'x' }), 'trust.json.format'],
    ['missing version', (o: any) => ({ ...o, version: '' }), 'trust.json.version'],
    ['unknown region', (o: any) => ({ ...o, regions: { ...o.regions, SH: {} } }), 'trust.json.regions.SH'],
    ['short master key', (o: any) => ({ ...o, regions: { ...o.regions, TJ: { ...o.regions.TJ, chipMasterKey: 'AAAA' } } }), 'trust.json.regions.TJ.chipMasterKey'],
    ['garbage public key', (o: any) => ({ ...o, regions: { ...o.regions, HE: { ...o.regions.HE, qrPublicKey: 'nope' } } }), 'trust.json.regions.HE.qrPublicKey'],
  ])('names the field of an error: %s', (_name, mutate, field) => {
    const o = JSON.parse(serializeKeysFile(keys));
    const m = mutate(o);
    const text = typeof m === 'string' ? m : JSON.stringify(m);
    try {
      parseKeyFile(text, 'trust.json');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(KeyFileError);
      expect((err as KeyFileError).field).toBe(field);
    }
  });

  it('refuses a public key that does not belong to the private key', () => {
    const other = generateTestKeys({ seed: 'other' });
    const o = JSON.parse(serializeKeysFile(keys));
    o.regions.BJ.qrPublicKey = JSON.parse(serializeKeysFile(other)).regions.BJ.qrPublicKey;
    expect(() => parseKeyFile(JSON.stringify(o), 'k')).toThrow('k.regions.BJ.qrPublicKey: does not belong to qrPrivateKey');
  });
});

describe('keys - trust store', () => {
  const keys = generateTestKeys({ seed: 'trust', version: 'v1' });

  it('merges per-region files', () => {
    const all = JSON.parse(serializeKeysFile(withoutPrivateKeys(keys)));
    const files = (['BJ', 'TJ', 'HE'] as const).map((r) => ({
      name: `${r}.json`,
      text: JSON.stringify({ ...all, version: `v-${r}`, regions: { [r]: all.regions[r] } }),
    }));
    const trust = loadTrustStore(files);
    expect(Object.keys(trust.chipMasterKeys).sort()).toEqual(['BJ', 'HE', 'TJ']);
    expect(Object.keys(trust.qrPublicKeys).sort()).toEqual(['BJ', 'HE', 'TJ']);
    expect(trust.version).toBe('v-BJ+v-HE+v-TJ');
    expect(trust.mac).toBe(hmacSha256Mac);
    expect(trust.qrSigner).toBe(ed25519Signer);
  });

  it('refuses two files that give different keys for one region', () => {
    const a = serializeKeysFile(keys);
    const b = serializeKeysFile(generateTestKeys({ seed: 'other', version: 'v2' }));
    expect(() => loadTrustStore([{ name: 'a', text: a }, { name: 'b', text: b }])).toThrow(/b\.regions\.BJ\.chipMasterKey: contradicts another file/);
  });

  it('resolves algorithms by id, including a pluggable one', () => {
    const o = JSON.parse(serializeKeysFile(keys));
    o.macAlgorithm = 'sm4-cbc-mac';
    expect(() => loadTrustStore([{ name: 'k', text: JSON.stringify(o) }])).toThrow('k.macAlgorithm: unknown algorithm "sm4-cbc-mac"');
    const fake: MacAlgorithm = { id: 'sm4-cbc-mac', deriveCardKey: () => new Uint8Array(16), mac: () => new Uint8Array(8) };
    expect(loadTrustStore([{ name: 'k', text: JSON.stringify(o) }], { macAlgorithms: [fake] }).mac).toBe(fake);
  });
});
