/**
 * What storing costs, per row: turning domain objects into an insert payload and the embedded
 * engine's INSERT (wall time, main-thread CPU, whole-process CPU), per table and batch size,
 * with and without the materialized views. Everything runs in this process against a fresh chdb
 * data directory; no bus, no server.
 *
 *   npx tsx bench/store-insert.ts                       # 1k, 10k, 50k rows per batch (~3 min)
 *   npx tsx bench/store-insert.ts --sizes 10000 --tables decisions --path objects --json
 *
 * Two paths (--path):
 * - batch (default, the sink's): rows.ts writers (writeDecision, writeSettlement, writeLedger,
 *   writeRiskFlag) encode each row straight into an InsertBatch; `engine.insert(table, batch)`.
 * - objects: rows.ts builders (decisionRow, settlementRows, riskFlagRow) make plain objects;
 *   `engine.insert(table, rows)` encodes them itself.
 * Take each path's figures from a run of that path alone: the two share the encoder's code, and
 * V8 optimises it for everything it has seen, so `--path both` makes each a little dearer.
 *
 * Per-table CPU during an insert also counts the background merges that run meanwhile, which
 * may be another table's. `--mix` measures what the sink really pays instead: batches of
 * `--tap-batch` taps (each tap one decision, 0.9 settlement with its 2–6 ledger rows, 0.05 risk
 * flag), all four tables inserted per batch, until `--taps` taps are stored and the merges they
 * set off have finished; CPU per tap on the main thread and in the whole process, merges
 * included, generation of the domain objects excluded.
 *
 *   npx tsx bench/store-insert.ts --mix --taps 200000 --tap-batch 5000
 * Measured:
 * - encode: main-thread CPU of the writers (batch) or the builders (objects).
 * - serialise (objects only): the engine's encoding of those objects alone, main thread.
 * - insert: `engine.insert(table, …, { dedupToken })`: wall time until the promise settles; CPU
 *   of the main thread during it (encoding left to do and call overhead: what competes with
 *   gRPC and NATS); CPU of the whole process during it (every chdb thread: parsing, the views,
 *   writing the part, and any background merge that ran meanwhile). Plus the longest
 *   event-loop stall seen during the insert.
 * CPU is read from /proc: `/proc/self/task/<pid>/schedstat` (the main thread's time on CPU, in
 * ns) and `process.cpuUsage()` (all threads). The machine is shared: compare figures only
 * within one run (or as ratios between runs), never as absolute promises.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { rng } from '../src/demo/generator.js';
import type { Decision, RiskFlag, Settlement, TraceStep } from '../src/domain/types.js';
import {
  type ClickHouseEngine,
  InsertBatch,
  decisionRow,
  migrate,
  openClickHouse,
  riskFlagRow,
  settlementRows,
  writeDecision,
  writeLedger,
  writeRiskFlag,
  writeSettlement,
} from '../src/store/mod.js';
import { encodeRows } from '../src/store/row-encoding.js';

const TABLES = ['decisions', 'settlements', 'ledger', 'risk_flags'] as const;
type Table = (typeof TABLES)[number];

// ---------------------------------------------------------------------------------------------
// Generated domain objects: the shapes and string lengths of the demo fleet's output (five trace
// steps on a decision, Chinese station names, 32-hex card tokens), from a seeded generator.

const REGIONS = ['BJ', 'TJ', 'HE'] as const;
const STATIONS = ['西直门', '国贸', '东直门', '天安门东', '北京南站', '西单', '五道口', '望京', '天津站', '营口道', '小白楼', '石家庄站', '北国商城', '新百广场'];
const NETWORKS = { BJ: 'bj-subway', TJ: 'tj-metro', HE: 'sjz-metro' } as const;
const T0 = Date.UTC(2026, 4, 6, 0, 0, 0);

function hex(r: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += Math.floor(r() * 16).toString(16);
  return s;
}

function decisionTrace(r: () => number, venue: string, counter: number): TraceStep[] {
  return [
    { rule: 'chip-mac', version: 'trust@2026-05-01', detail: `BJ bj-chip-2026 MAC ok, counter ${counter}` },
    { rule: 'hotlist', version: `hotlist@${Math.floor(r() * 900) + 100}`, detail: 'not listed' },
    { rule: 'project-list', version: 'projects@2026-05-01.3', detail: `item ${venue} RAIL accepts CHIP,QR` },
    { rule: 'chip-counter', version: 'validate@1', detail: `counter ${counter} new and in device-time order` },
    { rule: 'behaviour', version: 'validate@1/venues@2026-04', detail: 'no duplicate, passback or impossible travel' },
  ];
}

function makeDecision(r: () => number, n: number): Decision {
  const region = REGIONS[n % 3]!;
  const terminalId = `${region.toLowerCase()}-gate-${String(n % 300).padStart(4, '0')}`;
  const venueId = `${NETWORKS[region]}:${STATIONS[Math.floor(r() * STATIONS.length)]}`;
  const rejected = r() < 0.04;
  const deviceTime = T0 + n * 3 + Math.floor(r() * 1000);
  const counter = 1000 + Math.floor(r() * 50_000);
  return {
    eventId: `${terminalId}:${1_000_000 + n}`,
    terminalId,
    seq: 1_000_000 + n,
    terminalRegion: region,
    operatorId: NETWORKS[region],
    deviceTime,
    ingestTime: deviceTime + 40 + Math.floor(r() * 100),
    scene: 'RAIL',
    venueId,
    direction: r() < 0.5 ? 'ENTRY' : 'EXIT',
    cardToken: hex(r, 32),
    cardRegion: REGIONS[Math.floor(r() * 3)]!,
    form: r() < 0.7 ? 'CHIP' : 'QR',
    amountFen: 0,
    riderCategory: 'ADULT',
    offline: r() < 0.05,
    partition: n % 16,
    decisionTime: deviceTime + 200,
    verdict: rejected ? 'REJECTED' : 'ACCEPTED',
    reason: rejected ? 'HOTLIST_LOST' : 'OK',
    trace: decisionTrace(r, venueId, counter),
    riskRules: r() < 0.03 ? ['VELOCITY'] : [],
  };
}

function makeSettlement(r: () => number, n: number): Settlement {
  const terminalRegion = REGIONS[n % 3]!;
  const cardRegion = r() < 0.8 ? terminalRegion : REGIONS[(n + 1) % 3]!;
  const network = NETWORKS[terminalRegion];
  const amount = 300 + Math.floor(r() * 6) * 100;
  const id = `fare:${terminalRegion.toLowerCase()}-gate-${String(n % 300).padStart(4, '0')}:${1_000_000 + n}`;
  const entries: [string, number, number][] =
    cardRegion === terminalRegion
      ? [
          [`card:${cardRegion}`, amount, 0],
          [`operator:${network}`, 0, amount],
        ]
      : [
          [`card:${cardRegion}`, amount, 0],
          [`clearing:${cardRegion}:${terminalRegion}`, 0, amount],
          [`receivable:${terminalRegion}`, amount, 0],
          [`operator:${network}`, 0, amount],
        ];
  // Now and then a monthly discount posting: two more lines.
  if (r() < 0.2) entries.push([`discount:${cardRegion}`, 50, 0], [`card:${cardRegion}`, 0, 50]);
  const deviceTime = T0 + n * 3;
  return {
    settlementId: id,
    eventId: id.slice('fare:'.length),
    kind: 'FARE',
    cardToken: hex(r, 32),
    cardRegion,
    terminalRegion,
    operatorId: network,
    network,
    scene: 'RAIL',
    venueId: `${network}:${STATIONS[Math.floor(r() * STATIONS.length)]}`,
    entryVenueId: `${network}:${STATIONS[Math.floor(r() * STATIONS.length)]}`,
    deviceTime,
    settleTime: deviceTime + 300,
    businessDay: '2026-05-06',
    amountFen: amount,
    baseFareFen: amount,
    distanceM: 1000 + Math.floor(r() * 30_000),
    tariffVersion: `${network}@2024-01`,
    trace: [
      { rule: 'distance-band', version: `${network}@2024-01`, detail: '12.3 km → 5 yuan' },
      { rule: 'monthly-spend', version: `${network}@2024-01`, detail: 'spent 4200 fen this month: full fare' },
    ],
    ledger: entries.map(([account, debitFen, creditFen], i) => ({ entryId: `${id}#${i + 1}`, account, debitFen, creditFen })),
    adjustsEventId: '',
    partition: n % 16,
    ingestTime: deviceTime + 50,
  };
}

function makeRiskFlag(r: () => number, n: number): RiskFlag {
  const region = REGIONS[n % 3]!;
  const deviceTime = T0 + n * 3;
  return {
    flagId: `${region.toLowerCase()}-gate-${String(n % 300).padStart(4, '0')}:${1_000_000 + n}:VELOCITY`,
    eventId: `${region.toLowerCase()}-gate-${String(n % 300).padStart(4, '0')}:${1_000_000 + n}`,
    ruleId: r() < 0.5 ? 'VELOCITY' : 'IMPOSSIBLE_TRAVEL',
    ruleVersion: 'risk@3',
    severity: r() < 0.1 ? 'CRITICAL' : 'WARNING',
    keyKind: 'card',
    key: hex(r, 32),
    detail: '2 taps 152 km apart in 10 min (912 km/h > 300 km/h)',
    deviceTime,
    flagTime: deviceTime + 210,
    region,
  };
}

type Path = 'batch' | 'objects';

/**
 * The domain objects behind about `count` rows of a table (ledger: settlements with that many
 * entries), as the sink has them after decoding a message: their strings flat. (Strings built
 * by concatenation, as the generator's are, are flattened by V8 on first access; that cost is
 * the generator's, not the store's.)
 */
function domainObjects(table: Table, count: number, seqBase: number, seed: number): (Decision | Settlement | RiskFlag)[] {
  const r = rng(seed);
  if (table === 'decisions') return flat(Array.from({ length: count }, (_, i) => makeDecision(r, seqBase + i)));
  if (table === 'risk_flags') return flat(Array.from({ length: count }, (_, i) => makeRiskFlag(r, seqBase + i)));
  const objs: Settlement[] = [];
  let ledgerRows = 0;
  while (table === 'settlements' ? objs.length < count : ledgerRows < count) {
    const s = makeSettlement(r, seqBase + objs.length);
    objs.push(s);
    ledgerRows += s.ledger.length;
  }
  return flat(objs);
}

/** A copy whose strings are flat, as a decoder makes them. */
function flat<T>(objs: T[]): T[] {
  return JSON.parse(JSON.stringify(objs)) as T[];
}

/** The rows of a table from its objects, on the given path; object i comes from message seqBase + i. */
function encode(table: Table, path: Path, objs: (Decision | Settlement | RiskFlag)[], seqBase: number): InsertBatch | Record<string, unknown>[] {
  if (path === 'batch') {
    const b = new InsertBatch();
    for (let i = 0; i < objs.length; i++) {
      const o = objs[i]!;
      if (table === 'decisions') writeDecision(b, o as Decision, seqBase + i);
      else if (table === 'settlements') writeSettlement(b, o as Settlement, seqBase + i);
      else if (table === 'ledger') writeLedger(b, o as Settlement, seqBase + i);
      else writeRiskFlag(b, o as RiskFlag, seqBase + i);
    }
    return b;
  }
  if (table === 'decisions') return objs.map((d, i) => decisionRow(d as Decision, seqBase + i));
  if (table === 'risk_flags') return objs.map((f, i) => riskFlagRow(f as RiskFlag, seqBase + i));
  // A settlement's mapping makes its ledger rows too (and the ledger's its settlement row):
  // both are charged for the whole mapping here, a little more than the sink pays per table.
  const mapped = objs.map((s, i) => settlementRows(s as Settlement, seqBase + i));
  return table === 'settlements' ? mapped.map((m) => m.settlement) : mapped.flatMap((m) => m.ledger);
}

// ---------------------------------------------------------------------------------------------
// Clocks.

const MAIN_TASK = `/proc/self/task/${process.pid}/schedstat`;
/** CPU time of the main thread, ns (first field of schedstat). */
function mainThreadNs(): number {
  return Number(readFileSync(MAIN_TASK, 'utf8').split(' ')[0]);
}
/** CPU time of the whole process (all threads), ns. */
function processNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

interface Cell {
  table: Table;
  path: Path;
  views: boolean;
  batch: number;
  inserts: number;
  rows: number;
  /** µs per row */
  encode: number;
  serialise: number | undefined;
  insertWall: number;
  insertMainCpu: number;
  insertProcessCpu: number;
  /** ms */
  worstStall: number;
}

async function measureCell(engine: ClickHouseEngine, table: Table, path: Path, views: boolean, batch: number, totalRows: number, seqStart: number): Promise<Cell> {
  const inserts = Math.max(2, Math.ceil(totalRows / batch));
  let encodeNs = 0;
  let serialiseNs = 0;
  let wallNs = 0;
  let mainNs = 0;
  let procNs = 0;
  let worstStall = 0;
  let rows = 0;
  let seq = seqStart;
  for (let k = 0; k < inserts; k++) {
    const objs = domainObjects(table, batch, seq, seq);
    const e0 = mainThreadNs();
    const payload = encode(table, path, objs, seq);
    encodeNs += mainThreadNs() - e0;
    const n = payload instanceof InsertBatch ? payload.rows : payload.length;
    if (!(payload instanceof InsertBatch)) {
      const s0 = mainThreadNs();
      await encodeRows(payload);
      serialiseNs += mainThreadNs() - s0;
    }

    let last = performance.now();
    let stall = 0;
    const probe = setInterval(() => {
      const now = performance.now();
      stall = Math.max(stall, now - last);
      last = now;
    }, 2);
    const w0 = process.hrtime.bigint();
    const c0 = mainThreadNs();
    const p0 = processNs();
    await engine.insert(table, payload, { dedupToken: `bench:${table}:${seq}-${seq + objs.length - 1}:${n}` });
    mainNs += mainThreadNs() - c0;
    procNs += processNs() - p0;
    wallNs += Number(process.hrtime.bigint() - w0);
    clearInterval(probe);
    worstStall = Math.max(worstStall, stall, performance.now() - last);
    seq += objs.length;
    rows += n;
  }
  const perRow = (ns: number) => ns / 1000 / rows;
  return {
    table,
    path,
    views,
    batch,
    inserts,
    rows,
    encode: perRow(encodeNs),
    serialise: path === 'objects' ? perRow(serialiseNs) : undefined,
    insertWall: perRow(wallNs),
    insertMainCpu: perRow(mainNs),
    insertProcessCpu: perRow(procNs),
    worstStall,
  };
}

async function dropViews(engine: ClickHouseEngine): Promise<void> {
  const views = await engine.query<{ name: string }>("SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'MaterializedView'");
  for (const v of views) await engine.exec(`DROP VIEW ${v.name}`);
}

interface MixResult {
  path: Path;
  tapBatch: number;
  taps: number;
  rows: Record<Table, number>;
  /** µs per tap; wall is encoding and inserting, without generating the objects */
  mainCpu: number;
  processCpu: number;
  wall: number;
  /** ms spent after the last insert until no merge ran */
  mergeTail: number;
}

/** Rows of one sink batch of `taps` taps, encoded on `path`; object i of a table from message seq + i. */
function mixBatch(path: Path, taps: number, seq: number, seed: number): { generateNs: number; encode: () => Map<Table, InsertBatch | Record<string, unknown>[]> } {
  const g0 = mainThreadNs();
  const r = rng(seed);
  const decisions = flat(Array.from({ length: taps }, (_, i) => makeDecision(r, seq + i)));
  const settlements = flat(Array.from({ length: Math.round(taps * 0.9) }, (_, i) => makeSettlement(r, seq + i)));
  const flags = flat(Array.from({ length: Math.round(taps * 0.05) }, (_, i) => makeRiskFlag(r, seq + i)));
  const generateNs = mainThreadNs() - g0;
  const encode = () => {
    const out = new Map<Table, InsertBatch | Record<string, unknown>[]>();
    if (path === 'batch') {
      const b = { decisions: new InsertBatch(), settlements: new InsertBatch(), ledger: new InsertBatch(), risk_flags: new InsertBatch() };
      decisions.forEach((d, i) => writeDecision(b.decisions, d, seq + i));
      settlements.forEach((st, i) => {
        writeSettlement(b.settlements, st, seq + i);
        writeLedger(b.ledger, st, seq + i);
      });
      flags.forEach((f, i) => writeRiskFlag(b.risk_flags, f, seq + i));
      for (const t of TABLES) out.set(t, b[t]);
    } else {
      out.set('decisions', decisions.map((d, i) => decisionRow(d, seq + i)));
      const mapped = settlements.map((st, i) => settlementRows(st, seq + i));
      out.set('settlements', mapped.map((m) => m.settlement));
      out.set('ledger', mapped.flatMap((m) => m.ledger));
      out.set('risk_flags', flags.map((f, i) => riskFlagRow(f, seq + i)));
    }
    return out;
  };
  return { generateNs, encode };
}

async function measureMix(engine: ClickHouseEngine, path: Path, taps: number, tapBatch: number): Promise<MixResult> {
  const rows = { decisions: 0, settlements: 0, ledger: 0, risk_flags: 0 };
  let generateNs = 0;
  let generateWallNs = 0;
  const main0 = mainThreadNs();
  const proc0 = processNs();
  const wall0 = process.hrtime.bigint();
  for (let seq = 1; seq <= taps; seq += tapBatch) {
    const n = Math.min(tapBatch, taps - seq + 1);
    const g0 = process.hrtime.bigint();
    const batch = mixBatch(path, n, seq, seq);
    generateWallNs += Number(process.hrtime.bigint() - g0);
    generateNs += batch.generateNs;
    for (const [table, payload] of batch.encode()) {
      const count = payload instanceof InsertBatch ? payload.rows : payload.length;
      if (count === 0) continue;
      await engine.insert(table, payload, { dedupToken: `mix:${table}:${seq}-${seq + n - 1}:${count}` });
      rows[table] += count;
    }
  }
  const lastInsert = process.hrtime.bigint();
  // The merges the inserts set off are part of what storing costs: wait until none has run for
  // half a second (sampled every 50 ms), at most 60 s.
  let idleSince = Date.now();
  while (Date.now() - idleSince < 500 && Number(process.hrtime.bigint() - lastInsert) < 60e9) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const [m] = await engine.query<{ n: number }>('SELECT count() AS n FROM system.merges');
    if (m!.n > 0) idleSince = Date.now();
  }
  const end = process.hrtime.bigint();
  const mainNs = mainThreadNs() - main0 - generateNs;
  const procNs = processNs() - proc0 - generateNs;
  return {
    path,
    tapBatch,
    taps,
    rows,
    mainCpu: mainNs / 1000 / taps,
    processCpu: procNs / 1000 / taps,
    wall: (Number(lastInsert - wall0) - generateWallNs) / 1000 / taps,
    mergeTail: Number(end - lastInsert) / 1e6,
  };
}

const f1 = (n: number | undefined) => (n === undefined ? '      -' : n.toFixed(1).padStart(7));

function printTable(cells: Cell[]): void {
  console.log('\nµs per row (encode: main thread; insert CPU: main thread / whole process; stall: longest event-loop pause, ms)');
  console.log('table        path    views  batch  encode  serialise ins.wall  ins.main  ins.proc  stall');
  for (const c of cells) {
    console.log(
      `${c.table.padEnd(12)} ${c.path.padEnd(7)} ${(c.views ? 'yes' : 'no').padEnd(5)} ${String(c.batch).padStart(6)} ${f1(c.encode)} ${f1(c.serialise)}   ${f1(c.insertWall)}   ${f1(c.insertMainCpu)}   ${f1(c.insertProcessCpu)} ${c.worstStall.toFixed(0).padStart(6)}`,
    );
  }
}

/**
 * CPU for 5,000 taps/s from the views-on cells of one batch size: one decision, 0.9 settlement,
 * 3 ledger rows and 0.05 risk flag per tap (the demo fleet's mix), encoding + insert CPU.
 */
function printTapBudget(cells: Cell[], path: Path, batch: number): void {
  const mix: Record<Table, number> = { decisions: 1, settlements: 0.9, ledger: 3, risk_flags: 0.05 };
  let mainUs = 0;
  let procUs = 0;
  for (const t of TABLES) {
    const c = cells.find((x) => x.table === t && x.path === path && x.views && x.batch === batch);
    if (!c) return;
    mainUs += mix[t] * (c.encode + c.insertMainCpu);
    procUs += mix[t] * (c.encode + c.insertProcessCpu);
  }
  console.log(
    `per tap, ${path} path, batch ${batch} (1 decision, 0.9 settlement, 3 ledger rows, 0.05 flag; views on): ` +
      `main thread ${mainUs.toFixed(1)} µs, whole process ${procUs.toFixed(1)} µs ` +
      `-> 5,000 taps/s cost ${((mainUs * 5000) / 1e4).toFixed(1)}% of a core on the main thread, ${((procUs * 5000) / 1e4).toFixed(1)}% in all`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '1000,10000,50000' },
      tables: { type: 'string', default: TABLES.join(',') },
      rows: { type: 'string', default: '100000' },
      views: { type: 'string', default: 'both' },
      path: { type: 'string', default: 'batch' },
      mix: { type: 'boolean', default: false },
      taps: { type: 'string', default: '200000' },
      'tap-batch': { type: 'string', default: '1000,5000' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      'npx tsx bench/store-insert.ts [--sizes 1000,10000,50000] [--tables decisions,settlements,ledger,risk_flags] [--rows 100000] [--views both|yes|no] [--path batch|objects|both] [--json]\n' +
        'npx tsx bench/store-insert.ts --mix [--taps 200000] [--tap-batch 1000,5000] [--path batch|objects|both] [--json]',
    );
    return;
  }
  const sizes = values.sizes.split(',').map(Number);
  for (const n of sizes) if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--sizes: ${n} is not a row count`);
  const tables = values.tables.split(',') as Table[];
  for (const t of tables) if (!TABLES.includes(t)) throw new Error(`--tables: unknown table ${t}`);
  const totalRows = Number(values.rows);
  const viewModes = values.views === 'both' ? [true, false] : [values.views === 'yes'];
  const paths: Path[] = values.path === 'both' ? ['batch', 'objects'] : [values.path as Path];
  for (const p of paths) if (p !== 'batch' && p !== 'objects') throw new Error(`--path: ${p} is not batch, objects or both`);

  if (values.mix) {
    await mix(paths, Number(values.taps), values['tap-batch'].split(',').map(Number), values.json);
    return;
  }

  const dataDir = mkdtempSync(join(tmpdir(), 'tapflow-store-bench-'));
  const cells: Cell[] = [];
  try {
    let seq = 1;
    for (const views of viewModes) {
      const engine = await openClickHouse({ dataDir, database: views ? 'bench_views' : 'bench_plain' });
      await migrate(engine);
      if (!views) await dropViews(engine);
      // Warm-up: first inserts pay for lazy initialisation and the JIT.
      for (const p of paths) for (const t of tables) await measureCell(engine, t, p, views, 1000, 4000, 1e9 + seq++ * 10_000);
      for (const t of tables) {
        for (const batch of sizes) {
          for (const p of paths) {
            const c = await measureCell(engine, t, p, views, batch, batch <= 1000 ? Math.min(totalRows, 50_000) : totalRows, seq);
            seq += c.rows + batch;
            cells.push(c);
            if (!values.json) process.stderr.write('.');
          }
        }
      }
      await engine.close();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  if (values.json) {
    console.log(JSON.stringify(cells, null, 2));
    return;
  }
  printTable(cells);
  console.log('');
  for (const p of paths) for (const b of sizes) printTapBudget(cells, p, b);
}

/** The sink-like mixed workload (--mix), each batch size on a fresh database with the migrations' views. */
async function mix(paths: Path[], taps: number, tapBatches: number[], json: boolean): Promise<void> {
  if (!Number.isSafeInteger(taps) || taps < 1) throw new Error(`--taps: ${taps} is not a tap count`);
  for (const n of tapBatches) if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--tap-batch: ${n} is not a tap count`);
  const dataDir = mkdtempSync(join(tmpdir(), 'tapflow-store-bench-'));
  const results: MixResult[] = [];
  try {
    let db = 0;
    for (const path of paths) {
      for (const tapBatch of tapBatches) {
        const engine = await openClickHouse({ dataDir, database: `bench_mix_${db++}` });
        await migrate(engine);
        await measureMix(engine, path, Math.min(taps, 20 * tapBatch), tapBatch); // warm-up
        await engine.close();
        const fresh = await openClickHouse({ dataDir, database: `bench_mix_${db++}` });
        await migrate(fresh);
        results.push(await measureMix(fresh, path, taps, tapBatch));
        await fresh.close();
        if (!json) process.stderr.write('.');
      }
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  if (json) {
    console.log(JSON.stringify(results, null, 2));
    return;
  }
  console.log('\nsink-like mix, µs per tap (merges included, generation excluded); % of a core at 5,000 taps/s');
  console.log('path     taps/batch   main CPU   process CPU   wall    main %   all %   merge tail   rows per tap (d/s/l/f)');
  for (const r of results) {
    const per = (n: number) => (n / r.taps).toFixed(2);
    console.log(
      `${r.path.padEnd(8)} ${String(r.tapBatch).padStart(10)} ${f1(r.mainCpu)}    ${f1(r.processCpu)}   ${f1(r.wall)}  ${((r.mainCpu * 5000) / 1e4).toFixed(1).padStart(6)}% ${((r.processCpu * 5000) / 1e4).toFixed(1).padStart(6)}%   ${(r.mergeTail / 1000).toFixed(1).padStart(7)} s   ${per(r.rows.decisions)}/${per(r.rows.settlements)}/${per(r.rows.ledger)}/${per(r.rows.risk_flags)}`,
    );
  }
}

await main();
