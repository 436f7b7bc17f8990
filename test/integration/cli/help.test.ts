/**
 * `--help` works on every top-level command (and on the quoting subcommands): exit 0, usage
 * naming the command, nothing on stderr. The list comes from the program itself, so a new
 * command is covered without touching this test.
 */
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli/main.js';
import { runCli } from './run-cli.js';

const program = buildProgram();
const top = program.commands.map((c) => c.name());
const nested = program.commands.flatMap((c) => c.commands.map((s) => [c.name(), s.name()] as const));
/** Subcommands whose help documents an input format (each run costs a process start). */
const documented = [['fares', 'quote'], ['medical', 'quote']] as const;

describe('cli - help', { timeout: 180_000 }, () => {
  it('lists the commands of the brief', () => {
    for (const c of ['start', 'demo', 'ingest', 'validator', 'settler', 'sink', 'report', 'clearing', 'fares', 'medical']) expect(top).toContain(c);
    expect(nested).toContainEqual(['fares', 'quote']);
    expect(nested).toContainEqual(['medical', 'quote']);
  });

  it('tapflow --help names every command', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    for (const c of top) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });

  it.concurrent.each(top)('tapflow %s --help', async (cmd) => {
    const r = await runCli([cmd, '--help']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: tapflow ${cmd}`);
  });

  it.concurrent.each(documented)('tapflow %s %s --help', async (group, sub) => {
    const r = await runCli([group, sub, '--help']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: tapflow ${group} ${sub}`);
  });
});
