/**
 * Creates tapflow's JetStream topology idempotently in the admin step (`tapflow bus setup`,
 * src/runtime/bus-setup.ts; `tapflow start` runs it first): streams (file storage,
 * explicit limits, discard new so a full stream pushes back instead of dropping), the durable
 * pull consumers of every role, and the KV buckets.
 *
 * Streams other than DLQ use interest retention: a message is removed once every consumer
 * interested in it has acknowledged it. Consumers must therefore exist before anything is
 * published (a message nobody is interested in is dropped at once), which is why they are all
 * created here rather than by the roles. The roles only bind to what exists (bindTopology):
 * their NATS users may not change streams (src/bus/permissions.ts).
 */
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type ConsumerConfig, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Bus } from './connection.js';
import { Buckets, Streams, type StreamName } from './subjects.js';
import { TapflowError } from '../domain/reasons.js';
import { settings } from '../config/config.js';
import { ensureArchive, type ArchiveOptions } from './archive.js';

export interface TopologyOptions {
  partitions: number;
  duplicateWindowS: number;
  streamMaxBytes: number;
  streamMaxAgeS: number;
  leaseTtlMs: number;
  /** Consumers' ack wait (s): a message delivered and not acked is redelivered after it. */
  ackWaitS?: number;
  /** Replicas of each stream and KV bucket (TAPFLOW_STREAM_REPLICAS); consumers follow their stream. */
  replicas?: number;
  /** The ARCHIVE stream's limits (src/bus/archive.ts); the settings' defaults when not given. */
  archive?: ArchiveOptions;
}

const NS_PER_S = 1_000_000_000;

/** Topology options from the configuration. */
export function topologyOptions(cfg: {
  TAPFLOW_PARTITIONS: number;
  TAPFLOW_DUPLICATE_WINDOW_S: number;
  TAPFLOW_STREAM_MAX_BYTES: number;
  TAPFLOW_STREAM_MAX_AGE_S: number;
  TAPFLOW_LEASE_TTL_MS: number;
  TAPFLOW_ACK_WAIT_S: number;
  TAPFLOW_STREAM_REPLICAS?: number;
  TAPFLOW_ARCHIVE_MAX_AGE_S: number;
  TAPFLOW_ARCHIVE_MAX_BYTES: number;
}): TopologyOptions {
  return {
    partitions: cfg.TAPFLOW_PARTITIONS,
    duplicateWindowS: cfg.TAPFLOW_DUPLICATE_WINDOW_S,
    streamMaxBytes: cfg.TAPFLOW_STREAM_MAX_BYTES,
    streamMaxAgeS: cfg.TAPFLOW_STREAM_MAX_AGE_S,
    leaseTtlMs: cfg.TAPFLOW_LEASE_TTL_MS,
    ackWaitS: cfg.TAPFLOW_ACK_WAIT_S,
    replicas: cfg.TAPFLOW_STREAM_REPLICAS ?? 1,
    archive: { maxAgeS: cfg.TAPFLOW_ARCHIVE_MAX_AGE_S, maxBytes: cfg.TAPFLOW_ARCHIVE_MAX_BYTES },
  };
}

/** Durable consumers: name, stream, filter subject. */
export function consumerPlan(partitions: number): { stream: StreamName; name: string; filter: string }[] {
  const plan: { stream: StreamName; name: string; filter: string }[] = [];
  for (let p = 0; p < partitions; p++) {
    plan.push({ stream: 'TAPS', name: `validator-p${p}`, filter: `tapflow.taps.${p}` });
    plan.push({ stream: 'CLAIMS', name: `validator-claims-p${p}`, filter: `tapflow.claims.${p}` });
    plan.push({ stream: 'DECISIONS', name: `settler-p${p}`, filter: `tapflow.decisions.${p}` });
    plan.push({ stream: 'CLAIMS', name: `settler-claims-p${p}`, filter: `tapflow.claimdecisions.${p}` });
  }
  plan.push({ stream: 'DECISIONS', name: 'sink-decisions', filter: 'tapflow.decisions.>' });
  plan.push({ stream: 'DECISIONS', name: 'risk-windows', filter: 'tapflow.decisions.>' });
  plan.push({ stream: 'CLAIMS', name: 'risk-windows-claims', filter: 'tapflow.claimdecisions.>' });
  plan.push({ stream: 'SETTLEMENTS', name: 'sink-settlements', filter: 'tapflow.settlements.>' });
  plan.push({ stream: 'RISK', name: 'sink-risk', filter: 'tapflow.risk.>' });
  return plan;
}

/** Names of the durable consumers tapflow creates (consumerPlan). */
const OWN_CONSUMER = /^(validator|settler|sink|risk-windows)(-|$)/;

/**
 * How many messages (bundles) a consumer may hold unacknowledged: with the consumers' pull
 * windows (src/bus/partitions.ts) this bounds what a process holds under overload; the backlog
 * stays in JetStream.
 */
export const MAX_ACK_PENDING = 2048;
/**
 * The sink acknowledges only after an insert of up to TAPFLOW_CONSUMER_BATCH messages: its
 * window must hold more than one such batch, or it alternates between filling and inserting.
 */
export const SINK_MAX_ACK_PENDING = 8192;
/** Redelivery after this long without an ack (s), unless configured (TAPFLOW_ACK_WAIT_S). */
export const ACK_WAIT_S = 20;

/**
 * The partition count of the deployment on this NATS server: the number of the validators'
 * tap consumers (validator-p0 … validator-p<N-1>), or undefined before the topology exists.
 */
export async function deployedPartitions(bus: Bus): Promise<number | undefined> {
  const exists = await bus.jsm.streams.info(Streams.TAPS.name).then(
    () => true,
    () => false,
  );
  if (!exists) return undefined;
  let n = 0;
  for await (const ci of bus.jsm.consumers.list(Streams.TAPS.name)) {
    const m = /^validator-p(\d+)$/.exec(ci.config.durable_name ?? '');
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n > 0 ? n : undefined;
}

export async function ensureTopology(bus: Bus, o: TopologyOptions): Promise<void> {
  // The partitions are fixed for the life of the streams: a card's state and its taps must meet
  // in the same partition. A process configured otherwise would split them.
  const deployed = await deployedPartitions(bus);
  if (deployed !== undefined && deployed !== o.partitions) {
    throw new TapflowError('TF_TOPOLOGY_MISMATCH', `TAPFLOW_PARTITIONS is ${o.partitions}, but the deployment on this NATS server has ${deployed} partitions: set TAPFLOW_PARTITIONS=${deployed} (the partition count is fixed for the life of the streams)`);
  }
  for (const key of Object.keys(Streams) as StreamName[]) {
    const s = Streams[key];
    const cfg: Partial<StreamConfig> & { name: string } = {
      name: s.name,
      subjects: [...s.subjects],
      storage: StorageType.File,
      retention: key === 'DLQ' || key === 'STATE' ? RetentionPolicy.Limits : RetentionPolicy.Interest,
      // A full stream pushes back; only the state changelog drops its oldest messages instead
      // (the checkpoints have them in the KV buckets).
      discard: key === 'STATE' ? DiscardPolicy.Old : DiscardPolicy.New,
      max_bytes: o.streamMaxBytes,
      max_age: o.streamMaxAgeS * NS_PER_S,
      max_msgs: -1,
      duplicate_window: o.duplicateWindowS * NS_PER_S,
      num_replicas: o.replicas ?? 1,
    };
    const existing = await bus.jsm.streams.info(s.name).catch(() => undefined);
    if (!existing) {
      await bus.jsm.streams.add(cfg).catch((err: unknown) => {
        throw storageError(err, s.name, o.streamMaxBytes);
      });
    } else {
      const c = existing.config;
      const sameSubjects = [...(c.subjects ?? [])].sort().join(' ') === [...s.subjects].sort().join(' ');
      if (!sameSubjects || c.max_bytes !== cfg.max_bytes || c.max_age !== cfg.max_age || c.duplicate_window !== cfg.duplicate_window || c.discard !== cfg.discard) {
        await bus.jsm.streams.update(s.name, { ...c, subjects: [...s.subjects], max_bytes: cfg.max_bytes!, max_age: cfg.max_age!, duplicate_window: cfg.duplicate_window!, discard: cfg.discard! });
      }
    }
  }
  // After the streams it sources; before anything is published (its sources count as interest).
  await ensureArchive(bus, { ...(o.archive ?? { maxAgeS: Number(settings.TAPFLOW_ARCHIVE_MAX_AGE_S.default), maxBytes: Number(settings.TAPFLOW_ARCHIVE_MAX_BYTES.default) }), replicas: o.replicas ?? 1 });
  const plan = consumerPlan(o.partitions);
  // A consumer of tapflow's own from an older topology that the plan no longer has (or with
  // another filter) would keep interest in messages nobody processes: interest retention would
  // never remove them. Consumers named otherwise (an operator's) are left alone.
  for (const key of Object.keys(Streams) as StreamName[]) {
    if (key === 'DLQ' || key === 'STATE') continue;
    const name = Streams[key].name;
    const wanted = new Map(plan.filter((c) => c.stream === key).map((c) => [c.name, c.filter]));
    for await (const ci of bus.jsm.consumers.list(name)) {
      const durable = ci.config.durable_name ?? '';
      if (!OWN_CONSUMER.test(durable) || wanted.get(durable) === (ci.config.filter_subject ?? '')) continue;
      await bus.jsm.consumers.delete(name, ci.name);
    }
  }
  for (const c of plan) {
    const cfg: Partial<ConsumerConfig> = {
      durable_name: c.name,
      filter_subject: c.filter,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: (o.ackWaitS ?? ACK_WAIT_S) * NS_PER_S,
      max_ack_pending: c.name.startsWith('sink-') ? SINK_MAX_ACK_PENDING : MAX_ACK_PENDING,
      max_deliver: -1,
    };
    const existing = await bus.jsm.consumers.info(Streams[c.stream].name, c.name).catch(() => undefined);
    if (!existing) await bus.jsm.consumers.add(Streams[c.stream].name, cfg);
    else if (existing.config.ack_wait !== cfg.ack_wait || existing.config.max_ack_pending !== cfg.max_ack_pending) {
      await bus.jsm.consumers.update(Streams[c.stream].name, c.name, { ...existing.config, ack_wait: cfg.ack_wait!, max_ack_pending: cfg.max_ack_pending! });
    }
  }
  await openBuckets(bus, o.leaseTtlMs, bus, true, o.replicas);
}

export interface BucketSet {
  hotlist: KV;
  projects: KV;
  riskRules: KV;
  leases: KV;
  validatorState: KV;
  settlerState: KV;
  windowState: KV;
  claims: KV;
}

/**
 * JetStream file storage tapflow's streams reserve: each reserves its TAPFLOW_STREAM_MAX_BYTES
 * on the server, the ARCHIVE its TAPFLOW_ARCHIVE_MAX_BYTES, plus room for the KV buckets
 * (unlimited, so not reserved). A local nats-server
 * tapflow starts is given at least this much (its own default is 75% of the free disk, which on
 * a shared disk can be less than the streams ask for).
 */
export function fileStoreNeeded(streamMaxBytes = Number(settings.TAPFLOW_STREAM_MAX_BYTES.default), archiveMaxBytes = Number(settings.TAPFLOW_ARCHIVE_MAX_BYTES.default)): number {
  return Object.keys(Streams).length * streamMaxBytes + archiveMaxBytes + 1024 ** 3;
}

/** A stream the server cannot reserve space for, said in tapflow's terms. */
function storageError(err: unknown, stream: string, streamMaxBytes: number): unknown {
  if (!(err instanceof Error) || !/insufficient storage/i.test(err.message)) return err;
  const gib = (n: number) => `${(n / 1024 ** 3).toFixed(1)} GiB`;
  return new Error(
    `the NATS server cannot reserve ${gib(streamMaxBytes)} for stream ${stream} (${err.message}): tapflow's ${Object.keys(Streams).length} streams reserve TAPFLOW_STREAM_MAX_BYTES each, ${gib(fileStoreNeeded(streamMaxBytes))} with the KV buckets. Lower TAPFLOW_STREAM_MAX_BYTES, or raise the server's jetstream max_file_store.`,
    { cause: err },
  );
}

/**
 * Opens every KV bucket; the leases through `leaseBus` when given. `create` (the setup step):
 * creating the missing ones, with `replicas` (TAPFLOW_STREAM_REPLICAS); otherwise (a role)
 * binding to them as they are (bindTopology has checked they exist).
 */
export async function openBuckets(bus: Bus, leaseTtlMs: number, leaseBus: Bus = bus, create = true, replicas = 1): Promise<BucketSet> {
  const kvm = new Kvm(bus.js);
  const open = (name: string, opts: Record<string, unknown> = {}, m = kvm) =>
    create ? m.create(name, { storage: StorageType.File, history: 1, replicas, ...opts }) : m.open(name, { allow_direct: true });
  return {
    hotlist: await open(Buckets.HOTLIST, { history: 5 }),
    projects: await open(Buckets.PROJECTS, { history: 10 }),
    riskRules: await open(Buckets.RISK_RULES, { history: 10 }),
    leases: await open(Buckets.LEASES, { ttl: leaseTtlMs }, leaseBus === bus ? kvm : new Kvm(leaseBus.js)),
    validatorState: await open(Buckets.VALIDATOR_STATE),
    settlerState: await open(Buckets.SETTLER_STATE),
    windowState: await open(Buckets.WINDOW_STATE),
    claims: await open(Buckets.CLAIMS),
  };
}

/** The durable consumers a process running `roles` pulls from. */
export function consumersOf(roles: readonly string[], partitions: number): { stream: StreamName; name: string; filter: string }[] {
  const prefixes = roles.flatMap((r) => (r === 'validator' ? ['validator-', 'risk-windows'] : r === 'settler' ? ['settler-'] : r === 'sink' ? ['sink-'] : []));
  return consumerPlan(partitions).filter((c) => prefixes.some((p) => c.name.startsWith(p)));
}

const SETUP_HINT = 'run the admin step first: `tapflow bus setup` (with the admin NATS user; `tapflow start` runs it itself)';

/**
 * A role's check at start that the topology it binds to exists, without creating anything (its
 * NATS user may not): the streams, the durable consumers of `roles`, the KV buckets, and the
 * deployment's partition count. Throws TF_TOPOLOGY_MISSING naming what is missing, or
 * TF_TOPOLOGY_MISMATCH.
 */
export async function bindTopology(bus: Bus, partitions: number, roles: readonly string[]): Promise<void> {
  const deployed = await deployedPartitions(bus);
  if (deployed === undefined) {
    throw new TapflowError('TF_TOPOLOGY_MISSING', `tapflow's JetStream topology does not exist on this NATS server (no stream ${Streams.TAPS.name} with its validator consumers): ${SETUP_HINT}`);
  }
  if (deployed !== partitions) {
    throw new TapflowError('TF_TOPOLOGY_MISMATCH', `TAPFLOW_PARTITIONS is ${partitions}, but the deployment on this NATS server has ${deployed} partitions: set TAPFLOW_PARTITIONS=${deployed} (the partition count is fixed for the life of the streams)`);
  }
  const missing: string[] = [];
  for (const key of Object.keys(Streams) as StreamName[]) {
    if (!(await exists(() => bus.jsm.streams.info(Streams[key].name)))) missing.push(`stream ${Streams[key].name}`);
  }
  for (const c of consumersOf(roles, partitions)) {
    if (!(await exists(() => bus.jsm.consumers.info(Streams[c.stream].name, c.name)))) missing.push(`consumer ${c.name} of stream ${Streams[c.stream].name}`);
  }
  for (const b of Object.values(Buckets)) {
    if (!(await exists(() => bus.jsm.streams.info(`KV_${b}`)))) missing.push(`KV bucket ${b}`);
  }
  if (missing.length > 0) throw new TapflowError('TF_TOPOLOGY_MISSING', `missing on this NATS server: ${missing.join(', ')}: ${SETUP_HINT}`);
}

/** True when the info call succeeds; false when the server says it does not exist; other errors are thrown. */
async function exists(info: () => Promise<unknown>): Promise<boolean> {
  try {
    await info();
    return true;
  } catch (err) {
    if (/not found/i.test((err as Error).message)) return false;
    throw err;
  }
}
