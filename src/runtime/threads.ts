/**
 * Role replicas on worker threads, so that one process uses more than one core: JavaScript runs
 * on one thread, and deciding and pricing taps (chip MACs, Ed25519 QR signatures, tariffs) is
 * CPU work. Each worker thread is a full replica of the roles it runs (validator, settler): its
 * own NATS connections, its own share of the partitions through the lease protocol — exactly as
 * if it were another process. The main thread keeps ingest, the sink and the HTTP endpoints, and
 * serves the workers' metrics with its own (prom-client's aggregator: counters and histograms
 * summed, gauges summed).
 *
 * Messages between the main thread and a worker (structured clone):
 *   worker → main  { type: 'started' } | { type: 'failed', error } | { type: 'ready', ready }
 *                  | { type: 'metrics', id, metrics } | { type: 'stopped' }
 *   main → worker  { type: 'metrics', id } | { type: 'stop' }
 */
import { Worker } from 'node:worker_threads';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MetricsData } from '../observe/metrics.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../observe/log.js';

export type ThreadRole = 'validator' | 'settler';

/** Roles that can run on worker threads (the card-partitioned ones). */
export const THREAD_ROLES: readonly ThreadRole[] = ['validator', 'settler'];

export interface WorkerData {
  cfg: Config;
  roles: ThreadRole[];
  index: number;
}

export type FromWorker =
  | { type: 'started' }
  | { type: 'failed'; error: string }
  | { type: 'ready'; ready: boolean }
  | { type: 'metrics'; id: number; metrics: MetricsData }
  | { type: 'stopped' };

export type ToWorker = { type: 'metrics'; id: number } | { type: 'stop' };

export interface RoleThreads {
  readonly count: number;
  /** Every worker started and reports its roles ready. */
  ready(): boolean;
  /** The workers' metrics, one array per worker (for prom-client's aggregator). */
  metrics(): Promise<MetricsData[]>;
  /** Stops every worker (each finishes its batches and releases its leases) and waits. */
  stop(): Promise<void>;
}

/**
 * The thread entry next to this module: the built .js as it is; under tsx, a small bootstrap
 * that registers tsx's loader in the thread first (Node 20 resolves a worker's entry before
 * `--import` hooks of its execArgv run, so a .ts entry cannot be loaded directly).
 */
function entry(): { script: string | URL; eval: boolean } {
  const ext = extname(fileURLToPath(import.meta.url));
  const url = new URL(`./thread-main${ext}`, import.meta.url);
  if (ext !== '.ts') return { script: url, eval: false };
  const tsx = import.meta.resolve('tsx/esm/api');
  return { script: `import(${JSON.stringify(tsx)}).then((m) => m.register()).then(() => import(${JSON.stringify(url.href)}))`, eval: true };
}

/**
 * Starts `count` worker threads running `roles`; resolves when all have started (their roles
 * created and their partition workers running), rejects when one fails to. `onLost` is called
 * when a worker dies after that: its partitions go unserved until their leases expire and
 * another replica takes them, so the caller stops the process rather than run on without them.
 */
export async function startRoleThreads(cfg: Config, roles: ThreadRole[], count: number, log: Logger, onLost: (err: Error) => void): Promise<RoleThreads> {
  const { script, eval: isEval } = entry();
  const workers: { worker: Worker; ready: boolean; gone: boolean; exited: Promise<void> }[] = [];
  let startedAll = false;
  let nextId = 0;
  const waiting = new Map<number, (m: MetricsData) => void>();
  let stopping = false;
  const started = Array.from({ length: count }, (_, index) => {
    const data: WorkerData = { cfg, roles, index };
    const worker = new Worker(script, { eval: isEval, workerData: data, name: `tapflow-${roles.join('+')}-${index}` });
    const w = { worker, ready: false, gone: false, exited: new Promise<void>((resolve) => worker.once('exit', () => resolve())) };
    workers.push(w);
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'started') resolve();
        else if (m.type === 'failed') reject(new Error(`worker thread ${index} (${roles.join(', ')}) failed to start: ${m.error}`));
        else if (m.type === 'ready') w.ready = m.ready;
        else if (m.type === 'metrics') {
          waiting.get(m.id)?.(m.metrics);
          waiting.delete(m.id);
        }
      });
      let crash: Error | undefined;
      worker.once('error', (err) => {
        crash = err;
        log.error({ thread: index, err: err.message }, 'worker thread crashed');
      });
      worker.once('exit', (code) => {
        w.ready = false;
        w.gone = true;
        if (stopping) return;
        const err = new Error(`worker thread ${index} (${roles.join(', ')}) ${crash ? `crashed: ${crash.message}` : `exited with code ${code}`}`);
        reject(err);
        if (startedAll) onLost(err);
      });
    });
  });
  try {
    await Promise.all(started);
    startedAll = true;
  } catch (err) {
    stopping = true;
    await Promise.all(workers.map((w) => w.worker.terminate()));
    throw err;
  }
  log.info({ threads: count, roles }, 'role replicas running on worker threads');
  return {
    count,
    ready: () => workers.every((w) => w.ready),
    metrics: () =>
      Promise.all(
        workers.map(
          (w) =>
            new Promise<MetricsData>((resolve) => {
              if (w.gone) return resolve([]);
              const id = nextId++;
              const timer = setTimeout(() => {
                waiting.delete(id);
                resolve([]);
              }, 2000);
              waiting.set(id, (m) => {
                clearTimeout(timer);
                resolve(m);
              });
              w.worker.postMessage({ type: 'metrics', id } satisfies ToWorker);
            }),
        ),
      ),
    stop: async () => {
      stopping = true;
      for (const w of workers) if (!w.gone) w.worker.postMessage({ type: 'stop' } satisfies ToWorker);
      await Promise.all(workers.map((w) => w.exited));
    },
  };
}
