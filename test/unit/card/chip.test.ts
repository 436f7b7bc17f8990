import { describe, expect, it } from 'vitest';
import { chipMacInput, computeChipMac, verifyChipMac, type ChipMacFields } from '../../../src/domain/card/chip.js';
import { generateTestKeys, hmacSha256Mac } from '../../../src/domain/card/keys.js';

const keys = generateTestKeys({ seed: 'chip' });
const master = keys.regions.BJ!.chipMasterKey!;
const fields: ChipMacFields = {
  cardNumber: '110000000001',
  counter: 258,
  terminalId: 'G-01',
  deviceTime: 1_772_413_200_000,
  amountFen: 300,
  venueId: 'bj-subway:西直门',
};

describe('chip - MAC input layout', () => {
  it('lays the fields out as documented', () => {
    const b = Buffer.from(chipMacInput(fields));
    let o = 0;
    expect(b.subarray(o, (o += 4)).toString('ascii')).toBe('TFC1');
    expect(b[o++]).toBe(12);
    expect(b.subarray(o, (o += 12)).toString('ascii')).toBe('110000000001');
    expect(b.readUInt32BE(o)).toBe(258);
    o += 4;
    expect(b.readUInt16BE(o)).toBe(4);
    o += 2;
    expect(b.subarray(o, (o += 4)).toString('utf8')).toBe('G-01');
    expect(b.readBigInt64BE(o)).toBe(1_772_413_200_000n);
    o += 8;
    expect(b.readBigInt64BE(o)).toBe(300n);
    o += 8;
    const venueLen = Buffer.byteLength('bj-subway:西直门');
    expect(b.readUInt16BE(o)).toBe(venueLen);
    o += 2;
    expect(b.subarray(o).toString('utf8')).toBe('bj-subway:西直门');
    expect(o + venueLen).toBe(b.length);
  });

  it('refuses counters outside uint32 and fractional amounts', () => {
    expect(() => chipMacInput({ ...fields, counter: -1 })).toThrow(RangeError);
    expect(() => chipMacInput({ ...fields, counter: 2 ** 32 })).toThrow(RangeError);
    expect(() => chipMacInput({ ...fields, amountFen: 1.5 })).toThrow(RangeError);
    expect(chipMacInput({ ...fields, counter: 2 ** 32 - 1 })).toBeInstanceOf(Uint8Array);
  });
});

describe('chip - MAC', () => {
  const mac = computeChipMac(hmacSha256Mac, master, fields);

  it('is 8 bytes and verifies', () => {
    expect(mac).toHaveLength(8);
    expect(verifyChipMac(hmacSha256Mac, master, fields, mac)).toBe(true);
  });

  it.each<[string, Partial<ChipMacFields>]>([
    ['card number', { cardNumber: '110000000002' }],
    ['counter', { counter: 259 }],
    ['terminal', { terminalId: 'G-02' }],
    ['device time', { deviceTime: fields.deviceTime + 1 }],
    ['amount', { amountFen: 301 }],
    ['venue', { venueId: 'bj-subway:国贸' }],
  ])('fails when the %s is changed', (_name, change) => {
    expect(verifyChipMac(hmacSha256Mac, master, { ...fields, ...change }, mac)).toBe(false);
  });

  it('fails with a flipped bit, a truncated MAC, or another region master key', () => {
    const flipped = Buffer.from(mac);
    flipped[3]! ^= 0x01;
    expect(verifyChipMac(hmacSha256Mac, master, fields, flipped)).toBe(false);
    expect(verifyChipMac(hmacSha256Mac, master, fields, mac.subarray(0, 7))).toBe(false);
    expect(verifyChipMac(hmacSha256Mac, keys.regions.TJ!.chipMasterKey!, fields, mac)).toBe(false);
  });

  it('derives a different card key for every card number', () => {
    const a = hmacSha256Mac.deriveCardKey(master, '110000000001');
    const b = hmacSha256Mac.deriveCardKey(master, '110000000002');
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });

  it('returns false rather than throwing on out-of-range fields', () => {
    expect(verifyChipMac(hmacSha256Mac, master, { ...fields, counter: -5 }, mac)).toBe(false);
  });
});
