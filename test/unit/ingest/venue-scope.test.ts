/**
 * Terminals bound to their venues (src/ingest/venue-scope.ts): a listed terminal serves its ids
 * and prefixes, in its region; a demo terminal the venues of its region, known ones only; the
 * region of a venue comes from the directory or its id. And every tap the demo fleet and the
 * bench fleet send, bad ones included, is one their demo-registry terminal serves.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateTestKeys } from '../../../src/domain/card/keys.js';
import { loadNetworks, loadVenueDirectory } from '../../../src/domain/network/index.js';
import { parseProjectList } from '../../../src/domain/validate/index.js';
import { TapGenerator } from '../../../src/demo/generator.js';
import { demoRegistry, demoTerminalSecret } from '../../../src/ingest/terminals.js';
import { listedScope, venueRefusal, VenueRegions, WHOLE_REGION } from '../../../src/ingest/venue-scope.js';
import { loadFleetConfig } from '../../../bench/lib/fleet-config.js';
import { FleetSimulator } from '../../../bench/lib/fleet.js';
import { liveTape, offlineTape } from '../../../bench/lib/tape.js';
import type { Region } from '../../../src/domain/types.js';

const networks = loadNetworks('data');
const venues = loadVenueDirectory('data', networks);
const regions = new VenueRegions(venues);
const refusal = (t: Parameters<typeof venueRefusal>[0], venueId: string) => venueRefusal(t, venueId, regions.regionOf(venueId));

describe('venue scope - the region of a venue', () => {
  it.each([
    ['bj-subway:西直门', 'BJ'], // a station of the directory
    ['tj-bus:8:0', 'TJ'], // a bus stop of the directory
    ['hospital:HE:hebei-general-hospital', 'HE'],
    ['museum:BJ:not-on-the-list', 'BJ'], // not in the directory: <kind>:<REGION>:<slug>
    ['sjz-metro:no-such-station', 'HE'], // not in the directory: a known network
    ['bj-bus:999:3', 'BJ'],
    ['museum:SH:x', undefined],
    ['museui:BJ:capital-museum', undefined], // not a kind of venue
    ['bj-subw:BJ:x', undefined],
    ['metro-of-nowhere:x', undefined],
    ['x', undefined],
    [':BJ:x', undefined],
    ['', undefined],
  ])('%s → %s', (id, region) => {
    expect(regions.regionOf(id)).toBe(region);
  });
});

describe('venue scope - listed terminals', () => {
  const gate = { id: 'BJ-GATE-1', region: 'BJ' as Region, venues: listedScope(['bj-subway:西直门', 'bj-bus:52:*', 'museum:BJ:*', 'clinic:BJ:new-one']) };

  it('serves its venue ids and the venues under its prefixes', () => {
    for (const v of ['bj-subway:西直门', 'bj-bus:52:0', 'bj-bus:52:17', 'museum:BJ:capital-museum', 'museum:BJ:not-on-the-list']) expect(refusal(gate, v), v).toBeUndefined();
  });

  it('serves a listed venue the directory does not know yet', () => {
    expect(refusal(gate, 'clinic:BJ:new-one')).toBeUndefined();
  });

  it('refuses another venue, naming the terminal, the venue and what it serves', () => {
    expect(refusal(gate, 'bj-subway:国贸')).toBe('terminal BJ-GATE-1 does not serve venue bj-subway:国贸; it serves bj-subway:西直门, bj-bus:52:*, museum:BJ:*, clinic:BJ:new-one');
    for (const v of ['bj-bus:5:0', 'bj-bus:520:0', 'bj-subway:西直门 ', 'park:BJ:temple-of-heaven', '']) expect(refusal(gate, v), v).toMatch(/does not serve/);
  });

  it('refuses a listed venue of another region', () => {
    const wrong = { id: 'BJ-GATE-2', region: 'BJ' as Region, venues: listedScope(['tj-metro:*']) };
    expect(refusal(wrong, 'tj-metro:刘园')).toBe('venue tj-metro:刘园 is in TJ; terminal BJ-GATE-2 serves BJ');
  });

  it('leaves the region of a claim to the caller when asked', () => {
    const clinic = { id: 'TJ-CLINIC-1', region: 'TJ' as Region, venues: listedScope(['hospital:*']) };
    expect(venueRefusal(clinic, 'hospital:BJ:pumch', 'BJ', false)).toBeUndefined();
    expect(venueRefusal(clinic, 'clinic:TJ:x', 'TJ', false)).toMatch(/does not serve venue clinic:TJ:x/);
  });

  it.each([[[]], [['*']], [['bj-*:x']], [['bj subway:*']], [['bj-subway:**']]])('refuses the list %j', (entries) => {
    expect(() => listedScope(entries)).toThrow(/^venues/);
  });
});

describe('venue scope - demo terminals', () => {
  const bj = { id: 'BJ-RAIL-0001', region: 'BJ' as Region, venues: WHOLE_REGION };

  it('serve every venue of their region, known or told by its id', () => {
    for (const v of ['bj-subway:西直门', 'bj-bus:1:0', 'museum:BJ:palace-museum', 'museum:BJ:not-on-the-list', 'bj-subway:no-such-station']) expect(refusal(bj, v), v).toBeUndefined();
  });

  it('refuse a venue of another region, and one whose region nothing tells', () => {
    expect(refusal(bj, 'tj-metro:刘园')).toBe('venue tj-metro:刘园 is in TJ; terminal BJ-RAIL-0001 serves BJ');
    expect(refusal(bj, 'hospital:HE:x')).toMatch(/is in HE/);
    expect(refusal(bj, 'somewhere')).toBe('terminal BJ-RAIL-0001 serves the venues of BJ; venue somewhere is not one tapflow knows the region of');
  });
});

describe('venue scope - the demo and bench fleets send only for venues their terminals serve', () => {
  const keys = generateTestKeys({ seed: 'venue-scope-test' });
  const fleetKey = Buffer.alloc(32, 3);
  const registry = demoRegistry(fleetKey);
  const refusals = (taps: { terminalId: string; venueId: string }[]) => {
    const out: string[] = [];
    for (const t of taps) {
      const a = registry.authenticate(t.terminalId, demoTerminalSecret(fleetKey, t.terminalId));
      if (!a.ok) out.push(`${t.terminalId}: ${a.message}`);
      else if (t.venueId !== '') {
        // An empty venue is the fleets' malformed share: INVALID before the venue is looked at.
        const r = refusal(a.terminal, t.venueId);
        if (r) out.push(r);
      }
    }
    return out;
  };

  it('the demo generator, with its bad shares', () => {
    const gen = new TapGenerator({ venues, keys, cards: 3000, terminalsPerGroup: 40, seed: 11, bad: { hotlisted: 0.05, unlistedVenue: 0.05, malformed: 0.05, qrReplay: 0.05, impossibleTravel: 0.05 } });
    gen.pickHotlisted(50);
    const taps: { terminalId: string; venueId: string }[] = [];
    for (let i = 0, now = Date.UTC(2026, 10, 20, 0, 30); taps.length < 5000 && i < 50_000; i++, now += 50) {
      const e = gen.next(now);
      if (e.kind === 'tap') taps.push({ terminalId: e.terminalId, venueId: e.tap.venueId });
    }
    expect(taps.length).toBe(5000);
    expect(refusals(taps)).toEqual([]);
  });

  it('the bench fleet: live taps, warm entries, offline uploads, with bad shares', () => {
    const projects = parseProjectList(readFileSync('data/projects/default.yaml', 'utf8'), 'yaml');
    const base = Date.UTC(2026, 10, 20, 0, 30);
    const bad = { hotlisted: 0.03, unlisted: 0.03, malformed: 0.03, qrReplay: 0.03, impossibleTravel: 0.03 };
    const sim = new FleetSimulator({ venues, networks, keys, projects, config: loadFleetConfig(), terminals: 300, seed: 5, liveStartMs: base, bad });
    const live = liveTape(sim, { shape: { kind: 'constant', rate: 400 }, durationS: 5, arrivals: 'uniform', seed: 1, baseMs: base, batchSize: 50, claimShare: 0, runId: 't' });
    const offline = offlineTape(sim, { count: 2000, baseMs: base, windowMs: 2 * 3_600_000, batchSize: 100, busOnly: false });
    const sims = [...live.live.map((l) => l.sim), ...live.warm.flatMap((b) => b.taps), ...offline.batches.flatMap((b) => b.taps)];
    expect(sims.length).toBeGreaterThan(4000);
    expect(new Set(sims.map((s) => s.expect))).toEqual(new Set(['ok', 'hotlisted', 'unlisted', 'malformed', 'qr-replay', 'impossible-travel']));
    expect(refusals(sims.map((s) => ({ terminalId: s.tap.terminalId, venueId: s.tap.venueId })))).toEqual([]);
  });
});
