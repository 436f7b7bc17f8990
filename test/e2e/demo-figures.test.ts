/**
 * Figures that agree: after `tapflow start --demo --duration N`, the demo's final line and its
 * closing summary of fares per region are, to the fen, what `tapflow report --since <run start>`
 * reads from ClickHouse afterwards. Both run as a user runs them (the CLI as a child process),
 * against a test nats-server and a temporary data dir, with validator and settler on a worker
 * thread.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServerHandle } from '../../src/runtime/nats-server.js';
import type { StoreSummary } from '../../src/store/mod.js';
import { runCli, type CliResult } from '../integration/cli/run-cli.js';
import { startTestNats } from '../support/nats.js';
import { testPipelineSettings } from '../support/pipeline.js';

/** "¥1,234.50" or "-¥7.00" as integer fen, without floats. */
function fen(text: string): number {
  const m = /^(-?)¥(\d+)\.(\d{2})$/.exec(text);
  if (!m) throw new Error(`not an amount: ${text}`);
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 100 + Number(m[3]));
}

/** Region → fen of the lines `  BJ  ¥603.00 = …` that follow `heading` in the output. */
function regionSection(out: string, heading: string): Record<string, number> {
  const lines = out.slice(out.indexOf(heading)).split('\n').slice(1, 4);
  return Object.fromEntries(
    lines.map((l) => {
      const m = /^ {2}(BJ|TJ|HE)\s+(-?¥\d+\.\d{2})/.exec(l);
      if (!m) throw new Error(`not a region line after "${heading}": ${l}`);
      return [m[1]!, fen(m[2]!)];
    }),
  );
}

describe('demo - the closing figures are the report of the same run', { timeout: 240_000 }, () => {
  let nats: NatsServerHandle;
  let dataDir: string;
  let env: Record<string, string | undefined>;
  let demo: CliResult;

  beforeAll(async () => {
    nats = await startTestNats();
    dataDir = await mkdtemp(join(tmpdir(), 'tapflow-demo-'));
    // Validator and settler on a worker thread, as `tapflow start` runs them on a multi-core machine.
    // Mutual TLS, as `tapflow start --demo` runs by default: the development CA is generated under
    // the data dir and each demo terminal connects with a certificate of its own.
    env = { ...testPipelineSettings(nats.url, dataDir), TAPFLOW_WORKERS: '1', TAPFLOW_INGEST_AUTH: 'mtls' };
    demo = await runCli(['start', '--demo', '--duration', '8', '--rate', '80', '--terminals', '36'], env, 200_000);
  });
  afterAll(async () => {
    await nats?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('runs to its end and says which report shows the same figures', () => {
    expect(demo.code, demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(/every one processed and stored/);
    expect(demo.stdout).toMatch(/^demo fleet: 36 terminals, .* \(mutual TLS, a certificate per terminal\)/m);
    expect(demo.stdout).toMatch(/^The same figures later: tapflow report --since \S+$/m);
  });

  it('final line, closing summary and `tapflow report --since` agree to the fen, region by region', async () => {
    const since = /^The same figures later: tapflow report --since (\S+)$/m.exec(demo.stdout)![1]!;
    const finalLine = demo.stdout.split('\n').find((l) => / final \| /.test(l))!;
    const finalFares = Object.fromEntries([...finalLine.matchAll(/\b(BJ|TJ|HE) (-?¥\d+\.\d{2})/g)].map((m) => [m[1]!, fen(m[2]!)]));
    const closing = demo.stdout.slice(demo.stdout.indexOf('This run in ClickHouse'));
    const closingFares = regionSection(closing, 'fares by region (RAIL and BUS)');
    const closingEntries = regionSection(closing, 'culture entries by region');

    const r = await runCli(['report', '--since', since, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as StoreSummary;
    const reportFares: Record<string, number> = { BJ: 0, TJ: 0, HE: 0 };
    for (const f of report.fares) reportFares[f.terminalRegion] = (reportFares[f.terminalRegion] ?? 0) + f.amountFen;
    const reportEntries: Record<string, number> = { BJ: 0, TJ: 0, HE: 0 };
    for (const p of report.regionParts) if (p.scene === 'CULTURE') reportEntries[p.terminalRegion] = (reportEntries[p.terminalRegion] ?? 0) + p.amountFen;

    expect(finalFares).toEqual(reportFares);
    expect(closingFares).toEqual(reportFares);
    expect(closingEntries).toEqual(reportEntries);
    expect(Number(/^taps decided: (\d+)/m.exec(closing)![1])).toBe(report.taps);
    // Something was charged: the comparison is not of zeros.
    expect(Object.values(reportFares).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(Object.values(reportEntries).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('runs are told apart by ingest time: the whole store is the first run plus the second', async () => {
    const since = /^The same figures later: tapflow report --since (\S+)$/m.exec(demo.stdout)![1]!;
    const before = JSON.parse((await runCli(['report', '--since', since, '--json'], env)).stdout) as StoreSummary;
    const second = await runCli(['start', '--demo', '--duration', '3', '--rate', '40', '--terminals', '18'], env, 200_000);
    expect(second.code, second.stderr).toBe(0);
    // Same terminals, same JetStream, within its duplicate window: still new taps, not re-sends.
    expect(second.stdout).not.toMatch(/DUPLICATE/);
    const secondSince = /^The same figures later: tapflow report --since (\S+)$/m.exec(second.stdout)![1]!;
    const all = JSON.parse((await runCli(['report', '--json'], env)).stdout) as StoreSummary;
    const secondOnly = JSON.parse((await runCli(['report', '--since', secondSince, '--json'], env)).stdout) as StoreSummary;
    // Runs are split by ingest time: all events = first run + second run.
    expect(secondOnly.taps, second.stdout).toBeGreaterThan(0);
    expect(all.taps).toBe(before.taps + secondOnly.taps);
  });
});
