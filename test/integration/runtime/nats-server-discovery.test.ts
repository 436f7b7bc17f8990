/**
 * Finding nats-server and planning its install. Discovery runs against stand-in executables
 * (shell scripts printing a version) in temporary directories; the install plan is pure.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureNatsServer,
  locateNatsServer,
  findNatsServer,
  parseNatsAddress,
  parseNatsServerVersion,
  parseOsRelease,
  planNatsServerInstall,
  TRIXIE_PIN,
  TRIXIE_SOURCES,
  type InstallFacts,
} from '../../../src/runtime/nats-server.js';

describe('nats-server discovery - version parsing', () => {
  it('reads the version nats-server prints', () => {
    expect(parseNatsServerVersion('nats-server: v2.10.27\n')).toMatchObject({ major: 2, minor: 10, patch: 27, text: 'v2.10.27' });
    expect(parseNatsServerVersion('nats-server: v2.9.10')).toMatchObject({ major: 2, minor: 9, patch: 10 });
    expect(parseNatsServerVersion('nats-server: v2.11.0-beta.1')).toMatchObject({ major: 2, minor: 11, patch: 0, text: 'v2.11.0-beta.1' });
    expect(parseNatsServerVersion('command not found')).toBeUndefined();
  });

  it('parses NATS addresses with and without scheme and port', () => {
    expect(parseNatsAddress('nats://10.0.0.5:4333')).toEqual({ host: '10.0.0.5', port: 4333 });
    expect(parseNatsAddress('nats://nats')).toEqual({ host: 'nats', port: 4222 });
    expect(parseNatsAddress('localhost:4223')).toEqual({ host: 'localhost', port: 4223 });
    expect(parseNatsAddress('nats://user:pw@[::1]:4224')).toEqual({ host: '::1', port: 4224 });
  });
});

describe('nats-server discovery - search order', () => {
  let root: string;
  const dir = (name: string) => join(root, name);

  async function fakeServer(folder: string, version: string): Promise<string> {
    await mkdir(folder, { recursive: true });
    const path = join(folder, 'nats-server');
    await writeFile(path, `#!/bin/sh\necho "nats-server: ${version}"\n`);
    await chmod(path, 0o755);
    return path;
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'tapflow-nats-find-'));
    await fakeServer(dir('old'), 'v2.8.4');
    await fakeServer(dir('v29'), 'v2.9.10');
    await fakeServer(dir('v210'), 'v2.10.27');
    await fakeServer(join(dir('project'), '.tools', 'bin'), 'v2.10.29');
    await mkdir(dir('empty'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const none: readonly string[] = [];

  it('prefers 2.10 over an earlier 2.9 on PATH', async () => {
    const found = await locateNatsServer({ env: { PATH: [dir('v29'), dir('v210')].join(':') }, cwd: dir('empty'), wellKnownDirs: none });
    expect(found?.bin).toBe(join(dir('v210'), 'nats-server'));
    expect(found?.version.minor).toBe(10);
  });

  it('falls back to 2.9 and refuses anything older', async () => {
    expect(await findNatsServer({ env: { PATH: [dir('old'), dir('v29')].join(':') }, cwd: dir('empty'), wellKnownDirs: none })).toBe(join(dir('v29'), 'nats-server'));
    expect(await findNatsServer({ env: { PATH: dir('old') }, cwd: dir('empty'), wellKnownDirs: none })).toBeUndefined();
  });

  it('takes an explicit NATS_SERVER_BIN first, and ignores it when it is unusable', async () => {
    const v29 = join(dir('v29'), 'nats-server');
    expect(await findNatsServer({ env: { NATS_SERVER_BIN: v29, PATH: dir('v210') }, cwd: dir('empty'), wellKnownDirs: none })).toBe(v29);
    expect(await findNatsServer({ env: { NATS_SERVER_BIN: join(dir('old'), 'nats-server'), PATH: dir('v210') }, cwd: dir('empty'), wellKnownDirs: none })).toBe(join(dir('v210'), 'nats-server'));
    expect(await findNatsServer({ env: { NATS_SERVER_BIN: join(dir('empty'), 'missing'), PATH: '' }, cwd: dir('empty'), wellKnownDirs: none })).toBeUndefined();
  });

  it('looks in ./.tools/bin of the working directory, and in the well-known system folders', async () => {
    expect(await findNatsServer({ env: { PATH: dir('empty') }, cwd: dir('project'), wellKnownDirs: none })).toBe(join(dir('project'), '.tools', 'bin', 'nats-server'));
    expect(await findNatsServer({ env: { PATH: '' }, cwd: dir('empty'), wellKnownDirs: [dir('v29')] })).toBe(join(dir('v29'), 'nats-server'));
  });

  it('without install, a missing server is an error that says how to get one', async () => {
    const attempt = ensureNatsServer({ install: false, log: { info: () => {}, warn: () => {} }, find: { env: { PATH: dir('empty') }, cwd: dir('empty'), wellKnownDirs: none } });
    await expect(attempt).rejects.toThrow(/was not found/);
    await expect(attempt).rejects.toThrow(/apt-get install -y -t trixie nats-server/);
    await expect(attempt).rejects.toThrow(/NATS_SERVER_BIN/);
    await expect(attempt).rejects.toThrow(/docker compose up -d nats/);
  });

  it('with install on a machine it cannot install on, the error gives the reason and the manual ways', async () => {
    const facts: InstallFacts = { platform: 'darwin', osRelease: {}, isRoot: false, hasSudo: false, aptGetAvailable: false };
    const messages: string[] = [];
    const attempt = ensureNatsServer({ install: true, facts, log: { info: (m) => messages.push(m), warn: (m) => messages.push(m) }, find: { env: { PATH: '' }, cwd: dir('empty'), wellKnownDirs: none } });
    await expect(attempt).rejects.toThrow(/only done on Debian\/Ubuntu Linux \(this is darwin\)[\s\S]*\.tools\/bin/);
    expect(messages).toEqual([]);
  });

  it('returns what it finds without installing anything', async () => {
    const messages: string[] = [];
    const log = { info: (m: string) => messages.push(m), warn: (m: string) => messages.push(m) };
    expect(await ensureNatsServer({ install: true, log, find: { env: { PATH: dir('v29') }, cwd: dir('empty'), wellKnownDirs: none } })).toBe(join(dir('v29'), 'nats-server'));
    expect(messages.join('\n')).toMatch(/2\.10 or newer is preferred/);
  });
});

describe('nats-server discovery - install plan', () => {
  const bookworm = parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n');
  const noble = parseOsRelease('PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n');
  const base: InstallFacts = { platform: 'linux', osRelease: bookworm, isRoot: true, hasSudo: false, aptGetAvailable: true };

  it('on bookworm as root: trixie 2.10 with a low pin first, then bookworm 2.9', () => {
    const plan = planNatsServerInstall(base);
    if (plan.kind !== 'apt') throw new Error(`expected an apt plan, got ${plan.reason}`);
    expect(plan.sudo).toBe(false);
    expect(plan.routes.map((r) => r.name)).toEqual(['Debian trixie package (2.10) on bookworm', 'Debian GNU/Linux 12 (bookworm) package']);
    const [trixie, distro] = plan.routes;
    expect(trixie!.steps).toEqual([
      expect.objectContaining({ kind: 'write-file', path: '/etc/apt/sources.list.d/trixie.sources', content: TRIXIE_SOURCES }),
      expect.objectContaining({ kind: 'write-file', path: '/etc/apt/preferences.d/tapflow-trixie', content: TRIXIE_PIN }),
      expect.objectContaining({ kind: 'run', argv: ['apt-get', 'update'] }),
      expect.objectContaining({ kind: 'run', argv: ['apt-get', 'install', '-y', '--no-install-recommends', '-t', 'trixie', 'nats-server'] }),
    ]);
    expect(TRIXIE_SOURCES).toMatch(/^Suites: trixie$/m);
    expect(TRIXIE_SOURCES).toMatch(/^Signed-By: \/usr\/share\/keyrings\/debian-archive-keyring.gpg$/m);
    expect(TRIXIE_PIN).toMatch(/^Pin: release n=trixie\nPin-Priority: 100$/m);
    expect(distro!.steps.map((s) => (s.kind === 'run' ? s.argv.join(' ') : s.path))).toEqual(['apt-get update', 'apt-get install -y --no-install-recommends nats-server']);
  });

  it('elsewhere on Debian/Ubuntu: the distro package, through sudo when not root', () => {
    const plan = planNatsServerInstall({ ...base, osRelease: noble, isRoot: false, hasSudo: true });
    expect(plan).toMatchObject({ kind: 'apt', sudo: true });
    if (plan.kind === 'apt') expect(plan.routes).toHaveLength(1);
  });

  it('refuses without root or sudo, off Debian/Ubuntu, and without apt-get', () => {
    expect(planNatsServerInstall({ ...base, isRoot: false, hasSudo: false })).toMatchObject({ kind: 'unsupported', reason: expect.stringMatching(/needs root/) });
    expect(planNatsServerInstall({ ...base, osRelease: { ID: 'fedora', PRETTY_NAME: 'Fedora Linux 40' } })).toMatchObject({ kind: 'unsupported', reason: expect.stringMatching(/Fedora/) });
    expect(planNatsServerInstall({ ...base, aptGetAvailable: false })).toMatchObject({ kind: 'unsupported', reason: 'apt-get was not found' });
  });
});
