/**
 * Every option and argument of every command, given bad values: refused with a non-zero exit
 * status and a message naming the option and saying what it accepts — never ignored, never
 * answered with an empty report, never run forever. The table is checked against the program
 * itself: a new option without bad-value cases here fails the first test.
 *
 * The cases run in this process through runCli (the CLI's own entry, as bin/tapflow runs it), so
 * the table stays fast; a few run the real bin/tapflow to show the exit status end to end.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, runCli } from '../../../src/cli/main.js';
import { ROOT } from './run-cli.js';

/** One bad use: the arguments after the command, and what the error must say besides the option. */
type Case = [args: string[], ...says: string[]];

const SAMPLE_CLAIM = 'data/medical/examples/claim-sample.json';
const CARD = '110105000123456';

/** Bad values of the flags every role-running command takes. */
const RUN_FLAGS: Record<string, Case[]> = {
  '--nats-url': [
    [['--nats-url', 'http://127.0.0.1:4222'], 'NATS server URLs'],
    [['--nats-url', 'nats://a:4222,'], 'comma-separated'],
    [['--nats-url', 'nats://host:99999'], 'nats://host:4222'],
  ],
  '--data-dir': [
    [['--data-dir', 'package.json'], 'a folder; package.json is a file'],
    [['--data-dir', ''], 'a folder path'],
  ],
  '--grpc-port': [
    [['--grpc-port', 'abc'], 'an integer from 0 to 65535'],
    [['--grpc-port', '70000'], 'an integer from 0 to 65535'],
    [['--grpc-port', '-1'], 'an integer from 0 to 65535'],
    [['--grpc-port', '1.5'], 'an integer from 0 to 65535'],
  ],
  '--metrics-port': [
    [['--metrics-port', 'x9464'], 'an integer from 0 to 65535'],
    [['--metrics-port', '65536'], 'an integer from 0 to 65535'],
  ],
  '--clickhouse-url': [
    [['--clickhouse-url', 'clickhouse:8123'], 'an http(s) URL'],
    [['--clickhouse-url', 'ftp://host'], 'an http(s) URL'],
  ],
  '--partitions': [
    [['--partitions', '0'], 'an integer from 1 to 1024'],
    [['--partitions', '2000'], 'an integer from 1 to 1024'],
    [['--partitions', 'sixteen'], 'an integer from 1 to 1024'],
  ],
  '--log-level': [[['--log-level', 'loud'], 'one of fatal, error, warn, info, debug, trace, silent']],
  '--workers': [
    [['--workers', 'many'], 'an integer from 0 to 64 (worker threads, or auto)'],
    [['--workers', '65'], 'an integer from 0 to 64 (worker threads, or auto)'],
  ],
};

/** Bad values of the demo fleet's flags. */
const DEMO_FLAGS: Record<string, Case[]> = {
  '--rate': [
    [['--rate', 'abc'], 'a number above 0 and at most 100000'],
    [['--rate', '-5'], 'a number above 0'],
    [['--rate', '0'], 'a number above 0'],
    [['--rate', '1e3'], 'a number above 0'],
  ],
  '--terminals': [
    [['--terminals', '0'], 'an integer from 1 to 100000'],
    [['--terminals', '2.5'], 'an integer from 1 to 100000'],
  ],
  '--duration': [
    [['--duration', 'abc'], 'a number above 0', '(seconds)'],
    [['--duration', '0'], 'a number above 0'],
    [['--duration', '-30'], 'a number above 0'],
  ],
};

const DAY: Case[] = [
  [['--day', '2026-02-30'], 'a calendar day YYYY-MM-DD that exists'],
  [['--day', '2026-13-45'], 'a calendar day YYYY-MM-DD that exists'],
  [['--day', '20260310'], 'a calendar day YYYY-MM-DD'],
  [['--day', 'today'], 'a calendar day YYYY-MM-DD'],
];
/** Bad values of the time range and output options of report, entries and clearing report. */
const RANGE: Record<string, Case[]> = {
  '--day': DAY,
  '--from': [
    [['--from', 'yesterday'], 'epoch milliseconds or ISO 8601'],
    [['--from', '2026-02-30'], 'epoch milliseconds or ISO 8601'],
    [['--from', '1990-01-01'], 'a time from 2015-01-01 to 2100-01-01'],
  ],
  '--to': [
    [['--to', '2026-03-10T25:00'], 'epoch milliseconds or ISO 8601'],
    [['--to', '2200-01-01'], 'a time from 2015-01-01 to 2100-01-01'],
  ],
  '--format': [[['--format', 'xml'], 'Allowed choices are table, json, csv']],
  '--day with --from or --to': [
    [['--day', '2026-03-10', '--from', '2026-03-10'], '--day cannot be combined with --from or --to'],
    [['--day', '2026-03-10', '--to', '2026-03-11'], '--day cannot be combined with --from or --to'],
  ],
  '--to not after --from': [[['--from', '2026-03-11', '--to', '2026-03-10'], '--to (2026-03-10T00:00:00.000+08:00) must be after --from']],
  '--json with --format csv': [[['--json', '--format', 'csv'], '--json and --format csv contradict each other']],
};
const REPORT_PORT: Case[] = [
  [['--metrics-port', 'abc'], 'an integer from 1 to 65535'],
  [['--metrics-port', '0'], 'an integer from 1 to 65535'],
];

/** Bad values of the dead-letter filters. */
const DLQ_FILTERS: Record<string, Case[]> = {
  '--code': [
    [['--code', 'TF_NOPE'], 'a comma-separated list of TF_DECODE_FAILED, TF_EVENT_INVALID, TF_RETRIES_EXHAUSTED'],
    // A failure that is retried, never dead-lettered under its own code.
    [['--code', 'TF_STORE_FAILED'], 'a comma-separated list of TF_DECODE_FAILED'],
    [['--code', 'TF_DECODE_FAILED,TF_DECODE_FAILED'], 'each at most once'],
  ],
  '--role': [[['--role', 'ingest'], 'a comma-separated list of validator, risk-windows, settler, sink']],
  '--since': [
    [['--since', 'yesterday'], 'epoch milliseconds or ISO 8601'],
    [['--since', '2026-02-30'], 'epoch milliseconds or ISO 8601'],
  ],
};
const DLQ_SEQ: Case[] = [
  [['abc'], 'an integer from 1 to 9007199254740991 (a sequence of the DLQ stream'],
  [['0'], 'an integer from 1 to'],
  [['2.5'], 'an integer from 1 to'],
];

const fares = (...args: string[]) => ['--network', 'bj-subway', ...args];
const medical = (...args: string[]) => [SAMPLE_CLAIM, ...args];

/** Command path → option flag or <argument> → bad uses. */
const BAD: Record<string, Record<string, Case[]>> = {
  start: {
    ...RUN_FLAGS,
    ...Object.fromEntries(Object.entries(DEMO_FLAGS).map(([flag, cases]) => [flag, cases.map(([args, ...says]) => [['--demo', ...args], ...says] as Case)])),
    '--roles': [
      [['--roles', 'ingest,foo'], 'a comma-separated list of ingest, validator, settler, sink'],
      [['--roles', 'ingest,ingest'], 'each at most once'],
      [['--roles', ''], 'a comma-separated list'],
      [['--demo', '--roles', 'validator'], 'the demo fleet sends its taps to the ingest role'],
    ],
    // Only with --demo: without it the fleet flags would be ignored.
    '--rate/--terminals/--duration without --demo': [
      [['--rate', '50'], '--rate: only with --demo'],
      [['--terminals', '10'], '--terminals: only with --demo'],
      [['--duration', '30'], '--duration: only with --demo'],
    ],
  },
  demo: { ...RUN_FLAGS, ...DEMO_FLAGS },
  ingest: RUN_FLAGS,
  validator: RUN_FLAGS,
  settler: RUN_FLAGS,
  sink: RUN_FLAGS,
  report: {
    ...RANGE,
    '--view': [
      [['--view', 'nope'], 'a comma-separated list of throughput, rejects-by-reason'],
      [['--view', 'medical,medical'], 'each at most once'],
    ],
    '--bucket': [
      [['--bucket', '7s'], 'an interval of minutes (1m-1440m), hours (1h-168h) or days (1d-366d)'],
      [['--bucket', '0h'], 'an interval of minutes'],
      [['--bucket', '2000m'], 'an interval of minutes'],
    ],
    '--since with a range': [[['--since', '2026-03-10', '--from', '2026-03-10'], '--since (ingest time) cannot be combined with --day, --from or --to']],
    '--metrics-port': REPORT_PORT,
    '--since': [
      [['--since', 'the start'], 'epoch milliseconds or ISO 8601'],
      [['--since', '2026-02-30T08:00'], 'epoch milliseconds or ISO 8601'],
    ],
  },
  entries: { ...RANGE, '--metrics-port': REPORT_PORT },
  'clearing report': { ...RANGE, '--view': [[['--view', 'totals'], 'a comma-separated list of accounts, positions']], '--metrics-port': REPORT_PORT },
  'keys generate': {
    '--out': [[['--out', 'package.json'], 'a folder; package.json is a file']],
    '--seed': [[['--seed', ''], 'not an empty string']],
  },
  'keys sign-qr': {
    '--card': [
      [['--card', '123'], 'a card number of BJ (11…), TJ (12…) or HE (13…)'],
      [['--card', '991234567890'], 'a card number of BJ'],
      [[], "required option '--card <number>' not specified"],
    ],
    '--level': [[['--card', CARD, '--level', '3'], 'Allowed choices are 1, 2']],
    '--keys': [[['--card', CARD, '--keys', 'no-such-keys.json'], 'an existing file; no-such-keys.json does not exist']],
    '--at': [
      [['--card', CARD, '--at', 'soon'], 'epoch milliseconds or ISO 8601'],
      [['--card', CARD, '--at', '2026-02-30T10:00'], 'epoch milliseconds or ISO 8601'],
    ],
  },
  'projects apply': { '<file>': [[['no-such-list.yaml'], 'an existing file; no-such-list.yaml does not exist']] },
  'projects diff': { '<file>': [[['data'], 'an existing file; data is a folder']] },
  'hotlist add': {
    '<card-number>': [[['123', '--reason', 'LOST'], 'a card number of BJ']],
    '--reason': [
      [[CARD, '--reason', 'STOLEN'], 'one of LOST, FROZEN, CANCELLED'],
      [[CARD], "required option '--reason <reason>' not specified"],
    ],
    '--note': [[[CARD, '--reason', 'LOST', '--note', `replaced by ${CARD}`], 'no card or ID number in it']],
    '--since': [[[CARD, '--reason', 'LOST', '--since', 'yesterday'], 'epoch milliseconds or ISO 8601']],
  },
  'hotlist remove': { '<card-number>': [[['12X'], 'a card number of BJ']] },
  'risk-rules apply': { '<file>': [[['no-such-rules.yaml'], 'an existing file']] },
  'risk-rules remove': { '<id>': [[[''], 'a rule id, not an empty string']] },
  'fares quote': {
    '--network': [
      [['--network', 'bj-metro', '--distance-km', '3'], 'unknown network bj-metro; known: bj-subway'],
      [['--distance-km', '3'], '--network: required'],
    ],
    '--from': [[fares('--from', '西直们', '--to', '国贸'), 'unknown station 西直们 on bj-subway', '西直门']],
    '--to': [[fares('--from', '西直门', '--to', 'Atlantis'), 'unknown station Atlantis']],
    '--distance-km': [
      [fares('--distance-km', 'six'), 'must be a distance in km'],
      [fares('--distance-km', '-1'), 'must be a distance in km'],
    ],
    '--stations': [
      [['--network', 'tj-metro', '--stations', '0'], 'must be a positive integer'],
      [['--network', 'tj-metro', '--stations', '2.5'], 'must be a positive integer'],
    ],
    '--category': [[fares('--distance-km', '3', '--category', 'CHILD'), 'must be one of ADULT, STUDENT, SENIOR, DISABLED']],
    '--entry-time': [
      [fares('--distance-km', '3', '--entry-time', '2026-02-30T08:00'), 'is not a time', 'ISO 8601'],
      [fares('--distance-km', '3', '--entry-time', 'yesterday'), 'is not a time'],
    ],
    '--exit-time': [
      [fares('--from', '西直门', '--to', '国贸', '--entry-time', '2026-03-10T10:00', '--exit-time', '2026-03-10T25:00'), 'is not a time'],
      [fares('--from', '西直门', '--to', '国贸', '--entry-time', '2026-03-10T10:00', '--exit-time', '2026-03-10T09:00'), 'is before --entry-time'],
    ],
    '--month-to-date-fen': [
      [fares('--distance-km', '3', '--month-to-date-fen', '12.5'), 'must be a non-negative integer number of fen'],
      [fares('--distance-km', '3', '--month-to-date-fen', '-100'), 'must be a non-negative integer number of fen'],
    ],
    '--previous-leg-network': [[['--network', 'tj-metro', '--stations', '3', '--previous-leg-network', 'nope', '--previous-leg-end', '2026-03-10T08:00'], 'unknown network nope']],
    '--previous-leg-end': [
      [['--network', 'tj-metro', '--stations', '3', '--previous-leg-network', 'tj-bus', '--previous-leg-end', 'soon'], 'is not a time'],
      [['--network', 'tj-metro', '--stations', '3', '--previous-leg-network', 'tj-bus'], 'give both'],
    ],
    '--tariff-dir': [[fares('--distance-km', '3', '--tariff-dir', 'no-such-dir'), 'an existing folder; no-such-dir does not exist']],
  },
  'certs init': {
    '--dir': [[['--dir', 'package.json'], 'a folder; package.json is a file']],
    '--host': [
      [['--host', 'ingest example'], 'a host name or IPv4 address'],
      [['--host', 'a,,b'], 'a host name or IPv4 address'],
    ],
    '--days': [[['--days', '0'], 'an integer from 1 to 36500 (days of validity)']],
    '--ca-days': [[['--ca-days', 'ten'], 'an integer from 1 to 36500 (days of validity)']],
  },
  'certs terminal': {
    '--dir': [[['--dir', 'package.json', '--id', 'BJ-A-1'], 'a folder; package.json is a file']],
    '--id': [
      [['--id', 'BJ GATE'], "a terminal id: 1-64 letters, digits, '.', '_' or '-'"],
      [[], "required option '--id <ids>' not specified"],
    ],
    '--out': [[['--id', 'BJ-A-1', '--out', 'package.json'], 'a folder; package.json is a file']],
    '--days': [[['--id', 'BJ-A-1', '--days', '36501'], 'an integer from 1 to 36500']],
  },
  'certs revoke': {
    '--dir': [[['--dir', 'package.json', '--serial', 'AB'], 'a folder; package.json is a file']],
    '--serial': [
      [['--serial', 'XYZ'], 'a certificate serial: hex'],
      [['--serial', 'A'.repeat(41)], 'at most 20 bytes'],
    ],
    '--id': [[['--id', 'BJ/1'], 'a terminal id']],
    '--file': [[['--serial', 'AB', '--file', 'src'], 'a file path; src is a folder']],
    '--serial/--id missing': [[[], '--serial or --id: which certificates to revoke']],
  },
  'dlq list': DLQ_FILTERS,
  'dlq show': { '<seq>': DLQ_SEQ },
  'dlq replay': {
    '<seq>': [...DLQ_SEQ, [['7', 'x'], 'an integer from 1 to'], [[], 'give the sequences of the dead letters to replay', 'or --all']],
    ...Object.fromEntries(Object.entries(DLQ_FILTERS).map(([flag, cases]) => [flag, cases.map(([args, ...says]) => [['--all', ...args], ...says] as Case)])),
    // The filters choose among all dead letters: with named ones they would be ignored.
    '--code/--role/--since without --all': [
      [['7', '--code', 'TF_DECODE_FAILED'], '--code: only with --all'],
      [['7', '--role', 'sink'], '--role: only with --all'],
      [['7', '--since', '2026-03-10'], '--since: only with --all'],
    ],
    'sequences and --all': [[['7', '--all'], '--all: replays every dead letter matching the filters', 'not both']],
  },
  'token-keys tokens': { '<number>': [[['123'], "command-argument value '123' is invalid for argument 'number'", 'a card number of BJ (11…), TJ (12…) or HE (13…)']] },
  'token-keys retire': {
    '<version>': [
      [['x'], "command-argument value 'x' is invalid for argument 'version'", 'an integer from 1 to 9999'],
      [['0'], "command-argument value '0' is invalid for argument 'version'"],
    ],
  },
  'bus permissions': {
    '--partitions': [
      [['--partitions', '0'], "option '--partitions <n>' argument '0' is invalid", 'an integer from 1 to 1024'],
      [['--partitions', 'x'], "option '--partitions <n>' argument 'x' is invalid"],
    ],
  },
  'bus credentials': { '<dir>': [[['package.json'], "command-argument value 'package.json' is invalid for argument 'dir'", 'a folder; package.json is a file']] },
  'store rebuild': {
    '--table': [[['--table', 'nope', '--from', '2026-11-01', '--to', '2026-11-02'], "option '--table <tables>' argument 'nope' is invalid", 'a comma-separated list of decisions']],
    '--from': [[['--table', 'decisions', '--from', 'soon', '--to', '2026-11-02'], "option '--from <time>' argument 'soon' is invalid"]],
    '--to': [[['--table', 'decisions', '--from', '2026-11-01', '--to', '2026-13-02'], "option '--to <time>' argument '2026-13-02' is invalid"]],
  },
  'medical quote': {
    '<claim.json>': [[['no-such-claim.json'], 'cannot read no-such-claim.json']],
    '--ytd-deductible-fen': [[medical('--ytd-deductible-fen', 'abc'), 'must be a non-negative integer number of fen']],
    '--ytd-fund-fen': [[medical('--ytd-fund-fen', '-1'), 'must be a non-negative integer number of fen']],
    '--person-state': [
      [medical('--person-state', 'no-such-state.json'), 'cannot read no-such-state.json'],
      [medical('--person-state', 'package.json'), 'is not a person medical state'],
    ],
    '--id-number': [[medical('--id-number', '12345'), 'must be 17 digits and a check character']],
    '--tariff-dir': [[medical('--tariff-dir', 'package.json'), 'an existing folder; package.json is a file']],
  },
};

/** Every command that runs an action, by path ("clearing report"). */
function leafCommands(cmd: Command, prefix: string[] = []): { path: string; cmd: Command }[] {
  return cmd.commands.flatMap((c) => {
    const path = [...prefix, c.name()];
    return c.commands.length > 0 ? leafCommands(c, path) : [{ path: path.join(' '), cmd: c }];
  });
}

/** The options of a command that take a value, and its arguments as <name>. */
function valueInputs(cmd: Command): string[] {
  const opts = (cmd.options as readonly Option[]).filter((o) => o.required || o.optional).map((o) => o.long!);
  const args = cmd.registeredArguments.map((a) => `<${a.name()}>`);
  return [...opts, ...args];
}

/** runCli in this process, with the CLI's own messages captured. */
async function run(argv: string[]): Promise<{ code: number; err: string; out: string }> {
  let err = '';
  let out = '';
  const code = await runCli(argv, { writeOut: (t) => (out += t), writeErr: (t) => (err += t) });
  return { code, err, out };
}

describe('cli options - the table covers the program', () => {
  const leaves = leafCommands(buildProgram());

  it('has bad-value cases for every option that takes a value and every argument', () => {
    const missing = leaves.flatMap(({ path, cmd }) => valueInputs(cmd).filter((input) => !BAD[path]?.[input]).map((input) => `${path} ${input}`));
    expect(missing, 'options without bad-value cases').toEqual([]);
  });

  it('has no cases for options or commands the program does not have', () => {
    const known = new Map(leaves.map(({ path, cmd }) => [path, valueInputs(cmd)]));
    const stale = Object.entries(BAD).flatMap(([path, byInput]) =>
      Object.keys(byInput)
        .filter((input) => !input.includes(' '))
        .filter((input) => !known.get(path)?.includes(input))
        .map((input) => `${path} ${input}`),
    );
    expect(stale).toEqual([]);
  });
});

describe('cli options - bad values are refused, naming the option and the accepted form', () => {
  const cases = Object.entries(BAD).flatMap(([path, byInput]) =>
    Object.entries(byInput).flatMap(([input, list]) => list.map(([args, ...says]) => ({ path, input, args, says }))),
  );

  it.each(cases)('tapflow $path $args', async ({ path, input, args, says }) => {
    const r = await run([...path.split(' '), ...args]);
    expect(r.code, `exit status; stderr: ${r.err}`).toBe(1);
    // The option (or argument) at fault is named: by commander, or by the command's own check.
    const named = input.startsWith('<') ? input.slice(1, -1) : input.includes(' ') ? says[0]!.split(':')[0]! : input;
    expect(r.err).toContain(named);
    for (const s of says) expect(r.err).toContain(s);
  });
});

/** Runs bin/tapflow as a user does, from `cwd`. */
function bin(args: string[], cwd = ROOT): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(ROOT, 'bin', 'tapflow'), args, { cwd, env: { ...process.env, TAPFLOW_LOG_LEVEL: 'silent' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('cli options - through bin/tapflow', { timeout: 60_000 }, () => {
  it.each([
    [['start', '--duration', 'abc'], "option '--duration <s>' argument 'abc' is invalid"],
    [['demo', '--rate', '-5'], "option '--rate <taps/s>' argument '-5' is invalid"],
    [['clearing', 'report', '--day', '2026-02-30'], "option '--day <YYYY-MM-DD>' argument '2026-02-30' is invalid"],
    [['entries', '--day', '2026-13-45'], "option '--day <YYYY-MM-DD>' argument '2026-13-45' is invalid"],
  ])('tapflow %j exits 1 before starting anything', async (args, says) => {
    const r = await bin(args);
    expect(r.stderr).toContain(says);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
  });
});
