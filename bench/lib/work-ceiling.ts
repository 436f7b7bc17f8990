/**
 * The work ceiling: how many of the run's own taps one JavaScript thread takes through all of
 * tapflow's per-tap work, with no bus — in taps per second. The pipeline's throughput over it
 * says what the bus, the state writes and the hand-offs between roles cost on top of the work,
 * and how well the second core is used (issue 10: the ramp's knee ≥ 1.0 × this ceiling).
 *
 * Per tap, in tapflow's own functions, in the order the roles apply them:
 *   ingest     read the StreamTaps frame (src/ingest/wire.ts), check its shape and digest it
 *              (src/ingest/shape.ts checkTap, digest.ts), tokenise the card number, seal the
 *              credentials (src/domain/card/seal.ts), encode the bus message (src/bus/codec.ts)
 *   validator  decode it, unseal, decide (src/domain/validate decideTap: chip MAC or Ed25519 QR
 *              signature, hotlist, project list, single use, behaviour, risk rules), encode the
 *              decision and its risk flags
 *   settler    decode the decision, price it (src/domain/settle settleDecision), encode the
 *              settlements
 *   sink       decode decisions, settlements and flags, map them to rows (src/store rows) and
 *              insert them into the embedded engine (chdb) in batches, through tapflow's
 *              migrations (materialized views included) — awaited, so nothing overlaps.
 * Cards' states stay in memory (Maps), as a partition owner's would. Claims are not included
 * (a fraction of a percent of the fleet's events).
 *
 * Every call into tapflow's internals made by the bench for this ceiling is in this module, behind
 * {@link measureWorkCeiling}: when the bus contract changes (taps travelling in bundles), only
 * this module follows it. It runs in a child process of its own (bench/work-ceiling-process.ts):
 * chdb binds one data directory per process, and the bench's own heap (the tape) would slow the
 * thread being measured.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeBusTap, encodeCredentials, decodeBusTap, decodeCredentials, decodeDecision, decodeRiskFlag, decodeSettlement, encodeDecision, encodeRiskFlag, encodeSettlement } from '../../src/bus/codec.js';
import { loadTrustStore } from '../../src/domain/card/keys.js';
import { seal, unseal } from '../../src/domain/card/seal.js';
import { partitionOf, tokenize } from '../../src/domain/card/token.js';
import { loadNetworks, loadVenueDirectory } from '../../src/domain/network/index.js';
import { loadSettlerData, settleDecision, type CardSettleState } from '../../src/domain/settle/index.js';
import { DEFAULT_VALIDATOR_SETTINGS, Hotlist, decideTap, parseProjectList, parseRiskRules, type CardValidationState, type ValidatorData } from '../../src/domain/validate/index.js';
import type { TapEvent } from '../../src/domain/types.js';
import { tapDigest } from '../../src/ingest/digest.js';
import { checkTap } from '../../src/ingest/shape.js';
import { readTap } from '../../src/ingest/wire.js';
import { localKeys } from '../../src/runtime/keys.js';
import { decisionRow, migrate, openClickHouse, riskFlagRow, settlementRows } from '../../src/store/mod.js';
import { ensureDevTrustFile } from '../../src/validate/trust.js';

/** The run's taps as the terminals sent them. */
export interface WorkTape {
  /** Each an encoded tapflow.v1.Tap (a StreamTaps frame), in the order tapflow received them; `offline`: from an UploadBatch. */
  taps: { bytes: Uint8Array; offline: boolean }[];
  /** Card numbers on the hotlist (LOST) during the run. */
  hotlistedCards: string[];
}

export interface WorkCeilingOptions {
  /** The run's TAPFLOW_DATA_DIR: its token and seal keys and the trust file of the QR and chip keys. */
  dataDir: string;
  /** tapflow's data folder: networks, tariffs, the project list, the risk rules. */
  tariffDir: string;
  /** TAPFLOW_PARTITIONS. */
  partitions: number;
  /** A fresh folder for the embedded engine's data. */
  chdbDir: string;
  /** Measure for about this long (s) after the warm-up; stops earlier when the tape is done. */
  seconds: number;
  /** Taps whose rows go in one insert. @default 2000 */
  insertBatch?: number;
  /** Taps processed before the clock starts (JIT, the first insert). @default 1000 (at most a tenth of the tape) */
  warmupTaps?: number;
}

export interface WorkCeiling {
  tapsPerSecond: number;
  /** Taps timed (after the warm-up; those refused at ingest included) and the time they took, s. */
  taps: number;
  seconds: number;
  /** µs per timed tap in each stage (a stage's total over all timed taps; they add up to the whole). */
  perStageUs: Record<string, number>;
  /** Rows inserted per table while timed. */
  rows: Record<string, number>;
  /** Decisions while timed, by verdict. */
  verdicts: Record<string, number>;
  /** Taps refused at ingest (shape) while timed. */
  invalid: number;
}

/** Stage names, in the order a tap goes through them. */
export const WORK_STAGES = [
  'ingest_read',
  'ingest_check',
  'ingest_tokenize',
  'ingest_seal_encode',
  'validator_decode_unseal',
  'validator_decide',
  'validator_encode',
  'settler_decode',
  'settler_settle',
  'settler_encode',
  'sink_decode_rows',
  'sink_insert',
] as const;
type Stage = (typeof WORK_STAGES)[number];

/** Runs the tape through tapflow's per-tap work on this thread (module comment). */
export async function measureWorkCeiling(tape: WorkTape, o: WorkCeilingOptions): Promise<WorkCeiling> {
  const keys = localKeys({ TAPFLOW_DATA_DIR: o.dataDir });
  const trustPath = ensureDevTrustFile({ TAPFLOW_DATA_DIR: o.dataDir });
  const networks = loadNetworks(o.tariffDir);
  const venues = loadVenueDirectory(o.tariffDir, networks);
  const settlerData = loadSettlerData(o.tariffDir);
  const data: ValidatorData = {
    projectList: parseProjectList(readFileSync(join(o.tariffDir, 'projects', 'default.yaml'), 'utf8'), 'yaml'),
    hotlist: new Hotlist(tape.hotlistedCards.map((n) => ({ cardToken: tokenize(keys.tokenKey, 'card', n), reason: 'LOST' as const, since: 0 })), 'bench'),
    trust: loadTrustStore([{ name: trustPath, text: readFileSync(trustPath, 'utf8') }]),
    venues,
    riskRules: parseRiskRules(readFileSync(join(o.tariffDir, 'risk-rules', 'default.yaml'), 'utf8'), 'yaml'),
    settings: DEFAULT_VALIDATOR_SETTINGS,
  };
  const engine = await openClickHouse({ dataDir: o.chdbDir, database: 'tapflow' });
  try {
    await migrate(engine);
    const batch = Math.max(1, o.insertBatch ?? 2000);
    const warmup = Math.min(o.warmupTaps ?? 1000, Math.floor(tape.taps.length / 10));
    const validatorStates = new Map<string, CardValidationState>();
    const settleStates = new Map<string, CardSettleState>();
    const stageNs = Object.fromEntries(WORK_STAGES.map((s) => [s, 0])) as Record<Stage, number>;
    const rowsIn: Record<string, number> = {};
    const verdicts: Record<string, number> = {};
    let invalid = 0;
    let timing = false;
    let seq = 0;
    // The bus messages of a batch, waiting for the sink.
    let decisionMsgs: Uint8Array[] = [];
    let settlementMsgs: Uint8Array[] = [];
    let flagMsgs: Uint8Array[] = [];
    let t = process.hrtime.bigint();
    const lap = (stage: Stage) => {
      const now = process.hrtime.bigint();
      if (timing) stageNs[stage] += Number(now - t);
      t = now;
    };

    const sink = async () => {
      t = process.hrtime.bigint();
      const rows: Record<string, Record<string, unknown>[]> = { decisions: [], settlements: [], ledger: [], risk_flags: [] };
      const first = seq + 1;
      for (const m of decisionMsgs) rows.decisions!.push(decisionRow(decodeDecision(m), ++seq) as unknown as Record<string, unknown>);
      for (const m of settlementMsgs) {
        const s = settlementRows(decodeSettlement(m), ++seq);
        rows.settlements!.push(s.settlement as unknown as Record<string, unknown>);
        for (const l of s.ledger) rows.ledger!.push(l as unknown as Record<string, unknown>);
      }
      for (const m of flagMsgs) rows.risk_flags!.push(riskFlagRow(decodeRiskFlag(m), ++seq) as unknown as Record<string, unknown>);
      lap('sink_decode_rows');
      for (const [table, r] of Object.entries(rows)) {
        if (r.length === 0) continue;
        await engine.insert(table, r, { dedupToken: `bench-work:${table}:${first}-${seq}:${r.length}` });
        if (timing) rowsIn[table] = (rowsIn[table] ?? 0) + r.length;
      }
      lap('sink_insert');
      decisionMsgs = [];
      settlementMsgs = [];
      flagMsgs = [];
    };

    let t0 = 0n;
    let timed = 0;
    const budgetNs = BigInt(Math.round(o.seconds * 1e9));
    for (let i = 0; i < tape.taps.length; i++) {
      if (i === warmup) {
        await sink();
        timing = true;
        t0 = process.hrtime.bigint();
      }
      if (timing && i % batch === 0 && i > warmup && process.hrtime.bigint() - t0 >= budgetNs) break;
      if (timing) timed++;
      const { bytes, offline } = tape.taps[i]!;
      const now = Date.now();
      t = process.hrtime.bigint();

      // ---- ingest
      const frame = readTap(bytes);
      lap('ingest_read');
      if (!frame.ok) continue;
      const checked = checkTap(frame.value, frame.value.terminalId);
      if (!checked.ok) {
        lap('ingest_check');
        if (timing) invalid++;
        continue;
      }
      const c = checked.tap;
      const digest = tapDigest(c.tap);
      lap('ingest_check');
      const cardToken = tokenize(keys.tokenKey, 'card', c.cardNumber);
      const partition = partitionOf(cardToken, o.partitions);
      lap('ingest_tokenize');
      const eventId = `${c.tap.terminalId}:${c.tap.seq}`;
      const ev: TapEvent = {
        eventId,
        terminalId: c.tap.terminalId,
        seq: c.tap.seq,
        terminalRegion: c.tap.terminalId.slice(0, 2) as TapEvent['terminalRegion'],
        operatorId: venues.get(c.tap.venueId)?.operatorId ?? 'unknown',
        deviceTime: c.tap.deviceTime,
        ingestTime: now,
        scene: c.scene,
        venueId: c.tap.venueId,
        direction: c.direction,
        cardToken,
        cardRegion: c.cardRegion,
        form: c.credentials.kind === 'chip' ? 'CHIP' : 'QR',
        amountFen: c.tap.amountFen,
        riderCategory: c.riderCategory,
        offline,
        partition,
        contentDigest: digest,
      };
      const busTap = encodeBusTap(ev, seal(keys.sealKey, encodeCredentials(c.credentials), eventId));
      lap('ingest_seal_encode');

      // ---- validator
      const { tap, sealedCard } = decodeBusTap(busTap);
      const opened = unseal(keys.sealKey, sealedCard, tap.eventId);
      const creds = opened ? decodeCredentials(opened) : undefined;
      lap('validator_decode_unseal');
      const r = decideTap(data, validatorStates.get(tap.cardToken), tap, creds, now);
      validatorStates.set(tap.cardToken, r.state);
      lap('validator_decide');
      if (r.already) continue; // the tape holds a re-send: decided before, nothing new
      const decisionMsg = encodeDecision(r.decision);
      decisionMsgs.push(decisionMsg);
      for (const f of r.flags) flagMsgs.push(encodeRiskFlag(f));
      lap('validator_encode');
      if (timing) verdicts[r.decision.verdict] = (verdicts[r.decision.verdict] ?? 0) + 1;

      // ---- settler
      const d = decodeDecision(decisionMsg);
      lap('settler_decode');
      if (d.verdict === 'ACCEPTED') {
        const s = settleDecision(settlerData, settleStates.get(d.cardToken), d, now);
        settleStates.set(d.cardToken, s.state);
        lap('settler_settle');
        for (const x of s.settlements) settlementMsgs.push(encodeSettlement(x));
        lap('settler_encode');
      }
      if ((i + 1) % batch === 0) await sink();
    }
    await sink();
    const ns = Number(process.hrtime.bigint() - t0);
    const seconds = ns / 1e9;
    const perStageUs = Object.fromEntries(WORK_STAGES.map((s) => [s, timed > 0 ? Math.round(stageNs[s] / timed / 100) / 10 : 0]));
    return { tapsPerSecond: seconds > 0 ? Math.round(timed / seconds) : 0, taps: timed, seconds: Math.round(seconds * 100) / 100, perStageUs, rows: rowsIn, verdicts, invalid };
  } finally {
    await engine.close();
  }
}
