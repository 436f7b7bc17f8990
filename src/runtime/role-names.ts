/** The roles a tapflow process can run, by name (the factories are in src/cli/roles.ts). */
export const ROLES = ['ingest', 'validator', 'settler', 'sink'] as const;
export type RoleName = (typeof ROLES)[number];
