/**
 * Entry of a worker thread running role replicas (see threads.ts): starts the roles with the
 * main thread's configuration, reports that it started and whether its roles are ready, answers
 * metric requests, and stops (finishing its batches, releasing its leases) when asked.
 */
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../observe/log.js';
import { createValidatorRole } from '../validate/role.js';
import { createSettlerRole } from '../settle/role.js';
import { startApp, type RoleFactory } from './app.js';
import type { FromWorker, ThreadRole, ToWorker, WorkerData } from './threads.js';

const FACTORIES: Record<ThreadRole, RoleFactory> = { validator: createValidatorRole, settler: createSettlerRole };

const port = parentPort!;
const { cfg, roles, index } = workerData as WorkerData;
const send = (m: FromWorker) => port.postMessage(m);
const log = createLogger(cfg.TAPFLOW_LOG_LEVEL, { app: 'tapflow', thread: index });

/**
 * Lower this thread's priority (TAPFLOW_WORKER_NICE): on Linux the nice value belongs to the
 * thread (setpriority on the calling thread's id, which `0` names), so only the stage work yields
 * — to ingest's acks on the main thread and to nats-server. Elsewhere it would lower the whole
 * process, so it is left alone there.
 */
function lowerPriority(nice: number): void {
  if (nice === 0) return;
  if (process.platform !== 'linux') {
    log.info({ nice }, 'TAPFLOW_WORKER_NICE applies on Linux only (per thread there): left at the process priority');
    return;
  }
  try {
    setPriority(0, Math.min(19, getPriority(0) + nice));
  } catch (err) {
    log.warn({ nice, err: (err as Error).message }, 'could not lower the worker thread priority');
  }
}

try {
  lowerPriority(cfg.TAPFLOW_WORKER_NICE);
  const app = await startApp(
    cfg,
    roles.map((r) => ({ name: r, create: FACTORIES[r] })),
    { log, installSignalHandlers: false, inThread: true },
  );
  send({ type: 'started' });
  const report = () => send({ type: 'ready', ready: app.roles.every((r) => r.ready()) });
  report();
  const timer = setInterval(report, 1000);
  port.on('message', (m: ToWorker) => {
    if (m.type === 'metrics') {
      void app.ctx.metrics.registry.getMetricsAsJSON().then((metrics) => send({ type: 'metrics', id: m.id, metrics }));
    } else if (m.type === 'stop') {
      clearInterval(timer);
      void app.shutdown('the main thread stops').then(() => {
        send({ type: 'stopped' });
        port.close();
      });
    }
  });
} catch (err) {
  log.error({ err: (err as Error).message }, 'worker thread failed to start');
  send({ type: 'failed', error: (err as Error).message });
  port.close();
}
