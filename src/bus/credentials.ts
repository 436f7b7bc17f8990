/**
 * Where a process's NATS credentials come from (never logged):
 * 1. NATS_USER with NATS_PASSWORD or NATS_PASSWORD_FILE: one identity for every connection;
 * 2. TAPFLOW_NATS_CREDS_DIR, else <data dir>/nats-creds when it exists: the password file of
 *    the bus user the connection is for (`tapflow-<user>.password`);
 * 3. neither: no authentication (a plain nats-server, as the tests start).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BUS_USERS, natsUserName, type BusUser } from './permissions.js';

export interface BusAuth {
  user: string;
  pass: string;
}

export interface CredentialSettings {
  NATS_USER?: string;
  NATS_PASSWORD?: string;
  NATS_PASSWORD_FILE?: string;
  TAPFLOW_NATS_CREDS_DIR?: string;
  TAPFLOW_DATA_DIR: string;
}

/** The folder of generated passwords next to the local nats-server's store. */
export function defaultCredsDir(dataDir: string): string {
  return join(dataDir, 'nats-creds');
}

/** The credentials folder in effect: TAPFLOW_NATS_CREDS_DIR, else the data dir's when it exists. */
export function credsDir(cfg: CredentialSettings): string | undefined {
  if (cfg.TAPFLOW_NATS_CREDS_DIR) return cfg.TAPFLOW_NATS_CREDS_DIR;
  const d = defaultCredsDir(cfg.TAPFLOW_DATA_DIR);
  return existsSync(d) ? d : undefined;
}

export function passwordFile(dir: string, u: BusUser): string {
  return join(dir, `${natsUserName(u)}.password`);
}

function firstLine(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${what} from ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const line = text.split(/\r?\n/)[0]!.trim();
  if (line === '') throw new Error(`${path} (${what}) is empty`);
  return line;
}

/** The credentials of a connection for bus user `u`, or undefined for none. */
export function busAuth(cfg: CredentialSettings, u: BusUser): BusAuth | undefined {
  if (cfg.NATS_USER) {
    if (cfg.NATS_PASSWORD_FILE) return { user: cfg.NATS_USER, pass: firstLine(cfg.NATS_PASSWORD_FILE, 'NATS_PASSWORD_FILE') };
    if (cfg.NATS_PASSWORD === undefined) throw new Error('NATS_USER is set without NATS_PASSWORD or NATS_PASSWORD_FILE');
    return { user: cfg.NATS_USER, pass: cfg.NATS_PASSWORD };
  }
  const dir = credsDir(cfg);
  if (!dir) return undefined;
  const file = passwordFile(dir, u);
  return { user: natsUserName(u), pass: firstLine(file, `the password of NATS user ${natsUserName(u)}`) };
}

/**
 * Makes sure `dir` holds a password file for every bus user (mode 0600, folder 0700),
 * generating the missing ones; returns every user's password.
 */
export async function ensureCredentials(dir: string): Promise<Record<BusUser, string>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const out = {} as Record<BusUser, string>;
  for (const u of BUS_USERS) {
    const file = passwordFile(dir, u);
    if (!existsSync(file)) await writeFile(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    out[u] = (await readFile(file, 'utf8')).split(/\r?\n/)[0]!.trim();
  }
  return out;
}
