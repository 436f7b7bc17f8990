/**
 * tapflow roles as child processes (`node --import tsx src/cli/main.ts <role>`), for tests that
 * need several replicas of a role, or need to kill one with SIGKILL.
 *
 * Each child inherits nothing of the test's tapflow settings: it gets exactly the environment
 * given (plus PATH and HOME), logs JSON lines (pino) on stderr, which are kept in memory and can
 * be awaited with waitForLog(). A data dir shared by several children must already hold the
 * development keys (see {@link prepareSharedKeys}), or children started together race to
 * generate different ones. Roles only bind to tapflow's JetStream topology: run the admin step
 * once per nats-server before the first role starts, `await setupBus(nats.url, env)`
 * (test/support/bus.ts), with the same env (partitions, ack wait) the children get; a role
 * started before it exits with TF_TOPOLOGY_MISSING.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { Config } from '../../src/config/config.js';
import { localKeys } from '../../src/runtime/keys.js';
import { ensureDevTrustFile } from '../../src/validate/trust.js';

/** The repository root (the children run from there: the data folder and tsx resolve from it). */
export const REPO_ROOT = resolve(import.meta.dirname, '../..');

/** One pino log line, parsed. Lines that are not JSON are kept as `{ msg: <line> }`. */
export interface LogLine {
  level?: number;
  msg?: string;
  [field: string]: unknown;
}

/** How a child process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running tapflow role in its own process. */
export interface RoleProcess {
  readonly role: string;
  /** A short name for messages, e.g. "validator#2". */
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every stderr line so far. */
  readonly logs: LogLine[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Resolves with the first log line (past or future) matching `pred`; rejects on timeout or exit. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  /** Sends a signal and waits for the exit. */
  kill(signal: NodeJS.Signals, timeoutMs?: number): Promise<ExitInfo>;
  /** SIGTERM (orderly drain), then SIGKILL if it is still running after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<ExitInfo>;
  /** The last `n` log lines as text, for failure messages. */
  tail(n?: number): string;
}

export interface SpawnRoleOptions {
  /** Environment of the child (tapflow variables). PATH and HOME are added. */
  env: Record<string, string>;
  /** Name in messages (default: the role). */
  name?: string;
}

/**
 * Starts `tapflow <role>` in a child process. Resolves at once (the process is starting): wait
 * for a log line, or for the role's leases, to know it is up.
 */
export function spawnRole(role: 'ingest' | 'validator' | 'settler' | 'sink', opts: SpawnRoleOptions): RoleProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli/main.ts'), role], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...opts.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start tapflow ${role}`);
  const name = opts.name ?? role;
  const logs: LogLine[] = [];
  const waiters = new Set<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (!text.trim()) continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { msg: text };
      }
      logs.push(line);
      for (const w of waiters) {
        if (w.pred(line)) {
          waiters.delete(w);
          w.resolve(line);
        }
      }
    }
  });
  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolveExit) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolveExit(exitInfo);
    });
  });
  const tail = (n = 30) =>
    logs
      .slice(-n)
      .map((l) => JSON.stringify(l))
      .join('\n');

  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs = 30_000, what = 'log line'): Promise<LogLine> => {
    const seen = logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((res, rej) => {
      const w = {
        pred,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          res(l);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(w);
        rej(new Error(`${name}: no ${what} within ${timeoutMs} ms; last lines:\n${tail()}`));
      }, timeoutMs);
      waiters.add(w);
      void exited.then((e) => {
        if (!waiters.has(w)) return;
        waiters.delete(w);
        clearTimeout(timer);
        rej(new Error(`${name} exited (${e.code ?? e.signal}) before ${what}; last lines:\n${tail()}`));
      });
    });
  };

  const kill = async (signal: NodeJS.Signals, timeoutMs = 20_000): Promise<ExitInfo> => {
    if (exitInfo) return exitInfo;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${name} did not exit within ${timeoutMs} ms of ${signal}`)), timeoutMs);
    });
    try {
      return await Promise.race([exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    role,
    name,
    pid: child.pid,
    child,
    logs,
    exited,
    waitForLog,
    kill,
    async stop(timeoutMs = 20_000) {
      try {
        return await kill('SIGTERM', timeoutMs);
      } catch {
        return kill('SIGKILL');
      }
    },
    tail,
  };
}

/**
 * The gRPC port of an ingest process, from its "ingest gRPC listening" log line (logged at
 * info: the process must run with TAPFLOW_LOG_LEVEL info or lower).
 */
export async function ingestPortOf(proc: RoleProcess, timeoutMs = 30_000): Promise<number> {
  const line = await proc.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('ingest gRPC listening') && typeof l.port === 'number', timeoutMs, 'ingest gRPC listening');
  return line.port as number;
}

/**
 * Generates the development keys (token, seal, fleet, trust.json) of a data dir once, before
 * several processes share it; otherwise each child that starts on an empty dir would race to
 * write its own.
 */
export function prepareSharedKeys(cfg: Pick<Config, 'TAPFLOW_DATA_DIR' | 'TAPFLOW_TOKEN_KEY' | 'TAPFLOW_SEAL_KEY' | 'TAPFLOW_TRUST_FILE'>): void {
  localKeys(cfg);
  ensureDevTrustFile(cfg);
}

/** Stops every process still running (SIGTERM, then SIGKILL), in parallel. */
export async function stopAll(procs: Iterable<RoleProcess>, timeoutMs = 20_000): Promise<void> {
  await Promise.all([...procs].map((p) => p.stop(timeoutMs).catch(() => undefined)));
}
