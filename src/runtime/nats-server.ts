/**
 * A local nats-server for laptops and tests: find the binary, install it with apt-get on
 * Debian/Ubuntu when it is missing, start it with JetStream and a store directory, and tell
 * whether a NATS server answers at a URL.
 *
 * Production deployments run their own NATS cluster; this module only serves `tapflow start`
 * (when nothing answers at NATS_URL) and the integration tests.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, chmod, mkdir, realpath, stat, writeFile } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import { APT_INSTALL, aptAccess, gatherInstallFacts, runInstallRoutes, type InstallFacts, type InstallRoute } from './apt.js';
import { OutputTail } from './output-tail.js';

export { parseOsRelease, gatherInstallFacts, type InstallFacts, type InstallStep, type InstallRoute } from './apt.js';

/** Oldest nats-server tapflow runs on (JetStream API it uses). */
export const MIN_NATS_SERVER_VERSION = { major: 2, minor: 9 } as const;
/** Preferred: 2.10 adds `sync_interval` and faster file-store recovery. */
export const PREFERRED_NATS_SERVER_VERSION = { major: 2, minor: 10 } as const;

/** Where progress and warnings go; a pino logger fits. */
export interface NatsServerLog {
  info(msg: string): void;
  warn(msg: string): void;
  debug?(msg: string): void;
}

/** A nats-server could not be found, installed or started. The message says what to do. */
export class NatsServerError extends Error {
  override readonly name = 'NatsServerError';
  constructor(
    message: string,
    options?: { cause?: unknown },
    /** Last lines nats-server (or apt-get) wrote before failing, if any. */
    readonly outputTail?: string,
  ) {
    super(message, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Versions

export interface NatsServerVersion {
  major: number;
  minor: number;
  patch: number;
  /** As printed, e.g. "v2.10.27". */
  text: string;
}

/**
 * Parses the output of `nats-server --version`, e.g. "nats-server: v2.10.27" (Debian builds
 * print the same; development builds may add a suffix such as "-beta.1").
 */
export function parseNatsServerVersion(output: string): NatsServerVersion | undefined {
  const m = /\bv?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]+)?/.exec(output);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), text: `v${m[0].replace(/^v/, '')}` };
}

/** True when `v` is at least `min` (major.minor). */
export function versionAtLeast(v: NatsServerVersion, min: { major: number; minor: number }): boolean {
  return v.major > min.major || (v.major === min.major && v.minor >= min.minor);
}

/** Runs `<bin> --version`; undefined when it does not run or prints no version. */
export async function natsServerVersion(bin: string): Promise<NatsServerVersion | undefined> {
  return new Promise((resolveVersion) => {
    execFile(bin, ['--version'], { timeout: 5_000 }, (err, stdout, stderr) => {
      if (err) return resolveVersion(undefined);
      resolveVersion(parseNatsServerVersion(`${stdout}\n${stderr}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Finding the binary

/**
 * Directories searched after PATH and ./.tools/bin. Debian installs nats-server into /usr/sbin,
 * which is not on the PATH of ordinary users.
 */
const WELL_KNOWN_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'] as const;

export interface FindNatsServerOptions {
  /** Environment to read NATS_SERVER_BIN and PATH from. @default process.env */
  env?: Record<string, string | undefined>;
  /** Directory whose `.tools/bin` is searched. @default process.cwd() */
  cwd?: string;
  /** Searched last. @default ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'] */
  wellKnownDirs?: readonly string[];
}

/** A nats-server binary and its version. */
export interface FoundNatsServer {
  bin: string;
  version: NatsServerVersion;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    const s = await stat(path);
    if (!s.isFile()) return false;
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds a usable nats-server (version ≥ 2.9) with its version.
 *
 * Order: `$NATS_SERVER_BIN` wins when it is usable (an explicit choice, even if it is 2.9);
 * otherwise PATH, `./.tools/bin`, then the well-known system directories, taking the first
 * ≥ 2.10 and falling back to the first ≥ 2.9.
 */
export async function locateNatsServer(opts: FindNatsServerOptions = {}): Promise<FoundNatsServer | undefined> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const explicit = env.NATS_SERVER_BIN;
  if (explicit) {
    const bin = resolve(cwd, explicit);
    if (await isExecutableFile(bin)) {
      const version = await natsServerVersion(bin);
      if (version && versionAtLeast(version, MIN_NATS_SERVER_VERSION)) return { bin, version };
    }
  }
  const dirs = [...(env.PATH ?? '').split(delimiter).filter((d) => d !== ''), join(cwd, '.tools', 'bin'), ...(opts.wellKnownDirs ?? WELL_KNOWN_DIRS)];
  const seen = new Set<string>();
  let fallback: FoundNatsServer | undefined;
  for (const dir of dirs) {
    const candidate = resolve(cwd, dir, 'nats-server');
    if (!(await isExecutableFile(candidate))) continue;
    const real = await realpath(candidate).catch(() => candidate);
    if (seen.has(real)) continue;
    seen.add(real);
    const version = await natsServerVersion(candidate);
    if (!version || !versionAtLeast(version, MIN_NATS_SERVER_VERSION)) continue;
    if (versionAtLeast(version, PREFERRED_NATS_SERVER_VERSION)) return { bin: candidate, version };
    fallback ??= { bin: candidate, version };
  }
  return fallback;
}

/** The path of a usable nats-server (see {@link locateNatsServer}), or undefined. */
export async function findNatsServer(opts: FindNatsServerOptions = {}): Promise<string | undefined> {
  return (await locateNatsServer(opts))?.bin;
}

// ---------------------------------------------------------------------------------------------
// Installing it (Debian/Ubuntu)

/**
 * Debian trixie as an extra apt source on bookworm: its nats-server 2.10 package runs on
 * bookworm's libc. Deb822 format.
 */
export const TRIXIE_SOURCES_PATH = '/etc/apt/sources.list.d/trixie.sources';
export const TRIXIE_SOURCES = [
  'Types: deb',
  'URIs: http://deb.debian.org/debian',
  'Suites: trixie',
  'Components: main',
  'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
  '',
].join('\n');
/**
 * Priority 100 (below the 500 of bookworm itself): nothing is installed or upgraded from
 * trixie unless asked for with `-t trixie`.
 */
export const TRIXIE_PIN_PATH = '/etc/apt/preferences.d/tapflow-trixie';
export const TRIXIE_PIN = ['Package: *', 'Pin: release n=trixie', 'Pin-Priority: 100', ''].join('\n');

export type InstallPlan = { kind: 'apt'; sudo: boolean; routes: InstallRoute[] } | { kind: 'unsupported'; reason: string };

/**
 * Decides how to install nats-server on this machine. On Debian bookworm: trixie's 2.10
 * package first, then bookworm's own 2.9; on other Debian and Ubuntu releases: the distro's
 * package. Pure: the facts are passed in.
 */
export function planNatsServerInstall(facts: InstallFacts): InstallPlan {
  const apt = aptAccess(facts);
  if (!apt.ok) return { kind: 'unsupported', reason: apt.reason };
  const id = facts.osRelease.ID ?? '';
  const distro: InstallRoute = {
    name: `${facts.osRelease.PRETTY_NAME ?? id} package`,
    steps: [
      { kind: 'run', argv: ['apt-get', 'update'], describe: 'apt-get update' },
      { kind: 'run', argv: [...APT_INSTALL, 'nats-server'], describe: 'apt-get install nats-server' },
    ],
  };
  const routes: InstallRoute[] = [];
  if (id === 'debian' && facts.osRelease.VERSION_CODENAME === 'bookworm') {
    routes.push({
      name: 'Debian trixie package (2.10) on bookworm',
      steps: [
        { kind: 'write-file', path: TRIXIE_SOURCES_PATH, content: TRIXIE_SOURCES, describe: `add the trixie apt source (${TRIXIE_SOURCES_PATH})` },
        { kind: 'write-file', path: TRIXIE_PIN_PATH, content: TRIXIE_PIN, describe: `pin trixie to priority 100 (${TRIXIE_PIN_PATH}) so nothing else comes from it` },
        { kind: 'run', argv: ['apt-get', 'update'], describe: 'apt-get update' },
        { kind: 'run', argv: [...APT_INSTALL, '-t', 'trixie', 'nats-server'], describe: 'apt-get install -t trixie nats-server' },
      ],
    });
  }
  routes.push(distro);
  return { kind: 'apt', sudo: apt.sudo, routes };
}

/** How to get nats-server by hand; the tail of every "not found" error. */
export function natsServerInstallHelp(): string {
  return [
    'Install nats-server (>= 2.9, 2.10 preferred) in one of these ways:',
    '  - Debian bookworm, 2.10 from trixie (as root):',
    `      printf '${TRIXIE_SOURCES.trimEnd().replaceAll('\n', '\\n')}\\n' > ${TRIXIE_SOURCES_PATH}`,
    `      printf '${TRIXIE_PIN.trimEnd().replaceAll('\n', '\\n')}\\n' > ${TRIXIE_PIN_PATH}`,
    '      apt-get update && apt-get install -y -t trixie nats-server',
    '  - Debian/Ubuntu, the distro package: sudo apt-get install nats-server',
    '  - any system: download a release from https://github.com/nats-io/nats-server/releases and put',
    '    nats-server on PATH, in ./.tools/bin, or set NATS_SERVER_BIN=/path/to/nats-server',
    '  - with Docker: docker compose up -d nats   (then NATS_URL=nats://127.0.0.1:4222)',
  ].join('\n');
}

export interface EnsureNatsServerOptions {
  /** Install with apt-get when missing (Debian/Ubuntu, root or passwordless sudo). */
  install: boolean;
  /** Progress while installing. */
  log: NatsServerLog;
  /** Where to look (tests point this elsewhere). */
  find?: FindNatsServerOptions;
  /** Machine facts; gathered when omitted (tests pass their own). */
  facts?: InstallFacts;
}

/**
 * Returns the path of a usable nats-server, installing it with apt-get when it is missing and
 * `install` is true. Throws a {@link NatsServerError} whose message says how to install it
 * by hand when it cannot.
 */
export async function ensureNatsServer(opts: EnsureNatsServerOptions): Promise<string> {
  const { log } = opts;
  const found = await locateNatsServer(opts.find);
  if (found) {
    if (!versionAtLeast(found.version, PREFERRED_NATS_SERVER_VERSION)) {
      log.warn(`nats-server ${found.version.text} at ${found.bin} works, but 2.10 or newer is preferred`);
    }
    return found.bin;
  }
  const notFound = 'nats-server (>= 2.9) was not found in $NATS_SERVER_BIN, PATH, ./.tools/bin or /usr/sbin.';
  if (!opts.install) throw new NatsServerError(`${notFound}\n${natsServerInstallHelp()}`);

  const plan = planNatsServerInstall(opts.facts ?? (await gatherInstallFacts()));
  if (plan.kind === 'unsupported') {
    throw new NatsServerError(`${notFound} It was not installed automatically: ${plan.reason}.\n${natsServerInstallHelp()}`);
  }

  const outcome = await runInstallRoutes({
    what: 'nats-server',
    announce: (route) => `nats-server not found: installing it with apt-get (${route.name})`,
    routes: plan.routes,
    sudo: plan.sudo,
    log,
    installed: () => locateNatsServer(opts.find),
    service: 'nats-server',
  });
  if (outcome.ok) {
    log.info(`nats-server ${outcome.value.version.text} installed at ${outcome.value.bin}`);
    return outcome.value.bin;
  }
  const { problems, lastOutput } = outcome;
  throw new NatsServerError(
    `${notFound} Installing it with apt-get failed:\n  ${problems.join('\n  ')}${lastOutput ? `\nlast output:\n${lastOutput}` : ''}\n${natsServerInstallHelp()}`,
    undefined,
    lastOutput,
  );
}

// ---------------------------------------------------------------------------------------------
// Reachability

/** The fields of a server's INFO line that tapflow looks at. */
export interface NatsServerInfo {
  server_id?: string;
  server_name?: string;
  version?: string;
  jetstream?: boolean;
  [key: string]: unknown;
}

/** "nats://host:port", "tls://host", "host:port" or "host" → host and port (default 4222). */
export function parseNatsAddress(url: string): { host: string; port: number } {
  const withScheme = url.includes('://') ? url : `nats://${url}`;
  const u = new URL(withScheme);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  return { host, port: u.port === '' ? 4222 : Number(u.port) };
}

/**
 * Connects to host:port and reads the server's greeting. A NATS server speaks first:
 * `INFO {json}\r\n`. Resolves undefined when nothing answers, or something else does.
 */
export function readNatsInfo(host: string, port: number, timeoutMs: number): Promise<NatsServerInfo | undefined> {
  return new Promise((done) => {
    let buf = '';
    let settled = false;
    const socket = tcpConnect({ host, port });
    const finish = (info: NatsServerInfo | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      done(info);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buf += chunk;
      const end = buf.indexOf('\r\n');
      if (end < 0 && buf.length < 64 * 1024) return;
      const line = end < 0 ? buf : buf.slice(0, end);
      if (!line.startsWith('INFO ')) return finish(undefined);
      try {
        finish(JSON.parse(line.slice(5)) as NatsServerInfo);
      } catch {
        finish({});
      }
    });
    socket.on('error', () => finish(undefined));
    socket.on('close', () => finish(undefined));
  });
}

/** The INFO of the first server of a (comma-separated) URL list that answers, or undefined. */
export async function natsServerInfo(url: string, timeoutMs: number): Promise<NatsServerInfo | undefined> {
  const addresses = url
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '')
    .map(parseNatsAddress);
  const answers = await Promise.all(addresses.map((a) => readNatsInfo(a.host, a.port, timeoutMs)));
  return answers.find((a) => a !== undefined);
}

/** True when a NATS server answers (TCP connect and an INFO line) at any URL of the list. */
export async function isNatsReachable(url: string, timeoutMs: number): Promise<boolean> {
  return (await natsServerInfo(url, timeoutMs)) !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Running a server

export interface StartNatsServerOptions {
  /** The nats-server binary. @default the result of {@link findNatsServer} */
  bin?: string;
  /** Client port; 0 picks a free one (kept across restarts). @default 0 */
  port?: number;
  /** Address to listen on. @default '127.0.0.1' */
  host?: string;
  /** JetStream store directory; created if missing. The config file is written into it too. */
  storeDir: string;
  /** JetStream is always on: tapflow needs it. */
  jetstream: true;
  /** JetStream memory storage limit, bytes. @default the server's (75% of RAM) */
  maxMemoryStore?: number;
  /** JetStream file storage limit, bytes. @default the server's (up to 1 TB, by free disk) */
  maxFileStore?: number;
  /**
   * fsync policy of the file store (nats-server ≥ 2.10; ignored with a warning on 2.9):
   * 'always' fsyncs every write; a number is the interval in milliseconds.
   * @default the server's (2 minutes)
   */
  syncInterval?: 'always' | number;
  /** How long to wait for the server to accept connections, ms. @default 20000 */
  startTimeoutMs?: number;
  /** The server's name (kept across restarts; a cluster node's JetStream identity). @default a random tapflow-<hex> */
  serverName?: string;
  /**
   * Join a cluster (tests: a three-node JetStream cluster on loopback ports): the cluster's name,
   * this node's route port on `host`, and the other nodes' route URLs (nats-route://host:port).
   */
  cluster?: NatsClusterOptions;
  /** Where the server's own log lines (debug) and warnings go. */
  log?: NatsServerLog;
  /**
   * An `authorization { … }` block for the config (src/bus/permissions.ts): users and their
   * permissions. The config file is then written mode 0600 (it holds their passwords).
   */
  authorization?: string;
}

/** Cluster membership of a node (see {@link StartNatsServerOptions.cluster}). */
export interface NatsClusterOptions {
  name: string;
  port: number;
  routes: string[];
}

/** A nats-server process started by {@link startNatsServer}. */
export interface NatsServerHandle {
  /** nats://host:port */
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Path of the generated config file. */
  readonly configFile: string;
  readonly version: NatsServerVersion;
  /** Process id of the running server; undefined while stopped. */
  readonly pid: number | undefined;
  /** SIGTERM and wait for exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit: a crash, as far as the store is concerned. */
  kill(): Promise<void>;
  /** Start again on the same port and store dir (stopping it first if it runs). */
  restart(): Promise<void>;
}

/** Servers this process started: killed if the process exits without stopping them. */
const liveServers = new Set<ChildProcess>();
let exitHookInstalled = false;
function trackChild(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveServers) c.kill('SIGKILL');
    });
  }
  liveServers.add(child);
  child.once('exit', () => liveServers.delete(child));
}

/** A free TCP port on `host` (bound and released; good enough for local servers and tests). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', fail);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => ok(port));
    });
  });
}

/** Go duration for nats-server's config from milliseconds. */
function goDuration(ms: number): string {
  return `${Math.max(1, Math.round(ms))}ms`;
}

/**
 * The config file. nats-server's format accepts JSON values, so strings are JSON-quoted
 * (paths with spaces or backslashes survive).
 */
export function natsServerConfig(o: {
  serverName: string;
  host: string;
  port: number;
  storeDir: string;
  maxMemoryStore?: number;
  maxFileStore?: number;
  syncInterval?: 'always' | number;
  authorization?: string;
  cluster?: NatsClusterOptions;
}): string {
  const js: string[] = [`  store_dir: ${JSON.stringify(o.storeDir)}`];
  if (o.maxMemoryStore !== undefined) js.push(`  max_memory_store: ${Math.floor(o.maxMemoryStore)}`);
  if (o.maxFileStore !== undefined) js.push(`  max_file_store: ${Math.floor(o.maxFileStore)}`);
  if (o.syncInterval !== undefined) js.push(`  sync_interval: ${JSON.stringify(o.syncInterval === 'always' ? 'always' : goDuration(o.syncInterval))}`);
  return [
    '# Written by tapflow (src/runtime/nats-server.ts) on every start; edits are overwritten.',
    `server_name: ${JSON.stringify(o.serverName)}`,
    `host: ${JSON.stringify(o.host)}`,
    `port: ${o.port}`,
    'jetstream {',
    ...js,
    '}',
    ...(o.authorization ? [o.authorization.trimEnd()] : []),
    ...(o.cluster
      ? ['cluster {', `  name: ${JSON.stringify(o.cluster.name)}`, `  listen: ${JSON.stringify(`${o.host}:${o.cluster.port}`)}`, `  routes: ${JSON.stringify(o.cluster.routes)}`, '}']
      : []),
    '',
  ].join('\n');
}

class LocalNatsServer implements NatsServerHandle {
  readonly url: string;
  readonly configFile: string;
  private child: ChildProcess | undefined;
  private readonly serverName: string;

  constructor(
    private readonly bin: string,
    readonly version: NatsServerVersion,
    private readonly host: string,
    readonly port: number,
    readonly storeDir: string,
    private readonly opts: StartNatsServerOptions,
  ) {
    const urlHost = host.includes(':') ? `[${host}]` : host;
    this.url = `nats://${urlHost}:${port}`;
    this.configFile = join(storeDir, 'nats-server.conf');
    this.serverName = opts.serverName ?? `tapflow-${randomBytes(4).toString('hex')}`;
  }

  get pid(): number | undefined {
    return this.running() ? this.child?.pid : undefined;
  }

  private running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    let syncInterval = this.opts.syncInterval;
    if (syncInterval !== undefined && !versionAtLeast(this.version, { major: 2, minor: 10 })) {
      this.opts.log?.warn(`nats-server ${this.version.text} has no sync_interval (2.10+); using its default fsync policy`);
      syncInterval = undefined;
    }
    await mkdir(this.storeDir, { recursive: true });
    await writeFile(
      this.configFile,
      natsServerConfig({
        serverName: this.serverName,
        host: this.host,
        port: this.port,
        storeDir: this.storeDir,
        maxMemoryStore: this.opts.maxMemoryStore,
        maxFileStore: this.opts.maxFileStore,
        syncInterval,
        authorization: this.opts.authorization,
        cluster: this.opts.cluster,
      }),
      { mode: 0o600 },
    );
    await chmod(this.configFile, 0o600);
    const tail = new OutputTail(40);
    const child = spawn(this.bin, ['-c', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    trackChild(child);
    const debug = this.opts.log?.debug?.bind(this.opts.log);
    const onLine = debug ? (line: string) => debug(`nats-server: ${line}`) : undefined;
    // Always drain both pipes: a full pipe would block the server.
    child.stdout?.on('data', (c: Buffer) => tail.push(c, onLine));
    child.stderr?.on('data', (c: Buffer) => tail.push(c, onLine));
    let spawnError: Error | undefined;
    child.once('error', (err) => (spawnError = err));

    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 20_000);
    for (;;) {
      if (spawnError) {
        throw new NatsServerError(`cannot run ${this.bin}: ${spawnError.message}\n${natsServerInstallHelp()}`, { cause: spawnError });
      }
      if (!this.running()) {
        await this.waitForExit(1_000);
        const how = child.exitCode !== null ? `exit code ${child.exitCode}` : `signal ${child.signalCode}`;
        throw new NatsServerError(
          `nats-server failed to start on ${this.url} (store ${this.storeDir}, config ${this.configFile}): ${how}\n${tail.report()}`,
          undefined,
          tail.text(),
        );
      }
      const info = await readNatsInfo(this.host, this.port, 500);
      // Another server may already hold the port: only ours carries our server_name.
      if (info?.server_name === this.serverName && info.jetstream === true) return;
      if (Date.now() > deadline) {
        await this.kill();
        throw new NatsServerError(
          `nats-server did not accept connections on ${this.url} within ${this.opts.startTimeoutMs ?? 20_000} ms` +
            (info ? ` (another server, ${info.server_name ?? info.server_id ?? 'unnamed'}, answers on that port)` : '') +
            `\n${tail.report()}`,
          undefined,
          tail.text(),
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private waitForExit(timeoutMs: number): Promise<boolean> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
    return new Promise((ok) => {
      const timer = setTimeout(() => ok(false), timeoutMs);
      child.once('exit', () => {
        clearTimeout(timer);
        ok(true);
      });
    });
  }

  async stop(): Promise<void> {
    if (!this.running()) return;
    this.child!.kill('SIGTERM');
    if (!(await this.waitForExit(10_000))) {
      this.opts.log?.warn(`nats-server (pid ${this.child!.pid}) did not exit 10 s after SIGTERM; killing it`);
      await this.kill();
    }
  }

  async kill(): Promise<void> {
    if (!this.running()) return;
    this.child!.kill('SIGKILL');
    await this.waitForExit(10_000);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

/**
 * Starts nats-server with JetStream: writes `nats-server.conf` into the store dir, starts the
 * process and resolves once it accepts client connections with JetStream on. Throws a
 * {@link NatsServerError} carrying the server's last output when it fails to start.
 */
export async function startNatsServer(opts: StartNatsServerOptions): Promise<NatsServerHandle> {
  const bin = opts.bin ?? (await findNatsServer());
  if (!bin) throw new NatsServerError(`nats-server (>= 2.9) was not found.\n${natsServerInstallHelp()}`);
  const version = await natsServerVersion(bin);
  if (!version) throw new NatsServerError(`${bin} does not run or does not print a version with --version.\n${natsServerInstallHelp()}`);
  if (!versionAtLeast(version, MIN_NATS_SERVER_VERSION)) {
    throw new NatsServerError(`${bin} is nats-server ${version.text}; tapflow needs 2.9 or newer.\n${natsServerInstallHelp()}`);
  }
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port === undefined || opts.port === 0 ? await freePort(host) : opts.port;
  const server = new LocalNatsServer(bin, version, host, port, resolve(opts.storeDir), opts);
  await server.start();
  return server;
}
