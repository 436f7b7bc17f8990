/**
 * The work ceiling on a small tape: every tap goes through tapflow's per-tap work (ingest
 * checks, sealing, codecs, decideTap, settleDecision, rows, the embedded engine's insert) with
 * the verdicts the fleet expects, and the child-process runner hands the result back. No
 * tapflow process and no bus; no timing is asserted.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNetworks, loadVenueDirectory } from '../../../src/domain/network/index.js';
import { parseProjectList } from '../../../src/domain/validate/index.js';
import { ensureDevTrustFile, readKeysFile } from '../../../src/validate/trust.js';
import { localKeys } from '../../../src/runtime/keys.js';
import { loadFleetConfig } from '../../../bench/lib/fleet-config.js';
import { FleetSimulator } from '../../../bench/lib/fleet.js';
import { allTaps, liveTape, tapsAsSent } from '../../../bench/lib/tape.js';
import { measureWorkCeiling, WORK_STAGES } from '../../../bench/lib/work-ceiling.js';
import { workCeiling } from '../../../bench/lib/ceilings.js';

const dir = mkdtempSync(join(tmpdir(), 'bench-work-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tape() {
  localKeys({ TAPFLOW_DATA_DIR: dir });
  const keys = readKeysFile(ensureDevTrustFile({ TAPFLOW_DATA_DIR: dir }));
  const networks = loadNetworks('data');
  const base = Date.now();
  const sim = new FleetSimulator({
    venues: loadVenueDirectory('data', networks),
    networks,
    keys,
    projects: parseProjectList(readFileSync('data/projects/default.yaml', 'utf8'), 'yaml'),
    config: loadFleetConfig(),
    bad: { hotlisted: 0.02, qrReplay: 0.01, impossibleTravel: 0.005, malformed: 0.01, unlisted: 0.01 },
    terminals: 300,
    seed: 5,
    liveStartMs: base,
  });
  const t = liveTape(sim, { shape: { kind: 'constant', rate: 400 }, durationS: 3, arrivals: 'uniform', seed: 1, baseMs: base, batchSize: 50, claimShare: 0, runId: 'w' });
  return { sim, t };
}

describe('bench work ceiling - tapflow per-tap work on one thread', () => {
  it('takes every timed tap to the verdict the fleet expects and inserts its rows', async () => {
    const { sim, t } = tape();
    const sent = tapsAsSent(t, Number.POSITIVE_INFINITY);
    const taps = allTaps(t);
    expect(sent.length).toBe(taps.length);
    const warmupTaps = 100;
    const r = await measureWorkCeiling({ taps: sent, hotlistedCards: sim.hotlistedCards() }, { dataDir: dir, tariffDir: 'data', partitions: 16, chdbDir: join(dir, 'chdb'), seconds: 600, insertBatch: 250, warmupTaps });
    const timed = taps.slice(warmupTaps);
    expect(r.taps).toBe(timed.length);
    const count = (f: (e: string) => boolean) => timed.filter((s) => f(s.expect)).length;
    expect(r.invalid).toBe(count((e) => e === 'malformed'));
    expect(r.verdicts).toEqual({ ACCEPTED: count((e) => e === 'ok'), REJECTED: count((e) => e !== 'ok' && e !== 'malformed') });
    expect(r.rows.decisions).toBe(timed.length - r.invalid);
    expect(r.rows.settlements).toBeGreaterThan(0);
    expect(Object.keys(r.perStageUs)).toEqual([...WORK_STAGES]);
    expect(r.perStageUs.validator_decide).toBeGreaterThan(0);
    expect(r.tapsPerSecond).toBeGreaterThan(0);
  });

  it('runs in a child process of its own and reports as a ceiling', async () => {
    const { sim, t } = tape();
    const c = await workCeiling({ taps: tapsAsSent(t, 600), hotlistedCards: sim.hotlistedCards(), dataDir: dir, scratchDir: dir, partitions: 16, seconds: 600 });
    expect(c.messages).toBe(600 - 60); // a tenth of a short tape is its warm-up
    expect(c.msgs_per_s).toBeGreaterThan(0);
    expect(c.per_stage_us?.sink_insert).toBeGreaterThan(0);
    expect(c.notes).toContain('ACCEPTED');
  });
});
