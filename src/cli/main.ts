#!/usr/bin/env node
/**
 * tapflow's command line. `tapflow start` runs every role in one process (the laptop default);
 * `tapflow ingest|validator|settler|sink` runs one role, for scaling out; `tapflow demo` adds a
 * simulated terminal fleet; the other commands manage data and read reports.
 *
 * The program — commands, options, help, the checks of every option's value (options.ts) — loads
 * only commander and light modules. Each action imports what it needs when it runs, so commands
 * that need no engine (`--help`, `reasons`, `config`, a refused option) start without loading
 * chdb, NATS or gRPC.
 */
import { Command, CommanderError } from 'commander';
import { registerDataCommands } from './data-commands.js';
import { registerDlqCommands } from './dlq-commands.js';
import { registerStoreCommands } from './store-commands.js';
import { ExitStatus } from './exit-status.js';
import { registerQuoteCommands } from './quote-commands.js';
import { registerReportCommands } from './report-commands.js';
import { registerRunCommands } from './run-commands.js';

/** Where the CLI's own messages (help, errors) go; tests capture them. */
export interface CliOutput {
  writeOut(text: string): void;
  writeErr(text: string): void;
}

const processOutput: CliOutput = {
  writeOut: (text) => process.stdout.write(text),
  writeErr: (text) => process.stderr.write(text),
};

export function buildProgram(output: CliOutput = processOutput): Command {
  const program = new Command('tapflow')
    .description('Real-time stream processor for Beijing–Tianjin–Hebei social security card taps and settlements')
    .configureOutput(output)
    .showHelpAfterError('(add --help for the accepted options)')
    // Throw instead of exiting: runCli turns every outcome into an exit status.
    .exitOverride();

  registerRunCommands(program);

  program
    .command('config')
    .description('check the configuration (environment) and print it; --markdown prints the documented table')
    .option('--markdown', 'print the table of every setting with its default')
    .option('--json', 'print the configuration as JSON (secrets shown as "(set)")')
    .action(async (flags: { markdown?: boolean; json?: boolean }) => {
      const { configMarkdown, loadConfig } = await import('../config/config.js');
      if (flags.markdown) return console.log(configMarkdown());
      const shown = Object.entries(loadConfig()).map(([k, v]) => [k, /KEY|PASSWORD/.test(k) && v ? '(set)' : v] as const);
      if (flags.json) return console.log(JSON.stringify(Object.fromEntries(shown), null, 2));
      for (const [k, v] of shown) console.log(`${k}=${v ?? ''}`);
    });

  program
    .command('reasons')
    .description('print the reason codes of decisions and the failure codes, as Markdown tables')
    .option('--json', 'print both tables as JSON')
    .action(async (flags: { json?: boolean }) => {
      const { FailureCodes, ReasonCodes, failuresMarkdown, reasonsMarkdown } = await import('../domain/reasons.js');
      if (flags.json) return console.log(JSON.stringify({ reasons: ReasonCodes, failures: FailureCodes }, null, 2));
      console.log(`${reasonsMarkdown()}\n\n${failuresMarkdown()}`);
    });

  registerDataCommands(program);
  registerReportCommands(program);
  registerQuoteCommands(program);
  registerDlqCommands(program);
  registerStoreCommands(program);
  return program;
}

/**
 * Runs the command line and resolves with the exit status: 0, the status a command chose
 * ({@link ExitStatus}), or 1 for a refused option (commander has printed why) or a failed
 * command (printed here as `tapflow: <message>`).
 */
export async function runCli(argv: readonly string[], output: CliOutput = processOutput): Promise<number> {
  try {
    await buildProgram(output).parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof ExitStatus) return err.code;
    output.writeErr(`tapflow: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

/**
 * A reader that stops early (`tapflow reasons | head`) closes the pipe: the next write fails with
 * EPIPE. End quietly with status 0, as Unix tools do — at once, or through the orderly shutdown
 * when a long-running command listens for SIGTERM.
 */
function endQuietlyOnClosedOutput(): void {
  let closed = false;
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    if (closed) return;
    closed = true;
    if (process.listenerCount('SIGTERM') > 0) process.kill(process.pid, 'SIGTERM');
    else process.exit(0);
  };
  process.stdout.on('error', onError);
  process.stderr.on('error', onError);
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  endQuietlyOnClosedOutput();
  void runCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
