/**
 * The CLI behaves as a Unix tool: a reader that goes away ends it quietly, data comes as JSON on
 * request, it starts without loading the engines, and it runs from anywhere — through a symlink
 * to bin/tapflow, or `npx tapflow` in the project.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './run-cli.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program; `closeStdout` closes the reading end of its output at once, as `| head -0` would. */
function exec(file: string, args: string[], opts: { cwd?: string; closeStdout?: boolean } = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(file, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, TAPFLOW_LOG_LEVEL: 'silent' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    if (opts.closeStdout) child.stdout.destroy();
    else child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const TAPFLOW = join(ROOT, 'bin', 'tapflow');

describe('cli unix - output to a reader that goes away', { timeout: 60_000 }, () => {
  it.each([[['reasons']], [['config', '--markdown']], [['--help']]])('tapflow %j into a closed pipe: exit 0, no EPIPE trace', async (args) => {
    const r = await exec(TAPFLOW, args, { closeStdout: true });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('cli unix - --json where a command prints data', { timeout: 60_000 }, () => {
  it('tapflow reasons --json: both code tables', async () => {
    const r = await exec(TAPFLOW, ['reasons', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { reasons: Record<string, { meaning: string }>; failures: Record<string, { grpc: string }> };
    expect(j.reasons.VENUE_NOT_LISTED?.meaning).toMatch(/not on the application project list/);
    expect(j.failures.TF_BUS_UNAVAILABLE?.grpc).toBe('UNAVAILABLE');
  });

  it('tapflow config --json: every setting, secrets hidden', async () => {
    const r = await exec(TAPFLOW, ['config', '--json'], { cwd: ROOT });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ NATS_URL: expect.any(String), TAPFLOW_PARTITIONS: expect.any(Number) });
    expect(j.TAPFLOW_TARIFF_DIR).toBe(join(ROOT, 'data'));
  });
});

describe('cli unix - runs from anywhere', { timeout: 120_000 }, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tapflow-bin-'));
    // ~/bin/tapflow -> …/tools/tapflow -> <repo>/bin/tapflow: a chain, one link relative.
    await mkdir(join(dir, 'tools'));
    await mkdir(join(dir, 'bin'));
    await symlink(TAPFLOW, join(dir, 'tools', 'tapflow'));
    await symlink(join('..', 'tools', 'tapflow'), join(dir, 'bin', 'tapflow'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a symlinked bin/tapflow, run from another folder, finds the project and its data', async () => {
    const r = await exec(join(dir, 'bin', 'tapflow'), ['fares', 'quote', '--network', 'bj-subway', '--distance-km', '6.1', '--entry-time', '2026-03-10T10:00', '--json'], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ network: 'bj-subway', fareFen: 400 });
  });

  it('npx tapflow in the project runs its bin', async () => {
    const npx = join(dirname(process.execPath), 'npx');
    const r = await exec(npx, ['--no', 'tapflow', 'reasons', '--json'], { cwd: ROOT });
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys((JSON.parse(r.stdout) as { reasons: object }).reasons)).toContain('OK');
  });
});

describe('cli unix - starts without loading the engines', () => {
  /** Packages that cost start-up time and only actions need. */
  const HEAVY = /^(chdb|@clickhouse\/|@grpc\/|@nats-io\/|grpc-health-check|pino|prom-client|zod|hdr-histogram-js|@bufbuild\/)/;

  /** Modules src/cli/main.ts loads before any action runs: its static imports, followed (not `import type`, not `import()`). */
  function staticImports(entry: string): { files: Set<string>; packages: Set<string> } {
    const files = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (files.has(file)) return;
      files.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?'([^']+)';/gm)) {
        const spec = m[1]!;
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        else if (!spec.startsWith('node:')) packages.add(spec);
      }
    };
    visit(join(ROOT, 'src', 'cli', 'main.ts'));
    return { files, packages };
  }

  it('main.ts and the command definitions import no engine, bus, gRPC, logging or schema package', () => {
    const { files, packages } = staticImports(join(ROOT, 'src', 'cli', 'main.ts'));
    expect([...packages].filter((p) => HEAVY.test(p))).toEqual([]);
    expect([...files].filter((f) => /\/src\/(gen|store|bus|ingest|settle|validate)\//.test(f)).map((f) => f.slice(ROOT.length + 1))).toEqual([]);
    expect(packages).toContain('commander');
  });
});
