/**
 * Running tapflow under the bench: its own nats-server (free port, temporary store), and tapflow
 * as child processes — every role in one process (`all-in-one`, what `tapflow start` runs) or one
 * process per role (`separate`) — with their metrics endpoints, readiness, and an orderly stop.
 *
 * Children run `node [--cpu-prof] --import tsx src/cli/main.ts start --roles <roles>` from the
 * repository root with their configuration in the environment (src/config/config.ts), logs in
 * the results folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { fileStoreNeeded } from '../../src/bus/topology.js';
import { ensureNatsServer, freePort, startNatsServer, type NatsServerHandle } from '../../src/runtime/nats-server.js';
import { Buckets, Streams } from '../../src/bus/subjects.js';
import { putHotlistEntry } from '../../src/validate/data-store.js';
import { tokenize } from '../../src/domain/card/token.js';
import { sleep } from './fleet-client.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type Mode = 'all-in-one' | 'separate';

/** The roles of each child process, by mode. */
export function processPlan(mode: Mode): { name: string; roles: string[] }[] {
  return mode === 'all-in-one'
    ? [{ name: 'tapflow', roles: ['ingest', 'validator', 'settler', 'sink'] }]
    : // The sink first: it creates the ClickHouse tables; every process ensures the topology.
      [
        { name: 'sink', roles: ['sink'] },
        { name: 'settler', roles: ['settler'] },
        { name: 'validator', roles: ['validator'] },
        { name: 'ingest', roles: ['ingest'] },
      ];
}

/** The bench's nats-server, on a free port with a temporary store. */
export async function startBenchNats(storeDir?: string): Promise<NatsServerHandle> {
  const bin = await ensureNatsServer({ install: false, log: { info: () => {}, warn: (m) => console.warn(m) } });
  const dir = storeDir ?? (await mkdtemp(join(tmpdir(), 'tapflow-bench-nats-')));
  // Room for every stream's default size limit, whatever the (shared) disk has free.
  return startNatsServer({ bin, storeDir: dir, jetstream: true, port: 0, maxFileStore: fileStoreNeeded() });
}

/** A NATS connection of the bench (ceilings, hotlist, drain checks). */
export interface BenchBus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  close(): Promise<void>;
}

export async function connectBenchBus(url: string): Promise<BenchBus> {
  // noAsyncTraces as tapflow connects (src/bus/connection.ts): no Error with a stack per request.
  const nc = await connect({ servers: url, name: 'tapflow-bench', noAsyncTraces: true, maxReconnectAttempts: -1 });
  return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc), close: () => nc.drain().catch(() => nc.close()) };
}

export interface TapflowProcess {
  name: string;
  roles: string[];
  child: ChildProcess;
  metricsPort: number;
  grpcPort?: number;
  logFile: string;
}

export interface TapflowCluster {
  mode: Mode;
  dataDir: string;
  procs: TapflowProcess[];
  /** host:port of the ingest gRPC server. */
  grpcTarget: string;
  /** The process running the sink (its /metrics counts stored rows). */
  sink: TapflowProcess;
  /** Folder of the children's CPU profiles (with --profile-cpu; <dir>/<process>/), after stop(). */
  cpuProfileDir?: string;
  /** SIGTERM every child and wait for it (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<void>;
}

export interface StartTapflowOptions {
  mode: Mode;
  dataDir: string;
  natsUrl: string;
  partitions: number;
  logDir: string;
  /** Write a V8 CPU profile of each child into this folder (node --cpu-prof). */
  cpuProfileDir?: string;
  /** Extra environment (any TAPFLOW_* setting). */
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

/** The main thread's profile among the files node wrote into a process's profile folder. */
export function mainThreadProfile(files: string[]): string | undefined {
  return files.filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f)).sort().at(-1);
}

/** Starts tapflow's processes and waits until each answers /readyz. */
export async function startTapflow(o: StartTapflowOptions): Promise<TapflowCluster> {
  const grpcPort = await freePort();
  const procs: TapflowProcess[] = [];
  const plan = processPlan(o.mode);
  const spawnOne = async (p: { name: string; roles: string[] }): Promise<TapflowProcess> => {
    const metricsPort = await freePort();
    const hasIngest = p.roles.includes('ingest');
    const logFile = join(o.logDir, `tapflow-${p.name}.log`);
    const log = createWriteStream(logFile);
    // One folder per process: node writes a profile per thread (tsx's loader runs in a worker
    // thread), named CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is 0.
    const nodeArgs = [...(o.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', join(o.cpuProfileDir, p.name)] : []), '--import', 'tsx'];
    const child = spawn(process.execPath, [...nodeArgs, 'src/cli/main.ts', 'start', '--roles', p.roles.join(',')], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        TAPFLOW_DATA_DIR: o.dataDir,
        TAPFLOW_TARIFF_DIR: join(REPO_ROOT, 'data'),
        NATS_URL: o.natsUrl,
        TAPFLOW_NATS_AUTOSTART: 'false',
        TAPFLOW_GRPC_HOST: '127.0.0.1',
        TAPFLOW_GRPC_PORT: String(hasIngest ? grpcPort : 0),
        TAPFLOW_METRICS_PORT: String(metricsPort),
        TAPFLOW_PARTITIONS: String(o.partitions),
        TAPFLOW_LOG_LEVEL: process.env.TAPFLOW_LOG_LEVEL ?? 'warn',
        ...o.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const proc: TapflowProcess = { name: p.name, roles: p.roles, child, metricsPort, grpcPort: hasIngest ? grpcPort : undefined, logFile };
    await waitReady(proc, o.readyTimeoutMs ?? 90_000);
    return proc;
  };
  try {
    // The first process creates the topology alone; the others may start together.
    procs.push(await spawnOne(plan[0]!));
    procs.push(...(await Promise.all(plan.slice(1).map(spawnOne))));
  } catch (err) {
    for (const p of procs) p.child.kill('SIGKILL');
    throw err;
  }
  const stop = async (timeoutMs = 30_000) => {
    // Front door first, store last: nothing is left half-way.
    for (const p of [...procs].reverse()) await stopChild(p.child, timeoutMs);
  };
  return { mode: o.mode, dataDir: o.dataDir, procs, grpcTarget: `127.0.0.1:${grpcPort}`, sink: procs.find((p) => p.roles.includes('sink'))!, cpuProfileDir: o.cpuProfileDir, stop };
}

async function waitReady(p: TapflowProcess, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`tapflow ${p.name} exited (${p.child.exitCode ?? p.child.signalCode}) before it was ready:\n${tail(p.logFile)}`);
    try {
      const r = await fetch(`http://127.0.0.1:${p.metricsPort}/readyz`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  p.child.kill('SIGKILL');
  throw new Error(`tapflow ${p.name} was not ready within ${timeoutMs} ms:\n${tail(p.logFile)}`);
}

export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** SIGTERM, wait, SIGKILL after the timeout. */
export async function stopChild(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

/** Reads a counter or gauge from a Prometheus text exposition (sum over label sets matching `labels`). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}

export async function scrape(port: number): Promise<string> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
    return await r.text();
  } catch {
    return '';
  }
}

/** /metrics of a process, tried up to `attempts` times (a busy process may miss a scrape's 2 s); '' when never read. */
export async function scrapeUntilRead(port: number, attempts = 3): Promise<string> {
  for (let i = 0; i < attempts; i++) {
    const text = await scrape(port);
    if (text !== '') return text;
  }
  return '';
}

/** Messages not yet acknowledged by tapflow's consumers, over every stream but the DLQ. */
export async function pipelineBacklog(jsm: JetStreamManager): Promise<number> {
  let n = 0;
  for (const s of [Streams.TAPS.name, Streams.CLAIMS.name, Streams.DECISIONS.name, Streams.SETTLEMENTS.name, Streams.RISK.name]) {
    for await (const c of jsm.consumers.list(s)) n += c.num_pending + c.num_ack_pending;
  }
  return n;
}

/**
 * Waits until every consumer has caught up (backlog 0 on two polls in a row) or the timeout;
 * returns the last backlog seen. `onPoll` is called on each poll (progress line).
 */
export async function waitDrained(jsm: JetStreamManager, timeoutMs: number, onPoll?: (backlog: number) => void): Promise<number> {
  const until = Date.now() + timeoutMs;
  let zeros = 0;
  let backlog = Number.POSITIVE_INFINITY;
  while (Date.now() < until) {
    backlog = await pipelineBacklog(jsm).catch(() => Number.POSITIVE_INFINITY);
    onPoll?.(backlog);
    zeros = backlog === 0 ? zeros + 1 : 0;
    if (zeros >= 2) return 0;
    await sleep(500);
  }
  return backlog;
}

/** Puts cards on the hotlist (LOST) and waits a moment for the validators' watch to see them. */
export async function putHotlist(bus: BenchBus, tokenKey: Uint8Array, cardNumbers: string[]): Promise<void> {
  const kv = await new Kvm(bus.js).open(Buckets.HOTLIST);
  await Promise.all(cardNumbers.map((n) => putHotlistEntry(kv, { cardToken: tokenize(tokenKey, 'card', n), reason: 'LOST', since: 0, note: 'bench fleet' })));
  await sleep(1000);
}
