/**
 * A mixed script of taps for tests that stream the same taps through several runs (the replica
 * tests, the fault suite): ~`taps` taps of 60 cards from the demo TapGenerator with a fixed seed
 * (chip and QR, metro journeys with entry and exit, buses, culture venues, hotlisted cards,
 * replayed QR codes, impossible travel, malformed taps), plus scripted chip counter replays,
 * counters going backwards, passbacks, re-sent (terminal, seq) duplicates and offline batches out
 * of device-time order. Device times start at `base` (half an hour ago keeps QR codes valid and
 * no journey at its time limit while a test runs).
 */
import { join } from 'node:path';
import { TapGenerator } from '../../src/demo/generator.js';
import { loadVenueDirectory } from '../../src/domain/network/index.js';
import type { KeysFile } from '../../src/domain/card/keys.js';
import type { HotlistReason } from '../../src/domain/validate/index.js';
import { REPO_ROOT } from './processes.js';
import { TapScript, tapsOf, type ScriptedTap, type ScriptStep } from './scenario.js';

export interface MixedScript {
  steps: ScriptStep[];
  /** Cards to put on the hotlist before the first tap. */
  hotlist: { cardNumber: string; reason: HotlistReason }[];
}

/** The card number a generated tap names. */
export function cardOf(t: ScriptedTap['tap']): string {
  if (t.card?.$case === 'chip') return t.card.value.cardNumber;
  if (t.card?.$case === 'qr') return JSON.parse(Buffer.from(t.card.value.payload.split('.')[1]!, 'base64url').toString('utf8')).c as string;
  throw new Error('tap without card');
}

/**
 * The replica script: generated taps of 60 cards with scripted edge cases mixed in, at least
 * `taps` of them (a few more when the last edge case has several).
 */
export function buildMixedScript(keys: KeysFile, base: number, o: { seed: number; taps: number }): MixedScript {
  const gen = new TapGenerator({
    venues: loadVenueDirectory(join(REPO_ROOT, 'data')),
    keys,
    cards: 60,
    terminalsPerGroup: 3,
    qrShare: 0.3,
    seed: o.seed,
    bad: { hotlisted: 0.03, unlistedVenue: 0.02, malformed: 0.01, qrReplay: 0.04, impossibleTravel: 0.03 },
  });
  const hot = gen.pickHotlisted(3);
  const s = new TapScript(keys);
  const out: ScriptStep[] = [];
  const tap = (t: ScriptedTap) => out.push({ kind: 'tap', tap: t });
  let t = base;
  let extra = 0;
  while (tapsOf(out).length < o.taps) {
    t += 700;
    const e = gen.next(t);
    if (e.kind === 'tap') tap({ terminalId: e.terminalId, tap: e.tap, eventId: `${e.terminalId}:${e.tap.seq}`, cardNumber: cardOf(e.tap) });
    // Every ~30 generated taps, one scripted edge case on a card of its own.
    if (e.kind === 'tap' && tapsOf(out).length % 30 === 0) {
      const k = extra++;
      const card = `1100900${String(k).padStart(5, '0')}`;
      const gate = `BJ-RAIL-X${String(k).padStart(2, '0')}`;
      const f = { card, terminal: gate, scene: 'RAIL' as const, at: t };
      switch (k % 5) {
        case 0: {
          // A replayed chip transaction (same counter, MAC and time under a new seq), then a re-sent seq.
          const a = s.chip({ ...f, venue: 'bj-subway:西直门', direction: 'ENTRY' });
          tap(a);
          tap(s.again(a));
          tap(s.again(a, { sameSeq: true }));
          break;
        }
        case 1: {
          // Passback: entering the same station again a minute later without leaving.
          tap(s.chip({ ...f, venue: 'bj-subway:国贸', direction: 'ENTRY' }));
          tap(s.qr({ ...f, venue: 'bj-subway:国贸', direction: 'ENTRY', at: t + 60_000 }));
          break;
        }
        case 2: {
          // A cloned card: a lower counter at a later device time; then a journey that closes.
          tap(s.chip({ ...f, venue: 'bj-subway:东单', direction: 'ENTRY' }, { counter: 7 }));
          tap(s.chip({ ...f, venue: 'bj-subway:东单', direction: 'EXIT', at: t + 30_000 }, { counter: 5 }));
          tap(s.chip({ ...f, venue: 'bj-subway:王府井', direction: 'EXIT', at: t + 240_000 }, { counter: 8 }));
          break;
        }
        case 3: {
          // An offline upload from a Beijing bus, out of device-time order: tap-on and tap-off of two cards.
          const bus = `BJ-BUS-X${String(k).padStart(2, '0')}`;
          const other = `1100910${String(k).padStart(5, '0')}`;
          const on = s.chip({ card, terminal: bus, venue: 'bj-bus:1:0', scene: 'BUS', direction: 'ENTRY', at: t - 900_000 });
          const off = s.chip({ card, terminal: bus, venue: 'bj-bus:1:3', scene: 'BUS', direction: 'EXIT', at: t - 600_000 });
          const on2 = s.qr({ card: other, terminal: bus, venue: 'bj-bus:1:1', scene: 'BUS', direction: 'ENTRY', at: t - 800_000 });
          const off2 = s.chip({ card: other, terminal: bus, venue: 'bj-bus:1:2', scene: 'BUS', direction: 'EXIT', at: t - 700_000, rider: 'STUDENT' });
          out.push({ kind: 'batch', terminalId: bus, taps: [off, on2, on, off2] });
          break;
        }
        case 4: {
          // A level-1 code used to pay, then a proper journey with QR in and chip out.
          tap(s.qr({ ...f, venue: 'bj-subway:西单', direction: 'ENTRY' }, { level: 1 }));
          tap(s.qr({ ...f, venue: 'bj-subway:西单', direction: 'ENTRY', at: t + 20_000 }));
          tap(s.chip({ ...f, venue: 'bj-subway:北京南站', direction: 'EXIT', at: t + 1_500_000 }));
          break;
        }
      }
    }
  }
  return { steps: out, hotlist: hot.map((c) => ({ cardNumber: c.number, reason: 'LOST' as const })) };
}

