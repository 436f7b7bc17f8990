/**
 * promtool, which checks and unit-tests the alert rules (test/integration/ops/promtool.test.ts),
 * and the Prometheus server, which scrapes a running tapflow and evaluates every dashboard and
 * alert expression (test/integration/ops/prometheus-real.test.ts). Debian ships both in the
 * package `prometheus`. The test setup installs that package the way `tapflow start` installs
 * nats-server (src/runtime/apt.ts): with apt-get, without recommended packages, and with no
 * Prometheus daemon started.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { APT_INSTALL, aptAccess, gatherInstallFacts, runInstallRoutes, type InstallFacts, type InstallLog } from '../../src/runtime/apt.js';

/** The environment variable carrying the promtool path to the test workers. */
export const TEST_PROMTOOL_BIN_ENV = 'TAPFLOW_TEST_PROMTOOL_BIN';
/** The environment variable carrying the Prometheus server's path to the test workers. */
export const TEST_PROMETHEUS_BIN_ENV = 'TAPFLOW_TEST_PROMETHEUS_BIN';

/** The programs of Debian's package `prometheus` the tests run. */
export type PrometheusTool = 'promtool' | 'prometheus';

/** promtool is missing and was not installed; the message says how to get it. */
export class PromtoolMissingError extends Error {
  override readonly name = 'PromtoolMissingError';
}

/** Where to look for promtool (tests point this elsewhere). */
export interface FindPromtoolOptions {
  /** @default process.env (its PATH) */
  env?: Record<string, string | undefined>;
  /** Directory whose `.tools/bin` is searched. @default process.cwd() */
  cwd?: string;
  /** Searched last. @default ['/usr/bin', '/usr/local/bin'] */
  wellKnownDirs?: readonly string[];
}

/** PATH, ./.tools/bin, then where Debian and release tarballs put it. */
export async function findPromtool(opts: FindPromtoolOptions = {}): Promise<string | undefined> {
  return findPrometheusTool('promtool', opts);
}

/** The Prometheus server (`prometheus`): PATH, ./.tools/bin, then /usr/bin and /usr/local/bin. */
export async function findPrometheus(opts: FindPromtoolOptions = {}): Promise<string | undefined> {
  return findPrometheusTool('prometheus', opts);
}

async function findPrometheusTool(tool: PrometheusTool, opts: FindPromtoolOptions): Promise<string | undefined> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), join(cwd, '.tools', 'bin'), ...(opts.wellKnownDirs ?? ['/usr/bin', '/usr/local/bin'])];
  for (const dir of dirs) {
    const p = resolve(cwd, dir, tool);
    if (await access(p, constants.X_OK).then(() => true, () => false)) return p;
  }
  return undefined;
}

export function promtoolInstallHelp(tool: PrometheusTool = 'promtool'): string {
  return [
    `${tool} was not found on PATH, in ./.tools/bin or /usr/bin. Get it in one of these ways:`,
    '  - Debian/Ubuntu (as root; no daemon is started while policy-rc.d exits 101):',
    '      apt-get install -y --no-install-recommends prometheus',
    '  - run the tests as root on Debian/Ubuntu (or with CI=true and passwordless sudo): the test',
    '    setup installs it',
    `  - any system: put ${tool} from https://github.com/prometheus/prometheus/releases on PATH`,
    '    or in ./.tools/bin',
  ].join('\n');
}

export interface EnsurePromtoolOptions {
  /** Install the Debian package when promtool is missing. */
  install: boolean;
  log: InstallLog;
  /** Machine facts; gathered when omitted. */
  facts?: InstallFacts;
  /** Where to look. */
  find?: FindPromtoolOptions;
}

/** The path of promtool, installing Debian's prometheus package for it when allowed. */
export async function ensurePromtool(opts: EnsurePromtoolOptions): Promise<string> {
  return ensurePrometheusTool('promtool', opts);
}

/** The path of the Prometheus server, installing Debian's prometheus package for it when allowed. */
export async function ensurePrometheus(opts: EnsurePromtoolOptions): Promise<string> {
  return ensurePrometheusTool('prometheus', opts);
}

const USED_BY: Record<PrometheusTool, string> = {
  promtool: 'the alert rule tests run it',
  prometheus: 'the test evaluating every dashboard and alert expression runs it',
};

async function ensurePrometheusTool(tool: PrometheusTool, opts: EnsurePromtoolOptions): Promise<string> {
  const found = await findPrometheusTool(tool, opts.find ?? {});
  if (found) return found;
  if (!opts.install) throw new PromtoolMissingError(promtoolInstallHelp(tool));
  const apt = aptAccess(opts.facts ?? (await gatherInstallFacts()));
  if (!apt.ok) throw new PromtoolMissingError(`${promtoolInstallHelp(tool)}\nIt was not installed automatically: ${apt.reason}.`);
  const outcome = await runInstallRoutes({
    what: tool,
    announce: () =>
      `${tool} not found: ${USED_BY[tool]}. Installing the Debian package prometheus, which ships it, ` +
      'with apt-get (no recommended packages; its Prometheus daemon is not started)',
    routes: [
      {
        name: 'Debian package prometheus',
        steps: [
          { kind: 'run', argv: ['apt-get', 'update'], describe: 'apt-get update' },
          { kind: 'run', argv: [...APT_INSTALL, 'prometheus'], describe: 'apt-get install --no-install-recommends prometheus' },
        ],
      },
    ],
    sudo: apt.sudo,
    log: opts.log,
    installed: () => findPrometheusTool(tool, opts.find ?? {}),
    service: 'prometheus',
  });
  if (!outcome.ok) {
    throw new PromtoolMissingError(`${promtoolInstallHelp(tool)}\nInstalling it with apt-get failed:\n  ${outcome.problems.join('\n  ')}${outcome.lastOutput ? `\nlast output:\n${outcome.lastOutput}` : ''}`);
  }
  opts.log.info(`${tool} installed at ${outcome.value} (package prometheus; remove it with: apt-get remove prometheus)`);
  return outcome.value;
}
