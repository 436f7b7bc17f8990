/** The roles a process can run, by name. */
import type { RoleFactory, RoleName } from '../runtime/app.js';
import { createIngestRole } from '../ingest/role.js';
import { createValidatorRole } from '../validate/role.js';
import { createSettlerRole } from '../settle/role.js';
import { createSinkRole } from '../sink/role.js';

export const ROLE_FACTORIES: Record<RoleName, RoleFactory> = {
  ingest: createIngestRole,
  validator: createValidatorRole,
  settler: createSettlerRole,
  sink: createSinkRole,
};
