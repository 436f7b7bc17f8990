/**
 * One run of the fault suite (issue 11 item 1): a fresh nats-server (or a three-node JetStream
 * cluster), and every role as its own process (`tapflow ingest|validator|settler|sink`, started
 * with spawnRole) sharing one data dir (keys, tariffs; one ClickHouse database per run in the
 * shared embedded store). A mixed script of taps and offline batches, and a few medical claims,
 * are sent as a terminal does: an answer UNAVAILABLE or OVERLOADED, or a broken stream, is sent
 * again with the same seq (claim id) after a pause. At chosen points of the script the run's
 * faults act on the fleet (kill and restart roles, nats-server or a node, make the store
 * unavailable, add or remove replicas). The run then waits until every durable consumer is
 * drained, stops the roles, and reads back what was stored (store-facts.ts, in a process of its
 * own), the consumers' backlogs and the dead letters.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { loadConfig, type ConfigKey } from '../../src/config/config.js';
import { connectBus, type Bus } from '../../src/bus/connection.js';
import { ensureTopology, openBuckets, topologyOptions, type BucketSet } from '../../src/bus/topology.js';
import { Streams } from '../../src/bus/subjects.js';
import { DeadLetterHeaders } from '../../src/bus/dead-letter.js';
import { createLogger } from '../../src/observe/log.js';
import { localKeys } from '../../src/runtime/keys.js';
import { freePort, type NatsServerHandle } from '../../src/runtime/nats-server.js';
import { ClaimStatus, TapStatus, type ClaimResult, type MedicalClaim, type TapAck } from '../../src/gen/tapflow/v1/ingest.js';
import { startTestNats } from '../support/nats.js';
import { startTestNatsCluster, type TestNatsCluster } from '../support/nats-cluster.js';
import { REPO_ROOT, spawnRole, stopAll, type RoleProcess } from '../support/processes.js';
import { sendScript, TapSender, terminalMetadata, type AckLog, type ScriptStep } from '../support/scenario.js';
import { consumerBacklogs, evenlyShared, eventually, leaseOwners, loadRunTimeData, until, type ConsumerBacklog } from '../support/fleet.js';
import type { MixedScript } from '../support/mixed-script.js';
import { claim, item, CLASS_A, CLASS_B, SELF_PAY, TJ_COUNTER, signed, settleClaim } from '../integration/claims/grpc-claims.js';
import type { StoreFacts } from './store-facts.js';

export const PARTITIONS = 4;
/** Lease time and ack wait of every consumer in these runs: a killed replica's work moves in seconds. */
const LEASE_TTL_MS = 2000;
const ACK_WAIT_S = 4;

type RoleName = 'ingest' | 'validator' | 'settler' | 'sink';

/** What a fault acts on. */
export interface Fleet {
  readonly procs: Record<RoleName, RoleProcess[]>;
  /** Starts one more process of a role (a replica, a restart, a standby). */
  spawn(role: RoleName): RoleProcess;
  /** SIGKILL, then the same role started again (at once: it comes up while taps flow). */
  killAndRestart(p: RoleProcess): Promise<RoleProcess>;
  /** The single nats-server (undefined on a cluster). */
  readonly nats?: NatsServerHandle;
  readonly cluster?: TestNatsCluster;
  readonly bus: Bus;
  readonly buckets: BucketSet;
  /** The file whose existence makes the sinks' store unavailable (TAPFLOW_TEST_STORE_DOWN_FILE). */
  readonly storeDownFile: string;
  /** Answers so far, with the time each arrived (ms). */
  readonly answers: { at: number; ack: TapAck }[];
  /** What the fault did, for the summary line. */
  note(s: string): void;
}

export interface Fault {
  /** Acts once this many script steps were written. */
  atStep: number;
  act(f: Fleet): Promise<void>;
}

export interface FaultScenario {
  name: string;
  validators: number;
  settlers: number;
  /** Sinks on the same store: the first active, the others standbys (default 1). */
  sinks?: number;
  /** A three-node JetStream cluster, streams with 3 replicas. */
  cluster?: boolean;
  faults: Fault[];
  /** Steps per burst and pause between bursts (ms). */
  burst: number;
  pauseMs: number;
  /** Claims are sent once this many steps were written. */
  claimsAtStep: number;
  /** Checked after the run (the faults' own promises), before the roles stop. */
  after?: (f: Fleet) => Promise<void>;
}

export interface FaultRun {
  acks: AckLog;
  answers: { at: number; ack: TapAck }[];
  claims: Map<string, ClaimResult[]>;
  facts: StoreFacts;
  /** Consumers not drained at the end (after the roles stopped). */
  backlogs: ConsumerBacklog[];
  /** Dead letters: "code stream" each. */
  deadLetters: string[];
  notes: string[];
  /** Taps and batches the terminals had to send again (not answered durably, or the call failed). */
  retried: number;
  seconds: number;
  /** Every process's log lines, by name (for assertions on hand-overs). */
  logs: Map<string, RoleProcess>;
}

/** The claims of a run: outpatient claims of distinct people and cards, mixed catalogue classes. */
export function scriptClaims(n = 8): MedicalClaim[] {
  return Array.from({ length: n }, (_, i) =>
    claim(`FAULT-C${i}`, {
      card: { $case: 'chip', value: { cardNumber: `1100000${String(71_000 + i)}`, counter: 1, mac: Buffer.alloc(8) } },
      idNumber: `11010519800101${String(100 + i)}X`,
      items: [item('A1', CLASS_A, 20_000 + 1_000 * i), item('B1', CLASS_B, 5_000 * (i % 3)), item('S1', SELF_PAY, 700 * (i % 2))].filter((x) => x.amountFen > 0),
      personalAccountBalanceFen: 10_000 * (i % 4),
    }),
  );
}

/** Sends one claim until it has a durable answer (SETTLED, REJECTED or PENDING). */
async function sendClaim(sender: TapSender, fleetKey: Uint8Array, c: MedicalClaim, log: ClaimResult[], retryForMs = 120_000): Promise<void> {
  const md = terminalMetadata(fleetKey, TJ_COUNTER);
  const end = Date.now() + retryForMs;
  for (let last = ''; ; ) {
    const r = await settleClaim(sender.client, md, c);
    if (r.ok) {
      log.push(r.value);
      if ([ClaimStatus.SETTLED, ClaimStatus.REJECTED, ClaimStatus.PENDING].includes(r.value.status)) return;
      last = `${ClaimStatus[r.value.status]} ${r.value.reason}`;
    } else last = `${r.error.code} ${r.error.details}`;
    if (Date.now() > end) throw new Error(`claim ${c.claimId}: no durable answer within ${retryForMs} ms; last: ${last}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const run$ = promisify(execFile);

/** Reads the run's store in a process of its own (store-facts.ts). */
async function storeFacts(env: Record<string, string>): Promise<StoreFacts> {
  const { stdout } = await run$(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/faults/store-facts.ts')], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env, TAPFLOW_LOG_LEVEL: 'warn' },
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as StoreFacts;
}

/** Dead letters of the run: "code stream" each. */
async function deadLetters(bus: Bus): Promise<string[]> {
  const info = await bus.jsm.streams.info(Streams.DLQ.name);
  const out: string[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await bus.jsm.streams.getMessage(Streams.DLQ.name, { seq }).catch(() => undefined);
    if (m) out.push(`${m.header.get(DeadLetterHeaders.ErrorCode) || '(no code)'} ${m.header.get(DeadLetterHeaders.SourceStream) || '(no stream)'}`);
  }
  return out.sort();
}

export async function runFaultScenario(s: FaultScenario, o: { dataDir: string; script: MixedScript; claims: MedicalClaim[] }): Promise<FaultRun> {
  const cluster = s.cluster ? await startTestNatsCluster() : undefined;
  const nats = cluster ? undefined : await startTestNats();
  const url = cluster?.url ?? nats!.url;
  const storeDownFile = join(o.dataDir, `store-down-${s.name}`);
  const env: Partial<Record<ConfigKey, string>> = {
    NATS_URL: url,
    TAPFLOW_NATS_AUTOSTART: 'false',
    TAPFLOW_DATA_DIR: o.dataDir,
    TAPFLOW_TARIFF_DIR: join(REPO_ROOT, 'data'),
    CLICKHOUSE_DATABASE: `faults_${s.name.replace(/\W/g, '_')}`,
    TAPFLOW_GRPC_HOST: '127.0.0.1',
    TAPFLOW_GRPC_PORT: String(await freePort()),
    TAPFLOW_METRICS_PORT: '0',
    // The terminals authenticate with development secrets: the suite is about faults, not
    // identity (test/integration/ingest/mtls.test.ts covers mutual TLS).
    TAPFLOW_INGEST_AUTH: 'dev-secrets',
    TAPFLOW_PARTITIONS: String(PARTITIONS),
    TAPFLOW_LEASE_TTL_MS: String(LEASE_TTL_MS),
    TAPFLOW_ACK_WAIT_S: String(ACK_WAIT_S),
    TAPFLOW_SINK_FLUSH_MS: '100',
    TAPFLOW_PUBLISH_TIMEOUT_MS: '3000',
    TAPFLOW_SHUTDOWN_TIMEOUT_MS: '10000',
    TAPFLOW_STREAM_REPLICAS: cluster ? '3' : '1',
    // Room for the streams on three nodes of one disk.
    TAPFLOW_STREAM_MAX_BYTES: String(256 * 1024 ** 2),
    TAPFLOW_WORKERS: '0',
    TAPFLOW_LOG_LEVEL: process.env.TAPFLOW_TEST_CHILD_LOG_LEVEL ?? 'info',
  };
  const childEnv = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  const cfg = loadConfig({}, { ...env, TAPFLOW_LOG_LEVEL: 'warn' });
  const keys = localKeys(cfg);
  const procs: Record<RoleName, RoleProcess[]> = { ingest: [], validator: [], settler: [], sink: [] };
  const all = new Map<string, RoleProcess>();
  const notes: string[] = [];
  const answers: { at: number; ack: TapAck }[] = [];
  let bus: Bus | undefined;
  let sender: TapSender | undefined;
  const spawn = (role: RoleName): RoleProcess => {
    const name = `${role}#${[...all.keys()].filter((k) => k.startsWith(`${role}#`)).length}`;
    const p = spawnRole(role, { env: role === 'sink' ? { ...childEnv, TAPFLOW_TEST_STORE_DOWN_FILE: storeDownFile } : childEnv, name });
    procs[role].push(p);
    all.set(name, p);
    return p;
  };
  try {
    // The topology and the run-time data before any role starts (what an admin step does).
    bus = await connectBus(url, `fault-suite:${s.name}`, createLogger('warn', { test: s.name }));
    // (Retried: a fresh cluster may still be electing the leaders of what it just created.)
    await eventually(() => ensureTopology(bus!, topologyOptions(cfg)), 60_000, 'creating the topology');
    const buckets = await eventually(() => openBuckets(bus!, cfg.TAPFLOW_LEASE_TTL_MS, bus, true, cfg.TAPFLOW_STREAM_REPLICAS), 60_000, 'opening the KV buckets');
    await eventually(() => loadRunTimeData(buckets, cfg.TAPFLOW_TARIFF_DIR, keys.tokenKey, o.script.hotlist), 60_000, 'loading the run-time data');

    // Every role at once, but the active sink has the embedded store before any standby starts.
    const sink = spawn('sink');
    const ingest = spawn('ingest');
    for (let i = 0; i < s.validators; i++) spawn('validator');
    for (let i = 0; i < s.settlers; i++) spawn('settler');
    if ((s.sinks ?? 1) > 1) await sink.waitForLog((l) => l.msg === 'ClickHouse ready', 60_000, 'ClickHouse ready');
    for (let i = 1; i < (s.sinks ?? 1); i++) spawn('sink');
    const fleet: Fleet = {
      procs,
      spawn,
      async killAndRestart(p) {
        await p.kill('SIGKILL');
        procs[p.role as RoleName] = procs[p.role as RoleName].filter((q) => q !== p);
        return spawn(p.role as RoleName);
      },
      nats,
      cluster,
      bus,
      buckets,
      storeDownFile,
      answers,
      note: (t) => notes.push(t),
    };
    const leases = buckets.leases;
    await until(
      async () =>
        (await evenlyShared(leases, 'validator', s.validators, PARTITIONS)) &&
        (await evenlyShared(leases, 'settler', s.settlers, PARTITIONS)) &&
        (await leaseOwners(leases, 'sink', 1)) !== undefined &&
        procs.sink.slice(1).every((p) => p.logs.some((l) => /waiting as its standby/.test(String(l.msg)))),
      90_000,
      'every replica to own its partitions',
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${[...all.values()].map((p) => `--- ${p.name}\n${p.tail(10)}`).join('\n')}`);
    });
    await ingest.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ingest gRPC listening'), 60_000, 'ingest gRPC listening');

    sender = new TapSender(`127.0.0.1:${env.TAPFLOW_GRPC_PORT}`, keys.fleetKey);
    const claims = new Map<string, ClaimResult[]>(o.claims.map((c) => [c.claimId, []]));
    const signedClaims = o.claims.map((c) => signed(c));
    let claimsSent: Promise<void> | undefined;
    const retried = new Set<string>();
    const pendingFaults = [...s.faults].sort((a, b) => a.atStep - b.atStep);
    const t0 = Date.now();
    const acks = await sendScript(sender, o.script.steps as ScriptStep[], {
      burst: s.burst,
      pauseMs: s.pauseMs,
      retryMs: 250,
      onAck: (ack) => answers.push({ at: Date.now(), ack }),
      onRetry: (what) => retried.add(what),
      onBurst: async (written) => {
        if (!claimsSent && written >= s.claimsAtStep) claimsSent = Promise.all(signedClaims.map((c) => sendClaim(sender!, keys.fleetKey, c, claims.get(c.claimId)!))).then(() => undefined);
        while (pendingFaults.length > 0 && written >= pendingFaults[0]!.atStep) await pendingFaults.shift()!.act(fleet);
      },
    });
    await (claimsSent ?? Promise.all(signedClaims.map((c) => sendClaim(sender!, keys.fleetKey, c, claims.get(c.claimId)!))));
    for (const f of pendingFaults) await f.act(fleet);
    await s.after?.(fleet);

    // Drained: every consumer has delivered and had acknowledged everything, twice 500 ms apart
    // (a late redelivery or a journey sweep would show).
    const isDrained = async () => (await consumerBacklogs(bus!.jsm, PARTITIONS).catch(() => [{ consumer: '?', pending: 1, ackPending: 0 }])).length === 0;
    const drainedTwice = async () => (await isDrained()) && (await new Promise((r) => setTimeout(r, 500)), await isDrained());
    await until(drainedTwice, 150_000, 'every consumer drained').catch(async (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(await consumerBacklogs(bus!.jsm, PARTITIONS).catch((e: Error) => e.message))}\n${[...all.values()].map((p) => `--- ${p.name}\n${p.tail(8)}`).join('\n')}`);
    });
    const seconds = (Date.now() - t0) / 1000;
    await sender.close().catch(() => undefined);
    sender = undefined;
    await stopAll(all.values());
    const backlogs = await eventually(() => consumerBacklogs(bus!.jsm, PARTITIONS), 30_000, 'consumer backlogs');
    const dead = await eventually(() => deadLetters(bus!), 30_000, 'dead letters');
    const facts = await storeFacts(childEnv);
    return { acks, answers, claims, facts, backlogs, deadLetters: dead, notes, seconds, logs: all, retried: retried.size };
  } finally {
    await sender?.close().catch(() => undefined);
    await stopAll(all.values());
    await bus?.close().catch(() => undefined);
    await nats?.stop();
    await cluster?.stop();
  }
}
