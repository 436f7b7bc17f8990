/**
 * The terminal registry: every terminal that may send taps, with its region and the venues it
 * serves. There is no anonymous path. A terminal proves who it is with its client certificate
 * (mutual TLS, tls.ts: the certificate names the terminal id), and the registry says whether
 * that id may send and for what ({@link TerminalRegistry.identify}). For development only
 * (TAPFLOW_INGEST_AUTH=dev-secrets), a terminal may instead authenticate each call with gRPC
 * metadata
 *   x-terminal-id: <id>      x-terminal-secret: <secret>
 * and the registry keeps only SHA-256 hashes of secrets.
 *
 * File format (YAML, TAPFLOW_TERMINALS_FILE):
 *   terminals:
 *     - id: BJ-GATE-0001          # [A-Za-z0-9._-], at most 64
 *       region: BJ                # operating region: BJ | TJ | HE
 *       venues: [bj-subway:西直门] # the venues it serves: ids, or prefixes ending in "*"
 *       operator: bj-subway       # optional; otherwise the operator of the tapped venue
 *       secret_sha256: <64 hex>   # optional: sha256 of the secret (dev-secrets only)
 *       disabled: false           # optional
 * A terminal sends only for the venues it serves, in its region (venue-scope.ts).
 * Without a file, the demo registry accepts terminals named "<REGION>-<ANY>-<n>": with mutual TLS,
 * any such id a fleet-CA certificate names; on the dev-secrets path, when its secret is
 * HMAC-SHA-256(fleet key, id) (the fleet key is generated under the data dir). A demo terminal
 * serves every venue of the region its id names.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { Regions, type Region } from '../domain/types.js';
import { listedScope, WHOLE_REGION, type VenueScope } from './venue-scope.js';

export interface Terminal {
  id: string;
  region: Region;
  operatorId?: string;
  disabled?: boolean;
  /** The venues it may send taps and claims for. */
  venues: VenueScope;
}

export type AuthResult = { ok: true; terminal: Terminal } | { ok: false; code: 'UNAUTHENTICATED' | 'PERMISSION_DENIED'; message: string };

export interface TerminalRegistry {
  /** The static-secret path (development only). */
  authenticate(id: string | undefined, secret: string | undefined): AuthResult;
  /** A terminal whose id its verified client certificate names: known and enabled, or refused. */
  identify(id: string): AuthResult;
}

export const TERMINAL_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

const fileSchema = z.object({
  terminals: z.array(
    z.object({
      id: z.string().regex(TERMINAL_ID_PATTERN),
      region: z.enum(Regions),
      venues: z.array(z.string()),
      operator: z.string().min(1).optional(),
      secret_sha256: z.string().regex(/^[0-9a-f]{64}$/i).optional(),
      disabled: z.boolean().optional(),
    }),
  ),
});

function missing(id: string | undefined, secret: string | undefined): AuthResult | undefined {
  if (!id || !secret) return { ok: false, code: 'UNAUTHENTICATED', message: 'metadata x-terminal-id and x-terminal-secret are required' };
  return undefined;
}

/** A registry read from a YAML file. */
export function fileRegistry(path: string): TerminalRegistry {
  let parsed;
  try {
    parsed = fileSchema.parse(parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new Error(`terminal registry ${path}: ${(err as Error).message}`);
  }
  const byId = new Map<string, (typeof parsed.terminals)[number] & { terminal: Terminal }>();
  for (const [i, t] of parsed.terminals.entries()) {
    let venues: VenueScope;
    try {
      venues = listedScope(t.venues);
    } catch (err) {
      throw new Error(`terminal registry ${path}: terminals[${i}] (${t.id}).${(err as Error).message}`);
    }
    if (byId.has(t.id)) throw new Error(`terminal registry ${path}: terminals[${i}]: ${t.id} is listed twice`);
    byId.set(t.id, { ...t, terminal: { id: t.id, region: t.region, operatorId: t.operator, venues } });
  }
  return {
    authenticate(id, secret) {
      const m = missing(id, secret);
      if (m) return m;
      const t = byId.get(id!);
      if (!t || !t.secret_sha256 || !timingSafeEqual(sha256(secret!), Buffer.from(t.secret_sha256, 'hex'))) return { ok: false, code: 'UNAUTHENTICATED', message: `unknown terminal or wrong secret for ${id}` };
      if (t.disabled) return { ok: false, code: 'PERMISSION_DENIED', message: `terminal ${id} is disabled` };
      return { ok: true, terminal: t.terminal };
    },
    identify(id) {
      const t = byId.get(id);
      if (!t) return { ok: false, code: 'UNAUTHENTICATED', message: `terminal ${id} (named by the client certificate) is not in the terminal registry ${path}` };
      if (t.disabled) return { ok: false, code: 'PERMISSION_DENIED', message: `terminal ${id} is disabled` };
      return { ok: true, terminal: t.terminal };
    },
  };
}

/** The demo fleet's secret for a terminal id. */
export function demoTerminalSecret(fleetKey: Uint8Array, terminalId: string): string {
  return createHmac('sha256', fleetKey).update(terminalId).digest('base64url');
}

/** Registry of the demo fleet and the bench: "<REGION>-..." ids with derived secrets. */
export function demoRegistry(fleetKey: Uint8Array): TerminalRegistry {
  const cache = new Map<string, Terminal>();
  const known = (id: string): Terminal | undefined => {
    const region = id.slice(0, 2) as Region;
    if (!TERMINAL_ID_PATTERN.test(id) || !(Regions as readonly string[]).includes(region) || id[2] !== '-' || id.length < 4) return undefined;
    let t = cache.get(id);
    if (!t) cache.set(id, (t = { id, region, venues: WHOLE_REGION }));
    return t;
  };
  return {
    authenticate(id, secret) {
      const m = missing(id, secret);
      if (m) return m;
      if (!known(id!)) return { ok: false, code: 'UNAUTHENTICATED', message: `unknown terminal ${id}` };
      const expected = Buffer.from(demoTerminalSecret(fleetKey, id!));
      const given = Buffer.from(secret!);
      if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, code: 'UNAUTHENTICATED', message: `wrong secret for terminal ${id}` };
      return { ok: true, terminal: known(id!)! };
    },
    identify(id) {
      const t = known(id);
      return t ? { ok: true, terminal: t } : { ok: false, code: 'UNAUTHENTICATED', message: `terminal ${id} (named by the client certificate) is not a demo-registry terminal (<BJ|TJ|HE>-<name>)` };
    },
  };
}
