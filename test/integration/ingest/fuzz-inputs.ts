/**
 * Generated inputs for the ingest fuzz test: valid encoded taps and mutations of them, from a
 * seeded generator (the same seed gives the same inputs). Two families:
 * - byte mutations, sent as StreamTaps frames: bit flips, truncations, fields inserted at field
 *   boundaries (any number, any wire type, lengths that lie), huge varints, spliced and
 *   duplicated segments, random bytes;
 * - value mutations, which keep a tap readable, sent in UploadBatch: boundary values of every
 *   field, unknown enum values, missing fields, unknown fields, device times far off, venues of
 *   other regions or none, other terminal ids; a few byte mutations among them (about one tap
 *   in 1,250) make their whole batch unreadable.
 */
import { rng } from '../../../src/demo/generator.js';
import { MAX_DEVICE_TIME, MIN_DEVICE_TIME } from '../../../src/domain/limits.js';
import { Direction, RiderCategory, Scene, Tap } from '../../../src/gen/tapflow/v1/ingest.js';

/** A protobuf varint of any value (two's complement below 0), or a longer one when `pad` > its length. */
export function varint(n: bigint, pad = 0): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n || out.length + 1 < pad) b |= 0x80;
    out.push(b);
  } while (v > 0n || out.length < pad);
  return out;
}

/** A field with its tag. */
function field(no: number, wt: number, payload: number[]): number[] {
  return [...varint(BigInt(no * 8 + wt)), ...payload];
}
const lenField = (no: number, bytes: Uint8Array | number[]) => field(no, 2, [...varint(BigInt(bytes.length)), ...bytes]);

/** Top-level field spans of a valid encoding: [start, end) and field number. */
function spans(b: Uint8Array): { start: number; end: number; no: number }[] {
  const out: { start: number; end: number; no: number }[] = [];
  let pos = 0;
  const read = () => {
    let v = 0;
    for (let mul = 1; ; mul *= 128) {
      const byte = b[pos++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
    }
  };
  while (pos < b.length) {
    const start = pos;
    const tag = read();
    const wt = tag & 7;
    if (wt === 0) read();
    else if (wt === 1) pos += 8;
    else if (wt === 5) pos += 4;
    else {
      const n = read(); // not `pos += read()`: that adds to pos as it was before the length
      pos += n;
    }
    out.push({ start, end: pos, no: tag >>> 3 });
  }
  return out;
}

export type ByteMutation = 'valid' | 'bitflip' | 'truncate' | 'insert-field' | 'huge-varint' | 'splice' | 'length-lie' | 'random-bytes';
export type ValueMutation = 'valid' | 'boundary' | 'unknown-enum' | 'missing-field' | 'unknown-field' | 'device-time' | 'venue' | 'terminal-id';

export interface FuzzInput {
  bytes: Uint8Array;
  kind: ByteMutation | ValueMutation;
}

const BJ_VENUES = ['bj-subway:西直门', 'bj-subway:国贸', 'bj-subway:王府井', 'bj-bus:1:0', 'museum:BJ:capital-museum'];
const OTHER_VENUES = ['tj-metro:刘园', 'sjz-metro:长城桥', 'museum:HE:somewhere', 'nowhere', 'x:y:z'];
const DAY = 86_400_000;

export class FuzzInputs {
  private readonly random: () => number;
  private seq = 0;
  private readonly now: number;

  constructor(seed: number, now = Date.now()) {
    this.random = rng(seed);
    this.now = now;
  }

  private int(n: number): number {
    return Math.floor(this.random() * n);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  private bytesOf(n: number): number[] {
    return Array.from({ length: n }, () => this.int(256));
  }

  /** A valid tap of `terminal` with a new seq: chip or QR, a Beijing venue, a recent device time. */
  validTap(terminal: string): Tap {
    const seq = ++this.seq;
    const card = `11${String(80_000_000 + seq).padStart(10, '0')}`;
    const qr = this.random() < 0.3;
    const body = Buffer.from(JSON.stringify({ c: card, r: 'BJ', iat: this.now - 1000, exp: this.now + 59_000, n: `n${seq}`, l: 2 })).toString('base64url');
    return {
      terminalId: this.random() < 0.2 ? '' : terminal,
      seq,
      deviceTime: this.now - this.int(600_000),
      scene: Scene.RAIL,
      venueId: this.pick(BJ_VENUES),
      direction: this.pick([Direction.ENTRY, Direction.EXIT]),
      card: qr ? { $case: 'qr', value: { payload: `TFQR1.${body}.${Buffer.alloc(64, seq & 0xff).toString('base64url')}` } } : { $case: 'chip', value: { cardNumber: card, counter: this.int(65_536), mac: Buffer.from(this.bytesOf(8)) } },
      amountFen: this.random() < 0.1 ? this.int(1000) : 0,
      riderCategory: this.pick([RiderCategory.ADULT, RiderCategory.STUDENT, RiderCategory.SENIOR, RiderCategory.RIDER_CATEGORY_UNSPECIFIED]),
    };
  }

  /** A StreamTaps frame: a valid tap of `terminal`, or a byte mutation of one. */
  frame(terminal: string): FuzzInput {
    const b = Buffer.from(Tap.encode(this.validTap(terminal)).finish());
    const r = this.random();
    if (r < 0.1) return { bytes: b, kind: 'valid' };
    if (r < 0.35) return { bytes: this.bitflip(b), kind: 'bitflip' };
    if (r < 0.47) return { bytes: b.subarray(0, this.int(b.length)), kind: 'truncate' };
    if (r < 0.67) return { bytes: this.insertField(b), kind: 'insert-field' };
    if (r < 0.8) return { bytes: this.hugeVarint(b), kind: 'huge-varint' };
    if (r < 0.87) return { bytes: this.splice(b, Buffer.from(Tap.encode(this.validTap(terminal)).finish())), kind: 'splice' };
    if (r < 0.96) return { bytes: this.lengthLie(b), kind: 'length-lie' };
    return { bytes: Buffer.from(this.bytesOf(this.int(300))), kind: 'random-bytes' };
  }

  /** A tap for an UploadBatch: a value mutation (still readable), or now and then a byte mutation. */
  batchTap(terminal: string): FuzzInput {
    const t = this.validTap(terminal);
    const b = Buffer.from(Tap.encode(t).finish());
    const r = this.random();
    if (r < 0.0008) {
      const m = this.frame(terminal);
      return m.kind === 'valid' ? { bytes: this.bitflip(b), kind: 'bitflip' } : m;
    }
    if (r < 0.2) return { bytes: b, kind: 'valid' };
    if (r < 0.4) return { bytes: this.append(b, this.boundaryValue()), kind: 'boundary' };
    if (r < 0.52) return { bytes: this.append(b, field(this.pick([4, 6, 10]), 0, varint(this.pick([4n, 7n, 99n, 2n ** 31n - 1n, -1n, -(2n ** 31n)])))), kind: 'unknown-enum' };
    if (r < 0.64) return { bytes: this.dropField(b), kind: 'missing-field' };
    if (r < 0.72) return { bytes: this.append(b, this.unknownField()), kind: 'unknown-field' };
    if (r < 0.86) {
      const at = this.pick([this.now - 31 * DAY, this.now - 29 * DAY, this.now - 2 * DAY, this.now + 2 * DAY, this.now - 3650 * DAY, this.now + 3650 * DAY, MIN_DEVICE_TIME, MAX_DEVICE_TIME]);
      return { bytes: this.append(b, field(3, 0, varint(BigInt(at)))), kind: 'device-time' };
    }
    if (r < 0.96) return { bytes: this.append(b, lenField(5, Buffer.from(this.pick([...OTHER_VENUES, ...BJ_VENUES])))), kind: 'venue' };
    return { bytes: this.append(b, lenField(1, Buffer.from(this.pick(['BJ-FUZZ-OTHER', 'TJ-RAIL-0001', 'x y', '', 'BJ-' + 'x'.repeat(70)])))), kind: 'terminal-id' };
  }

  private append(b: Uint8Array, tail: number[]): Buffer {
    return Buffer.concat([b, Buffer.from(tail)]);
  }

  private bitflip(b: Uint8Array): Buffer {
    const out = Buffer.from(b);
    for (let i = 1 + this.int(8); i > 0; i--) {
      const at = this.int(out.length);
      out[at] = out[at]! ^ (1 << this.int(8));
    }
    return out;
  }

  /** A value at a boundary of one of the tap's fields (a later field overrides an earlier one). */
  private boundaryValue(): number[] {
    const pickBig = (xs: bigint[]) => this.pick(xs);
    switch (this.int(5)) {
      case 0:
        return field(2, 0, varint(pickBig([0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n])));
      case 1:
        return field(3, 0, varint(pickBig([0n, BigInt(MIN_DEVICE_TIME - 1), BigInt(MAX_DEVICE_TIME + 1), -1n, 2n ** 63n, 2n ** 64n - 1n])));
      case 2:
        return field(9, 0, varint(pickBig([-1n, 0n, 1_000_000n, 1_000_001n, 2n ** 53n, 2n ** 63n, -(2n ** 63n)])));
      case 3:
        // A chip with a counter at or beyond uint32 and a MAC of the wrong size.
        return lenField(7, [...lenField(1, Buffer.from('110000000001')), ...field(2, 0, varint(pickBig([0n, 2n ** 32n - 1n]))), ...lenField(3, this.bytesOf(this.pick([0, 7, 8, 9, 64])))]);
      default:
        // A QR payload at and beyond its length bound, or not base64url.
        return lenField(8, lenField(1, Buffer.from(this.pick(['TFQR1.e30.AA', `TFQR1.${'A'.repeat(2040)}.AA`, `TFQR1.${'A'.repeat(2050)}.AA`, 'TFQR1.国.AA', '']))));
    }
  }

  private unknownField(): number[] {
    const no = this.pick([11, 15, 16, 100, 2047, 536_870_911]);
    switch (this.int(4)) {
      case 0:
        return field(no, 0, varint(BigInt(this.int(1e9))));
      case 1:
        return field(no, 1, this.bytesOf(8));
      case 2:
        return lenField(no, this.bytesOf(this.int(40)));
      default:
        return field(no, 5, this.bytesOf(4));
    }
  }

  private dropField(b: Uint8Array): Buffer {
    const s = spans(b);
    const drop = this.pick(s);
    return Buffer.concat([b.subarray(0, drop.start), b.subarray(drop.end)]);
  }

  /** A random field at a field boundary: any number, any wire type (3, 4, 6, 7 are not valid), any payload. */
  private insertField(b: Uint8Array): Buffer {
    const bounds = [0, ...spans(b).map((x) => x.end)];
    const at = this.pick(bounds);
    const no = this.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 19_000, 536_870_911]);
    const wt = this.int(8);
    let payload: number[];
    if (wt === 0) payload = varint(this.pick([0n, 1n, 2n ** 32n, 2n ** 63n, -1n]), this.random() < 0.2 ? 10 : 0);
    else if (wt === 1) payload = this.bytesOf(8);
    else if (wt === 2) payload = [...varint(BigInt(this.int(20))), ...this.bytesOf(this.int(20))];
    else if (wt === 5) payload = this.bytesOf(4);
    else payload = this.bytesOf(this.int(6));
    return Buffer.concat([b.subarray(0, at), Buffer.from(field(no, wt, payload)), b.subarray(at)]);
  }

  /** A varint field's value replaced by a 10-byte, 11-byte or overflowing varint. */
  private hugeVarint(b: Uint8Array): Buffer {
    const no = this.pick([2, 3, 4, 6, 9, 10]);
    const kind = this.int(4);
    const v =
      kind === 0
        ? varint(BigInt(this.int(100)), 10) // a small value padded to 10 bytes
        : kind === 1
          ? [...Array(10).fill(0xff), 0x01] // 11 bytes
          : kind === 2
            ? [0x81, ...Array(8).fill(0x80), 0x7f] // 10 bytes, beyond 2^64 − 1
            : varint(-BigInt(1 + this.int(1e6))); // negative
    return this.append(b, field(no, 0, v));
  }

  private splice(a: Uint8Array, b: Uint8Array): Buffer {
    const x = this.int(a.length);
    const y = this.int(b.length);
    return this.random() < 0.5 ? Buffer.concat([a.subarray(0, x), b.subarray(y)]) : Buffer.concat([a, a.subarray(x)]);
  }

  /** A length-delimited field whose length byte says something else. */
  private lengthLie(b: Uint8Array): Buffer {
    const out = Buffer.from(b);
    const lens = spans(b).filter((s) => [1, 5, 7, 8].includes(s.no));
    const s = this.pick(lens);
    const at = s.start + 1; // tags of fields 1-15 are one byte; lengths below 128 are one byte
    out[at] = this.pick([0, 1, out[at]! + 1, out[at]! - 1, 127, 255]) & 0xff;
    return out;
  }
}
