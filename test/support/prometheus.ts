/**
 * A throw-away Prometheus server for tests: Debian's `prometheus` binary (found and installed by
 * test/support/promtool.ts) on a free loopback port, with its configuration and TSDB in a
 * temporary folder, and a small client of its HTTP API (/api/v1/query, label values, metadata,
 * targets, rules).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** A sample of an instant vector as /api/v1/query returns it. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** The answer of /api/v1/query: an instant vector, a scalar or a string (never a matrix here). */
export type InstantResult =
  | { ok: true; resultType: 'vector'; result: PromSample[] }
  | { ok: true; resultType: 'scalar' | 'string'; result: [number, string] }
  | { ok: true; resultType: 'matrix'; result: unknown[] }
  | { ok: false; errorType: string; error: string };

export interface PromTarget {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
  lastScrape: string;
}

export interface PromRule {
  name: string;
  query: string;
  type: 'alerting' | 'recording';
  health: 'ok' | 'err' | 'unknown';
  lastError?: string;
  lastEvaluation: string;
  state?: string;
}

export interface TestPrometheus {
  url: string;
  dir: string;
  /** Instant query at `time` (seconds since the epoch; default: now). Errors are returned, not thrown. */
  query(expr: string, time?: number): Promise<InstantResult>;
  /** Every metric name with at least one series (`/api/v1/label/__name__/values`). */
  metricNames(): Promise<string[]>;
  /** Metric names whose HELP/TYPE a target exposed (`/api/v1/metadata`), samples or not. */
  metadataNames(): Promise<string[]>;
  targets(): Promise<PromTarget[]>;
  rules(): Promise<{ file: string; group: string; rules: PromRule[] }[]>;
  /** The server's output so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

export interface TestPrometheusOptions {
  bin: string;
  /** The configuration (an object, written as YAML); rule_files should be absolute paths. */
  config: Record<string, unknown>;
}

/** A free TCP port on 127.0.0.1 (closed again; the caller binds it right away). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

type ApiAnswer<T> = { status: 'success'; data: T } | { status: 'error'; errorType: string; error: string };

/** Starts Prometheus and resolves once it answers /-/ready. */
export async function startTestPrometheus(o: TestPrometheusOptions): Promise<TestPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'tapflow-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, stringify(o.config));
  let out = '';
  let child: ChildProcess | undefined;
  let url = '';
  // A port taken between freePort() and Prometheus binding it: try another one.
  for (let attempt = 0; attempt < 3 && !url; attempt++) {
    const port = await freePort();
    child = spawn(o.bin, [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const base = `http://127.0.0.1:${port}`;
    const ready = (async () => {
      const end = Date.now() + 20_000;
      while (Date.now() < end) {
        const r = await fetch(`${base}/-/ready`).catch(() => undefined);
        if (r?.ok) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    })();
    const first = await Promise.race([ready.then((ok) => ({ ready: ok })), exited.then((code) => ({ exit: code }))]);
    if ('ready' in first && first.ready) url = base;
    else if ('exit' in first && /address already in use/.test(out)) continue;
    else {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`prometheus did not become ready (${'exit' in first ? `exited with ${first.exit}` : 'timed out after 20 s'}):\n${out}`);
    }
  }
  if (!url || !child) throw new Error(`prometheus could not bind a free port:\n${out}`);
  const proc = child;
  // Never outlive the test process (a worker that is killed skips afterAll).
  const killOnExit = () => proc.kill('SIGKILL');
  process.once('exit', killOnExit);

  async function api<T>(path: string, params?: Record<string, string>): Promise<ApiAnswer<T>> {
    const res = await fetch(`${url}${path}`, params ? { method: 'POST', body: new URLSearchParams(params) } : undefined);
    return (await res.json()) as ApiAnswer<T>;
  }
  async function data<T>(path: string): Promise<T> {
    const a = await api<T>(path);
    if (a.status !== 'success') throw new Error(`${path}: ${a.errorType}: ${a.error}`);
    return a.data;
  }

  return {
    url,
    dir,
    async query(expr, time) {
      const a = await api<{ resultType: string; result: unknown }>('/api/v1/query', { query: expr, ...(time !== undefined && { time: String(time) }) });
      if (a.status !== 'success') return { ok: false, errorType: a.errorType, error: a.error };
      return { ok: true, ...a.data } as InstantResult;
    },
    metricNames: () => data<string[]>('/api/v1/label/__name__/values'),
    metadataNames: async () => Object.keys(await data<Record<string, unknown>>('/api/v1/metadata')),
    targets: async () => (await data<{ activeTargets: PromTarget[] }>('/api/v1/targets')).activeTargets,
    rules: async () => (await data<{ groups: { file: string; name: string; rules: PromRule[] }[] }>('/api/v1/rules')).groups.map((g) => ({ file: g.file, group: g.name, rules: g.rules })),
    output: () => out,
    async stop() {
      process.off('exit', killOnExit);
      if (proc.exitCode === null && proc.signalCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(t);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
