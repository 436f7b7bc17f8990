import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatToken, parsePreviousKeys, parseToken, tokenKeySet, tokenUnder, tokensOf, tokenVersion } from '../../../src/domain/card/token-keys.js';
import { partitionOf, tokenize } from '../../../src/domain/card/token.js';
import { localKeys, retireDevTokenKey, rotateDevTokenKey, tokenKeysOf } from '../../../src/runtime/keys.js';

const K1 = Buffer.alloc(32, 1);
const K2 = Buffer.alloc(32, 2);
const K3 = Buffer.alloc(32, 3);
const CARD = '110100000000001';

describe('token versions', () => {
  it('version 1 tokens are the bare MAC, later versions k<N>.<MAC>, and parse back', () => {
    const mac = tokenize(K1, 'card', CARD);
    expect(formatToken(1, mac)).toBe(mac);
    expect(formatToken(2, mac)).toBe(`k2.${mac}`);
    expect(parseToken(mac)).toEqual({ version: 1, mac });
    expect(parseToken(`k12.${mac}`)).toEqual({ version: 12, mac });
    expect(parseToken(`k1.${mac}`)).toEqual({ version: 1, mac });
    for (const bad of ['', mac.slice(1), `k0.${mac}`, `k2${mac}`, `k2.${mac.toUpperCase()}`, `x2.${mac}`]) expect(parseToken(bad)).toBeUndefined();
  });

  it('reads the version of state keys: card tokens, person keys, not checkpoint marks', () => {
    const mac = tokenize(K1, 'card', CARD);
    expect(tokenVersion(mac)).toBe(1);
    expect(tokenVersion(`k3.${mac}`)).toBe(3);
    expect(tokenVersion(`person.${mac}`)).toBe(1);
    expect(tokenVersion(`person.k2.${mac}`)).toBe(2);
    expect(tokenVersion('_ckpt.3')).toBeUndefined();
    expect(tokenVersion('_keys.0')).toBeUndefined();
    expect(tokenVersion('w' + 'a'.repeat(40))).toBeUndefined();
  });

  it('without rotation a card has one token, exactly as before versions existed, and today\'s partition', () => {
    const keys = tokenKeySet({ version: 1, key: K1 }, []);
    const t = tokensOf(keys, 'card', CARD, 16);
    expect(t.token).toBe(tokenize(K1, 'card', CARD));
    expect(t.previous).toEqual([]);
    expect(t.partition).toBe(partitionOf(tokenize(K1, 'card', CARD), 16));
  });

  it('during an overlap: the current token, the previous ones newest first, and the partition of version 1', () => {
    const keys = tokenKeySet({ version: 3, key: K3 }, [{ version: 1, key: K1 }, { version: 2, key: K2 }]);
    const t = tokensOf(keys, 'person', '110105197003030033', 8);
    expect(t.token).toBe(`k3.${tokenize(K3, 'person', '110105197003030033')}`);
    expect(t.previous).toEqual([`k2.${tokenize(K2, 'person', '110105197003030033')}`, tokenize(K1, 'person', '110105197003030033')]);
    expect(t.partition).toBe(partitionOf(tokenize(K1, 'person', '110105197003030033'), 8));
    expect(tokenUnder({ version: 2, key: K2 }, 'person', '110105197003030033')).toBe(t.previous[0]);
  });

  it('after version 1 is retired the partition still comes from its key (TAPFLOW_PARTITION_KEY)', () => {
    const keys = tokenKeySet({ version: 2, key: K2 }, [], K1);
    for (const card of [CARD, '120000000000009', '13ABCDEFG1']) {
      const t = tokensOf(keys, 'card', card, 16);
      expect(t.partition).toBe(partitionOf(tokenize(K1, 'card', card), 16));
      expect(t.token.startsWith('k2.')).toBe(true);
    }
  });

  it('refuses unsound key sets, naming the problem', () => {
    expect(() => tokenKeySet({ version: 2, key: K2 }, [])).toThrow(/TAPFLOW_PARTITION_KEY/);
    expect(() => tokenKeySet({ version: 2, key: K2 }, [{ version: 2, key: K1 }])).toThrow(/not older than the current version 2/);
    expect(() => tokenKeySet({ version: 2, key: K2 }, [{ version: 1, key: K2 }])).toThrow(/same key/);
    expect(() => tokenKeySet({ version: 2, key: K2 }, [{ version: 1, key: K1 }], K3)).toThrow(/differs from the version-1 token key/);
    expect(() => tokenKeySet({ version: 0, key: K1 }, [])).toThrow(/version must be 1 to 9999/);
    expect(() => tokenKeySet({ version: 1, key: Buffer.alloc(16) }, [])).toThrow(/expected 32 bytes/);
  });

  it('reads TAPFLOW_TOKEN_KEYS_PREVIOUS and names a bad entry', () => {
    expect(parsePreviousKeys(` 1:${K1.toString('hex')}, 2:${K2.toString('hex').toUpperCase()} `).map((k) => [k.version, Buffer.from(k.key).equals(k.version === 1 ? K1 : K2)])).toEqual([
      [1, true],
      [2, true],
    ]);
    expect(parsePreviousKeys('')).toEqual([]);
    expect(() => parsePreviousKeys(`1:${K1.toString('hex')},2:abc`)).toThrow(/TAPFLOW_TOKEN_KEYS_PREVIOUS: entry 2 must be <version>:<64 hex digits>/);
    expect(() => parsePreviousKeys(`1:${K1.toString('hex')},1:${K2.toString('hex')}`)).toThrow(/version 1 appears twice/);
    expect(() => parsePreviousKeys(`0:${K1.toString('hex')}`)).toThrow(/version must be 1 to 9999/);
  });
});

describe('configured and development token keys', () => {
  const dirs: string[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'tapflow-keys-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('configured: the current version, the previous ones, the partition key', () => {
    const keys = tokenKeysOf({ TAPFLOW_DATA_DIR: dir(), TAPFLOW_TOKEN_KEY: K2.toString('hex'), TAPFLOW_TOKEN_KEY_VERSION: 2, TAPFLOW_TOKEN_KEYS_PREVIOUS: `1:${K1.toString('hex')}` });
    expect(keys.current.version).toBe(2);
    expect(keys.previous.map((k) => k.version)).toEqual([1]);
    expect(Buffer.from(keys.partitionKey).equals(K1)).toBe(true);
    expect(() => tokenKeysOf({ TAPFLOW_DATA_DIR: dir(), TAPFLOW_TOKEN_KEY: K2.toString('hex'), TAPFLOW_TOKEN_KEY_VERSION: 2 })).toThrow(/set TAPFLOW_PARTITION_KEY to the version-1 key/);
    expect(() => tokenKeysOf({ TAPFLOW_DATA_DIR: dir(), TAPFLOW_TOKEN_KEY_VERSION: 2 })).toThrow(/need TAPFLOW_TOKEN_KEY/);
  });

  it('development: rotate adds a version with an overlap, retire ends it, the partition key stays version 1', () => {
    const d = dir();
    const before = localKeys({ TAPFLOW_DATA_DIR: d }).tokenKeys;
    expect(before.current.version).toBe(1);
    expect(rotateDevTokenKey(d)).toEqual({ current: 2, previous: [1] });
    const during = tokenKeysOf({ TAPFLOW_DATA_DIR: d });
    expect(during.current.version).toBe(2);
    expect(Buffer.from(during.previous[0]!.key).equals(Buffer.from(before.current.key))).toBe(true);
    expect(readFileSync(join(d, 'keys', 'token.v2.key'), 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(retireDevTokenKey(d, 1)).toEqual({ current: 2, previous: [] });
    const after = tokenKeysOf({ TAPFLOW_DATA_DIR: d });
    expect(after.previous).toEqual([]);
    expect(Buffer.from(after.partitionKey).equals(Buffer.from(before.current.key))).toBe(true);
    expect(tokensOf(after, 'card', CARD, 16).partition).toBe(tokensOf(before, 'card', CARD, 16).partition);
    expect(() => retireDevTokenKey(d, 2)).toThrow(/is the current one/);
    expect(rotateDevTokenKey(d)).toEqual({ current: 3, previous: [2] });
  });
});
