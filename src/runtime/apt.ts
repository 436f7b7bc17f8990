/**
 * Installing the Debian packages of tapflow's local tools with apt-get: nats-server for
 * `tapflow start` and the tests (src/runtime/nats-server.ts), promtool (package prometheus) for
 * the alert rule tests (test/support/promtool.ts).
 *
 * An install is a list of routes, each a list of steps (write a file, run a command) done as
 * root or through passwordless sudo; routes are tried in order until one leaves the tool
 * installed. While it runs, Debian's policy-rc.d convention keeps package scripts from starting
 * services (tapflow starts its own nats-server; no Prometheus daemon should run), and a system
 * unit the package enabled is disabled afterwards.
 */
import { execFile, spawn } from 'node:child_process';
import { access, readFile, writeFile } from 'node:fs/promises';
import { OutputTail } from './output-tail.js';

/** Where install progress and warnings go; a pino logger fits. */
export interface InstallLog {
  info(msg: string): void;
  warn(msg: string): void;
}

/** What an install depends on; gathered by {@link gatherInstallFacts}. */
export interface InstallFacts {
  platform: NodeJS.Platform;
  /** Parsed /etc/os-release (ID, ID_LIKE, VERSION_CODENAME…); empty when unreadable. */
  osRelease: Record<string, string>;
  isRoot: boolean;
  /** `sudo -n true` succeeds (passwordless sudo). */
  hasSudo: boolean;
  aptGetAvailable: boolean;
}

/** Parses /etc/os-release (KEY=value lines, values optionally quoted). */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/** True for Debian, Ubuntu and their derivatives (ID or ID_LIKE). */
export function isDebianLike(osRelease: Record<string, string>): boolean {
  const ids = [osRelease.ID ?? '', ...(osRelease.ID_LIKE ?? '').split(/\s+/)];
  return ids.includes('debian') || ids.includes('ubuntu');
}

/** Looks at this machine. */
export async function gatherInstallFacts(): Promise<InstallFacts> {
  const osRelease = parseOsRelease(await readFile('/etc/os-release', 'utf8').catch(() => ''));
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const succeeds = (cmd: string, args: string[]) =>
    new Promise<boolean>((ok) => execFile(cmd, args, { timeout: 5_000 }, (err) => ok(!err)));
  return {
    platform: process.platform,
    osRelease,
    isRoot,
    hasSudo: isRoot ? false : await succeeds('sudo', ['-n', 'true']),
    aptGetAvailable: await succeeds('apt-get', ['--version']),
  };
}

/** Whether apt-get can install here, and through sudo or as root. Pure. */
export function aptAccess(facts: InstallFacts): { ok: true; sudo: boolean } | { ok: false; reason: string } {
  if (facts.platform !== 'linux') return { ok: false, reason: `automatic install is only done on Debian/Ubuntu Linux (this is ${facts.platform})` };
  if (!isDebianLike(facts.osRelease)) {
    return { ok: false, reason: `automatic install is only done on Debian/Ubuntu (this is ${facts.osRelease.PRETTY_NAME ?? (facts.osRelease.ID || 'an unknown Linux')})` };
  }
  if (!facts.aptGetAvailable) return { ok: false, reason: 'apt-get was not found' };
  if (!facts.isRoot && !facts.hasSudo) return { ok: false, reason: 'installing needs root (run as root, or allow passwordless sudo)' };
  return { ok: true, sudo: !facts.isRoot };
}

/** `apt-get install` without recommended packages (they would pull in far more than the tool). */
export const APT_INSTALL = ['apt-get', 'install', '-y', '--no-install-recommends'] as const;

/** One step of an install: write a file, or run a command (as root). */
export type InstallStep =
  | { kind: 'write-file'; path: string; content: string; describe: string }
  | { kind: 'run'; argv: string[]; describe: string };

/** An install route; routes are tried in order until one leaves the tool usable. */
export interface InstallRoute {
  name: string;
  steps: InstallStep[];
}

/** Runs a command (through `sudo -n` when asked); resolves with its exit code and last output. */
export function runCommand(argv: readonly string[], sudo: boolean): Promise<{ code: number | null; output: string }> {
  const full = sudo ? ['sudo', '-n', ...argv] : [...argv];
  return new Promise((done) => {
    const tail = new OutputTail(30);
    const child = spawn(full[0]!, full.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    child.stdout.on('data', (c: Buffer) => tail.push(c));
    child.stderr.on('data', (c: Buffer) => tail.push(c));
    child.on('error', (err) => done({ code: null, output: String(err) }));
    child.on('close', (code) => done({ code, output: tail.text() }));
  });
}

async function writeRootFile(path: string, content: string, sudo: boolean): Promise<void> {
  if (!sudo) {
    await writeFile(path, content, { mode: 0o644 });
    return;
  }
  await new Promise<void>((ok, fail) => {
    const child = spawn('sudo', ['-n', 'tee', path], { stdio: ['pipe', 'ignore', 'pipe'] });
    const tail = new OutputTail(5);
    child.stderr.on('data', (c: Buffer) => tail.push(c));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? ok() : fail(new Error(`sudo tee ${path} failed: ${tail.text()}`))));
    child.stdin.end(content);
  });
}

export async function fileExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Debian's policy-rc.d convention: while it exits 101, package scripts start no services. */
export const POLICY_RC_D = '/usr/sbin/policy-rc.d';

export interface InstallRoutesOptions<T> {
  /** The tool, for messages: "nats-server", "promtool". */
  what: string;
  /** Said before the first route (given): what is installed, from where and why. */
  announce: (route: InstallRoute) => string;
  routes: readonly InstallRoute[];
  sudo: boolean;
  log: InstallLog;
  /** Finds the installed tool after a route; undefined when it is still missing. */
  installed: () => Promise<T | undefined>;
  /** systemd unit the package enables, disabled after the install (its daemon must not run). */
  service?: string;
}

export type InstallOutcome<T> = { ok: true; value: T } | { ok: false; problems: string[]; lastOutput?: string };

/**
 * Tries the routes in order until `installed()` finds the tool, with no service started
 * meanwhile. A route that fails removes the files it created (a half-added apt source would
 * break the next route's `apt-get update`).
 */
export async function runInstallRoutes<T>(o: InstallRoutesOptions<T>): Promise<InstallOutcome<T>> {
  const { log, sudo } = o;
  const problems: string[] = [];
  let lastOutput: string | undefined;
  // Only remove policy-rc.d afterwards if we put it there.
  const ownPolicy = !(await fileExists(POLICY_RC_D));
  if (ownPolicy) {
    await writeRootFile(POLICY_RC_D, `#!/bin/sh\n# tapflow: no service starts while ${o.what} is installed\nexit 101\n`, sudo).catch(() => undefined);
    await runCommand(['chmod', '755', POLICY_RC_D], sudo);
  }
  try {
    for (const [i, route] of o.routes.entries()) {
      log.info(i === 0 ? `${o.announce(route)}; this can take a minute` : `trying the ${route.name} instead`);
      const created: string[] = [];
      let failed = false;
      for (const step of route.steps) {
        log.info(`${o.what} install: ${step.describe}`);
        if (step.kind === 'write-file') {
          const existed = await fileExists(step.path);
          try {
            await writeRootFile(step.path, step.content, sudo);
            if (!existed) created.push(step.path);
          } catch (err) {
            problems.push(`${route.name}: ${step.describe}: ${(err as Error).message}`);
            failed = true;
            break;
          }
        } else {
          const r = await runCommand(step.argv, sudo);
          if (r.code !== 0) {
            problems.push(`${route.name}: \`${step.argv.join(' ')}\` exited with ${r.code ?? 'an error'}`);
            lastOutput = r.output;
            failed = true;
            break;
          }
        }
      }
      if (!failed) {
        const value = await o.installed();
        if (value !== undefined) {
          if (o.service) await disableSystemService(o.service, sudo);
          return { ok: true, value };
        }
        problems.push(`${route.name}: installed, but ${o.what} was not found afterwards`);
      }
      log.warn(`${o.what} install: ${problems[problems.length - 1]}`);
      for (const path of created) await runCommand(['rm', '-f', path], sudo);
    }
  } finally {
    if (ownPolicy) await runCommand(['rm', '-f', POLICY_RC_D], sudo);
  }
  return lastOutput === undefined ? { ok: false, problems } : { ok: false, problems, lastOutput };
}

/** A package may enable a systemd unit; tapflow wants no such daemon running. */
async function disableSystemService(unit: string, sudo: boolean): Promise<void> {
  if (!(await fileExists('/run/systemd/system'))) return;
  await runCommand(['systemctl', 'disable', '--now', unit], sudo);
}
