/**
 * Least privilege on the bus, against a real nats-server started with the authorization block
 * tapflow generates (src/bus/permissions.ts): a role started before the admin step exits naming
 * it; the admin step (`tapflow bus setup`) makes the topology; then every role, on its own NATS
 * user and in its own process (the sink in this one), carries taps end to end into ClickHouse
 * without one permission violation; and each role is refused outside its permissions.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { loadConfig, type Config, type ConfigKey } from '../../../src/config/config.js';
import { connectBus, type Bus } from '../../../src/bus/connection.js';
import { busAuth, ensureCredentials, passwordFile } from '../../../src/bus/credentials.js';
import { busPermissions, natsAuthorizationBlock, type BusUser } from '../../../src/bus/permissions.js';
import { Buckets } from '../../../src/bus/subjects.js';
import { ensureTopology, topologyOptions } from '../../../src/bus/topology.js';
import { ROLE_FACTORIES } from '../../../src/cli/roles.js';
import { createLogger } from '../../../src/observe/log.js';
import { startApp, type RunningApp } from '../../../src/runtime/app.js';
import type { NatsServerHandle } from '../../../src/runtime/nats-server.js';
import { trustFilePath } from '../../../src/validate/trust.js';
import { TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';
import { setupBus } from '../../support/bus.js';
import { startTestNats } from '../../support/nats.js';
import { testPipelineSettings } from '../../support/pipeline.js';
import { REPO_ROOT, ingestPortOf, prepareSharedKeys, spawnRole, stopAll, type RoleProcess } from '../../support/processes.js';
import { readIssuerKeys, sendScript, TapScript, TapSender, type ScriptStep } from '../../support/scenario.js';

const PARTITIONS = 4;
const log = createLogger('silent');

let nats: NatsServerHandle;
let dir: string;
let credsDir: string;
let env: Record<string, string>;
let cfg: Config;
const procs: RoleProcess[] = [];
let sink: RunningApp | undefined;
const open: Bus[] = [];
/** nats-server's own log lines (it logs every permission violation, naming the user and subject). */
const serverLines: string[] = [];
const violationsLogged = () => serverLines.filter((l) => /Violation/.test(l));

/** A connection as bus user `u`, with the passwords of the test's credentials folder. */
async function as(u: BusUser): Promise<Bus> {
  const bus = await connectBus(nats.url, `permissions-test-${u}`, log, 5000, busAuth(cfg, u));
  open.push(bus);
  return bus;
}

const violation = (subject: string) => new RegExp(`Permissions Violation for Publish to "${subject.replace(/[$.*>]/g, (c) => `\\${c}`)}"`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tapflow-perms-'));
  credsDir = join(dir, 'creds');
  const passwords = await ensureCredentials(credsDir);
  const onLine = (line: string) => serverLines.push(line);
  nats = await startTestNats({ authorization: natsAuthorizationBlock(PARTITIONS, (u) => JSON.stringify(passwords[u])), log: { info: onLine, warn: onLine, debug: onLine } });
  const settings: Partial<Record<ConfigKey, string>> = {
    ...testPipelineSettings(nats.url, join(dir, 'data')),
    TAPFLOW_PARTITIONS: String(PARTITIONS),
    TAPFLOW_TARIFF_DIR: join(REPO_ROOT, 'data'),
    TAPFLOW_NATS_CREDS_DIR: credsDir,
    TAPFLOW_LOG_LEVEL: 'info',
    TAPFLOW_SHUTDOWN_TIMEOUT_MS: '10000',
  };
  env = Object.fromEntries(Object.entries(settings).filter((e): e is [string, string] => e[1] !== undefined));
  cfg = loadConfig({}, settings);
  prepareSharedKeys(cfg);
}, 60_000);

afterAll(async () => {
  await stopAll(procs);
  await sink?.shutdown('test done');
  for (const b of open) await b.close();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('bus users and the admin step', { timeout: 120_000 }, () => {
  it('generates one password file per bus user, readable by its owner only', async () => {
    for (const u of ['admin', 'ingest', 'validator', 'settler', 'sink', 'all'] as const) {
      expect((await stat(passwordFile(credsDir, u))).mode & 0o777).toBe(0o600);
    }
    expect((await stat(credsDir)).mode & 0o777).toBe(0o700);
    expect((await stat(nats.configFile)).mode & 0o777).toBe(0o600);
  });

  it('refuses a connection without credentials, or with another user\'s password', async () => {
    await expect(connectBus(nats.url, 'anonymous', log, 3000)).rejects.toThrow(/Authorization Violation/i);
    const wrong = { user: 'tapflow-admin', pass: busAuth(cfg, 'sink')!.pass };
    await expect(connectBus(nats.url, 'wrong-password', log, 3000, wrong)).rejects.toThrow(/Authorization Violation/i);
  });

  it('a role started before the admin step exits, naming the missing topology and the step to run', async () => {
    const v = spawnRole('validator', { env, name: 'early-validator' });
    procs.push(v);
    const exit = await v.exited;
    expect(exit.code).toBe(1);
    const text = v.logs.map((l) => String(l.msg)).join('\n');
    expect(text).toMatch(/tapflow's JetStream topology does not exist on this NATS server.*run the admin step first: `tapflow bus setup`/);
  });

  it('a role user cannot make the topology itself', async () => {
    const validator = await as('validator');
    await expect(ensureTopology(validator, topologyOptions(cfg))).rejects.toThrow(violation('$JS.API.STREAM.CREATE.TAPS'));
  });

  it('the admin step creates the topology, and running it again changes nothing', async () => {
    await setupBus(nats.url, env);
    await setupBus(nats.url, env);
    const admin = await as('admin');
    const names: string[] = [];
    for await (const s of admin.jsm.streams.list()) names.push(s.config.name);
    expect(names.sort()).toEqual(['ARCHIVE', 'CLAIMS', 'DECISIONS', 'DLQ', 'KV_tapflow_claims', 'KV_tapflow_hotlist', 'KV_tapflow_leases', 'KV_tapflow_projects', 'KV_tapflow_risk_rules', 'KV_tapflow_settler_state', 'KV_tapflow_validator_state', 'KV_tapflow_window_state', 'RISK', 'SETTLEMENTS', 'STATE', 'TAPS']);
  });
});

describe('each role on its own NATS user', { timeout: 180_000 }, () => {
  it('carries taps end to end: ingest, validator and settler processes and the sink each as their own user', async () => {
    const before = violationsLogged().length;
    const ingest = spawnRole('ingest', { env });
    const validator = spawnRole('validator', { env });
    const settler = spawnRole('settler', { env });
    procs.push(ingest, validator, settler);
    sink = await startApp(cfg, [{ name: 'sink', create: ROLE_FACTORIES.sink }], { installSignalHandlers: false, log: createLogger('warn', { test: 'perms-sink' }) });
    const port = await ingestPortOf(ingest);
    await validator.waitForLog((l) => l.msg === 'role started', 60_000, 'validator started');
    await settler.waitForLog((l) => l.msg === 'role started', 60_000, 'settler started');

    const s = new TapScript(readIssuerKeys(trustFilePath(cfg)));
    const at = Date.now() - 20 * 60_000;
    const f = { terminal: 'BJ-RAIL-0901', scene: 'RAIL' as const };
    const steps: ScriptStep[] = [];
    for (let i = 0; i < 5; i++) {
      const card = `11009500000${i}`;
      steps.push({ kind: 'tap', tap: s.chip({ ...f, card, venue: 'bj-subway:西直门', direction: 'ENTRY', at: at + i * 1000 }) });
      steps.push({ kind: 'tap', tap: s.chip({ ...f, card, venue: 'bj-subway:国贸', direction: 'EXIT', at: at + 15 * 60_000 + i * 1000 }) });
    }
    const sender = new TapSender(`127.0.0.1:${port}`, sink.ctx.keys.fleetKey);
    try {
      const acks = await sendScript(sender, steps, { burst: 10 });
      const durable = [...acks.values()].filter((l) => l.some((a) => a.status === TapStatus.ACCEPTED_DURABLE)).length;
      expect(durable).toBe(10);
    } finally {
      await sender.close();
    }
    const engine = sink.ctx.engine!;
    const count = async (sql: string) => Number((await engine.query<{ n: number }>(sql))[0]!.n);
    const end = Date.now() + 60_000;
    while (Date.now() < end && ((await count('SELECT count() AS n FROM decisions')) < 10 || (await count("SELECT count() AS n FROM settlements WHERE kind != 'ENTRY'")) < 5)) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await count('SELECT count() AS n FROM decisions')).toBe(10);
    expect(await count("SELECT count() AS n FROM decisions WHERE verdict = 'ACCEPTED'")).toBe(10);
    expect(await count("SELECT count() AS n FROM settlements WHERE kind != 'ENTRY'")).toBeGreaterThanOrEqual(5);
    // Not one operation refused on the way: nats-server logged none, and no process logged one
    // (connectBus logs each violation as an error).
    expect(violationsLogged().slice(before)).toEqual([]);
    for (const p of procs.slice(1)) {
      expect(p.logs.filter((l) => /permissions/i.test(String(l.msg)) || (l.level ?? 0) >= 50), `${p.name}:\n${p.tail(20)}`).toEqual([]);
    }
  });
});

describe('each role is refused outside its permissions', { timeout: 60_000 }, () => {
  it('ingest may not publish decisions, settlements or to the state changelogs', async () => {
    const ingest = await as('ingest');
    await expect(ingest.js.publish('tapflow.decisions.0', 'x')).rejects.toThrow(violation('tapflow.decisions.0'));
    await expect(ingest.js.publish('tapflow.settlements.0', 'x')).rejects.toThrow(violation('tapflow.settlements.0'));
    await expect(ingest.js.publish('tapflow.state.validator.0', 'x')).rejects.toThrow(violation('tapflow.state.validator.0'));
    // The server logged the refusals, naming the user.
    await expect.poll(() => violationsLogged().some((l) => l.includes('tapflow-ingest') && l.includes('tapflow.decisions.0'))).toBe(true);
  });

  it('a validator may not delete, update or purge a stream, nor make a durable consumer', async () => {
    const validator = await as('validator');
    await expect(validator.jsm.streams.delete('TAPS')).rejects.toThrow(violation('$JS.API.STREAM.DELETE.TAPS'));
    const info = await validator.jsm.streams.info('TAPS');
    await expect(validator.jsm.streams.update('TAPS', { ...info.config, max_age: 1 })).rejects.toThrow(violation('$JS.API.STREAM.UPDATE.TAPS'));
    await expect(validator.jsm.streams.purge('DECISIONS')).rejects.toThrow(violation('$JS.API.STREAM.PURGE.DECISIONS'));
    await expect(validator.jsm.consumers.add('TAPS', { durable_name: 'rogue', filter_subject: 'tapflow.taps.0' })).rejects.toThrow(/Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.(DURABLE\.)?CREATE\.TAPS/);
    // Nor write the data it only reads.
    const hotlist = await new Kvm(validator.js).open(Buckets.HOTLIST, { allow_direct: true });
    await expect(hotlist.put('card', 'x')).rejects.toThrow(violation('$KV.tapflow_hotlist.card'));
  });

  it("a settler may not write another role's state, leases or outputs", async () => {
    const settler = await as('settler');
    const kvm = new Kvm(settler.js);
    const validatorState = await kvm.open(Buckets.VALIDATOR_STATE, { allow_direct: true });
    await expect(validatorState.put('some-card', 'x')).rejects.toThrow(violation('$KV.tapflow_validator_state.some-card'));
    const leases = await kvm.open(Buckets.LEASES, { allow_direct: true });
    await expect(leases.put('part.validator.0', 'x')).rejects.toThrow(violation('$KV.tapflow_leases.part.validator.0'));
    await expect(settler.js.publish('tapflow.state.validator.0', 'x')).rejects.toThrow(violation('tapflow.state.validator.0'));
    await expect(settler.js.publish('tapflow.decisions.0', 'x')).rejects.toThrow(violation('tapflow.decisions.0'));
    // Its own state it may write.
    const own = await kvm.open(Buckets.SETTLER_STATE, { allow_direct: true });
    await expect(own.put('permissions-test', 'x')).resolves.toBeGreaterThan(0);
  });

  it('the sink may not publish taps, decisions or pull from a validator consumer', async () => {
    const sinkBus = await as('sink');
    await expect(sinkBus.js.publish('tapflow.taps.0', 'x')).rejects.toThrow(violation('tapflow.taps.0'));
    await expect(sinkBus.js.publish('tapflow.decisions.1', 'x')).rejects.toThrow(violation('tapflow.decisions.1'));
    const consumer = await sinkBus.js.consumers.get('TAPS', 'validator-p0').catch((err: Error) => err);
    if (consumer instanceof Error) {
      expect(consumer.message).toMatch(violation('$JS.API.CONSUMER.INFO.TAPS.validator-p0'));
    } else {
      await expect(consumer.next({ expires: 1000 })).rejects.toThrow(violation('$JS.API.CONSUMER.MSG.NEXT.TAPS.validator-p0'));
    }
  });

  it('the table gives no role user a stream or durable consumer administration subject', () => {
    for (const [user, p] of Object.entries(busPermissions(PARTITIONS))) {
      const admin = p.publish.filter((s) => /^\$JS\.API\.(STREAM\.(CREATE|UPDATE|DELETE|PURGE|MSG\.DELETE)|CONSUMER\.DURABLE\.CREATE)|^\$JS\.API\.>$|^>$/.test(s));
      expect(admin, user).toEqual([]);
    }
  });
});
