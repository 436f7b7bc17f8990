/**
 * Quoting commands for operators and clinics: `tapflow fares quote` prices one journey and
 * `tapflow medical quote` splits one medical bill. Both call exactly the pure functions the
 * settlers run per event (src/domain/settle: loadSettlerData, quoteFare, quoteClaim,
 * accumulationsOf) on the same data files (TAPFLOW_TARIFF_DIR); this module only turns flags and
 * files into their inputs and their answers into text or JSON.
 *
 * Every bad input is a {@link QuoteInputError} whose message starts with the flag (or claim file
 * field) at fault, e.g. `--from: unknown station 西直们 on bj-subway; close: 西直门 (Xizhimen)`.
 */
import { stateKeys } from '../bus/subjects.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Kvm } from '@nats-io/kv';
import { z } from 'zod';
import { loadConfig, type Config } from '../config/config.js';
import {
  accumulationsOf,
  loadSettlerData,
  quoteClaim,
  quoteFare,
  shanghaiYear,
  type FareQuote,
  type FareQuoteInput,
  type PersonMedicalState,
  type SettlerData,
  type YearToDate,
} from '../domain/settle/index.js';
import type { VenueInfo } from '../domain/network/venues.js';
import { tokenize } from '../domain/card/token.js';
import { Regions, RiderCategories, type ClaimSplit, type EpochMs, type MedicalClaimEvent, type RiderCategory, type TraceStep } from '../domain/types.js';
import { Buckets } from '../bus/subjects.js';
import { connectBus } from '../bus/connection.js';
import { ID_NUMBER_PATTERN } from '../ingest/shape.js';
import { keyFromHexOrFile } from '../runtime/keys.js';
import { createLogger } from '../observe/log.js';

/** A quote input the user got wrong; the message names the flag or field. */
export class QuoteInputError extends Error {
  override readonly name = 'QuoteInputError';
  constructor(
    /** The flag (`--from`) or claim file field (`items[0].amountFen`) at fault. */
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers (pure)

const SHANGHAI_OFFSET_MS = 8 * 3_600_000;

/**
 * A device time from a flag or file: epoch milliseconds (digits only) or ISO 8601. An ISO time
 * without a zone (`2026-03-10T08:15`, `2026-03-10`) is read in Asia/Shanghai, the zone every
 * calendar rule of tapflow uses, never in the host's zone.
 */
export function parseTime(field: string, text: string): EpochMs {
  const s = text.trim();
  if (/^\d+$/.test(s)) {
    const ms = Number(s);
    if (!Number.isSafeInteger(ms)) throw new QuoteInputError(field, `${text} is not an epoch millisecond time`);
    return ms;
  }
  let iso = s;
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) iso += 'T00:00';
  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(iso)) iso += '+08:00';
  const ms = Date.parse(iso);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(iso) || Number.isNaN(ms)) {
    throw new QuoteInputError(field, `${text} is not a time: give epoch ms or ISO 8601 (2026-03-10T08:15, read in Asia/Shanghai, or with Z / +08:00)`);
  }
  return ms;
}

/** A non-negative integer amount of fen. */
export function parseFen(field: string, text: string): number {
  const s = text.trim();
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new QuoteInputError(field, `must be a non-negative integer number of fen, got ${text}`);
  return Number(s);
}

function parsePositiveInt(field: string, text: string): number {
  const s = text.trim();
  if (!/^\d+$/.test(s) || Number(s) < 1 || !Number.isSafeInteger(Number(s))) throw new QuoteInputError(field, `must be a positive integer, got ${text}`);
  return Number(s);
}

function parseKm(field: string, text: string): number {
  const s = text.trim();
  const km = Number(s);
  if (s === '' || !/^\d*\.?\d+$/.test(s) || !Number.isFinite(km)) throw new QuoteInputError(field, `must be a distance in km (e.g. 6.1), got ${text}`);
  return km;
}

function parseCategory(field: string, text: string): RiderCategory {
  const c = text.trim().toUpperCase();
  if (!(RiderCategories as readonly string[]).includes(c)) throw new QuoteInputError(field, `must be one of ${RiderCategories.join(', ')}, got ${text}`);
  return c as RiderCategory;
}

/** Levenshtein distance over code points (station names are Chinese). */
function editDistance(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[y.length]!;
}

/** Lower case, no spaces, no parenthesised notes: "Pingguoyuan (renovation)" → "pingguoyuan". */
const normalise = (s: string) => s.toLowerCase().replace(/\(.*?\)|（.*?）/g, '').replace(/[\s'’-]+/g, '');

/** The names a venue answers to on the command line. */
function namesOf(v: VenueInfo, network: string): string[] {
  const names = [v.id, v.id.slice(network.length + 1)];
  if (v.station) names.push(v.station);
  if (v.nameEn) names.push(v.nameEn);
  return names;
}

function label(v: VenueInfo): string {
  if (v.kind === 'bus-stop') return `${v.id} (${v.name})`;
  return v.nameEn ? `${v.station ?? v.name} (${v.nameEn})` : (v.station ?? v.name);
}

/**
 * Up to `n` venues of the list whose names are closest to `query` (edit distance on the
 * normalised names, or containing each other), best first.
 */
export function closeVenues(venues: readonly VenueInfo[], network: string, query: string, n = 5): VenueInfo[] {
  const q = normalise(query);
  const scored: { v: VenueInfo; d: number }[] = [];
  for (const v of venues) {
    let best = Infinity;
    for (const name of namesOf(v, network)) {
      const m = normalise(name);
      if (m.length === 0) continue;
      const d = m.includes(q) || q.includes(m) ? Math.abs(m.length - q.length) / 2 : editDistance(q, m);
      best = Math.min(best, d);
    }
    if (best <= Math.max(2, Math.ceil(q.length / 2))) scored.push({ v, d: best });
  }
  scored.sort((a, b) => a.d - b.d || a.v.id.localeCompare(b.v.id));
  return scored.slice(0, n).map((s) => s.v);
}

/**
 * The venue id of a station or stop given on the command line: a venue id (`bj-subway:西直门`,
 * `bj-bus:1:2`), a name within the network (`西直门`, `1:2`), or an English name (`Xizhimen`,
 * case and spaces ignored). Throws naming the flag, with close names, when nothing or more than
 * one venue matches.
 */
export function resolveVenue(data: SettlerData, network: string, field: string, text: string): string {
  const onNetwork = [...data.venues.all()].filter((v) => (v as VenueInfo).network === network) as VenueInfo[];
  const direct = data.venues.info(text) ?? data.venues.info(`${network}:${text}`);
  if (direct) {
    if (direct.network !== network) throw new QuoteInputError(field, `${text} is a venue of ${direct.network ?? direct.scene}, not of ${network}`);
    return direct.id;
  }
  const q = normalise(text);
  const matches = onNetwork.filter((v) => namesOf(v, network).some((n) => normalise(n) === q));
  if (matches.length === 1) return matches[0]!.id;
  if (matches.length > 1) throw new QuoteInputError(field, `${text} names ${matches.length} stops on ${network}; give one of ${matches.map((v) => v.id).join(', ')}`);
  const close = closeVenues(onNetwork, network, text);
  const hint = close.length > 0 ? `; close: ${close.map(label).join(', ')}` : onNetwork.length > 0 ? `; e.g. ${onNetwork.slice(0, 3).map(label).join(', ')}` : '';
  throw new QuoteInputError(field, `unknown station ${text} on ${network}${hint}`);
}

// ---------------------------------------------------------------------------------------------
// fares quote

/** The flags of `tapflow fares quote`, as commander gives them (strings). */
export interface FareQuoteFlags {
  network?: string;
  from?: string;
  to?: string;
  distanceKm?: string;
  stations?: string;
  category?: string;
  entryTime?: string;
  exitTime?: string;
  monthToDateFen?: string;
  previousLegNetwork?: string;
  previousLegEnd?: string;
}

/**
 * Turns the flags into the input of {@link quoteFare}, checking each against the tariff of the
 * network. `nowMs` is the default entry time.
 */
export function fareQuoteInput(data: SettlerData, f: FareQuoteFlags, nowMs: EpochMs): FareQuoteInput {
  const known = [...data.tariffs.networks.keys()];
  if (!f.network) throw new QuoteInputError('--network', `required; one of ${known.join(', ')}`);
  const tariff = data.tariffs.networks.get(f.network);
  if (!tariff) throw new QuoteInputError('--network', `unknown network ${f.network}; known: ${known.join(', ')}`);
  const network = f.network;
  const q: FareQuoteInput = { network, entryTime: f.entryTime !== undefined ? parseTime('--entry-time', f.entryTime) : nowMs };

  if (f.distanceKm !== undefined && f.stations !== undefined) throw new QuoteInputError('--stations', 'give --distance-km or --stations, not both');
  const measured = f.distanceKm !== undefined ? '--distance-km' : f.stations !== undefined ? '--stations' : undefined;
  if (tariff.pairing === 'single') {
    // Tap-once networks charge a flat fare: an exit or a distance would be silently ignored.
    for (const [flag, v] of [['--to', f.to], ['--distance-km', f.distanceKm], ['--stations', f.stations], ['--exit-time', f.exitTime]] as const) {
      if (v !== undefined) throw new QuoteInputError(flag, `${network} is a tap-once network (flat fare ${tariff.flatFen ?? 0} fen): no exit or distance`);
    }
  } else {
    if (measured && f.to !== undefined) throw new QuoteInputError(measured, `give --to or ${measured}, not both (from and to give the fare distance)`);
    if (f.distanceKm !== undefined && tariff.basis === 'stations') throw new QuoteInputError('--distance-km', `${network} fares by station count: give --stations`);
    if (f.stations !== undefined && tariff.basis !== 'stations') throw new QuoteInputError('--stations', `${network} fares by distance: give --distance-km`);
    if (f.to !== undefined && f.from === undefined) throw new QuoteInputError('--from', 'required with --to');
    if (f.from === undefined && f.to === undefined && !measured) throw new QuoteInputError('--to', `give --from and --to, or ${tariff.basis === 'stations' ? '--stations' : '--distance-km'}`);
  }
  if (f.from !== undefined) q.from = resolveVenue(data, network, '--from', f.from);
  if (f.to !== undefined) q.to = resolveVenue(data, network, '--to', f.to);
  if (f.distanceKm !== undefined) q.distanceKm = parseKm('--distance-km', f.distanceKm);
  if (f.stations !== undefined) q.stationCount = parsePositiveInt('--stations', f.stations);
  if (f.category !== undefined) q.category = parseCategory('--category', f.category);
  if (f.exitTime !== undefined) {
    q.exitTime = parseTime('--exit-time', f.exitTime);
    if (q.exitTime < q.entryTime) throw new QuoteInputError('--exit-time', 'is before --entry-time');
  }
  if (f.monthToDateFen !== undefined) {
    if (!tariff.monthlyTiers) throw new QuoteInputError('--month-to-date-fen', `${network} has no monthly spend discount`);
    q.monthToDateFen = parseFen('--month-to-date-fen', f.monthToDateFen);
  }
  if ((f.previousLegNetwork === undefined) !== (f.previousLegEnd === undefined)) {
    throw new QuoteInputError(f.previousLegNetwork === undefined ? '--previous-leg-network' : '--previous-leg-end', 'give both --previous-leg-network and --previous-leg-end');
  }
  if (f.previousLegNetwork !== undefined && f.previousLegEnd !== undefined) {
    if (!data.tariffs.networks.has(f.previousLegNetwork)) throw new QuoteInputError('--previous-leg-network', `unknown network ${f.previousLegNetwork}; known: ${known.join(', ')}`);
    const end = parseTime('--previous-leg-end', f.previousLegEnd);
    if (end > q.entryTime) throw new QuoteInputError('--previous-leg-end', 'is after the entry time of this journey');
    q.previousLeg = { network: f.previousLegNetwork, endTime: end };
  }
  return q;
}

const yuan = (f: number) => `¥${(f / 100).toFixed(2)}`;
/** "2026-03-10 08:15" in Asia/Shanghai. */
const local = (ms: number) => new Date(ms + SHANGHAI_OFFSET_MS).toISOString().slice(0, 16).replace('T', ' ');

function traceLines(trace: readonly TraceStep[]): string[] {
  const w = Math.max(0, ...trace.map((t) => t.rule.length));
  return trace.map((t) => `  ${t.rule.padEnd(w)}  ${t.detail}  [${t.version}]`);
}

/** The human-readable answer of `tapflow fares quote`. */
export function formatFareQuote(data: SettlerData, input: FareQuoteInput, q: FareQuote): string {
  const name = (id: string | undefined) => {
    const v = id ? data.venues.info(id) : undefined;
    return v ? label(v) : id;
  };
  const exitT = input.exitTime ?? input.entryTime;
  const what = input.from && input.to ? `${name(input.from)} → ${name(input.to)}` : input.from && input.distanceKm === undefined && input.stationCount === undefined ? `${name(input.from)}, no exit` : input.from ? `from ${name(input.from)}` : 'fare by measure';
  const lines = [
    `${q.network}: ${what} (${input.category ?? 'ADULT'})`,
    `  entry ${local(input.entryTime)}${exitT !== input.entryTime ? `, exit ${local(exitT)}` : ''} (Asia/Shanghai)`,
    `fare        ${q.fareFen} fen (${yuan(q.fareFen)})`,
    `list price  ${q.baseFareFen} fen (${yuan(q.baseFareFen)})`,
  ];
  if (q.distanceM > 0 || q.stationCount !== undefined) {
    const parts = [];
    if (q.distanceM > 0) parts.push(`${(q.distanceM / 1000).toFixed(3)} km${q.estimated ? ' (estimated from coordinates)' : ''}`);
    if (q.stationCount !== undefined) parts.push(`${q.stationCount} stations`);
    lines.push(`distance    ${parts.join(', ')}`);
  }
  if (input.monthToDateFen !== undefined || q.monthToDateAfterFen !== undefined) {
    lines.push(`month spend ${input.monthToDateFen ?? 0} → ${q.monthToDateAfterFen ?? input.monthToDateFen ?? 0} fen`);
  }
  lines.push(`tariff      ${q.tariffVersion}`, 'trace', ...traceLines(q.trace));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// medical quote

/** Epoch ms, or ISO 8601 (Asia/Shanghai when no zone). */
const TimeField = z.union([z.number().int().nonnegative(), z.string().min(1)]);

/**
 * The claim file of `tapflow medical quote` (JSON). Field names are those of the gRPC
 * MedicalClaim in proto3 JSON form (lowerCamelCase, enum names as strings); the card and the ID
 * number are not needed for a quote and not accepted here (no personal data in files).
 */
const ClaimFileSchema = z
  .object({
    /** Free text, ignored (JSON has no comments). */
    $comment: z.string().optional(),
    /** @default "quote" */
    claimId: z.string().min(1).max(128).optional(),
    /** Venue id of the institution, e.g. hospital:TJ:tmu-general-hospital. */
    institutionId: z.string().min(1),
    /** @default the institution's level in data/venues/medical.yaml */
    institutionLevel: z.enum(['PRIMARY', 'SECONDARY', 'TERTIARY']).optional(),
    /** Region of the place of treatment. @default the institution's region */
    treatmentRegion: z.enum(Regions).optional(),
    treatment: z.enum(['OUTPATIENT', 'INPATIENT']),
    insuredRegion: z.enum(Regions),
    /** Decides the calendar year of the accumulations. @default now */
    deviceTime: TimeField.optional(),
    /** @default 0 */
    personalAccountBalanceFen: z.number().int().nonnegative().optional(),
    items: z
      .array(
        z
          .object({
            code: z.string().min(1),
            name: z.string().optional(),
            catalogueClass: z.enum(['CLASS_A', 'CLASS_B', 'SELF_PAY']),
            amountFen: z.number().int().nonnegative(),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

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

Year-to-date accumulations of the person (for the claim's year and treatment type) come from
--ytd-deductible-fen / --ytd-fund-fen, or a person state file (--person-state, the JSON the
settler keeps in KV), or the live state in JetStream (--id-number, tokenised with the
deployment's token key); default: nothing accumulated yet.

Exit status: 0 with a split, 2 when the policy rejects the claim (e.g. no policy for the region),
1 on a bad flag or file (the message names it).`;

/** Parses and checks a claim file, filling defaults from the venue directory. */
export function parseClaimFile(data: SettlerData, text: string, file: string, nowMs: EpochMs): MedicalClaimEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new QuoteInputError(file, `not JSON: ${(err as Error).message}`);
  }
  const parsed = ClaimFileSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    const path = i.path.map((p, k) => (typeof p === 'number' ? `[${p}]` : `${k > 0 ? '.' : ''}${String(p)}`)).join('') || '(top level)';
    const keys = i.code === 'unrecognized_keys' ? ` ${(i as { keys: string[] }).keys.join(', ')}` : '';
    throw new QuoteInputError(`${file}: ${path}`, `${i.message}${keys}`);
  }
  const c = parsed.data;
  const venue = data.venues.info(c.institutionId);
  if (venue && venue.scene !== 'MEDICAL') throw new QuoteInputError(`${file}: institutionId`, `${c.institutionId} is a ${venue.kind}, not a medical institution`);
  const level = c.institutionLevel ?? venue?.institutionLevel;
  const region = c.treatmentRegion ?? venue?.region;
  if (!level || !region) {
    throw new QuoteInputError(`${file}: institutionId`, `unknown institution ${c.institutionId}: give institutionLevel and treatmentRegion, or use a venue id of data/venues/medical.yaml`);
  }
  const deviceTime = c.deviceTime === undefined ? nowMs : typeof c.deviceTime === 'number' ? c.deviceTime : parseTime(`${file}: deviceTime`, c.deviceTime);
  return {
    claimId: c.claimId ?? 'quote',
    terminalId: '',
    institutionId: c.institutionId,
    institutionLevel: level,
    treatment: c.treatment,
    cardToken: '',
    personToken: '',
    insuredRegion: c.insuredRegion,
    treatmentRegion: region,
    deviceTime,
    ingestTime: nowMs,
    items: c.items.map((it) => ({ code: it.code, name: it.name ?? '', catalogueClass: it.catalogueClass, amountFen: it.amountFen })),
    reversesClaimId: '',
    personalAccountBalanceFen: c.personalAccountBalanceFen ?? 0,
    partition: 0,
  };
}

/** The flags of `tapflow medical quote`. */
export interface MedicalQuoteFlags {
  ytdDeductibleFen?: string;
  ytdFundFen?: string;
  personState?: string;
  idNumber?: string;
}

/** Where the year-to-date amounts came from, for the answer. */
export interface YearToDateSource {
  ytd: YearToDate;
  source: string;
  claims?: number;
}

/** Reads a person's medical state (a KV value of the settler state bucket) from JetStream. */
async function livePersonState(cfg: Config, idNumber: string): Promise<PersonMedicalState | undefined> {
  const keyFile = join(cfg.TAPFLOW_DATA_DIR, 'keys', 'token.key');
  if (!cfg.TAPFLOW_TOKEN_KEY && !existsSync(keyFile)) {
    throw new QuoteInputError('--id-number', `no token key (TAPFLOW_TOKEN_KEY unset and no ${keyFile}): cannot find the person's state`);
  }
  const token = tokenize(keyFromHexOrFile(cfg.TAPFLOW_TOKEN_KEY, cfg.TAPFLOW_DATA_DIR, 'token'), 'person', idNumber);
  const log = createLogger('error', { app: 'tapflow-cli' });
  let bus;
  try {
    bus = await connectBus(cfg.NATS_URL, 'tapflow-cli-medical-quote', log, 3000);
  } catch (err) {
    throw new QuoteInputError('--id-number', `the accumulations live in JetStream and ${(err as Error).message}; start tapflow or give --ytd-deductible-fen / --ytd-fund-fen`);
  }
  try {
    // Open, never create: a lookup must not change the deployment.
    const kv = await new Kvm(bus.js).open(Buckets.SETTLER_STATE);
    const e = await kv.get(stateKeys.person(token));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    return JSON.parse(new TextDecoder().decode(e.value)) as PersonMedicalState;
  } finally {
    await bus.close();
  }
}

/** The year-to-date amounts a quote applies, from the flags (pure except for --id-number). */
export async function yearToDate(cfg: Config, f: MedicalQuoteFlags, claim: MedicalClaimEvent, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): Promise<YearToDateSource> {
  const fromFlags = f.ytdDeductibleFen !== undefined || f.ytdFundFen !== undefined;
  const sources = [fromFlags && '--ytd-deductible-fen/--ytd-fund-fen', f.personState !== undefined && '--person-state', f.idNumber !== undefined && '--id-number'].filter(Boolean);
  if (sources.length > 1) throw new QuoteInputError(f.idNumber !== undefined ? '--id-number' : '--person-state', `give one source of accumulations, not ${sources.join(' and ')}`);
  if (fromFlags) {
    const ytd: YearToDate = {};
    if (f.ytdDeductibleFen !== undefined) ytd.deductibleFen = parseFen('--ytd-deductible-fen', f.ytdDeductibleFen);
    if (f.ytdFundFen !== undefined) ytd.fundFen = parseFen('--ytd-fund-fen', f.ytdFundFen);
    return { ytd, source: 'given by --ytd-deductible-fen/--ytd-fund-fen' };
  }
  let state: PersonMedicalState | undefined;
  let source = 'no accumulations given';
  if (f.personState !== undefined) {
    let text: string;
    try {
      text = readFile(f.personState);
    } catch (err) {
      throw new QuoteInputError('--person-state', `cannot read ${f.personState}: ${(err as Error).message}`);
    }
    try {
      state = JSON.parse(text) as PersonMedicalState;
    } catch (err) {
      throw new QuoteInputError('--person-state', `${f.personState} is not JSON: ${(err as Error).message}`);
    }
    if (!state || state.v !== 1 || typeof state.years !== 'object') throw new QuoteInputError('--person-state', `${f.personState} is not a person medical state ({"v":1,"years":{…},"claims":{…}})`);
    source = `person state ${f.personState}`;
  } else if (f.idNumber !== undefined) {
    if (!ID_NUMBER_PATTERN.test(f.idNumber)) throw new QuoteInputError('--id-number', 'must be 17 digits and a check character (0-9 or X)');
    state = await livePersonState(cfg, f.idNumber);
    source = state ? 'JetStream (settler state)' : 'JetStream (no claims of this person yet)';
  }
  const year = shanghaiYear(claim.deviceTime);
  const acc = accumulationsOf(state, year, claim.treatment);
  const out: YearToDateSource = { ytd: { deductibleFen: acc.deductibleFen, fundFen: acc.fundFen }, source };
  if (state) out.claims = acc.claims;
  return out;
}

const SPLIT_FIELDS = [
  ['medfee_sumamt', 'total of the bill'],
  ['fulamt_ownpay_amt', 'self-pay items'],
  ['preselfpay_amt', 'class B first share'],
  ['inscp_scp_amt', 'in scope'],
  ['deductible_amt', 'under the deductible'],
  ['hifp_pay', 'pooled fund'],
  ['acct_pay', 'personal account'],
  ['cash_payamt', 'cash'],
  ['over_cap_amt', 'above the annual cap'],
] as const satisfies readonly (readonly [keyof ClaimSplit, string])[];

/** The human-readable answer of `tapflow medical quote`. */
export function formatClaimQuote(data: SettlerData, claim: MedicalClaimEvent, y: YearToDateSource, q: ClaimSplit & { trace: TraceStep[] }): string {
  const inst = data.venues.info(claim.institutionId);
  const lines = [
    `claim ${claim.claimId}: ${claim.insuredRegion}-insured, ${claim.treatment.toLowerCase()} at ${inst ? `${inst.name} (${claim.institutionId})` : claim.institutionId}, ${claim.institutionLevel}, treated in ${claim.treatmentRegion}`,
    `policy ${q.policy_version}${data.medical.illustrative ? ' (ILLUSTRATIVE values, not the official tables)' : ''}`,
    `year to date ${shanghaiYear(claim.deviceTime)} ${claim.treatment.toLowerCase()}: deductible borne ${y.ytd.deductibleFen ?? 0} fen, fund paid ${y.ytd.fundFen ?? 0} fen${y.claims !== undefined ? `, ${y.claims} claim(s)` : ''} (${y.source})`,
    `status ${q.status}${q.status !== 'SETTLED' ? `: ${q.reason}` : ''}`,
  ];
  const w = Math.max(...SPLIT_FIELDS.map(([f]) => f.length));
  const nw = Math.max(...SPLIT_FIELDS.map(([f]) => String(q[f]).length));
  for (const [f, what] of SPLIT_FIELDS) lines.push(`  ${f.padEnd(w)}  ${String(q[f]).padStart(nw)} fen  ${yuan(q[f]).padStart(12)}  ${what}`);
  lines.push(`  hifp_pay + acct_pay + cash_payamt = ${q.hifp_pay + q.acct_pay + q.cash_payamt} fen`, 'trace', ...traceLines(q.trace));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// registration

function settlerData(dir: string): SettlerData {
  try {
    return loadSettlerData(dir);
  } catch (err) {
    throw new Error(`cannot load the tariff data from ${dir}: ${(err as Error).message} (set --tariff-dir or TAPFLOW_TARIFF_DIR)`);
  }
}

/** Registers `tapflow fares quote` and `tapflow medical quote`. */
export function registerQuoteCommands(program: Command): void {
  const fares = program.command('fares').description('transit fares: quote a journey with the settlers\' code and data');
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
    .option('--month-to-date-fen <fen>', 'paid on this network in the calendar month before this journey (monthly discount)')
    .option('--previous-leg-network <id>', 'network of the previous leg (transfer discounts)')
    .option('--previous-leg-end <time>', 'device time the previous leg ended')
    .option('--tariff-dir <dir>', 'data folder (TAPFLOW_TARIFF_DIR)')
    .option('--json', 'print the whole quote as JSON (fareFen, baseFareFen, distanceM, path, trace, …)')
    .addHelpText(
      'after',
      `
Examples:
  tapflow fares quote --network bj-subway --from 西直门 --to 国贸
  tapflow fares quote --network bj-subway --distance-km 6.1 --month-to-date-fen 9900
  tapflow fares quote --network tj-metro --stations 7 --previous-leg-network tj-bus \\
      --previous-leg-end 2026-03-10T08:00 --entry-time 2026-03-10T08:30
Amounts are integer fen (100 fen = 1 yuan).`,
    )
    .action((flags: FareQuoteFlags & { tariffDir?: string; json?: boolean }) => {
      const cfg = loadConfig(process.env, { TAPFLOW_TARIFF_DIR: flags.tariffDir });
      const data = settlerData(cfg.TAPFLOW_TARIFF_DIR);
      const input = fareQuoteInput(data, flags, Date.now());
      const q = quoteFare(data, input);
      console.log(flags.json ? JSON.stringify(q, null, 2) : formatFareQuote(data, input, q));
    });

  const medical = program.command('medical').description('medical direct settlement: quote the split of a claim');
  medical
    .command('quote <claim.json>')
    .description("print the split of a claim (pooled fund, personal account, cash) under the insured region's policy and the person's year-to-date accumulations")
    .option('--ytd-deductible-fen <fen>', 'deductible already borne this calendar year (this treatment type)')
    .option('--ytd-fund-fen <fen>', 'already paid by the pooled fund this calendar year (counts against the cap)')
    .option('--person-state <file>', 'take the accumulations from a person state JSON (the settler KV value)')
    .option('--id-number <id>', "take the accumulations from JetStream: the person's live state (needs NATS_URL and the token key)")
    .option('--tariff-dir <dir>', 'data folder (TAPFLOW_TARIFF_DIR)')
    .option('--json', 'print the whole split as JSON (national platform field names, trace)')
    .addHelpText('after', CLAIM_FILE_HELP)
    .action(async (file: string, flags: MedicalQuoteFlags & { tariffDir?: string; json?: boolean }) => {
      const cfg = loadConfig(process.env, { TAPFLOW_TARIFF_DIR: flags.tariffDir });
      const data = settlerData(cfg.TAPFLOW_TARIFF_DIR);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new QuoteInputError('<claim.json>', `cannot read ${file}: ${(err as Error).message}`);
      }
      const claim = parseClaimFile(data, text, file, Date.now());
      const y = await yearToDate(cfg, flags, claim);
      const q = quoteClaim(data, claim, y.ytd);
      console.log(flags.json ? JSON.stringify({ ...q, yearToDate: { ...y.ytd, source: y.source } }, null, 2) : formatClaimQuote(data, claim, y, q));
      if (q.status === 'REJECTED') process.exitCode = 2;
    });
}
