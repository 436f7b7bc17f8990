/**
 * `tapflow fares quote` and `tapflow medical quote`: options and help. What they do is in
 * quote.ts, loaded when one runs.
 */
import { Option, type Command } from 'commander';
import { RiderCategories } from '../domain/types.js';
import { existingFolder } from './options.js';


/** Documentation of the claim file, shown by `tapflow medical quote --help`. */
export const CLAIM_FILE_HELP = `
Claim file (JSON; sample: data/medical/examples/claim-sample.json). Field names are those of the
gRPC MedicalClaim in proto3 JSON form; amounts are integer fen:
  {
    "claimId": "C-2026-0001",                       optional, default "quote"
    "institutionId": "hospital:TJ:tmu-general-hospital",   venue id (data/venues/medical.yaml)
    "institutionLevel": "TERTIARY",                 PRIMARY | SECONDARY | TERTIARY; default: the venue's
    "treatmentRegion": "TJ",                        BJ | TJ | HE; default: the venue's region
    "treatment": "OUTPATIENT",                      OUTPATIENT | INPATIENT
    "insuredRegion": "BJ",                          whose policy applies (data/medical/policies.yaml)
    "deviceTime": "2026-03-10T09:30",               epoch ms or ISO (Asia/Shanghai when no zone);
                                                    decides the calendar year; default now
    "personalAccountBalanceFen": 50000,             personal account balance; default 0
    "items": [ { "code": "ZF001", "name": "挂号费", "catalogueClass": "CLASS_A", "amountFen": 5000 } ]
                                                    catalogueClass: CLASS_A | CLASS_B | SELF_PAY, as
                                                    classed by the place of treatment
  }
"$comment" is ignored. No card number or ID number goes in the file.

The institution must be on the application project list for MEDICAL at the claim's device time,
as a venue must be for a tap: otherwise the claim is refused with the list's reason code
(VENUE_NOT_LISTED, also for unknown institutions; SCENE_NOT_LISTED; ITEM_NOT_YET_VALID;
ITEM_EXPIRED). The list is the running deployment's (JetStream KV at NATS_URL) when one answers,
else <tariff dir>/projects/default.yaml; the answer names the list version and where it came from.

Year-to-date accumulations of the person (for the claim's year and treatment type) come from
--ytd-deductible-fen / --ytd-fund-fen, or a person state file (--person-state: JSON, or the
value the settler keeps in KV as it is stored), or the live state in JetStream (--id-number, tokenised with the
deployment's token key); default: nothing accumulated yet.

Exit status: 0 with a split; 2 when the claim is refused (project list) or rejected (policy, e.g.
no policy for the region); 1 on a bad flag or file (the message names it).`;

/** Registers `tapflow fares quote` and `tapflow medical quote`. */
export function registerQuoteCommands(program: Command): void {
  const tariffDir = () => new Option('--tariff-dir <dir>', 'data folder (TAPFLOW_TARIFF_DIR)').argParser(existingFolder);

  const fares = program.command('fares').description("transit fares: quote a journey with the settlers' code and data");
  fares
    .command('quote')
    .description('print the fare of one journey with its rule trace (network, entry and exit, or a fare distance / station count)')
    .option('--network <id>', 'fare network: bj-subway, bj-bus, tj-metro, tj-bus, sjz-metro, sjz-bus (tariffs.yaml)')
    .option('--from <station>', 'entry station or stop: name (西直门), English name (Xizhimen) or venue id (bj-bus:1:0); alone: an incomplete journey')
    .option('--to <station>', 'exit station or stop')
    .option('--distance-km <km>', 'instead of --to: the fare distance in km (distance networks)')
    .option('--stations <n>', 'instead of --to: the number of stations ridden (tj-metro)')
    .option('--category <category>', `rider category: ${RiderCategories.join(', ')}`, 'ADULT')
    .option('--entry-time <time>', 'device time of the entry: epoch ms or ISO 8601 (Asia/Shanghai when no zone); default now')
    .option('--exit-time <time>', 'device time of the exit; default the entry time')
    .option('--month-to-date-fen <fen>', 'paid on this network in the calendar month before this journey: picks the monthly discount tier')
    .option('--previous-leg-network <id>', 'network of the previous leg (transfer discounts)')
    .option('--previous-leg-end <time>', 'device time the previous leg ended')
    .addOption(tariffDir())
    .option('--json', 'print the whole quote as JSON (fareFen, baseFareFen, distanceM, path, trace, …)')
    .addHelpText(
      'after',
      `
Examples:
  tapflow fares quote --network bj-subway --from 西直门 --to 国贸
  tapflow fares quote --network bj-subway --distance-km 6.1 --month-to-date-fen 10000
  tapflow fares quote --network tj-metro --stations 7 --previous-leg-network tj-bus \\
      --previous-leg-end 2026-03-10T08:00 --entry-time 2026-03-10T08:30
Amounts are integer fen (100 fen = 1 yuan).`,
    )
    .action(async (flags) => (await import('./quote.js')).faresQuote(flags));

  const medical = program.command('medical').description('medical direct settlement: quote the split of a claim');
  medical
    .command('quote <claim.json>')
    .description("print the split of a claim (pooled fund, personal account, cash) under the insured region's policy and the person's year-to-date accumulations")
    .option('--ytd-deductible-fen <fen>', 'deductible already borne this calendar year (this treatment type)')
    .option('--ytd-fund-fen <fen>', 'already paid by the pooled fund this calendar year (counts against the cap)')
    .option('--person-state <file>', 'take the accumulations from a person state file (JSON, or the settler KV value as stored)')
    .option('--id-number <id>', "take the accumulations from JetStream: the person's live state (needs NATS_URL and the token key)")
    .addOption(tariffDir())
    .option('--json', 'print the whole split as JSON (national platform field names, trace, project list)')
    .addHelpText('after', CLAIM_FILE_HELP)
    .action(async (file: string, flags) => (await import('./quote.js')).medicalQuote(file, flags));
}
