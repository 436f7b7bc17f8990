/** The roles a tapflow process can run, by name (the factories are in src/cli/roles.ts). */
export const ROLES = ['ingest', 'validator', 'settler', 'sink'] as const;
export type RoleName = (typeof ROLES)[number];

/**
 * The partition workers' roles: their dead letters go to tapflow.dlq.<role>, and they label the
 * workers' metrics. `risk-windows` is the validator process's single-owner worker of the risk
 * rules' windows.
 */
export const WORKER_ROLES = ['validator', 'risk-windows', 'settler', 'sink'] as const;
export type WorkerRole = (typeof WORKER_ROLES)[number];
