/**
 * The largest message ingest accepts (src/domain/limits.ts): computed from the contract's bounds,
 * it is exactly what the largest legal tap and a full batch of them encode to — checked here with
 * the generated encoders — and the largest claim fits under its bound.
 */
import { readFileSync } from 'node:fs';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import {
  ID_NUMBER_LENGTH,
  MAX_ACCOUNT_BALANCE_FEN,
  MAX_CARD_NUMBER_LENGTH,
  MAX_CLAIM_BYTES,
  MAX_CLAIM_ITEM_FEN,
  MAX_CLAIM_ITEMS,
  MAX_CLAIM_TOTAL_FEN,
  MAX_DEVICE_TIME,
  MAX_ID_LENGTH,
  MAX_ITEM_TEXT_LENGTH,
  MAX_TAP_BYTES,
  MAX_TERMINAL_ID_LENGTH,
  maxBatchBytes,
  maxMessageBytes,
} from '../../../src/domain/limits.js';
import { CARD_NUMBER_PATTERN } from '../../../src/domain/card/token.js';
import { TERMINAL_ID_PATTERN } from '../../../src/ingest/terminals.js';
import { checkClaim, checkTap, ID_NUMBER_PATTERN, wireClaimOf, wireTapOf } from '../../../src/ingest/shape.js';
import * as pb from '../../../src/gen/tapflow/v1/ingest.js';
import { LONG_SEQS, LONGEST_TERMINAL_ID, largestBatch, largestTap } from '../../support/largest-tap.js';

const encoded = (t: pb.Tap) => pb.Tap.encode(t).finish().length;

describe('message size - the largest tap', () => {
  it('passes the shape checks and encodes to exactly MAX_TAP_BYTES (2,533)', () => {
    const t = largestTap();
    const r = checkTap(wireTapOf(t), LONGEST_TERMINAL_ID);
    expect(r.ok ? 'ok' : r.error).toBe('ok');
    expect(MAX_TAP_BYTES).toBe(2533);
    expect(encoded(t)).toBe(MAX_TAP_BYTES);
  });

  it('is as long with a device time of now and seqs from 2^49', () => {
    expect(encoded(largestTap({ deviceTime: Date.now(), seq: LONG_SEQS }))).toBe(MAX_TAP_BYTES);
  });

  it('is longer than any chip tap at its limits', () => {
    const chip = { ...largestTap(), card: { $case: 'chip' as const, value: { cardNumber: `11${'9'.repeat(MAX_CARD_NUMBER_LENGTH - 2)}`, counter: 0xffff_ffff, mac: Buffer.alloc(8, 0xff) } } };
    expect(checkTap(wireTapOf(chip), LONGEST_TERMINAL_ID).ok).toBe(true);
    expect(encoded(chip)).toBeLessThan(MAX_TAP_BYTES);
  });

  it('counts the bounds the patterns set: terminal id 64, card number 18, ID number 18', () => {
    expect([TERMINAL_ID_PATTERN.test('a'.repeat(MAX_TERMINAL_ID_LENGTH)), TERMINAL_ID_PATTERN.test('a'.repeat(MAX_TERMINAL_ID_LENGTH + 1))]).toEqual([true, false]);
    expect([CARD_NUMBER_PATTERN.test(`11${'9'.repeat(MAX_CARD_NUMBER_LENGTH - 2)}`), CARD_NUMBER_PATTERN.test(`11${'9'.repeat(MAX_CARD_NUMBER_LENGTH - 1)}`)]).toEqual([true, false]);
    expect([ID_NUMBER_PATTERN.test('1'.repeat(ID_NUMBER_LENGTH)), ID_NUMBER_PATTERN.test('1'.repeat(ID_NUMBER_LENGTH + 1))]).toEqual([true, false]);
  });

  it('assumes what holds: field numbers below 16 and enum values below 128 (one byte each)', () => {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync('src/gen/tapflow.binpb')));
    for (const name of ['Tap', 'ChipCard', 'QrCode', 'TapBatch', 'MedicalClaim', 'ClaimItem']) {
      for (const f of registry.getMessage(`tapflow.v1.${name}`)!.fields) expect(f.number, `${name}.${f.name}`).toBeLessThan(16);
    }
    for (const e of [pb.Scene, pb.Direction, pb.RiderCategory, pb.Region, pb.InstitutionLevel, pb.Treatment, pb.CatalogueClass]) {
      for (const v of Object.values(e)) if (typeof v === 'number') expect(v).toBeLessThan(128);
    }
  });
});

describe('message size - the largest batch and message', () => {
  it.each([1, 7, 5000])('a batch of %i largest taps encodes to exactly maxBatchBytes', (n) => {
    expect(largestBatch(n).length).toBe(maxBatchBytes(n));
  });

  it('sets the limit from TAPFLOW_BATCH_MAX_TAPS: 12,680,066 bytes for 5,000, the claim bound for small batches', () => {
    expect(maxMessageBytes(5000)).toBe(12_680_066);
    expect(maxMessageBytes(10_000)).toBe(25_360_066);
    expect(maxMessageBytes(1)).toBe(MAX_CLAIM_BYTES);
    expect(maxMessageBytes(5000)).toBeLessThan(16 * 1024 * 1024);
  });

  it('the largest legal claim fits MAX_CLAIM_BYTES, and the bound is what 1,000 items at their limits encode to', () => {
    const text = '国'.repeat(MAX_ITEM_TEXT_LENGTH);
    const id = '国'.repeat(MAX_ID_LENGTH);
    const claim = (amountFen: (i: number) => number): pb.MedicalClaim => ({
      claimId: id,
      terminalId: LONGEST_TERMINAL_ID,
      institutionId: id,
      institutionLevel: pb.InstitutionLevel.TERTIARY,
      treatment: pb.Treatment.INPATIENT,
      card: largestTap().card,
      idNumber: '11010519800101001X',
      insuredRegion: pb.Region.HE,
      deviceTime: MAX_DEVICE_TIME,
      items: Array.from({ length: MAX_CLAIM_ITEMS }, (_, i) => ({ code: text, name: text, catalogueClass: pb.CatalogueClass.SELF_PAY, amountFen: amountFen(i) })),
      reversesClaimId: id,
      personalAccountBalanceFen: MAX_ACCOUNT_BALANCE_FEN,
    });
    // Legal: the items add up to the claim's bound.
    const legal = claim((i) => (i < MAX_CLAIM_TOTAL_FEN / MAX_CLAIM_ITEM_FEN ? MAX_CLAIM_ITEM_FEN : 0));
    const r = checkClaim(wireClaimOf(legal), { id: LONGEST_TERMINAL_ID, region: 'HE' }, { tokenKey: new Uint8Array(32), partitions: 4, ingestTime: 0 });
    expect(r.ok ? 'ok' : r.error).toBe('ok');
    expect(pb.MedicalClaim.encode(legal).finish().length).toBeLessThanOrEqual(MAX_CLAIM_BYTES);
    expect(pb.MedicalClaim.encode(claim(() => MAX_CLAIM_ITEM_FEN)).finish().length).toBe(MAX_CLAIM_BYTES);
  });
});
