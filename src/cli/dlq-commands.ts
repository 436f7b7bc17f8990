/**
 * `tapflow dlq list|show|replay`: the dead letters of the partition workers (stream DLQ, README
 * "Nothing wedges a partition"), shown and put back on their subjects once the cause is fixed.
 * Options and arguments are checked when parsed; the bus code is loaded when a command runs
 * (dlq.ts).
 */
import { Argument, Option, type Command } from 'commander';
import { DEAD_LETTER_CODES, type FailureCode } from '../domain/reasons.js';
import { WORKER_ROLES } from '../runtime/role-names.js';
import { instant, integer, listOf } from './options.js';

const dlqSeq = integer(1, Number.MAX_SAFE_INTEGER, 'a sequence of the DLQ stream, as tapflow dlq list shows it');

/** The filter flags as parsed. */
export interface DlqFilterFlags {
  code?: FailureCode[];
  role?: string[];
  since?: number;
}

const FILTERS = ['code', 'role', 'since'] as const;

function withFilters(cmd: Command, what: string): Command {
  return cmd
    .addOption(new Option('--code <codes>', `${what} with one of these failure codes, comma-separated (${DEAD_LETTER_CODES.join(', ')})`).argParser(listOf(DEAD_LETTER_CODES)))
    .addOption(new Option('--role <roles>', `${what} of these roles, comma-separated (${WORKER_ROLES.join(', ')})`).argParser(listOf(WORKER_ROLES)))
    .addOption(new Option('--since <time>', `${what} dead-lettered at or after: epoch ms or ISO 8601 (Asia/Shanghai when no zone)`).argParser(instant));
}

const dlq = () => import('./dlq.js');

export function registerDlqCommands(program: Command): void {
  const group = program.command('dlq').description('dead letters: messages a role could not process (stream DLQ); list, show and replay them');

  withFilters(group.command('list'), 'only those')
    .summary('list the dead letters, oldest first')
    .description('list the dead letters, oldest first: sequence, time, role, failure code, reason, source, size')
    .option('--json', 'as JSON (times in epoch ms)')
    .action(async (flags: DlqFilterFlags & { json?: boolean }) => (await dlq()).listDeadLetters(flags, flags.json === true));

  group
    .command('show')
    .addArgument(new Argument('<seq>', 'sequence of the dead letter in the DLQ stream (tapflow dlq list)').argParser(dlqSeq))
    .summary('show one dead letter whole, its payload decoded')
    .description('show one dead letter whole: failure, source, headers, the payload decoded (raw bytes where it cannot be), and what a replay would publish')
    .option('--json', 'as JSON (bytes as base64)')
    .action(async (seq: number, flags: { json?: boolean }) => (await dlq()).showDeadLetter(seq, flags.json === true));

  withFilters(group.command('replay'), 'with --all: only those')
    .addArgument(new Argument('[seq...]', 'sequences of the dead letters to replay (tapflow dlq list)').argParser((text: string, previous: number[] | undefined) => [...(previous ?? []), dlqSeq(text)]))
    .summary('re-publish dead letters to their original subjects, once the cause is fixed')
    .description(
      're-publish dead letters to their original subjects with their original headers, for the consumer that dead-lettered them, after the cause is fixed; each is then removed from the DLQ. A replay repeated within TAPFLOW_DUPLICATE_WINDOW_S is dropped (its Nats-Msg-Id derives from the dead letter). Medical claims are never replayed.',
    )
    .option('--all', 'every dead letter matching --code, --role and --since (all of them without filters)')
    .option('--dry-run', 'only show what would be replayed')
    .option('--json', 'as JSON')
    .action(async (seqs: number[], flags: DlqFilterFlags & { all?: boolean; dryRun?: boolean; json?: boolean }, cmd: Command) => {
      if (flags.all && seqs.length > 0) throw new Error(`--all: replays every dead letter matching the filters; give sequences (${seqs.join(' ')}) or --all, not both`);
      if (!flags.all) {
        // Without --all the filters would be ignored: say so instead.
        for (const name of FILTERS) if (cmd.getOptionValueSource(name) === 'cli') throw new Error(`--${name}: only with --all (tapflow dlq replay --all --${name} …)`);
        if (seqs.length === 0) throw new Error('<seq>: give the sequences of the dead letters to replay (tapflow dlq list shows them), or --all');
      }
      await (await dlq()).replayDeadLetters(flags.all ? { filter: flags } : { seqs }, { dryRun: flags.dryRun === true, json: flags.json === true });
    });
}
