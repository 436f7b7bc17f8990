/**
 * The fault suite (issue 11 item 1; `npm run faults`, its own vitest config, run by CI after
 * `npm test`): the same taps, offline batches and medical claims driven through the real
 * pipeline — every role its own process — while, one scenario at a time, a fault hits it:
 * SIGKILL and restart of ingest, of a validator, of a settler, of the (only) sink; SIGKILL of the
 * active sink while a standby runs (the standby takes over); a nats-server SIGKILL and restart;
 * the store unavailable for 30 s; validator and settler replicas added and removed mid-stream;
 * a three-node JetStream cluster (streams with 3 replicas) where the node leading the taps
 * stream is killed and restarted. The terminals retry what was not answered durably, as real
 * ones do (same seq, same claim id).
 *
 * After each scenario it proves, against what was stored: every tap answered ACCEPTED_DURABLE
 * is stored exactly once (one decision per event; no row of any table twice); no other tap is
 * stored (only taps answered ACCEPTED_DURABLE, or DUPLICATE of a durable one); every claim
 * answered durably is stored once with the same split as in the fault-free run; fen per card
 * equal those of the fault-free reference run (same taps, same order per card); the ledger
 * balances (per settlement and in total); no message is left unacknowledged (every durable
 * consumer: num_pending and num_ack_pending 0); dead letters are counted with their codes and
 * must be those of the reference run (a fault adds none). One line per scenario with the counts,
 * and all the lines again at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import { Streams } from '../../src/bus/subjects.js';
import { ARCHIVE_STREAM } from '../../src/bus/archive.js';
import { trustFilePath } from '../../src/validate/trust.js';
import { ClaimStatus, TapStatus } from '../../src/gen/tapflow/v1/ingest.js';
import { prepareSharedKeys } from '../support/processes.js';
import { readIssuerKeys } from '../support/scenario.js';
import { buildMixedScript, type MixedScript } from '../support/mixed-script.js';
import { signClaimsWith } from '../integration/claims/grpc-claims.js';
import { evenlyShared, eventually, until } from '../support/fleet.js';
import { PARTITIONS, runFaultScenario, scriptClaims, type FaultRun, type FaultScenario } from './harness.js';

const SEED = 20_261_130;
const TAPS = 240;

let dataDir: string;
let script: MixedScript;
const claims = scriptClaims();
const lines: string[] = [];
let reference: FaultRun | undefined;

const n = (x: number) => x.toLocaleString('en-US');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'tapflow-faults-'));
  const cfg = loadConfig({}, { TAPFLOW_DATA_DIR: dataDir });
  prepareSharedKeys(cfg);
  signClaimsWith(dataDir);
  script = buildMixedScript(readIssuerKeys(trustFilePath(cfg)), Date.now() - 30 * 60_000, { seed: SEED, taps: TAPS });
});

afterAll(async () => {
  if (lines.length > 0) console.log(`fault suite, ${lines.length} scenarios:\n${lines.join('\n')}`);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const base = { validators: 1, settlers: 1, burst: 30, pauseMs: 150, claimsAtStep: 60 } satisfies Partial<FaultScenario>;

const baseline: FaultScenario = { ...base, name: 'baseline', faults: [] };

async function run(s: FaultScenario): Promise<FaultRun> {
  return runFaultScenario(s, { dataDir, script, claims });
}

async function ref(): Promise<FaultRun> {
  return (reference ??= await run(baseline));
}

/** Keyed differences "key: a → b" (first 20). */
function diff<V>(a: Record<string, V>, b: Record<string, V>): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = JSON.stringify(a[k]);
    const y = JSON.stringify(b[k]);
    if (x !== y) out.push(`${k}: ${x ?? '(missing)'} → ${y ?? '(missing)'}`);
  }
  return out.sort().slice(0, 20);
}

/** The proofs after a scenario, against the reference run; prints and keeps its line. */
function prove(name: string, r: FaultRun, reference: FaultRun): void {
  const has = (id: string, st: TapStatus) => (r.acks.get(id) ?? []).some((a) => a.status === st);
  const durable = [...r.acks.keys()].filter((id) => has(id, TapStatus.ACCEPTED_DURABLE));
  const answeredOk = new Set([...r.acks.keys()].filter((id) => has(id, TapStatus.ACCEPTED_DURABLE) || has(id, TapStatus.DUPLICATE)));
  const stored = Object.keys(r.facts.decisions);
  const storedOnce = durable.filter((id) => r.facts.decisions[id] === 1);
  const other = stored.filter((id) => !answeredOk.has(id));
  const claimsDurable = [...r.claims].filter(([, l]) => l.some((c) => [ClaimStatus.SETTLED, ClaimStatus.REJECTED, ClaimStatus.PENDING].includes(c.status))).map(([id]) => id);
  const claimsOnce = claimsDurable.filter((id) => r.facts.claims[id]?.[0] === 1);
  const fenDiff = diff(reference.facts.fenPerCard, r.facts.fenPerCard);
  const cards = Object.keys(r.facts.fenPerCard).length;
  const fen = Object.values(r.facts.fenPerCard).reduce((s, [, f]) => s + f, 0);
  const unacked = r.backlogs.reduce((s, b) => s + b.pending + b.ackPending, 0);
  const dead = r.deadLetters.length === 0 ? 'dead letters 0' : `dead letters ${r.deadLetters.length} (${[...new Set(r.deadLetters)].map((d) => `${d} ×${r.deadLetters.filter((x) => x === d).length}`).join(', ')}; as in the fault-free run)`;
  const line =
    `fault: ${name.padEnd(20)} acked ${n(durable.length)}  stored ${n(stored.length)} (${storedOnce.length === durable.length && r.facts.duplicates.length === 0 ? 'once' : 'NOT once'})  other ${other.length}  ` +
    `claims ${claimsOnce.length}/${claims.length}  fen ${fenDiff.length === 0 ? 'ok' : 'DIFFER'} ${cards} cards (${n(fen)} fen)  ` +
    `ledger ${r.facts.unbalanced.length === 0 && r.facts.ledger.debits === r.facts.ledger.credits ? 'balanced' : 'UNBALANCED'} (${n(r.facts.ledger.entries)} entries)  unacked ${unacked}  ${dead}  ` +
    `retried ${r.retried}  ${r.seconds.toFixed(1)} s${r.notes.length ? `  [${r.notes.join('; ')}]` : ''}`;
  lines.push(line);
  console.log(line);

  expect(durable.length, 'taps answered ACCEPTED_DURABLE').toBeGreaterThan(TAPS / 2);
  expect(durable.filter((id) => r.facts.decisions[id] !== 1).slice(0, 20), 'ACCEPTED_DURABLE taps not stored exactly once').toEqual([]);
  expect(other.slice(0, 20), 'stored taps never answered ACCEPTED_DURABLE or DUPLICATE').toEqual([]);
  expect(r.facts.duplicates, 'rows stored more than once').toEqual([]);
  expect(claimsDurable.length, 'claims answered durably').toBe(claims.length);
  expect(claimsDurable.filter((id) => r.facts.claims[id]?.[0] !== 1), 'durable claims not stored exactly once').toEqual([]);
  expect(diff(reference.facts.claims, r.facts.claims), 'claims (rows, status, fee, fund) against the fault-free run').toEqual([]);
  expect(fenDiff, 'fen per card against the fault-free run').toEqual([]);
  expect(r.facts.unbalanced, 'settlements whose ledger does not balance').toEqual([]);
  expect(r.facts.ledger.debits).toBe(r.facts.ledger.credits);
  expect(r.backlogs, 'consumers with messages pending or unacknowledged').toEqual([]);
  expect(r.deadLetters, 'dead letters (code, stream) against the fault-free run').toEqual(reference.deadLetters);
}

/** A standing question about a run's logs: did `proc` log a line matching `re`? */
const logged = (r: FaultRun, name: string, re: RegExp) => r.logs.get(name)?.logs.some((l) => re.test(String(l.msg))) ?? false;

describe('fault suite', () => {
  it('baseline: no fault (the reference for fen per card, claims and dead letters)', async () => {
    const r = await ref();
    prove('baseline', r, r);
    expect(Object.keys(r.facts.fenPerCard).length).toBeGreaterThan(20);
    expect(Object.values(r.facts.claims).some(([, status]) => status === 'SETTLED')).toBe(true);
  }, 240_000);

  it('SIGKILL ingest mid-stream, restarted: terminals retry, nothing lost or doubled', async () => {
    const reference = await ref();
    const r = await run({
      ...base,
      name: 'sigkill-ingest',
      faults: [
        {
          atStep: 90,
          act: async (f) => {
            const p = f.procs.ingest[0]!;
            await f.killAndRestart(p);
            f.note(`ingest pid ${p.pid} killed at step 90, restarted`);
          },
        },
      ],
    });
    prove('sigkill-ingest', r, reference);
    expect(logged(r, 'ingest#1', /ingest gRPC listening/)).toBe(true);
  }, 240_000);

  for (const role of ['validator', 'settler'] as const) {
    it(`SIGKILL a ${role} of two mid-stream, restarted`, async () => {
      const reference = await ref();
      const r = await run({
        ...base,
        validators: 2,
        settlers: 2,
        name: `sigkill-${role}`,
        faults: [
          {
            atStep: 90,
            act: async (f) => {
              const p = f.procs[role][0]!;
              await f.killAndRestart(p);
              f.note(`${p.name} pid ${p.pid} killed at step 90, restarted`);
            },
          },
        ],
      });
      prove(`sigkill-${role}`, r, reference);
    }, 240_000);
  }

  it('SIGKILL the only sink mid-stream, restarted', async () => {
    const reference = await ref();
    const r = await run({
      ...base,
      name: 'sigkill-sink',
      faults: [
        {
          atStep: 90,
          act: async (f) => {
            const p = f.procs.sink[0]!;
            await f.killAndRestart(p);
            f.note(`sink pid ${p.pid} killed at step 90, restarted`);
          },
        },
      ],
    });
    prove('sigkill-sink', r, reference);
    expect(logged(r, 'sink#1', /sink owns the streams/)).toBe(true);
  }, 240_000);

  it('SIGKILL the active sink while a standby runs: the standby takes over', async () => {
    const reference = await ref();
    const r = await run({
      ...base,
      name: 'sink-standby',
      sinks: 2,
      faults: [
        {
          atStep: 90,
          act: async (f) => {
            const p = f.procs.sink[0]!;
            await p.kill('SIGKILL');
            f.note(`active sink pid ${p.pid} killed at step 90, not restarted`);
          },
        },
      ],
    });
    prove('sink-standby', r, reference);
    expect(logged(r, 'sink#0', /sink owns the streams/), 'the first sink was active').toBe(true);
    expect(logged(r, 'sink#1', /waiting as its standby/), 'the second sink waited as a standby').toBe(true);
    expect(logged(r, 'sink#1', /sink owns the streams/), 'the standby took over').toBe(true);
  }, 240_000);

  it('nats-server SIGKILLed mid-stream and restarted', async () => {
    const reference = await ref();
    const r = await run({
      ...base,
      name: 'nats-restart',
      faults: [
        {
          atStep: 90,
          act: async (f) => {
            await f.nats!.kill();
            await sleep(2000);
            await f.nats!.restart();
            f.note('nats-server killed at step 90, restarted 2 s later');
          },
        },
      ],
    });
    prove('nats-restart', r, reference);
  }, 240_000);

  it('the store unavailable for 30 s: taps keep being acknowledged, nothing lost or doubled after it returns', async () => {
    const reference = await ref();
    let window: { from: number; to: number } | undefined;
    let outage: Promise<void> | undefined;
    const r = await run({
      ...base,
      name: 'store-outage-30s',
      // The script spread over the outage: taps arrive while the store refuses.
      burst: 30,
      pauseMs: 3000,
      faults: [
        {
          atStep: 60,
          act: async (f) => {
            await writeFile(f.storeDownFile, 'down\n');
            const from = Date.now();
            outage = sleep(30_000).then(async () => {
              await rm(f.storeDownFile, { force: true });
              window = { from, to: Date.now() };
            });
            f.note('store refused every call for 30 s from step 60');
          },
        },
      ],
      after: async () => {
        await outage;
      },
    });
    const during = r.answers.filter((a) => window && a.at > window.from && a.at < window.to && a.ack.status === TapStatus.ACCEPTED_DURABLE).length;
    r.notes.push(`${during} taps answered ACCEPTED_DURABLE during the outage`);
    prove('store-outage-30s', r, reference);
    expect(during, 'taps acknowledged durably while the store was down').toBeGreaterThan(0);
    expect(logged(r, 'sink#0', /batch failed/), 'the sink saw the store fail').toBe(true);
  }, 300_000);

  it('validator and settler replicas added and removed mid-stream', async () => {
    const reference = await ref();
    const r = await run({
      ...base,
      name: 'scale-replicas',
      faults: [
        {
          atStep: 60,
          act: async (f) => {
            for (let i = 0; i < 2; i++) f.spawn('validator');
            for (let i = 0; i < 2; i++) f.spawn('settler');
            f.note('1+1 → 3+3 at step 60');
          },
        },
        {
          atStep: 150,
          act: async (f) => {
            // The added replicas took their share of the partitions mid-stream.
            for (const role of ['validator', 'settler']) await until(() => evenlyShared(f.buckets.leases, role, 3, PARTITIONS), 60_000, `3 ${role}s sharing the partitions`);
            const gone = [f.procs.validator[0]!, f.procs.settler[1]!];
            await Promise.all(gone.map((p) => p.stop()));
            for (const p of gone) f.procs[p.role as 'validator' | 'settler'] = f.procs[p.role as 'validator' | 'settler'].filter((q) => q !== p);
            f.note(`${gone.map((p) => p.name).join(' and ')} stopped at step 150 (3+3 → 2+2)`);
          },
        },
      ],
    });
    prove('scale-replicas', r, reference);
  }, 240_000);

  it('a three-node JetStream cluster (streams with 3 replicas): the node leading the taps stream is SIGKILLed and restarted', async () => {
    const reference = await ref();
    let back: Promise<void> | undefined;
    const r = await run({
      ...base,
      name: 'cluster-node-kill',
      cluster: true,
      faults: [
        {
          atStep: 90,
          act: async (f) => {
            const info = await eventually(() => f.bus.jsm.streams.info(Streams.TAPS.name), 30_000, 'TAPS stream info');
            expect(info.config.num_replicas).toBe(3);
            const leader = info.cluster?.leader ?? '';
            const i = Number(/-n(\d+)$/.exec(leader)?.[1] ?? 0);
            const node = f.cluster!.nodes[i]!;
            await node.kill();
            back = sleep(5000).then(() => node.restart());
            f.note(`node n${i} (leader of ${Streams.TAPS.name}) killed at step 90, restarted 5 s later`);
          },
        },
      ],
      after: async (f) => {
        await back;
        for (const name of [...Object.values(Streams).map((s) => s.name), ARCHIVE_STREAM]) {
          expect((await eventually(() => f.bus.jsm.streams.info(name), 30_000, `${name} stream info`)).config.num_replicas, name).toBe(3);
        }
      },
    });
    prove('cluster-node-kill', r, reference);
  }, 300_000);
});
