/**
 * tapflow's configuration: one schema, every field with its unit and default, read from the
 * environment (and CLI flags, which override it) and validated once at start-up. A bad value
 * stops the process with a message naming the variable.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { LOG_LEVELS, MAX_LIVE_TIME_BOUND_MS, MAX_PARTITIONS, MAX_RETENTION_DAYS, MAX_UPLOAD_AGE_MS } from './values.js';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const bool = z
  .union([z.boolean(), z.enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off'])])
  .transform((v) => v === true || v === '1' || v === 'true' || v === 'yes' || v === 'on');

/**
 * The data folder that ships with this tapflow (networks, tariffs, venues, …), found from this
 * file upwards (src/config or dist/src/config), so the CLI finds it from any working directory;
 * `./data` when there is none.
 */
function shippedDataDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 4; up++, dir = dirname(dir)) {
    if (existsSync(join(dir, 'data', 'tariffs', 'tariffs.yaml'))) return join(dir, 'data');
  }
  return './data';
}

/**
 * Every setting, keyed by its environment variable. The README's configuration table is made
 * from this list (`tapflow config --markdown`).
 */
export const settings = {
  NATS_URL: { schema: z.string().min(1), default: 'nats://127.0.0.1:4222', doc: 'NATS server URL (comma-separated for a cluster).' },
  TAPFLOW_NATS_AUTOSTART: { schema: bool, default: 'true', doc: 'Start a local nats-server (JetStream, store under the data dir) when none answers at NATS_URL; installs it with apt-get on Debian when missing.' },
  NATS_USER: { schema: z.string().min(1).optional(), default: undefined, doc: 'NATS user this process connects as (with NATS_PASSWORD), for every connection it makes: the setup step, roles and operator tools alike. Unset: per-role users from TAPFLOW_NATS_CREDS_DIR, or no authentication when there is none.' },
  NATS_PASSWORD: { schema: z.string().optional(), default: undefined, doc: 'Password of NATS_USER (never logged). NATS_PASSWORD_FILE reads it from a file instead.' },
  NATS_PASSWORD_FILE: { schema: z.string().min(1).optional(), default: undefined, doc: 'File holding the password of NATS_USER (first line).' },
  TAPFLOW_NATS_CREDS_DIR: {
    schema: z.string().min(1).optional(),
    default: undefined,
    doc: 'Folder of the bus users\' passwords, one file per user (tapflow-admin.password, tapflow-ingest.password, …, mode 0600): a process connects as the user of the role it runs (tapflow-all for several roles), the setup step and operator tools as tapflow-admin (README, Least privilege). Unset: <data dir>/nats-creds when it exists (the local nats-server tapflow starts writes it).',
  },
  TAPFLOW_DATA_DIR: { schema: z.string().min(1), default: './data', doc: 'Local state: embedded ClickHouse, the local nats-server store, generated development keys.' },
  CLICKHOUSE_URL: { schema: z.string().url().optional(), default: undefined, doc: 'ClickHouse server (http://host:8123). Unset: the embedded engine (chdb) under the data dir.' },
  CLICKHOUSE_USER: { schema: z.string().optional(), default: undefined, doc: 'ClickHouse server user.' },
  CLICKHOUSE_PASSWORD: { schema: z.string().optional(), default: undefined, doc: 'ClickHouse server password.' },
  CLICKHOUSE_DATABASE: { schema: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), default: 'tapflow', doc: 'ClickHouse database.' },
  TAPFLOW_STORE_RETENTION_DAYS: {
    schema: z.coerce.number().int().min(0).max(MAX_RETENTION_DAYS),
    default: '0',
    doc: 'Days ClickHouse keeps the rows of decisions, settlements, ledger, risk_flags and claims after they were stored: a TTL on stored_time that the sink sets at start; expired rows go at the next TTL merge. 0: kept forever (no TTL). The aggregates are kept (docs/schema.md, Retention).',
  },
  TAPFLOW_GRPC_HOST: { schema: z.string().min(1), default: '0.0.0.0', doc: 'Address the ingest gRPC server binds.' },
  TAPFLOW_GRPC_PORT: { schema: port, default: '50051', doc: 'Port of the ingest gRPC server (0 = any free port).' },
  TAPFLOW_METRICS_PORT: { schema: port, default: '9464', doc: 'Port of /metrics, /healthz and /readyz (0 = any free port).' },
  TAPFLOW_PARTITIONS: { schema: positiveInt.max(MAX_PARTITIONS), default: '16', doc: 'Partitions of the card-keyed subjects (hash(card token) % N). Fixed for the life of the streams.' },
  TAPFLOW_MAX_INFLIGHT: { schema: positiveInt, default: '16384', doc: 'Taps published and not yet acknowledged by JetStream, per ingest process; beyond it taps are refused with OVERLOADED / RESOURCE_EXHAUSTED.' },
  TAPFLOW_INGEST_SEQ_MEMORY: { schema: z.coerce.number().int().min(0).max(50_000_000), default: '1000000', doc: 'Recent (terminal_id, seq) each ingest process remembers with the tap\'s content digest (about 60 bytes each): a re-send is answered DUPLICATE without publishing, a seq reused for another tap INVALID (SEQ_REUSED).' },
  TAPFLOW_PUBLISH_TIMEOUT_MS: { schema: positiveInt, default: '5000', doc: 'How long ingest waits for a JetStream PubAck (ms) before answering UNAVAILABLE.' },
  TAPFLOW_DUPLICATE_WINDOW_S: { schema: positiveInt, default: '1200', doc: "JetStream duplicate window of every stream (s): an output re-published within it after a crash (same Nats-Msg-Id, derived from its input) is stored once by JetStream. A re-sent tap is recognised by ingest's memory (TAPFLOW_INGEST_SEQ_MEMORY) and the validators' memory of applied events, not by this window." },
  TAPFLOW_STREAM_MAX_BYTES: { schema: positiveInt, default: String(8 * 1024 ** 3), doc: 'Size limit of each stream (bytes); a full stream refuses new taps (discard new) rather than dropping old ones.' },
  TAPFLOW_STREAM_REPLICAS: { schema: positiveInt.max(5), default: '1', doc: 'Replicas of every stream and KV bucket tapflow creates (JetStream num_replicas, 1 to 5): 3 on a three-node NATS cluster keeps every stream available and nothing lost while one node is down. Applied when a stream or bucket is created; a single nats-server takes 1.' },
  TAPFLOW_STREAM_MAX_AGE_S: { schema: positiveInt, default: String(7 * 24 * 3600), doc: 'Age limit of messages in each stream (s).' },
  TAPFLOW_ARCHIVE_MAX_AGE_S: {
    schema: positiveInt,
    default: String(30 * 24 * 3600),
    doc: 'How long the ARCHIVE stream keeps the messages the sink stores (decisions, settlements, risk flags), for `tapflow store rebuild` (s; default 30 days): the ranges of the store that can be rebuilt.',
  },
  TAPFLOW_ARCHIVE_MAX_BYTES: {
    schema: positiveInt,
    default: String(16 * 1024 ** 3),
    doc: 'Size limit of the ARCHIVE stream (bytes; default 16 GiB). When full it drops its oldest messages (it never holds up the pipeline); it doubles the disk the sink\'s three streams write.',
  },
  TAPFLOW_BATCH_MAX_TAPS: {
    schema: positiveInt.max(10_000),
    default: '5000',
    doc: 'Most taps accepted in one UploadBatch (at most 10,000). It also sets the largest gRPC message ingest accepts: what a batch of this many of the largest legal taps needs, 66 + taps × 2,536 bytes (12,680,066 for 5,000), or the largest claim (1,555,320) when more; RESOURCE_EXHAUSTED beyond it.',
  },
  TAPFLOW_CONSUMER_BATCH: { schema: positiveInt.max(4096), default: '256', doc: 'Messages (tap, decision or settlement bundles) a validator, settler or sink takes at once: one batch, one state commit, one insert per table.' },
  TAPFLOW_SINK_FLUSH_MS: { schema: positiveInt, default: '250', doc: 'Longest time the sink holds rows before an insert (ms).' },
  TAPFLOW_LAG_INTERVAL_MS: { schema: positiveInt.min(1000), default: '10000', doc: 'How often each process running validator, settler, risk-windows or sink reads the JetStream consumer info of every consumer of its roles (ms): tapflow_consumer_pending and tapflow_consumer_oldest_pending_age_seconds by role, stream and partition.' },
  TAPFLOW_STORE_CHECK_INTERVAL_MS: { schema: positiveInt.min(5000), default: '60000', doc: 'How often the active sink computes its ClickHouse gauges (ms): ledger imbalance, venues whose acceptance drops or refusals surge, silent terminals (docs/runbook.md).' },
  TAPFLOW_TERMINAL_SILENT_MINUTES: { schema: positiveInt.max(1440), default: '30', doc: 'A terminal that sent taps in the last 24 hours but none in this many minutes (ingest time) counts as silent (tapflow_terminals_silent).' },
  TAPFLOW_ACK_WAIT_S: { schema: positiveInt.max(3600), default: '20', doc: 'Consumers\' ack wait (s): a message delivered to a replica that died is redelivered after it; a new partition owner waits for such messages to keep stream order. Longer than any batch takes.' },
  TAPFLOW_MAX_DELIVER: { schema: positiveInt.min(2).max(1000), default: '20', doc: 'Deliveries of a message before a transient failure (bus or store unavailable) dead-letters it as TF_RETRIES_EXHAUSTED. Redeliveries back off from 250 ms to 30 s: 20 deliveries are about 7 minutes.' },
  TAPFLOW_CHECKPOINT_INTERVAL_MS: { schema: positiveInt.min(100).max(3_600_000), default: '30000', doc: 'How often a partition owner writes the keys changed since the last checkpoint from memory to the KV bucket (ms). Longer: fewer writes (a card changed many times is written once), a longer changelog to replay when a partition moves.' },
  TAPFLOW_STATE_CACHE: { schema: positiveInt.min(1000), default: '500000', doc: 'Card and person states a validator or settler keeps in memory per role and process (split over the partitions); beyond it the least recently changed ones already checkpointed are dropped and read again from KV when needed.' },
  TAPFLOW_WORKERS: {
    schema: z.union([z.literal('auto'), z.coerce.number().int().min(0).max(64)]),
    default: 'auto',
    doc: 'Worker threads running validator and settler replicas in a process that runs those roles (each takes its share of the partitions, as another process would). auto: one per core beyond the first (none on one core); 0: in the main thread.',
  },
  TAPFLOW_WORKER_NICE: {
    schema: z.coerce.number().int().min(0).max(19),
    default: '5',
    doc: 'Niceness of the worker threads (Linux: per thread) against the main thread, which accepts taps (ingest) and stores them (sink). When the cores are short, acknowledging taps keeps its latency and the stages\' backlog waits in JetStream; with cores to spare it changes nothing. 0: equal.',
  },
  TAPFLOW_LEASE_TTL_MS: { schema: positiveInt.min(1000), default: '15000', doc: 'Partition lease time (ms): a replica that stops renewing loses its partitions after this.' },
  TAPFLOW_CLOCK_SKEW_MS: { schema: positiveInt, default: '300000', doc: 'A live tap whose device time is further than this from ingest time (ms) is counted as clock skew (metric tapflow_clock_skew_taps_total, alert TapflowClockSkew).' },
  TAPFLOW_LIVE_TIME_BOUND_MS: {
    schema: positiveInt.max(MAX_LIVE_TIME_BOUND_MS),
    default: String(24 * 3_600_000),
    doc: 'A live tap (StreamTaps) whose device time is further than this from ingest time (ms; default 24 h), before or after it, is answered INVALID naming device_time: a clock that far off is broken, and its taps would be priced and cleared on the wrong day. A terminal that held taps longer (offline) uploads them with UploadBatch. At least TAPFLOW_CLOCK_SKEW_MS, at most 30 days.',
  },
  TAPFLOW_UPLOAD_MAX_AGE_MS: {
    schema: positiveInt.max(MAX_UPLOAD_AGE_MS),
    default: String(30 * 86_400_000),
    doc: 'How old (ms; default 30 days) a stored tap uploaded with UploadBatch may be at ingest; older, or further ahead of ingest time than TAPFLOW_LIVE_TIME_BOUND_MS, it is answered INVALID naming device_time. At least TAPFLOW_LIVE_TIME_BOUND_MS, at most 366 days.',
  },
  TAPFLOW_CLAIM_WAIT_MS: { schema: positiveInt, default: '2000', doc: 'How long SettleClaim waits for the split before answering PENDING (ms).' },
  TAPFLOW_SHUTDOWN_TIMEOUT_MS: { schema: positiveInt, default: '15000', doc: 'On SIGTERM: longest time to drain in-flight work before exiting (ms).' },
  TAPFLOW_TOKEN_KEY: { schema: z.string().regex(/^[0-9a-f]{64}$/i).optional(), default: undefined, doc: 'Hex 32-byte key of card/ID tokens (the current version, TAPFLOW_TOKEN_KEY_VERSION). Unset: development keys under <data dir>/keys/ (token.key is version 1; `tapflow token-keys rotate` adds the next version).' },
  TAPFLOW_TOKEN_KEY_VERSION: { schema: z.coerce.number().int().min(1).max(9999), default: '1', doc: 'Key version of TAPFLOW_TOKEN_KEY (1 to 9999): every new token names it (version 1 tokens are bare hex, later ones `k<N>.<hex>`). Raise it with a new key to rotate (README, Token key rotation).' },
  TAPFLOW_TOKEN_KEYS_PREVIOUS: { schema: z.string().optional(), default: undefined, doc: 'Previous token key versions still accepted during a rotation overlap: `<version>:<64 hex>,…`. Ingest also computes their tokens, and validators and settlers move a card\'s or person\'s state from an old token to the current one on its first event. Empty: no overlap.' },
  TAPFLOW_PARTITION_KEY: { schema: z.string().regex(/^[0-9a-f]{64}$/i).optional(), default: undefined, doc: 'Hex key the card and person partitions are derived from: the version-1 token key, never rotated. Needed only once version 1 is retired from TAPFLOW_TOKEN_KEYS_PREVIOUS; must equal the version-1 key.' },
  TAPFLOW_SEAL_KEY: { schema: z.string().regex(/^[0-9a-f]{64}$/i).optional(), default: undefined, doc: 'Hex 32-byte AES key sealing card credentials between ingest and validators. Unset: generated into <data dir>/keys/seal.key.' },
  TAPFLOW_TRUST_FILE: { schema: z.string().optional(), default: undefined, doc: 'Card issuer keys (chip master keys, QR public keys) of BJ, TJ, HE. Unset: <data dir>/keys/trust.json, generated test keys.' },
  TAPFLOW_TERMINALS_FILE: { schema: z.string().optional(), default: undefined, doc: 'Terminal registry (YAML): id, region, the venues each terminal serves, operator, secret hash for dev-secrets (README, Terminal registry). Unset: the demo registry (any <BJ|TJ|HE>-<name> id its certificate names; on dev-secrets, secrets derived from <data dir>/keys/fleet.key; a terminal serves the venues of the region its id names).' },
  TAPFLOW_INGEST_AUTH: {
    schema: z.enum(['mtls', 'dev-secrets']),
    default: 'mtls',
    doc: 'How terminals prove who they are. mtls: the ingest gRPC server serves TLS and requires a client certificate of the fleet CA naming the terminal (URI SAN urn:tapflow:terminal:<id>). dev-secrets: DEVELOPMENT ONLY — plaintext gRPC, terminals send x-terminal-id and x-terminal-secret metadata (a warning is logged at start).',
  },
  TAPFLOW_TLS_CA_FILE: { schema: z.string().optional(), default: undefined, doc: 'PEM of the fleet CA whose terminal certificates ingest accepts. With TAPFLOW_TLS_CERT_FILE and TAPFLOW_TLS_KEY_FILE, all three or none. None: a development CA and server certificate generated once under <data dir>/tls/ (tapflow certs).' },
  TAPFLOW_TLS_CERT_FILE: { schema: z.string().optional(), default: undefined, doc: "PEM of the ingest server's certificate (chain)." },
  TAPFLOW_TLS_KEY_FILE: { schema: z.string().optional(), default: undefined, doc: "PEM of the ingest server certificate's private key." },
  TAPFLOW_TLS_REVOKED_FILE: {
    schema: z.string().optional(),
    default: undefined,
    doc: 'Revoked terminal certificates: one serial (hex) per line, # comments (tapflow certs revoke writes it). Read again when it changes (checked every second); calls with a revoked certificate are refused and its open streams ended. A file that cannot be read keeps the last good list. Unset: revoked.txt beside the CA file (<data dir>/tls/revoked.txt for the development CA).',
  },
  TAPFLOW_TARIFF_DIR: {
    schema: z.string().min(1),
    default: shippedDataDir(),
    shown: '<tapflow>/data',
    doc: "Folder of networks, tariffs, venues, medical policies and the project list. Default: the data folder of this tapflow (next to its src/), whatever the working directory.",
  },
  TAPFLOW_LOG_LEVEL: { schema: z.enum(LOG_LEVELS), default: 'info', doc: 'Log level (pino).' },
} as const;

type Settings = typeof settings;
export type ConfigKey = keyof Settings;
export type Config = { [K in ConfigKey]: z.output<Settings[K]['schema']> };

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Reads and validates the configuration; overrides (from flags) win over the environment. */
export function loadConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<Record<ConfigKey, string | number | boolean | undefined>> = {}): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, spec] of Object.entries(settings) as [ConfigKey, Settings[ConfigKey]][]) {
    const raw = overrides[key] ?? (env[key] === '' ? undefined : env[key]) ?? spec.default;
    const parsed = (spec.schema as z.ZodType).safeParse(raw);
    if (!parsed.success) {
      problems.push(`${key}=${JSON.stringify(raw)}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    } else {
      out[key] = parsed.data;
    }
  }
  if (problems.length === 0) problems.push(...orderProblems(out as Config));
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return out as Config;
}

/** Settings that bound one another: each problem names both variables and their values. */
function orderProblems(cfg: Config): string[] {
  const problems: string[] = [];
  const atLeast = (a: ConfigKey, b: ConfigKey) => {
    if ((cfg[a] as number) < (cfg[b] as number)) problems.push(`${a}=${cfg[a]}: must be at least ${b} (${cfg[b]})`);
  };
  atLeast('TAPFLOW_LIVE_TIME_BOUND_MS', 'TAPFLOW_CLOCK_SKEW_MS');
  atLeast('TAPFLOW_UPLOAD_MAX_AGE_MS', 'TAPFLOW_LIVE_TIME_BOUND_MS');
  return problems;
}

/** The configuration table of the README. */
export function configMarkdown(): string {
  const rows = Object.entries(settings).map(([k, s]) => {
    const shown = 'shown' in s ? s.shown : s.default;
    return `| \`${k}\` | ${shown === undefined ? '(unset)' : `\`${shown}\``} | ${s.doc} |`;
  });
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** The worker threads a process runs for its validator and settler replicas (TAPFLOW_WORKERS). */
export function workerThreads(cfg: Pick<Config, 'TAPFLOW_WORKERS'>, cores = availableParallelism()): number {
  return cfg.TAPFLOW_WORKERS === 'auto' ? Math.max(0, cores - 1) : cfg.TAPFLOW_WORKERS;
}
