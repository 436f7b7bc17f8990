/**
 * The tape: everything the simulated fleet will send in a run, generated (and encoded) before
 * the measured window so that the simulator's own work — QR signatures, MACs, protobuf
 * encoding — does not compete with tapflow for the CPU while it is measured.
 *
 * Times on the tape (`at`) are ms from the start of the measured window; device times are
 * `baseMs + at` for live taps. The window starts at `baseMs` or, when the preparation ran late,
 * as soon as it can: latencies are measured from the intended wall-clock time (window start +
 * at), so a late start does not count against tapflow (the report gives the lag).
 */
import { MedicalClaim, Tap, TapBatch } from '../../src/gen/tapflow/v1/ingest.js';
import { intendedTimes, type Arrivals, type RateShape } from './schedule.js';
import type { FleetSimulator, SimClaim, SimTap, TerminalSpec } from './fleet.js';

/** A live tap on the tape. */
export interface LiveItem {
  at: number;
  sim: SimTap;
  /** The encoded Tap, written as is on the stream. */
  bytes: Buffer;
}

/** A batch of one terminal for UploadBatch. */
export interface BatchItem {
  /** Intended send time (ms from the window start); warm-up batches: 0. */
  at: number;
  terminalId: string;
  taps: SimTap[];
  bytes: Buffer;
  /** The terminal's batch number (0, 1, …): a terminal sends its batches in order. */
  index: number;
}

export interface ClaimItem {
  at: number;
  sim: SimClaim;
  bytes: Buffer;
}

export interface Tape {
  /** Epoch ms that `at` = 0 stands for (device times of live taps). */
  baseMs: number;
  live: LiveItem[];
  claims: ClaimItem[];
  /** Batches uploaded during the measured window (batch and burst profiles). */
  batches: BatchItem[];
  /** Warm entries, uploaded before the window (not measured). */
  warm: BatchItem[];
  /** Terminals of the tape. */
  terminals: TerminalSpec[];
  /** For a burst: terminals upload their batches one after another (closed loop per terminal). */
  sequentialPerTerminal: boolean;
}

/** Wraps protobuf output without copying. */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export function encodeTap(t: Tap): Buffer {
  return asBuffer(Tap.encode(t).finish());
}

/** Groups taps by terminal (in their order) into batches of at most `size`. */
export function toBatches(taps: SimTap[], size: number): BatchItem[] {
  const byTerminal = new Map<string, SimTap[]>();
  for (const t of taps) {
    let l = byTerminal.get(t.tap.terminalId);
    if (!l) byTerminal.set(t.tap.terminalId, (l = []));
    l.push(t);
  }
  const out: BatchItem[] = [];
  for (const [terminalId, list] of byTerminal) {
    list.sort((a, b) => a.tap.seq - b.tap.seq);
    for (let i = 0, k = 0; i < list.length; i += size, k++) {
      const chunk = list.slice(i, i + size);
      out.push({ at: 0, terminalId, taps: chunk, bytes: asBuffer(TapBatch.encode({ terminalId, taps: chunk.map((c) => c.tap) }).finish()), index: k });
    }
  }
  return out;
}

/**
 * Orders batches for a steady upload — round-robin over terminals, so that each terminal's
 * batches go in order and terminals take turns — and gives each the time at which the taps
 * before it have been offered at `tapsPerS` (every batch at 0 when undefined: a burst).
 */
export function scheduleBatches(batches: BatchItem[], tapsPerS?: number): BatchItem[] {
  const queues = new Map<string, BatchItem[]>();
  for (const b of batches) {
    let q = queues.get(b.terminalId);
    if (!q) queues.set(b.terminalId, (q = []));
    q.push(b);
  }
  const lists = [...queues.values()].map((q) => q.sort((a, b) => a.index - b.index));
  const out: BatchItem[] = [];
  for (let round = 0; out.length < batches.length; round++) for (const q of lists) if (q[round]) out.push(q[round]!);
  let taps = 0;
  for (const b of out) {
    b.at = tapsPerS ? (taps / tapsPerS) * 1000 : 0;
    taps += b.taps.length;
  }
  return out;
}

export interface LiveTapeOptions {
  shape: RateShape;
  durationS: number;
  arrivals: Arrivals;
  seed: number;
  baseMs: number;
  batchSize: number;
  /** Medical claims per live tap. */
  claimShare: number;
  runId: string;
  /** Called every 10,000 taps (progress of the generation). */
  onProgress?: (done: number, total: number) => void;
}

/** Generates a live tape: taps at the schedule's times, claims among them, warm entries. */
export function liveTape(sim: FleetSimulator, o: LiveTapeOptions): Tape {
  const times = intendedTimes({ shape: o.shape, durationS: o.durationS, arrivals: o.arrivals, seed: o.seed });
  const live: LiveItem[] = new Array(times.length);
  const claims: ClaimItem[] = [];
  let claimCredit = 0;
  for (let i = 0; i < times.length; i++) {
    const at = times[i]!;
    const sim1 = sim.liveTap(o.baseMs + at);
    live[i] = { at, sim: sim1, bytes: encodeTap(sim1.tap) };
    claimCredit += o.claimShare;
    if (claimCredit >= 1) {
      claimCredit -= 1;
      const c = sim.claim(o.baseMs + at, o.runId);
      if (c) claims.push({ at, sim: c, bytes: asBuffer(MedicalClaim.encode(c.claim).finish()) });
    }
    if (o.onProgress && (i + 1) % 10_000 === 0) o.onProgress(i + 1, times.length);
  }
  const warm = toBatches(sim.takeWarm(), o.batchSize);
  return { baseMs: o.baseMs, live, claims, batches: [], warm, terminals: [...sim.terminals.values()], sequentialPerTerminal: false };
}

export interface OfflineTapeOptions {
  /** Taps to upload. */
  count: number;
  /** Device times fall in [baseMs − windowMs, baseMs − 60 s]. */
  windowMs: number;
  baseMs: number;
  batchSize: number;
  /** Taps per second (steady upload), or undefined for a burst (everything due at once). */
  tapsPerS?: number;
  busOnly: boolean;
}

/** Generates an offline tape: batches of stored taps, steady (batch profile) or all at once. */
export function offlineTape(sim: FleetSimulator, o: OfflineTapeOptions): Tape {
  const taps = sim.offline({ count: o.count, fromMs: o.baseMs - o.windowMs, toMs: o.baseMs - 60_000, busOnly: o.busOnly });
  const batches = scheduleBatches(toBatches(taps, o.batchSize), o.tapsPerS);
  return { baseMs: o.baseMs, live: [], claims: [], batches, warm: [], terminals: [...sim.terminals.values()], sequentialPerTerminal: o.tapsPerS === undefined };
}

/**
 * At most `max` taps of a tape as terminals sent them (encoded Tap, whether from an upload), in
 * the order tapflow received them: warm-up uploads, live taps, batches (the work ceiling's input).
 */
export function tapsAsSent(t: Tape, max: number): { bytes: Uint8Array; offline: boolean }[] {
  const out: { bytes: Uint8Array; offline: boolean }[] = [];
  for (const b of t.warm) for (const s of b.taps) if (out.length < max) out.push({ bytes: encodeTap(s.tap), offline: true });
  for (const l of t.live) if (out.length < max) out.push({ bytes: l.bytes, offline: false });
  for (const b of t.batches) for (const s of b.taps) if (out.length < max) out.push({ bytes: encodeTap(s.tap), offline: true });
  return out;
}

/** Taps of a tape, in every phase (for the checks). */
export function allTaps(t: Tape): SimTap[] {
  return [...t.warm.flatMap((b) => b.taps), ...t.live.map((l) => l.sim), ...t.batches.flatMap((b) => b.taps)];
}
