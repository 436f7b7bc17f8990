/**
 * A replica run for the replica tests: a fresh nats-server, the sink in this process (embedded
 * ClickHouse, one database per run in a shared chdb dir), and ingest, validators and settlers as
 * child processes (`tapflow ingest|validator|settler`) sharing one data dir (keys, tariffs).
 * Streams a script, optionally SIGKILLs replicas part-way, waits until every consumer is
 * drained, and reads back what reached ClickHouse.
 *
 * The children log at info (TAPFLOW_TEST_CHILD_LOG_LEVEL overrides it: with `debug` the run's
 * notes list every partition hand-over).
 */
import { join } from 'node:path';
import { loadConfig, type Config, type ConfigKey } from '../../../src/config/config.js';
import { startApp, type RunningApp } from '../../../src/runtime/app.js';
import { ROLE_FACTORIES } from '../../../src/cli/roles.js';
import { createLogger } from '../../../src/observe/log.js';
import { consumerPlan } from '../../../src/bus/topology.js';
import { Streams } from '../../../src/bus/subjects.js';
import type { HotlistReason } from '../../../src/domain/validate/index.js';
import { startTestNats } from '../../support/nats.js';
import { setupBus } from '../../support/bus.js';
import { drained, evenlyShared, loadRunTimeData, until } from '../../support/fleet.js';
import { REPO_ROOT, ingestPortOf, spawnRole, stopAll, type RoleProcess } from '../../support/processes.js';
import { sendScript, TapSender, type AckLog, type ScriptStep } from '../../support/scenario.js';
import { TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';

export interface RunOptions {
  /** Names the ClickHouse database of the run. */
  name: string;
  dataDir: string;
  validators: number;
  settlers: number;
  partitions: number;
  steps: ScriptStep[];
  hotlist: { cardNumber: string; reason: HotlistReason }[];
  /** SIGKILL validator #1 and settler #1 (0-based) once this many steps are written. */
  killAfterSteps?: number;
  /**
   * Validator #1 and settler #1 kill themselves between two steps of a batch
   * (TAPFLOW_TEST_CRASH, src/runtime/crash-points.ts), e.g. { validator: 'after-outputs', settler:
   * 'after-commit' }, at their `crashBatch`-th batch.
   */
  crash?: { validator?: 'after-outputs' | 'after-commit'; settler?: 'after-outputs' | 'after-commit'; batch: number };
  burst: number;
  pauseMs: number;
}

/** What one run stored, keyed for comparison (wall-clock fields left out: see the test). */
export interface RunResult {
  acks: AckLog;
  /** event id → "verdict reason [trace rules]" */
  decisions: Map<string, string>;
  /** settlement id → "kind event amount_fen base_fare_fen distance_m" */
  settlements: Map<string, string>;
  /** entry id → "settlement account debit credit" */
  ledger: Map<string, string>;
  /** flag id → "rule@version severity" (card-keyed and built-in flags) */
  cardFlags: Map<string, string>;
  /** Rows per table, duplicates included. */
  rows: { decisions: number; settlements: number; ledger: number; flags: number };
  /** Settlements whose ledger entries do not balance ("id: debits != credits"); must be empty. */
  unbalanced: string[];
  killed: string[];
  /** Seconds from first tap to drained pipeline. */
  seconds: number;
  /** The processes' warnings, lease changes and in-order holds after a hand-over (for the report). */
  notes: string[];
}

/** Ack wait of every consumer in these runs (ms). */
export const ACK_WAIT_MS = 4000;

export async function runReplicas(o: RunOptions): Promise<RunResult> {
  const nats = await startTestNats();
  const env: Partial<Record<ConfigKey, string>> = {
    NATS_URL: nats.url,
    TAPFLOW_NATS_AUTOSTART: 'false',
    TAPFLOW_DATA_DIR: o.dataDir,
    TAPFLOW_TARIFF_DIR: join(REPO_ROOT, 'data'),
    TAPFLOW_GRPC_HOST: '127.0.0.1',
    TAPFLOW_GRPC_PORT: '0',
    TAPFLOW_METRICS_PORT: '0',
    TAPFLOW_PARTITIONS: String(o.partitions),
    // Short leases: a killed replica's partitions move after about 2 s.
    TAPFLOW_LEASE_TTL_MS: '2000',
    // A short ack wait: messages a killed replica held come back after it (the default, 20 s,
    // only makes the hand-over stall longer; order and answers do not depend on it).
    TAPFLOW_ACK_WAIT_S: String(ACK_WAIT_MS / 1000),
    TAPFLOW_SINK_FLUSH_MS: '100',
    TAPFLOW_PUBLISH_TIMEOUT_MS: '5000',
    TAPFLOW_SHUTDOWN_TIMEOUT_MS: '10000',
    // One replica per process: the partition shares below count processes.
    TAPFLOW_WORKERS: '0',
    // The static-secret path (TapSender); mutual TLS is covered by test/integration/ingest/mtls.test.ts.
    TAPFLOW_INGEST_AUTH: 'dev-secrets',
    TAPFLOW_LOG_LEVEL: process.env.TAPFLOW_TEST_CHILD_LOG_LEVEL ?? 'info',
  };
  const cfg: Config = loadConfig({}, { ...env, CLICKHOUSE_DATABASE: `replicas_${o.name}`, TAPFLOW_LOG_LEVEL: process.env.TAPFLOW_TEST_LOG_LEVEL ?? 'warn' });
  const procs: RoleProcess[] = [];
  let sink: RunningApp | undefined;
  let sender: TapSender | undefined;
  try {
    await setupBus(nats.url, env);
    sink = await startApp(cfg, [{ name: 'sink', create: ROLE_FACTORIES.sink }], { installSignalHandlers: false, log: createLogger(cfg.TAPFLOW_LOG_LEVEL, { test: o.name }) });
    // Run-time data before any validator starts, so every replica starts from the same view.
    await loadRunTimeData(sink.ctx.buckets, cfg.TAPFLOW_TARIFF_DIR, sink.ctx.keys.tokenKey, o.hotlist);

    // (The short ack wait is set through TAPFLOW_ACK_WAIT_S for every process.)
    for (const c of consumerPlan(o.partitions)) {
      const info = await sink.ctx.bus.jsm.consumers.info(Streams[c.stream].name, c.name);
      if (info.config.ack_wait !== ACK_WAIT_MS * 1_000_000) throw new Error(`consumer ${c.name} has ack wait ${info.config.ack_wait} ns, not the configured ${ACK_WAIT_MS} ms`);
    }
    const childEnv = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
    const ingest = spawnRole('ingest', { env: childEnv, name: 'ingest' });
    const crashEnv = (role: 'validator' | 'settler', i: number) =>
      i === 1 && o.crash?.[role] ? { ...childEnv, TAPFLOW_TEST_CRASH: `${role}:${o.crash[role]}:${o.crash.batch}` } : childEnv;
    const validators = Array.from({ length: o.validators }, (_, i) => spawnRole('validator', { env: crashEnv('validator', i), name: `validator#${i}` }));
    const settlers = Array.from({ length: o.settlers }, (_, i) => spawnRole('settler', { env: crashEnv('settler', i), name: `settler#${i}` }));
    procs.push(ingest, ...validators, ...settlers);
    const ingestPort = await ingestPortOf(ingest);
    // Every replica up and holding its final share of the partitions (partition p belongs to
    // member p mod n, members sorted: see src/bus/partitions.ts) before the first tap, so the
    // only hand-overs during the stream are those a kill causes.
    const shared = (role: string, n: number) => evenlyShared(sink!.ctx.buckets.leases, role, n, o.partitions);
    await until(async () => (await shared('validator', o.validators)) && (await shared('settler', o.settlers)), 60_000, 'every replica to own its partitions').catch((err: Error) => {
      throw new Error(`${err.message}\n${procs.map((p) => `--- ${p.name}\n${p.tail(10)}`).join('\n')}`);
    });
    sender = new TapSender(`127.0.0.1:${ingestPort}`, sink.ctx.keys.fleetKey);
    const killed: string[] = [];
    const t0 = Date.now();
    const acks = await sendScript(sender, o.steps, {
      burst: o.burst,
      pauseMs: o.pauseMs,
      onBurst: async (written) => {
        if (o.killAfterSteps === undefined || killed.length > 0 || written < o.killAfterSteps) return;
        // Mid-stream: taps of earlier bursts are still being decided and settled.
        const victims = [validators[1]!, settlers[1]!];
        await Promise.all(victims.map((v) => v.kill('SIGKILL')));
        killed.push(...victims.map((v) => `${v.name} (pid ${v.pid}) after ${written} steps`));
      },
    });
    const durable = [...acks.values()].filter((l) => l.some((a) => a.status === TapStatus.ACCEPTED_DURABLE)).length;
    const engine = sink.ctx.engine!;
    const count = async (sql: string) => Number((await engine.query<{ n: number }>(sql))[0]!.n);
    await until(async () => (await count('SELECT count() AS n FROM decisions')) >= durable && (await drained(sink!.ctx.bus.jsm, o.partitions)), 90_000, `${durable} decisions and drained consumers`).catch(async (err: Error) => {
      throw new Error(`${err.message} (decisions stored: ${await count('SELECT count() AS n FROM decisions')})\n${procs.map((p) => `--- ${p.name}\n${p.tail(8)}`).join('\n')}`);
    });
    // Drained twice in a row, 500 ms apart: a journey sweep or a late redelivery would show.
    await new Promise((r) => setTimeout(r, 500));
    await until(() => drained(sink!.ctx.bus.jsm, o.partitions), 30_000, 'drained consumers');
    const seconds = (Date.now() - t0) / 1000;
    for (const p of [...validators, ...settlers]) {
      const crashed = p.logs.find((l) => /TAPFLOW_TEST_CRASH/.test(String(l.msg)));
      if (crashed) killed.push(`${p.name} (pid ${p.pid}) at ${String(crashed.point)} of batch ${String(crashed.batch)}`);
    }

    const decisions = new Map<string, string>();
    for (const d of await engine.query<{ event_id: string; verdict: string; reason: string; trace: string }>('SELECT event_id, verdict, reason, trace FROM decisions')) {
      const rules = (JSON.parse(d.trace) as { rule: string }[]).map((s) => s.rule).join(',');
      decisions.set(d.event_id, `${d.verdict} ${d.reason} [${rules}]`);
    }
    const settlements = new Map<string, string>();
    for (const s of await engine.query<{ settlement_id: string; kind: string; event_id: string; amount_fen: number; base_fare_fen: number; distance_m: number }>(
      'SELECT settlement_id, kind, event_id, amount_fen, base_fare_fen, distance_m FROM settlements',
    )) {
      settlements.set(s.settlement_id, `${s.kind} ${s.event_id} ${s.amount_fen} ${s.base_fare_fen} ${s.distance_m}`);
    }
    const ledger = new Map<string, string>();
    for (const l of await engine.query<{ entry_id: string; settlement_id: string; account: string; debit_fen: number; credit_fen: number }>('SELECT entry_id, settlement_id, account, debit_fen, credit_fen FROM ledger')) {
      ledger.set(l.entry_id, `${l.settlement_id} ${l.account} ${l.debit_fen} ${l.credit_fen}`);
    }
    const cardFlags = new Map<string, string>();
    for (const f of await engine.query<{ flag_id: string; rule_id: string; rule_version: string; severity: string }>("SELECT flag_id, rule_id, rule_version, severity FROM risk_flags WHERE key_kind = 'card'")) {
      cardFlags.set(f.flag_id, `${f.rule_id}@${f.rule_version} ${f.severity}`);
    }
    const unbalanced = (
      await engine.query<{ settlement_id: string; d: number; c: number }>('SELECT settlement_id, sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger GROUP BY settlement_id HAVING d != c')
    ).map((r) => `${r.settlement_id}: ${r.d} != ${r.c}`);
    const rows = {
      decisions: await count('SELECT count() AS n FROM decisions'),
      settlements: await count('SELECT count() AS n FROM settlements'),
      ledger: await count('SELECT count() AS n FROM ledger'),
      flags: await count("SELECT count() AS n FROM risk_flags WHERE key_kind = 'card'"),
    };
    const notes = procs.flatMap((p) => p.logs.filter((l) => ((l.level ?? 0) >= 40 && !/demo terminal registry|TAPFLOW_INGEST_AUTH=dev-secrets/.test(String(l.msg))) || /previous owner|lease|partition acquired/.test(String(l.msg))).map((l) => `${p.name}: ${l.msg} ${JSON.stringify({ t: l.time, role: l.role, partition: l.partition, consumer: l.consumer, held: l.held, pending: l.pending, code: l.code, err: l.err })}`));
    return { acks, decisions, settlements, ledger, cardFlags, rows, unbalanced, killed, seconds, notes };
  } finally {
    await sender?.close().catch(() => undefined);
    await stopAll(procs);
    await sink?.shutdown('test done');
    await nats.stop();
  }
}

/** Differences between two keyed results: "key: a → b" for changed, missing and extra keys. */
export function differences(a: Map<string, string>, b: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w !== v) out.push(`${k}: ${v} → ${w ?? '(missing)'}`);
  }
  for (const [k, w] of b) if (!a.has(k)) out.push(`${k}: (missing) → ${w}`);
  return out.sort();
}
