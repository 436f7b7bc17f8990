#!/usr/bin/env node
/**
 * `npm run bench` — tapflow's bench harness (usage and report fields: bench/README.md).
 *
 * One run, on one machine:
 *   1. starts its own nats-server (free port, temporary store) and measures the raw ceilings
 *      with the run's own messages: gRPC streaming echo, JetStream publish, JetStream consume;
 *   2. starts tapflow (all roles in one process, or one process per role) against it, and
 *      meanwhile generates the tape: every tap, batch and claim of the run, encoded;
 *   3. puts the fleet's hotlisted cards on the hotlist, uploads the warm-up entries (journeys
 *      under way when the window opens) and waits for the pipeline to settle;
 *   4. runs the measured window open-loop (each message sent at its intended time whatever
 *      tapflow does; latency from that time), with a progress line, sampling CPU and RSS of
 *      every process;
 *   5. waits for every answer and for the pipeline to drain, reads tapflow's restore times from
 *      its /metrics, stops tapflow gracefully, opens its ClickHouse data, checks zero loss, the
 *      verdicts and the money against the settle core;
 *   6. measures the work ceiling: the run's taps through tapflow's per-tap work on one thread
 *      with no bus, in a child process (bench/lib/work-ceiling.ts);
 *   7. writes the report (console summary, JSON, Markdown, SVG chart, bench/results/latest.json).
 */
import { Command, Option } from 'commander';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { loadNetworks, loadVenueDirectory } from '../src/domain/network/index.js';
import { parseProjectList } from '../src/domain/validate/index.js';
import { loadSettlerData } from '../src/domain/settle/index.js';
import { localKeys } from '../src/runtime/keys.js';
import { initTlsDir, readCa } from '../src/ingest/tls.js';
import { settings } from '../src/config/config.js';
import { ensureDevTrustFile, readKeysFile } from '../src/validate/trust.js';
import { openClickHouse } from '../src/store/mod.js';
import { TapStatus } from '../src/gen/tapflow/v1/ingest.js';
import { isLive, PROFILES, resolveOptions, shapeOf, type BenchOptions } from './lib/options.js';
import { loadFleetConfig } from './lib/fleet-config.js';
import { FleetSimulator, type SimTap } from './lib/fleet.js';
import { FleetClient, lastAnswerMs, sleep, within } from './lib/fleet-client.js';
import { allTaps, liveTape, offlineTape, tapsAsSent, type BatchItem, type Tape } from './lib/tape.js';
import { expectedCount } from './lib/schedule.js';
import { Timeline, behindWindows, findKnee, summarize } from './lib/recorder.js';
import { ProcSampler, summarizeProc, round1 } from './lib/procstat.js';
import { resourceSeries, rssCheck } from './lib/resources.js';
import { busTapMessages, grpcCeiling, jetStreamCeilings, workCeiling, type CeilingResult } from './lib/ceilings.js';
import { connectBenchBus, mainThreadProfile, metricValue, putHotlist, REPO_ROOT, scrape, scrapeUntilRead, startBenchNats, startTapflow, waitDrained, type TapflowCluster } from './lib/tapflow.js';
import { bundleReport, restoreReport } from './lib/restore.js';
import { emptyLogSummary, summarizeLog } from './lib/logs.js';
import { expectSettlements } from './lib/expect.js';
import { checkMoney, readDecisions, verify } from './lib/verify.js';
import { expectByDurableOrder } from './lib/durable-order.js';
import { chartSvg, consoleSummary, evaluateTargets, ratio, REPORT_SCHEMA, writeReport, type BenchReport } from './lib/report.js';
import { readProfile, summarizeProfile } from './lib/cpuprofile.js';
import { JetStreamProbe, LoopDelay } from './lib/probes.js';

const DATA_ROOT = join(REPO_ROOT, 'data');

/** Writes the one-line progress (rewritten in place on a terminal, every 5 s otherwise). */
class Progress {
  private last = 0;
  private readonly t0 = Date.now();
  private readonly tty = process.stderr.isTTY === true;
  line(text: string, force = false): void {
    const now = Date.now();
    if (this.tty) process.stderr.write(`\r\x1b[2K${text}`);
    else if (force || now - this.last >= 5000) {
      process.stderr.write(`${text}\n`);
      this.last = now;
    }
  }
  say(text: string): void {
    if (this.tty) process.stderr.write('\r\x1b[2K');
    process.stderr.write(`${`+${((Date.now() - this.t0) / 1000).toFixed(0)}s`.padStart(6)} ${text}\n`);
  }
}

function runIdNow(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/**
 * Sends tape items at their intended times (ms from the window start), never waiting for
 * answers, until `stop()` says so; resolves with how many were sent.
 */
async function schedule<T extends { at: number }>(items: readonly T[], now: () => number, fire: (item: T) => void, stop: () => boolean = () => false): Promise<number> {
  let i = 0;
  while (i < items.length && !stop()) {
    const t = now();
    let n = 0;
    // Everything due goes now (a late sender catches up at once: the latency shows it).
    while (i < items.length && items[i]!.at <= t && n < 5000) {
      fire(items[i]!);
      i++;
      n++;
    }
    if (i >= items.length) break;
    const wait = items[i]!.at - now();
    if (n >= 5000 || wait <= 0) await new Promise<void>((r) => setImmediate(r));
    else await sleep(Math.min(wait, 20));
  }
  return i;
}

/**
 * A ramp past its knee only piles up a backlog: it stops offering once, over the last
 * `windowS` seconds, fewer than half of the offered taps were answered.
 */
export function pastTheKnee(offered: number[], acked: number[], sec: number, windowS = 5): boolean {
  if (sec < windowS + 5) return false;
  let o = 0;
  let a = 0;
  for (let t = sec - windowS; t < sec; t++) {
    o += offered[t] ?? 0;
    a += acked[t] ?? 0;
  }
  return o > 0 && a < 0.5 * o;
}

/** Uploads batches with at most `concurrency` in flight (warm-up: closed loop, not measured). */
async function uploadAll(client: FleetClient, batches: BatchItem[], concurrency: number, warm: boolean): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < batches.length) await client.uploadBatch(batches[next++]!, warm);
    }),
  );
}

export async function runBench(o: BenchOptions, progress = new Progress()): Promise<BenchReport> {
  const runId = runIdNow();
  const outRoot = isAbsolute(o.out) ? o.out : resolve(process.cwd(), o.out);
  const dir = join(outRoot, runId);
  mkdirSync(dir, { recursive: true });
  const notes: string[] = [];
  const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
  progress.say(`tapflow bench ${runId}: profile ${o.profile}, mode ${o.mode} → ${relative(process.cwd(), dir) || dir}`);

  // Fresh state: keys (the bench signs with the dev trust file), nats store, chdb.
  const dataDir = await mkdtemp(join(tmpdir(), 'tapflow-bench-'));
  const keys = localKeys({ TAPFLOW_DATA_DIR: dataDir });
  const keysFile = readKeysFile(ensureDevTrustFile({ TAPFLOW_DATA_DIR: dataDir }));
  const networks = loadNetworks(DATA_ROOT);
  const venues = loadVenueDirectory(DATA_ROOT, networks);
  const projects = parseProjectList(readFileSync(join(DATA_ROOT, 'projects', 'default.yaml'), 'utf8'), 'yaml');
  const settlerData = loadSettlerData(DATA_ROOT);
  const fleetConfig = loadFleetConfig();

  const sampler = new ProcSampler(1000);
  const nats = await startBenchNats(join(dataDir, 'nats'));
  sampler.watch('nats-server', nats.pid);
  sampler.watch('bench', process.pid);
  sampler.start();
  const bus = await connectBenchBus(nats.url);
  let cluster: TapflowCluster | undefined;
  let client: FleetClient | undefined;
  const killChildren = () => cluster?.procs.forEach((p) => p.child.kill('SIGKILL'));
  process.once('exit', killChildren);
  try {
    // ---------------------------------------------------------------- 1. ceilings
    const ceilings: Record<string, CeilingResult> = {};
    if (o.ceilings) {
      progress.say('ceilings: generating sample messages');
      const sampleSim = new FleetSimulator({ venues, networks, keys: keysFile, projects, config: fleetConfig, terminals: o.terminals, seed: o.seed + 1000, liveStartMs: Date.now(), bad: { hotlisted: 0, qrReplay: 0, impossibleTravel: 0, malformed: 0, unlisted: 0 } });
      const sample = liveTape(sampleSim, { shape: { kind: 'constant', rate: 2000 }, durationS: 2, arrivals: 'uniform', seed: o.seed, baseMs: Date.now(), batchSize: o.batchSize, claimShare: 0, runId });
      progress.say(`ceilings: gRPC streaming echo (${o.ceilingSeconds} s)`);
      ceilings.grpc_stream = await grpcCeiling({ taps: sample.live.map((l) => l.bytes), streams: 8, channels: 2, window: 256, seconds: o.ceilingSeconds, sampler });
      progress.say(`  gRPC streaming: ${ceilings.grpc_stream.msgs_per_s} msgs/s`);
      progress.say(`ceilings: JetStream publish and consume (${o.ceilingSeconds} s each)`);
      const js = await jetStreamCeilings({
        bus,
        messages: busTapMessages(sample.live.map((l) => l.sim.tap), keys, o.partitions),
        window: 4096,
        seconds: o.ceilingSeconds,
        maxMessages: 1_000_000,
        duplicateWindowS: Number(settings.TAPFLOW_DUPLICATE_WINDOW_S.default),
      });
      ceilings.jetstream_publish = js.publish;
      ceilings.jetstream_js_publish = js.jsPublish;
      ceilings.jetstream_consume = js.consume;
      progress.say(`  JetStream publish ${js.publish.msgs_per_s} msgs/s (js.publish ${js.jsPublish.msgs_per_s}), consume ${js.consume.msgs_per_s} msgs/s`);
    }

    // ---------------------------------------------------------------- 2. tapflow and the tape
    progress.say(`starting tapflow (${o.mode})`);
    const cpuProfileDir = o.profileCpu ? join(dir, 'cpuprofile') : undefined;
    if (cpuProfileDir) mkdirSync(cpuProfileDir, { recursive: true });
    // Mutual TLS (the default): the development CA under the data dir, made here first so that
    // the fleet can issue its terminals' certificates; tapflow serves it.
    const tlsDir = o.auth === 'mtls' ? initTlsDir(join(dataDir, 'tls')) : undefined;
    const fleetCa = tlsDir ? readCa(tlsDir.caCert, tlsDir.caKey) : undefined;
    const clusterP = startTapflow({ mode: o.mode, dataDir, natsUrl: nats.url, partitions: o.partitions, logDir: dir, cpuProfileDir, env: { TAPFLOW_INGEST_AUTH: o.auth } });
    clusterP.catch(() => undefined); // awaited below; do not crash while the tape is generated
    const live = isLive(o.profile);
    const expected = live ? expectedCount(shapeOf(o), o.durationS) : o.taps;
    // Device times of live taps are planned from baseMs: far enough ahead for the generation (~0.1 ms a
    // tap here), tapflow's start and the warm-up upload; a late start is measured, not hidden.
    const prepMs = 15_000 + expected * (live ? 0.15 + 0.45 * 0.4 : 0.1);
    const baseMs = Date.now() + prepMs;
    const sim = new FleetSimulator({ venues, networks, keys: keysFile, projects, config: fleetConfig, bad: o.bad, terminals: o.terminals, seed: o.seed, liveStartMs: baseMs });
    const g0 = Date.now();
    let tape: Tape;
    if (live) {
      tape = liveTape(sim, {
        shape: shapeOf(o),
        durationS: o.durationS,
        arrivals: o.arrivals,
        seed: o.seed,
        baseMs,
        batchSize: o.batchSize,
        claimShare: fleetConfig.claimShare,
        runId,
        onProgress: (d, t) => progress.line(`generating the tape: ${d}/${t} taps`),
      });
      if (!o.warm) tape.warm = [];
    } else {
      if (o.profile === 'offline-burst') sim.setBusesPerRoute(o.terminals);
      tape = offlineTape(sim, {
        count: o.taps,
        windowMs: o.offlineWindowMs,
        baseMs: Date.now(),
        batchSize: o.batchSize,
        tapsPerS: o.profile === 'batch' ? o.rate : undefined,
        busOnly: o.profile === 'offline-burst',
      });
    }
    const generateS = (Date.now() - g0) / 1000;
    const timeline = new Timeline();
    for (const l of tape.live) timeline.offer(l.at);
    for (const b of tape.batches) timeline.offer(b.at, b.taps.length);
    const warmTaps = tape.warm.reduce((n, b) => n + b.taps.length, 0);
    const batchTaps = tape.batches.reduce((n, b) => n + b.taps.length, 0);
    progress.say(`tape: ${tape.live.length} live taps, ${batchTaps} batch taps in ${tape.batches.length} batches, ${warmTaps} warm-up taps, ${tape.claims.length} claims, ${tape.terminals.length} terminals (${generateS.toFixed(1)} s)`);

    cluster = await clusterP;
    for (const p of cluster.procs) sampler.watch(p.name, p.child.pid);
    progress.say(`tapflow ready: ${cluster.procs.map((p) => `${p.name} pid ${p.child.pid}`).join(', ')}; gRPC ${cluster.grpcTarget}`);

    // ---------------------------------------------------------------- 3. hotlist and warm-up
    await putHotlist(bus, keys.tokenKey, sim.hotlistedCards());
    client = new FleetClient({ target: cluster.grpcTarget, channels: o.channels, fleetKey: keys.fleetKey, timeline, ...(fleetCa && { tls: { ca: fleetCa } }) });
    client.startWindow(performance.now());
    if (tape.warm.length > 0) {
      progress.say(`warm-up: uploading ${warmTaps} entries of journeys under way (${tape.warm.length} batches)`);
      await uploadAll(client, tape.warm, 16, true);
      await waitDrained(bus.jsm, o.drainTimeoutS * 1000, (b) => progress.line(`warm-up: pipeline backlog ${b}`));
    }
    const streamIds = new Set(tape.live.map((l) => l.sim.tap.terminalId));
    client.openStreams(streamIds);
    progress.say(`connecting ${streamIds.size} live terminals${fleetCa ? ' (a TLS handshake each)' : ''}`);
    await client.waitConnected(120_000);
    await sleep(1000);
    const waitMs = live ? baseMs - Date.now() : 0;
    if (waitMs > 0) {
      progress.say(`window opens in ${(waitMs / 1000).toFixed(1)} s`);
      await sleep(waitMs);
    }

    // ---------------------------------------------------------------- 4. the measured window
    const windowStartMs = Date.now();
    const windowStartUs = Number(process.hrtime.bigint() / 1000n);
    const startLag = live ? Math.max(0, windowStartMs - baseMs) : 0;
    if (startLag > 1000) notes.push(`The window opened ${startLag} ms after the planned time (preparation ran long): device times of live taps are that much older than their send times; latencies are measured from the intended send time.`);
    const w0 = performance.now();
    const c0 = client;
    client.startWindow(w0);
    const probe = new JetStreamProbe(bus);
    await probe.start(() => c0.now());
    const loopDelay = new LoopDelay();
    loopDelay.start();
    const windowSamplerT = sampler.now();
    const storedBase = metricValue(await scrape(cluster.sink.metricsPort), 'tapflow_stored_rows_total', { table: 'decisions' });
    let storedNow = 0;
    const c = client;
    const cl = cluster;
    const progressTimer = setInterval(() => {
      // A busy tapflow may not answer the scrape in time: keep the last value then.
      void scrape(cl.sink.metricsPort).then((t) => {
        if (t) storedNow = metricValue(t, 'tapflow_stored_rows_total', { table: 'decisions' }) - storedBase;
      });
      const cpu = [...sampler.latest().entries()].map(([k, v]) => `${k} ${v.cpuPct.toFixed(0)}%/${v.rssMb.toFixed(0)}MB`).join(' ');
      const st = { ...c.liveStatus.toJSON(), ...c.batchStatus.toJSON() };
      const acc = (st.ACCEPTED_DURABLE ?? 0) + (st.DUPLICATE ?? 0);
      const recent = c.takeRecent();
      progress.line(`[${Math.floor(c.now() / 1000)}s] sent ${timeline.sent.reduce((a, b) => a + b, 0)} durable ${acc} inflight ${c.inflightLive + c.inflightBatches} stored ${storedNow} | ack p99 ${recent.p99.toFixed(1)} ms (${recent.n}/s) | ${cpu}`);
    }, 1000);
    progressTimer.unref();

    const pending: Promise<void>[] = [];
    const sends: Promise<unknown>[] = [];
    let stopped = false;
    const stop = () => {
      if (!stopped && o.profile === 'ramp' && pastTheKnee(timeline.offered, timeline.acked, Math.floor(c.now() / 1000))) {
        stopped = true;
        notes.push(`The ramp stopped offering at ${Math.floor(c.now() / 1000)} s: for 5 s fewer than half of the offered taps had been answered (past the knee, only the backlog grows). Taps not sent are not in the checks.`);
      }
      return stopped;
    };
    const liveSent = schedule(tape.live, () => c.now(), (item) => c.sendLive(item), stop);
    const claimsSent = schedule(tape.claims, () => c.now(), (item) => pending.push(c.settleClaim(item)), stop);
    sends.push(liveSent, claimsSent);
    if (tape.sequentialPerTerminal) {
      // A depot reconnecting: every bus uploads its store at once, batch after batch.
      const byTerminal = new Map<string, BatchItem[]>();
      for (const b of tape.batches) {
        let l = byTerminal.get(b.terminalId);
        if (!l) byTerminal.set(b.terminalId, (l = []));
        l.push(b);
      }
      for (const list of byTerminal.values()) pending.push((async () => { for (const b of list) await c.uploadBatch(b); })());
    } else {
      sends.push(schedule(tape.batches, () => c.now(), (item) => pending.push(c.uploadBatch(item))));
    }
    await Promise.all(sends);
    const sentDoneS = c.now() / 1000;
    if (stopped) {
      tape.live = tape.live.slice(0, await liveSent);
      tape.claims = tape.claims.slice(0, await claimsSent);
      for (let t = Math.ceil(sentDoneS); t < timeline.offered.length; t++) timeline.offered[t] = 0;
    }

    // ---------------------------------------------------------------- 5. answers, drain, stop
    await c.closeStreams(o.drainTimeoutS * 1000);
    await within(Promise.all(pending), o.drainTimeoutS * 1000);
    const drain0 = Date.now();
    const backlog = await waitDrained(bus.jsm, o.drainTimeoutS * 1000, (b) => progress.line(`draining: pipeline backlog ${b}, stored ${storedNow}`, false));
    const drainS = (Date.now() - drain0) / 1000;
    clearInterval(progressTimer);
    const probeMs = await probe.stop();
    const benchLoop = loopDelay.stop();
    sampler.sample();
    const windowEndSamplerT = sampler.now();
    const windowEndUs = Number(process.hrtime.bigint() / 1000n);
    progress.say(`window done: sent by ${sentDoneS.toFixed(1)} s, answers in, pipeline ${backlog === 0 ? 'drained' : `NOT drained (backlog ${backlog})`} after ${drainS.toFixed(1)} s more; stopping tapflow`);
    c.close();
    // Partition restore times (a histogram of tapflow's /metrics, when it has one), before the
    // processes and their counters are gone.
    const expositions = await Promise.all(cluster.procs.map(async (p) => ({ name: p.name, text: await scrapeUntilRead(p.metricsPort) })));
    const restore = restoreReport(expositions.map((e) => e.text), expositions.filter((e) => e.text === '').map((e) => e.name));
    const bundles = bundleReport(expositions.map((e) => e.text));
    await cluster.stop();
    sampler.stop();

    const tapflowLog = emptyLogSummary();
    for (const p of cluster.procs) summarizeLog(p.name, existsSync(p.logFile) ? readFileSync(p.logFile, 'utf8') : '', tapflowLog);
    tapflowLog.by_message = Object.fromEntries(Object.entries(tapflowLog.by_message).sort((a, b) => b[1] - a[1]).slice(0, 20));

    // ---------------------------------------------------------------- 6. checks
    progress.say('checking: zero loss, verdicts, money (settle core)');
    const taps = allTaps(tape);
    const durable = (s: SimTap) => {
      const r = c.results.get(s);
      return r !== undefined && (r.status === TapStatus.ACCEPTED_DURABLE || r.status === TapStatus.DUPLICATE);
    };
    const answeredClaims = tape.claims.filter((ci) => c.claimResults.get(ci) !== undefined).map((ci) => ci.sim);
    const engine = await openClickHouse({ dataDir: join(dataDir, 'chdb'), database: 'tapflow' });
    let v;
    let qrOrder: ReturnType<typeof expectByDurableOrder>['report'];
    let byStored: BenchReport['money']['by_stored_verdicts'];
    try {
      const rows = await readDecisions(engine);
      // A QR code presented twice: the presentation that became durable first is the one to accept.
      const rowById = new Map(rows.map((r) => [r.event_id, r]));
      const order = expectByDurableOrder(taps, (s) => {
        const r = c.results.get(s);
        const row = rowById.get(`${s.tap.terminalId}:${s.tap.seq}`);
        if (!r && !row) return undefined;
        return { durable: durable(s) || row !== undefined, ingestMs: row?.ingest_ms, answeredMs: r?.ackedAt, attempts: r?.attempts ?? 0 };
      });
      qrOrder = order.report;
      const expectation = expectSettlements({ data: settlerData, tokenKey: keys.tokenKey, partitions: o.partitions, taps: taps.filter((s) => order.expectOf(s) === 'ok' && durable(s)), claims: answeredClaims, nowMs: Date.now() });
      v = await verify(engine, { taps, rows, results: c.results, expectOf: order.expectOf, qrOrder, expectation, windowStartMs, timeline });
      if (backlog !== 0) {
        v.loss.complete = false;
        v.loss.ok = false;
        notes.push(`The pipeline had not drained ${o.drainTimeoutS} s after the window (backlog ${backlog}): missing taps may be late rather than lost. Raise --drain-timeout.`);
      }
      if (!v.verdicts.ok) {
        // Separate the validator's answers from the settler's and sink's work: the same money
        // check over the verdicts tapflow stored.
        const acceptedIds = new Set(rows.filter((r) => r.verdict === 'ACCEPTED').map((r) => r.event_id));
        const e2 = expectSettlements({ data: settlerData, tokenKey: keys.tokenKey, partitions: o.partitions, taps: taps.filter((s) => acceptedIds.has(`${s.tap.terminalId}:${s.tap.seq}`)), claims: answeredClaims, nowMs: Date.now() });
        const m2 = await checkMoney(engine, e2);
        byStored = { expected_fen: e2.fen, stored_fen: m2.stored_fen, cards_mismatched: m2.cards_mismatched, ok: m2.ok };
      }
    } finally {
      await engine.close();
    }
    if (qrOrder.out_of_sending_order > 0) {
      notes.push(`${qrOrder.out_of_sending_order} QR code(s) presented twice became durable in another order than they were sent (${qrOrder.first_sent_retried} of them because the terminal retried the first presentation after OVERLOADED or UNAVAILABLE): the expectation accepts the presentation that became durable first, as tapflow is specified to (bench/lib/durable-order.ts).`);
    }

    // ---------------------------------------------------------------- 7. the work ceiling
    if (o.ceilings) {
      // After tapflow stopped: one thread's work per tap, on a machine no longer busy with the run.
      progress.say(`ceilings: work ceiling, the run's taps on one thread with no bus (${o.ceilingSeconds} s)`);
      try {
        ceilings.work = await workCeiling({ taps: tapsAsSent(tape, Math.ceil(o.ceilingSeconds * 30_000) + 2000), hotlistedCards: sim.hotlistedCards(), dataDir, scratchDir: dataDir, partitions: o.partitions, seconds: o.ceilingSeconds });
        progress.say(`  work ceiling: ${ceilings.work.msgs_per_s} taps/s`);
      } catch (err) {
        notes.push(`The work ceiling could not be measured: ${(err as Error).message}`);
      }
    }

    // ---------------------------------------------------------------- 8. report
    const measured = taps.filter((s) => s.phase !== 'warm');
    const ackedTaps = measured.filter(durable).length;
    const lastAck = lastAnswerMs(measured, c.results) / 1000;
    const span = (t: number) => Math.max(live || o.profile === 'batch' ? windowS : 0, t, 1e-3);
    const windowS = stopped ? sentDoneS : o.durationS;
    const offered = live ? tape.live.length / windowS : o.profile === 'batch' ? o.rate : batchTaps;
    const seconds = timeline.seconds();
    const procs = sampler.all();
    const processes = Object.fromEntries(procs.map((p) => [p.name, summarizeProc(p, windowSamplerT, windowEndSamplerT)]));
    const resources = resourceSeries(procs, windowSamplerT, windowEndSamplerT);
    const acked = Math.round(ackedTaps / span(lastAck));
    const storedRate = Math.round(v.storedTaps / span(v.lastStoredS));
    const knee = o.profile === 'ramp' ? { acked: findKnee(seconds, { by: 'acked' }) ?? null, stored: findKnee(seconds, { by: 'stored' }) ?? null } : null;
    const cpuProfiles: BenchReport['cpu_profile'] = [];
    if (cpuProfileDir && existsSync(cpuProfileDir)) {
      for (const p of cluster.procs) {
        const pdir = join(cpuProfileDir, p.name);
        const f = existsSync(pdir) ? mainThreadProfile(readdirSync(pdir)) : undefined;
        if (!f) continue;
        const file = join(pdir, f);
        cpuProfiles.push({ process: p.name, file: relative(outRoot, file), summary: summarizeProfile(readProfile(file), 25, { fromUs: windowStartUs, toUs: windowEndUs }) });
      }
      if (cpuProfiles.length === 0) notes.push('--profile-cpu: no profile was written (did tapflow exit gracefully?).');
    }
    if (live && warmTaps > 0) notes.push(`${warmTaps} warm-up entries (journeys under way when the window opened; device times before it) were uploaded with UploadBatch before the window; they are in the zero-loss and money checks, not in the throughput or latency figures.`);
    notes.push('The simulator (tape sending, ack decoding) runs in the bench process on the same cores as tapflow and nats-server; the tape (QR signatures, MACs, protobuf) was generated before the window.');
    const expectCounts: Record<string, number> = {};
    for (const s of taps) expectCounts[s.expect] = (expectCounts[s.expect] ?? 0) + 1;
    const report: BenchReport = {
      schema: REPORT_SCHEMA,
      run_id: runId,
      started_at: new Date(windowStartMs).toISOString(),
      profile: o.profile,
      mode: o.mode,
      offered_rate: o.profile === 'offline-burst' ? null : o.rate,
      duration_s: live || o.profile === 'batch' ? round1(windowS) : 0,
      options: { ...o },
      machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model ?? '?', load_avg_before: loadBefore, node: process.version, nats_server: nats.version.text },
      fleet: {
        terminals: tape.terminals.length,
        streams: streamIds.size,
        uploaders: new Set([...tape.batches, ...tape.warm].map((b) => b.terminalId)).size,
        cards: sim.cardsMade,
        live_taps: tape.live.length,
        warm_taps: warmTaps,
        batch_taps: batchTaps,
        batches: tape.batches.length,
        claims: tape.claims.length,
        bad_shares: { ...o.bad },
        expected: expectCounts,
        tap_bytes_avg: Math.round(tape.live.reduce((n, l) => n + l.bytes.length, 0) / Math.max(1, tape.live.length)),
        generate_s: round1(generateS),
      },
      pipeline: {
        taps_per_s: { offered: Math.round(offered), acked, stored: storedRate },
        acked_taps: ackedTaps,
        stored_taps: v.storedTaps,
        acked_span_s: round1(lastAck),
        stored_span_s: round1(v.lastStoredS),
        ack_p99_ms: live ? summarize(c.liveAck).p99_ms : summarize(c.batchTapAck).p99_ms,
        stored_p99_ms: v.stored.p99_ms,
        ack_ms: live ? summarize(c.liveAck) : summarize(c.batchTapAck),
        ack_service_ms: summarize(c.liveService),
        stored_ms: v.stored,
        device_to_stored_ms: v.deviceToStored,
        batch_ms: tape.batches.length > 0 ? summarize(c.batchAck) : null,
        claim_ms: tape.claims.length > 0 ? summarize(c.claimLatency) : null,
        status: { live: c.liveStatus.toJSON(), batch: c.batchStatus.toJSON(), claims: c.claimStatus.toJSON() },
        retries: c.retries,
        stream_errors: c.streamErrors,
        start_lag_ms: startLag,
        drain_s: round1(drainS),
        backlog_left: Number.isFinite(backlog) ? backlog : -1,
        knee,
        restore,
        bundles,
        acks_behind: o.profile === 'offline-burst' ? null : { by_5s: behindWindows(seconds, { windowS: 5 }), by_1s: behindWindows(seconds, { windowS: 1 }) },
      },
      ceilings: {
        grpc_stream_msgs_per_s: ceilings.grpc_stream?.msgs_per_s ?? null,
        jetstream_publish_msgs_per_s: ceilings.jetstream_publish?.msgs_per_s ?? null,
        jetstream_js_publish_msgs_per_s: ceilings.jetstream_js_publish?.msgs_per_s ?? null,
        jetstream_consume_msgs_per_s: ceilings.jetstream_consume?.msgs_per_s ?? null,
        work_taps_per_s: ceilings.work?.msgs_per_s ?? null,
        details: ceilings,
      },
      ratios: {
        acked_over_grpc_stream: ratio(acked, ceilings.grpc_stream?.msgs_per_s ?? null),
        stored_over_grpc_stream: ratio(storedRate, ceilings.grpc_stream?.msgs_per_s ?? null),
        acked_over_jetstream_publish: ratio(acked, ceilings.jetstream_publish?.msgs_per_s ?? null),
        stored_over_jetstream_publish: ratio(storedRate, ceilings.jetstream_publish?.msgs_per_s ?? null),
        stored_over_jetstream_consume: ratio(storedRate, ceilings.jetstream_consume?.msgs_per_s ?? null),
        acked_over_work: ratio(acked, ceilings.work?.msgs_per_s ?? null),
        stored_over_work: ratio(storedRate, ceilings.work?.msgs_per_s ?? null),
        knee_over_work: knee?.acked ? ratio(knee.acked.offered, ceilings.work?.msgs_per_s ?? null) : null,
      },
      loss: v.loss,
      verdicts: v.verdicts,
      money: { ...v.money, ...(byStored ? { by_stored_verdicts: byStored } : {}) },
      rss_mb: Object.fromEntries(Object.entries(processes).map(([k, p]) => [k, p.rss_mb_max])),
      processes,
      resources: { interval_s: 1, series: resources, rss_check: rssCheck(resources, cluster.procs.map((p) => p.name), { warmupS: o.rssWarmupS, band: 0.25 }) },
      targets: [],
      diagnostics: { jetstream_probe_ms: probeMs, jetstream_probe_failures: probe.failures, bench_event_loop_delay_ms: benchLoop, tapflow_log: tapflowLog },
      timeline: seconds.map((s) => ({
        ...s,
        probe_max_ms: probe.worstPerSecond[s.t] ?? 0,
        cpu_pct: Object.fromEntries(procs.map((p) => [p.name, round1(p.samples.find((x) => x.t >= windowSamplerT + (s.t + 1) * 1000)?.cpuPct ?? 0)])),
      })),
      cpu_profile: cpuProfiles.length > 0 ? cpuProfiles : null,
      files: { json: 'report.json', markdown: 'report.md', chart: 'chart.svg', logs: cluster.procs.map((p) => relative(dir, p.logFile)).join(', ') },
      notes,
    };
    report.targets = evaluateTargets(report);
    writeReport(dir, join(outRoot, 'latest.json'), report, chartSvg(report));
    process.stdout.write(consoleSummary(report));
    progress.say(`report: ${relative(process.cwd(), join(dir, 'report.md'))}, ${relative(process.cwd(), join(outRoot, 'latest.json'))}`);
    return report;
  } finally {
    client?.close();
    await cluster?.stop(5000).catch(() => undefined);
    sampler.stop();
    await bus.close().catch(() => undefined);
    await nats.stop().catch(() => undefined);
    process.off('exit', killChildren);
    if (!o.keepData) await rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
    else progress.say(`data kept in ${dataDir}`);
  }
}

/** The command line. */
export function buildProgram(): Command {
  return new Command('bench')
    .description("tapflow's bench harness: raw ceilings and the whole pipeline under a simulated fleet, in one run (see bench/README.md)")
    .addOption(new Option('--profile <name>', 'load profile').choices([...PROFILES]).default('constant'))
    .option('--rate <taps/s>', 'offered taps/s: constant rate, top of the ramp, rush-hour peak, batch upload rate (defaults: constant 500, ramp 5000, rush-hour 5000, batch 50000)')
    .option('--rate-from <taps/s>', 'ramp: starting rate (default rate/20)')
    .option('--duration <s>', 'measured window, seconds (defaults: constant 20, ramp 60, rush-hour 60, batch 10)')
    .option('--taps <n>', 'offline-burst: stored taps uploaded at once (default 300000); batch: total taps (default rate × duration)')
    .addOption(new Option('--mode <mode>', 'tapflow as one process or one process per role').choices(['all-in-one', 'separate']).default('all-in-one'))
    .option('--terminals <n>', 'terminal budget (live: gates, bus validators, counters; offline-burst: buses) (defaults: 3000; batch 1200; burst 200)')
    .option('--auth <how>', 'terminal identity: mtls (a TLS connection and client certificate per terminal, as deployed) or dev-secrets (plaintext, static secrets, terminals multiplexed on --channels connections)', 'mtls')
    .option('--channels <n>', 'HTTP/2 connections the terminals share (dev-secrets only)', '4')
    .option('--batch-size <n>', 'taps per UploadBatch', '500')
    .option('--bad <shares>', 'shares of bad taps, e.g. "hotlisted=0.01,qr-replay=0.005,impossible-travel=0.002,malformed=0.002,unlisted=0.001" or "none"')
    .addOption(new Option('--arrivals <kind>', 'spacing of live taps').choices(['poisson', 'uniform']).default('poisson'))
    .option('--seed <n>', 'seed of the fleet and the schedule', '1')
    .option('--partitions <n>', 'TAPFLOW_PARTITIONS', '16')
    .option('--out <dir>', 'results folder (a run writes <dir>/<run id>/ and <dir>/latest.json)', 'bench/results')
    .option('--no-ceilings', 'skip the raw ceilings')
    .option('--ceiling-seconds <s>', 'length of each ceiling measurement', '5')
    .option('--profile-cpu', 'CPU profile of the tapflow process(es) (node --cpu-prof), summarised in the report')
    .option('--drain-timeout <s>', 'longest wait for answers and for the pipeline to drain after the window', '120')
    .option('--offline-hours <h>', 'offline taps: device times go back this far', '2')
    .option('--rss-warmup <s>', 'seconds of the window after which the RSS of every tapflow process is held to ±25% of its level then', '10')
    .option('--no-warm', 'live profiles: no warm-up entries (every exit of the window is then of a journey begun in it, or none)')
    .option('--keep-data', 'keep the temporary nats store and ClickHouse data')
    .addHelpText(
      'after',
      `
Examples:
  npm run bench                                        # ceilings + 20 s at 500 taps/s, all-in-one
  npm run bench -- --profile ramp --rate 5000          # find the knee (stops offering past it)
  npm run bench -- --profile constant --rate 5000 --mode separate
  npm run bench -- --profile rush-hour --rate 5000 --duration 90
  npm run bench -- --profile batch --rate 50000        # station computers, 500 taps per UploadBatch
  npm run bench -- --profile offline-burst --taps 300000 --terminals 200
  npm run bench -- --profile constant --rate 6000 --profile-cpu   # CPU profile at the knee`,
    );
}

async function main(): Promise<void> {
  const program = buildProgram();
  program.parse(process.argv);
  const o = resolveOptions(program.opts());
  const report = await runBench(o);
  process.exitCode = report.loss.ok && report.money.ok && report.verdicts.ok ? 0 : 2;
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  main().catch((err: unknown) => {
    console.error(`bench: ${(err as Error).stack ?? err}`);
    process.exit(1);
  });
}
