/**
 * Rebuilding a store range from the ARCHIVE stream (issue 11, item 7): the whole pipeline in
 * process (real nats-server, embedded ClickHouse) stores three business days of taps from the
 * demo fleet's generator (uploaded offline, in time order) and medical claims; the middle day
 * of every table is snapshot, then wiped or damaged, rebuilt from the archive with the sink's
 * row mapping, and compared row for row (stored_time aside) — rows outside the range untouched,
 * the aggregates the tables feed neither lost nor doubled, a second rebuild changing nothing.
 * A rebuild that would lose rows (a message aged out of the archive) is refused and changes
 * nothing.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVE_STREAM } from '../../../src/bus/archive.js';
import { consumerPlan } from '../../../src/bus/topology.js';
import { Streams } from '../../../src/bus/subjects.js';
import { parseKeyFile } from '../../../src/domain/card/keys.js';
import { loadVenueDirectory } from '../../../src/domain/network/index.js';
import { TapGenerator } from '../../../src/demo/generator.js';
import { TapStatus, type Tap } from '../../../src/gen/tapflow/v1/ingest.js';
import { BY_BUSINESS_DAY, rangeProblem, rebuildRange, REBUILD_TABLES, RebuildRefused, TABLE_AGGREGATES, type RebuildOptions } from '../../../src/sink/rebuild.js';
import { STORE_TABLES } from '../../../src/cli/store-commands.js';
import { trustFilePath } from '../../../src/validate/trust.js';
import type { StoreTable } from '../../../src/store/mod.js';
import { startTestPipeline, type TestPipeline } from '../../support/pipeline.js';
import { runCli } from '../cli/run-cli.js';
import { uploadBatch } from '../ingest/grpc-taps.js';
import { CLASS_A, CLASS_B, TJ_COUNTER, claim, item, ok, settleClaim, signClaimsWith } from '../claims/grpc-claims.js';

const DAY = 86_400_000;
const SHANGHAI = 8 * 3_600_000;
/** Midnight Asia/Shanghai three days ago: the data covers it and the two days after it. */
const DAY0 = Math.floor((Date.now() + SHANGHAI) / DAY) * DAY - SHANGHAI - 3 * DAY;
const FROM = DAY0 + DAY;
const TO = DAY0 + 2 * DAY;

let p: TestPipeline;

async function drained(): Promise<boolean> {
  for (const c of consumerPlan(p.cfg.TAPFLOW_PARTITIONS)) {
    const i = await p.app.ctx.bus.jsm.consumers.info(Streams[c.stream].name, c.name);
    if (i.num_pending > 0 || i.num_ack_pending > 0) return false;
  }
  return true;
}

const dayOf = (ms: number) => new Date(ms + SHANGHAI).toISOString().slice(0, 10);
/** The range's condition on a table: business day for the money tables, device time for the others. */
const rangeOf = (t: StoreTable) =>
  BY_BUSINESS_DAY.has(t) ? `business_day >= toDate('${dayOf(FROM)}') AND business_day < toDate('${dayOf(TO)}')` : `toUnixTimestamp64Milli(device_time) >= ${FROM} AND toUnixTimestamp64Milli(device_time) < ${TO}`;

/** The rows of a table, every column but stored_time, as JSON lines in a fixed order. */
async function rows(t: StoreTable, where: string): Promise<string[]> {
  return (await p.query(`SELECT * EXCEPT (stored_time) FROM ${t} WHERE ${where} ORDER BY ALL`)).map((r) => JSON.stringify(r));
}

/** Every aggregate, summed by its key. */
async function aggregates(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of REBUILD_TABLES) {
    for (const a of TABLE_AGGREGATES[t]) {
      const cols = (await p.query<{ name: string; type: string }>(`SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = '${a.table}' ORDER BY position`)).map((c) => c);
      const keys = cols.filter((c) => !/Int64$/.test(c.type) || c.name === a.bucket).map((c) => c.name);
      const sums = cols.filter((c) => !keys.includes(c.name)).map((c) => `sum(${c.name}) AS ${c.name}`);
      out[a.table] = (await p.query(`SELECT ${keys.join(', ')}, ${sums.join(', ')} FROM ${a.table} GROUP BY ALL ORDER BY ALL`)).map((r) => JSON.stringify(r));
    }
  }
  return out;
}

interface Snapshot {
  inside: Record<string, string[]>;
  outside: Record<string, string[]>;
  aggregates: Record<string, string[]>;
}

async function snapshot(): Promise<Snapshot> {
  const s: Snapshot = { inside: {}, outside: {}, aggregates: await aggregates() };
  for (const t of REBUILD_TABLES) {
    s.inside[t] = await rows(t, rangeOf(t));
    s.outside[t] = await rows(t, `NOT (${rangeOf(t)})`);
  }
  return s;
}

let original: Snapshot;
const all = (o: Partial<RebuildOptions> = {}): RebuildOptions => ({ tables: [...REBUILD_TABLES], fromMs: FROM, toMs: TO, dryRun: false, ...o });

beforeAll(async () => {
  p = await startTestPipeline();
  signClaimsWith(p.dataDir);
  await p.until(async () => (await p.app.ctx.metrics.partitionsOwned.get()).values.some((v) => v.labels.role === 'settler' && v.value === p.cfg.TAPFLOW_PARTITIONS), 30_000, 'settler partitions');

  // Three days of the demo fleet, uploaded offline in time order, chunk by chunk.
  const gen = new TapGenerator({
    venues: loadVenueDirectory(p.cfg.TAPFLOW_TARIFF_DIR),
    keys: parseKeyFile(readFileSync(trustFilePath(p.cfg), 'utf8'), trustFilePath(p.cfg)),
    cards: 400,
    terminalsPerGroup: 2,
    seed: 11,
  });
  const events: { terminalId: string; tap: Tap }[] = [];
  for (let t = DAY0 + 6 * 3_600_000; t < DAY0 + 3 * DAY - 2 * 3_600_000; t += 75_000) {
    const e = gen.next(t);
    if (e.kind === 'tap') events.push(e);
  }
  for (let i = 0; i < events.length; i += 300) {
    const byTerminal = new Map<string, Tap[]>();
    for (const e of events.slice(i, i + 300)) byTerminal.set(e.terminalId, [...(byTerminal.get(e.terminalId) ?? []), e.tap]);
    const results = await Promise.all([...byTerminal].map(([terminalId, taps]) => uploadBatch(p.client, p.metadata(terminalId), { terminalId, taps })));
    for (const r of results) {
      if (!r.ok) throw new Error(`upload failed: ${r.error.message}`);
      const unanswered = r.value.acks.filter((a) => a.status === TapStatus.UNAVAILABLE || a.status === TapStatus.OVERLOADED);
      if (unanswered.length > 0) throw new Error(`${unanswered.length} taps not taken: ${unanswered[0]!.reason}`);
    }
  }
  // Medical claims, two a day (one of them a class B item, settled otherwise).
  const md = p.metadata(TJ_COUNTER);
  for (let d = 0; d < 3; d++) {
    for (let k = 0; k < 2; k++) {
      const cardNumber = `11${String(80_000_000 + d * 10 + k).padStart(10, '0')}`;
      ok(
        await settleClaim(
          p.client,
          md,
          claim(`RB-${d}-${k}`, { card: { $case: 'chip', value: { cardNumber, counter: 1, mac: Buffer.alloc(8) } }, deviceTime: DAY0 + d * DAY + (10 + k) * 3_600_000, items: [item('A1', k === 0 ? CLASS_A : CLASS_B, 40_000 + d * 1000)] }),
        ),
      );
    }
  }
  // Quiet: drained, and the settlers' periodic sweep (every 5 s at most: it closes the journeys
  // whose time limit has passed) has published nothing more for two of its periods.
  const published = async () => {
    let n = 0;
    for (const s of ['DECISIONS', 'SETTLEMENTS', 'RISK'] as const) n += (await p.app.ctx.bus.jsm.streams.info(s)).state.last_seq;
    return n;
  };
  let last = -1;
  await p.until(
    async () => {
      if (!(await drained())) return false;
      const n = await published();
      if (n !== last) {
        last = n;
        await new Promise((r) => setTimeout(r, 11_000));
        return false;
      }
      return true;
    },
    240_000,
    'pipeline quiet',
  );
  original = await snapshot();
}, 300_000);

afterAll(async () => {
  await p?.stop();
});

describe('tapflow store rebuild', () => {
  it('has data of every table inside and outside the range, and the archive holds what the sink stored', async () => {
    for (const t of REBUILD_TABLES) {
      expect(original.inside[t]!.length, `${t} rows in the range`).toBeGreaterThan(0);
      expect(original.outside[t]!.length, `${t} rows outside the range`).toBeGreaterThan(0);
    }
    for (const a of Object.values(TABLE_AGGREGATES).flat()) expect(original.aggregates[a.table]!.length, a.table).toBeGreaterThan(0);
    // The sink's streams let go of what every consumer acknowledged; the archive kept it.
    let sourced = 0;
    for (const s of ['DECISIONS', 'SETTLEMENTS', 'RISK'] as const) {
      const info = await p.app.ctx.bus.jsm.streams.info(s);
      expect(info.state.messages, `${s} after every consumer acknowledged`).toBe(0);
      sourced += info.state.last_seq;
    }
    expect(sourced).toBeGreaterThan(0);
    await p.until(async () => (await p.app.ctx.bus.jsm.streams.info(ARCHIVE_STREAM)).state.messages >= sourced, 10_000, 'archive caught up');
    expect((await p.app.ctx.bus.jsm.streams.info(ARCHIVE_STREAM)).state.messages).toBe(sourced);
    expect(STORE_TABLES).toEqual(REBUILD_TABLES);
  });

  it('refuses a range that is not whole business days', async () => {
    expect(rangeProblem(FROM + 3_600_000, TO)).toMatch(/--from .* is not midnight in Asia\/Shanghai/);
    await expect(rebuildRange(p.app.ctx.bus, p.app.ctx.engine!, all({ toMs: TO - 60_000 }))).rejects.toThrow(RebuildRefused);
  });

  it('reports with --dry-run what it would rebuild, changing nothing', async () => {
    await p.app.ctx.engine!.exec(`ALTER TABLE decisions DELETE WHERE ${rangeOf('decisions')} SETTINGS mutations_sync = 2`);
    const damaged = await snapshot();
    const r = await rebuildRange(p.app.ctx.bus, p.app.ctx.engine!, all({ dryRun: true }));
    expect(r.applied).toBe(false);
    const byTable = Object.fromEntries(r.tables.map((t) => [t.table, t]));
    expect(byTable.decisions).toMatchObject({ before: 0, rebuilt: original.inside.decisions!.length });
    for (const t of REBUILD_TABLES.filter((x) => x !== 'decisions')) expect(byTable[t]).toMatchObject({ before: original.inside[t]!.length, rebuilt: original.inside[t]!.length });
    expect(await snapshot()).toEqual(damaged);
  }, 120_000);

  it('rebuilds a wiped and damaged range equal to the original, row for row, and leaves the rest alone', async () => {
    const engine = p.app.ctx.engine!;
    for (const t of ['ledger', 'claims', 'risk_flags'] as const) await engine.exec(`ALTER TABLE ${t} DELETE WHERE ${rangeOf(t)} SETTINGS mutations_sync = 2`);
    await engine.exec(`ALTER TABLE settlements UPDATE amount_fen = amount_fen + 1 WHERE ${rangeOf('settlements')} SETTINGS mutations_sync = 2`);
    expect((await rows('settlements', rangeOf('settlements'))).length).toBe(original.inside.settlements!.length);
    expect(await rows('settlements', rangeOf('settlements'))).not.toEqual(original.inside.settlements);

    const progress: number[] = [];
    const r = await rebuildRange(p.app.ctx.bus, engine, all({ onProgress: (x) => progress.push(x.messages) }));
    expect(r.applied).toBe(true);
    for (const t of r.tables) expect(t.after, t.table).toBe(original.inside[t.table]!.length);
    const after = await snapshot();
    for (const t of REBUILD_TABLES) {
      expect(after.inside[t], `${t} in the range`).toEqual(original.inside[t]);
      expect(after.outside[t], `${t} outside the range`).toEqual(original.outside[t]);
    }
    expect(after.aggregates).toEqual(original.aggregates);
  }, 180_000);

  it('changes nothing when run again (no row doubled)', async () => {
    await rebuildRange(p.app.ctx.bus, p.app.ctx.engine!, all());
    expect(await snapshot()).toEqual(original);
  }, 180_000);

  it('refuses, changing nothing, when a message the range came from is no longer archived', async () => {
    const seq = Number((await p.query<{ s: number }>(`SELECT min(stream_seq) AS s FROM decisions WHERE ${rangeOf('decisions')}`))[0]!.s);
    // Find that message in the archive and remove it, as the archive's age limit would.
    const bus = p.app.ctx.bus;
    const info = await bus.jsm.streams.info(ARCHIVE_STREAM);
    let removed = false;
    for (let a = info.state.first_seq; a <= info.state.last_seq && !removed; a++) {
      const m = await bus.jsm.streams.getMessage(ARCHIVE_STREAM, { seq: a }).catch(() => null);
      if (m?.header?.get('Nats-Stream-Source')?.split(/\s+/)[1] === String(seq) && m.header.get('Nats-Stream-Source')!.startsWith('DECISIONS')) removed = await bus.jsm.streams.deleteMessage(ARCHIVE_STREAM, a);
    }
    expect(removed).toBe(true);
    await p.app.ctx.engine!.exec(`ALTER TABLE settlements DELETE WHERE ${rangeOf('settlements')} SETTINGS mutations_sync = 2`);
    const before = await snapshot();
    await expect(rebuildRange(bus, p.app.ctx.engine!, all())).rejects.toThrow(/decisions: rows of the range came from 1 message\(s\) of DECISIONS the archive no longer holds/);
    expect(await snapshot()).toEqual(before);
  }, 180_000);

  it('runs as `tapflow store rebuild` once tapflow is stopped (the embedded store is one process\'s)', async () => {
    // Before the stop: what the store must hold again afterwards (settlements of the range were deleted above).
    const outside = await rows('settlements', `NOT (${rangeOf('settlements')})`);
    await p.app.shutdown('the CLI takes the store');
    const env = { NATS_URL: p.nats.url, TAPFLOW_NATS_AUTOSTART: 'false', TAPFLOW_DATA_DIR: p.dataDir, TAPFLOW_PARTITIONS: String(p.cfg.TAPFLOW_PARTITIONS) };
    const day = (ms: number) => dayOf(ms);

    const unaligned = await runCli(['store', 'rebuild', '--table', 'settlements', '--from', `${day(FROM)}T06:00`, '--to', day(TO)], env);
    expect(unaligned.code).toBe(1);
    expect(unaligned.stderr).toMatch(/--from .* is not midnight in Asia\/Shanghai: a rebuild covers whole business days/);

    const r = await runCli(['store', 'rebuild', '--table', 'settlements', '--from', day(FROM), '--to', day(TO)], env, 120_000);
    expect(r.stderr).toMatch(/^reading the ARCHIVE stream for settlements from /);
    expect(r.code).toBe(0);
    const n = original.inside.settlements!.length;
    expect(r.stdout).toMatch(new RegExp(`^  settlements: 0 rows in the range before, ${n} rebuilt from the archive, ${n} now$`, 'm'));

    const { openStore } = await import('../../../src/store/open.js');
    const engine = await openStore(p.cfg);
    try {
      const read = async (where: string) => (await engine.query(`SELECT * EXCEPT (stored_time) FROM settlements WHERE ${where} ORDER BY ALL`)).map((x) => JSON.stringify(x));
      expect(await read(rangeOf('settlements'))).toEqual(original.inside.settlements);
      expect(await read(`NOT (${rangeOf('settlements')})`)).toEqual(outside);
    } finally {
      await engine.close();
    }
  }, 240_000);
});
