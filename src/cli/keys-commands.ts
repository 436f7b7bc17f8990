/**
 * `tapflow token-keys status|rotate|retire|tokens`: token key versions (src/domain/card/token-keys.ts, README
 * "Token key rotation"). `status` counts, per key version, the cards and persons whose state is
 * still kept under a token of that version (validator and settler state) and the hotlist entries
 * that name one; `rotate` and `retire` change the development keys under <data dir>/keys/.
 * The bus code is loaded when a command runs.
 */
import { Argument, InvalidArgumentError, type Command } from 'commander';
import { CARD_NUMBER_PATTERN } from '../domain/card/token.js';
import { integer } from './options.js';

const config = async () => (await import('../config/config.js')).loadConfig();

/** Per key version: the keys with a value in each place. */
export interface KeyVersionCounts {
  current: number;
  previous: number[];
  /** version → { validator, settler, hotlist } key counts. */
  versions: Record<number, { validator: number; settler: number; hotlist: number }>;
}

/** Counts the state keys and hotlist entries per token key version (reads the whole buckets). */
export async function keyVersionCounts(cfg: import('../config/config.js').Config): Promise<KeyVersionCounts> {
  const { withBus } = await import('./with-bus.js');
  const { durableKeys } = await import('../bus/partition-state.js');
  const { tokenVersion } = await import('../domain/card/token-keys.js');
  const { tokenKeysOf } = await import('../runtime/keys.js');
  const keys = tokenKeysOf(cfg);
  const out: KeyVersionCounts = { current: keys.current.version, previous: keys.previous.map((k) => k.version), versions: {} };
  const bump = (version: number | undefined, where: 'validator' | 'settler' | 'hotlist') => {
    if (version === undefined) return;
    (out.versions[version] ??= { validator: 0, settler: 0, hotlist: 0 })[where]++;
  };
  await withBus(cfg, async (bus, buckets) => {
    for (const k of await durableKeys(bus, buckets.validatorState, 'validator', cfg.TAPFLOW_PARTITIONS)) bump(tokenVersion(k), 'validator');
    for (const k of await durableKeys(bus, buckets.settlerState, 'settler', cfg.TAPFLOW_PARTITIONS)) bump(tokenVersion(k), 'settler');
    for await (const k of await buckets.hotlist.keys()) bump(tokenVersion(k), 'hotlist');
  });
  for (const v of [out.current, ...out.previous]) out.versions[v] ??= { validator: 0, settler: 0, hotlist: 0 };
  return out;
}

/** The status as lines, one per version, newest first. */
export function formatKeyVersionCounts(c: KeyVersionCounts): string[] {
  return Object.keys(c.versions)
    .map(Number)
    .sort((a, b) => b - a)
    .map((v) => {
      const n = c.versions[v]!;
      const role = v === c.current ? 'current' : c.previous.includes(v) ? 'previous (accepted)' : 'retired';
      return `version ${v}\t${role}\tvalidator state ${n.validator}\tsettler state ${n.settler}\thotlist ${n.hotlist}`;
    });
}

/** A card number, or with --person an ID number (17 digits and a check character). */
function cardOrIdNumber(text: string): string {
  if (!CARD_NUMBER_PATTERN.test(text) && !/^[0-9]{17}[0-9X]$/.test(text)) throw new InvalidArgumentError('Expected a card number of BJ (11…), TJ (12…) or HE (13…), or with --person an ID number (17 digits and a check character).');
  return text;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('tapflow token-keys tokens: type the numbers, one per line, then Ctrl-D\n');
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}

/**
 * The numbers of standard input, one per line (blank lines skipped), with their line numbers.
 * A line that is no number is named by its line only: it may be a mistyped card number.
 */
export function numbersFrom(text: string): { line: number; number: string }[] {
  const out: { line: number; number: string }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const number = raw.trim();
    if (number === '') return;
    try {
      out.push({ line: i + 1, number: cardOrIdNumber(number) });
    } catch (err) {
      throw new Error(`standard input, line ${i + 1}: ${(err as Error).message}`);
    }
  });
  if (out.length === 0) throw new Error('no number given: pass a card number (or with --person an ID number), or give them on standard input, one per line');
  return out;
}

export function registerKeysCommands(program: Command): void {
  const group = program.command('token-keys').description('token key versions (rotation): status, rotate and retire development keys, the tokens of a card');

  group
    .command('tokens')
    .addArgument(
      new Argument('[number]', 'a card number (or with --person an ID number); none or "-": read them from standard input, one per line, out of the shell history and the process list').argParser((text: string) =>
        text === '-' ? text : cardOrIdNumber(text),
      ),
    )
    .option('--person', 'the numbers are ID numbers: person tokens')
    .summary("a card's (or person's) token under every configured key version, to find its history")
    .description(
      "a card's (or with --person a person's) token under the current key version, each previous version still configured, and the partition key (version 1), so that its rows stored before a rotation are found: WHERE card_token IN (…). Prints tokens only. Without a number (or with \"-\") the numbers are read from standard input, one per line, and each one's tokens are printed after a line \"line N\" — the way to keep card and ID numbers out of the shell history and the process list.",
    )
    .action(async (number: string | undefined, flags: { person?: boolean }) => {
      const numbers = number === undefined || number === '-' ? numbersFrom(await readStdin()) : [{ line: 0, number }];
      const cfg = await config();
      const { tokenKeysOf } = await import('../runtime/keys.js');
      const { tokenUnder, tokensOf } = await import('../domain/card/token-keys.js');
      const keys = tokenKeysOf(cfg);
      const kind = flags.person ? 'person' : 'card';
      numbers.forEach(({ line, number }, i) => {
        if (line > 0) console.log(`${i > 0 ? '\n' : ''}line ${line}`);
        const t = tokensOf(keys, kind, number, cfg.TAPFLOW_PARTITIONS);
        console.log(`version ${keys.current.version}\t${t.token}\tcurrent`);
        keys.previous.forEach((k, j) => console.log(`version ${k.version}\t${t.previous[j]}\tprevious`));
        // Version 1 retired: its tokens are still computed with the partition key (the version-1 key).
        if (keys.current.version !== 1 && !keys.previous.some((k) => k.version === 1)) console.log(`version 1\t${tokenUnder({ version: 1, key: keys.partitionKey }, kind, number)}\tretired (partition key)`);
        console.log(`partition ${t.partition}`);
      });
    });

  group
    .command('status')
    .summary('per token key version: state entries and hotlist entries still under it')
    .description(
      'per token key version: how many cards (validator state, settler state) and persons (settler state) are still kept under a token of that version, and how many hotlist entries name one. A previous version is retired when its counts are 0, or when what remains has expired by its own lifetime (README, Token key rotation).',
    )
    .option('--json', 'as JSON')
    .action(async (flags: { json?: boolean }) => {
      const c = await keyVersionCounts(await config());
      if (flags.json) console.log(JSON.stringify(c, null, 2));
      else for (const l of formatKeyVersionCounts(c)) console.log(l);
    });

  group
    .command('rotate')
    .summary('development keys: a new token key version, current from now on')
    .description(
      'development keys (<data dir>/keys/, no TAPFLOW_TOKEN_KEY): generates the next token key version, makes it current and keeps the one current before as a previous version (the overlap). Restart the roles to use it. Configured keys are rotated by changing TAPFLOW_TOKEN_KEY, TAPFLOW_TOKEN_KEY_VERSION and TAPFLOW_TOKEN_KEYS_PREVIOUS (README, Token key rotation).',
    )
    .action(async () => {
      const cfg = await config();
      if (cfg.TAPFLOW_TOKEN_KEY) throw new Error('TAPFLOW_TOKEN_KEY is set: configured keys are rotated by changing TAPFLOW_TOKEN_KEY, TAPFLOW_TOKEN_KEY_VERSION and TAPFLOW_TOKEN_KEYS_PREVIOUS (README, Token key rotation)');
      const { rotateDevTokenKey } = await import('../runtime/keys.js');
      const v = rotateDevTokenKey(cfg.TAPFLOW_DATA_DIR);
      console.log(`token key version ${v.current} is current; previous versions still accepted: ${v.previous.join(', ')}. Restart the roles to use it.`);
    });

  group
    .command('retire')
    .addArgument(new Argument('<version>', 'a previous token key version').argParser(integer(1, 9999, 'a token key version')))
    .summary('development keys: stop accepting a previous token key version')
    .description('development keys: stops accepting a previous token key version (check `tapflow token-keys status` first). Its key file stays: version 1 is the partition key.')
    .action(async (version: number) => {
      const cfg = await config();
      if (cfg.TAPFLOW_TOKEN_KEY) throw new Error('TAPFLOW_TOKEN_KEY is set: retire a configured version by removing it from TAPFLOW_TOKEN_KEYS_PREVIOUS');
      const { retireDevTokenKey } = await import('../runtime/keys.js');
      const v = retireDevTokenKey(cfg.TAPFLOW_DATA_DIR, version);
      console.log(`token key version ${version} retired; current ${v.current}, previous ${v.previous.join(', ') || 'none'}. Restart the roles.`);
    });
}
