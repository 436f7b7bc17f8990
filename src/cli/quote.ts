/**
 * What `tapflow fares quote` and `tapflow medical quote` do (their options and help are in
 * quote-commands.ts): price one journey, split one medical bill. Both call exactly the pure
 * functions the settlers run per event (src/domain/settle: loadSettlerData, quoteFare,
 * quoteClaim, accumulationsOf) on the same data files (TAPFLOW_TARIFF_DIR); this module only
 * turns flags and files into their inputs and their answers into text or JSON. A medical quote
 * also checks the institution against the application project list, as validators check a tap.
 *
 * Every bad input is a {@link QuoteInputError} whose message starts with the flag (or claim file
 * field) at fault, e.g. `--from: unknown station 西直们 on bj-subway; close: 西直门 (Xizhimen)`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
import { partitionOf, tokenize } from '../domain/card/token.js';
import { lookupProject, parseProjectList, projectListFromData, type ProjectList, type ProjectRejection } from '../domain/validate/index.js';
import { Regions, type ClaimSplit, type EpochMs, type MedicalClaimEvent, type RiderCategory, RiderCategories, type TraceStep } from '../domain/types.js';
import { Buckets, stateKeys } from '../bus/subjects.js';
import { stateCodec, readDurableKey } from '../bus/partition-state.js';
import { deployedPartitions } from '../bus/topology.js';
import { connectBus, type Bus } from '../bus/connection.js';
import { busAuth } from '../bus/credentials.js';
import { ID_NUMBER_PATTERN } from '../ingest/shape.js';
import { keyFromHexOrFile } from '../runtime/keys.js';
import { isNatsReachable } from '../runtime/nats-server.js';
import { createLogger } from '../observe/log.js';
import { getProjectListDoc } from '../validate/data-store.js';
import { INSTANT_FORMS, parseInstantText } from './options.js';
import { ExitStatus } from './exit-status.js';

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
 * calendar rule of tapflow uses, never in the host's zone; days that do not exist are refused.
 */
export function parseTime(field: string, text: string): EpochMs {
  const ms = parseInstantText(text);
  if (ms === undefined) throw new QuoteInputError(field, `${text} is not a time: give ${INSTANT_FORMS}`);
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

type ClaimFile = z.output<typeof ClaimFileSchema>;

/** Parses and checks a claim file against its schema (no data needed). */
export function readClaimFile(text: string, file: string): ClaimFile {
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
  return parsed.data;
}

/** The claim's device time (default `nowMs`): it decides the calendar year and the list item's validity. */
export function claimDeviceTime(c: ClaimFile, file: string, nowMs: EpochMs): EpochMs {
  return c.deviceTime === undefined ? nowMs : typeof c.deviceTime === 'number' ? c.deviceTime : parseTime(`${file}: deviceTime`, c.deviceTime);
}

/** The settler's claim event of a checked claim file, with defaults from the venue directory. */
export function claimEvent(data: SettlerData, c: ClaimFile, file: string, nowMs: EpochMs): MedicalClaimEvent {
  const venue = data.venues.info(c.institutionId);
  if (venue && venue.scene !== 'MEDICAL') throw new QuoteInputError(`${file}: institutionId`, `${c.institutionId} is a ${venue.kind}, not a medical institution`);
  const level = c.institutionLevel ?? venue?.institutionLevel;
  const region = c.treatmentRegion ?? venue?.region;
  if (!level || !region) {
    throw new QuoteInputError(`${file}: institutionId`, `unknown institution ${c.institutionId}: give institutionLevel and treatmentRegion, or use a venue id of data/venues/medical.yaml`);
  }
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
    deviceTime: claimDeviceTime(c, file, nowMs),
    ingestTime: nowMs,
    items: c.items.map((it) => ({ code: it.code, name: it.name ?? '', catalogueClass: it.catalogueClass, amountFen: it.amountFen })),
    reversesClaimId: '',
    personalAccountBalanceFen: c.personalAccountBalanceFen ?? 0,
    partition: 0,
  };
}

/** Parses and checks a claim file, filling defaults from the venue directory. */
export function parseClaimFile(data: SettlerData, text: string, file: string, nowMs: EpochMs): MedicalClaimEvent {
  return claimEvent(data, readClaimFile(text, file), file, nowMs);
}

// ---------------------------------------------------------------------------------------------
// The application project list of a medical quote

/** The project list a medical quote is checked against, and where it came from. */
export interface QuoteProjectList {
  list: ProjectList;
  /** "JetStream KV tapflow_projects at nats://…", or the file and why it was used. */
  source: string;
}

/**
 * Connects to the deployment's NATS when one answers at NATS_URL (no local server is started:
 * a quote must not change the machine). Undefined when none answers.
 */
async function deploymentBus(cfg: Config, client: string): Promise<Bus | undefined> {
  if (!(await isNatsReachable(cfg.NATS_URL, 1000))) return undefined;
  return connectBus(cfg.NATS_URL, client, createLogger('error', { app: 'tapflow-cli' }), 3000, busAuth(cfg, 'admin')).catch(() => undefined);
}

/**
 * The list validators use: the running deployment's (KV bucket tapflow_projects, key
 * "current") when NATS answers at NATS_URL and holds one, else `<tariff dir>/projects/default.yaml`,
 * the list a deployment starts with.
 */
export async function quoteProjectList(cfg: Config): Promise<QuoteProjectList> {
  const file = join(cfg.TAPFLOW_TARIFF_DIR, 'projects', 'default.yaml');
  const fromFile = (why: string): QuoteProjectList => {
    try {
      return { list: parseProjectList(readFileSync(file, 'utf8'), 'yaml'), source: `${file} (${why})` };
    } catch (err) {
      throw new Error(`cannot read the application project list ${file}: ${(err as Error).message} (set --tariff-dir or TAPFLOW_TARIFF_DIR)`);
    }
  };
  const bus = await deploymentBus(cfg, 'tapflow-cli-medical-quote');
  if (!bus) return fromFile(`no NATS server answers at ${cfg.NATS_URL}`);
  try {
    // Open, never create: a lookup must not change the deployment. A missing bucket fails here.
    const doc = await getProjectListDoc(await new Kvm(bus.js).open(Buckets.PROJECTS)).catch(() => undefined);
    if (doc === undefined) return fromFile(`no project list in JetStream at ${cfg.NATS_URL}`);
    return { list: projectListFromData(doc), source: `JetStream KV ${Buckets.PROJECTS} at ${cfg.NATS_URL}` };
  } finally {
    await bus.close();
  }
}

/**
 * Whether the institution may settle claims at the claim's device time, with the list's reason
 * code when not: VENUE_NOT_LISTED (unknown institutions too), SCENE_NOT_LISTED (listed, not for
 * MEDICAL), ITEM_NOT_YET_VALID, ITEM_EXPIRED. A claim names no card form, so the item's forms are
 * not checked.
 */
export function claimListing(list: ProjectList, institutionId: string, deviceTime: EpochMs): { ok: true } | { ok: false; reason: ProjectRejection; detail: string } {
  // Any form: FORM_NOT_ACCEPTED for it means the item matched and is valid.
  const r = lookupProject(list, institutionId, 'MEDICAL', 'CHIP', deviceTime);
  return r.ok || r.reason === 'FORM_NOT_ACCEPTED' ? { ok: true } : { ok: false, reason: r.reason, detail: r.detail };
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
    bus = await connectBus(cfg.NATS_URL, 'tapflow-cli-medical-quote', log, 3000, busAuth(cfg, 'admin'));
  } catch (err) {
    throw new QuoteInputError('--id-number', `the accumulations live in JetStream and ${(err as Error).message}; start tapflow or give --ytd-deductible-fen / --ytd-fund-fen`);
  }
  try {
    // Open, never create: a lookup must not change the deployment. The settler's latest changes
    // are in its changelog until the next checkpoint writes them to the bucket.
    const kv = await new Kvm(bus.js).open(Buckets.SETTLER_STATE);
    const partition = partitionOf(token, (await deployedPartitions(bus)) ?? cfg.TAPFLOW_PARTITIONS);
    return await readDurableKey(bus, kv, 'settler', partition, stateKeys.person(token), stateCodec<PersonMedicalState>());
  } finally {
    await bus.close();
  }
}

/** Where a quote's year-to-date amounts come from, checked from the flags (before any lookup). */
export type AccumulationSource =
  | { kind: 'flags'; ytd: YearToDate }
  | { kind: 'file'; file: string; state: PersonMedicalState }
  | { kind: 'live'; idNumber: string }
  | { kind: 'none' };

/** Checks the accumulation flags: one source at most, amounts, the state file, the ID number. */
export function accumulationSource(f: MedicalQuoteFlags, readFile: (p: string) => Uint8Array = (p) => readFileSync(p)): AccumulationSource {
  const fromFlags = f.ytdDeductibleFen !== undefined || f.ytdFundFen !== undefined;
  const sources = [fromFlags && '--ytd-deductible-fen/--ytd-fund-fen', f.personState !== undefined && '--person-state', f.idNumber !== undefined && '--id-number'].filter(Boolean);
  if (sources.length > 1) throw new QuoteInputError(f.idNumber !== undefined ? '--id-number' : '--person-state', `give one source of accumulations, not ${sources.join(' and ')}`);
  if (fromFlags) {
    const ytd: YearToDate = {};
    if (f.ytdDeductibleFen !== undefined) ytd.deductibleFen = parseFen('--ytd-deductible-fen', f.ytdDeductibleFen);
    if (f.ytdFundFen !== undefined) ytd.fundFen = parseFen('--ytd-fund-fen', f.ytdFundFen);
    return { kind: 'flags', ytd };
  }
  if (f.personState !== undefined) {
    let bytes: Uint8Array;
    try {
      bytes = readFile(f.personState);
    } catch (err) {
      throw new QuoteInputError('--person-state', `cannot read ${f.personState}: ${(err as Error).message}`);
    }
    // JSON, or the settler's KV value as it is stored (MessagePack).
    let state: PersonMedicalState;
    try {
      state = stateCodec<PersonMedicalState>().decode(bytes);
    } catch (err) {
      throw new QuoteInputError('--person-state', `${f.personState} is neither JSON nor a stored state: ${(err as Error).message}`);
    }
    if (!state || state.v !== 1 || typeof state.years !== 'object') throw new QuoteInputError('--person-state', `${f.personState} is not a person medical state ({"v":1,"years":{…},"claims":{…}})`);
    return { kind: 'file', file: f.personState, state };
  }
  if (f.idNumber !== undefined) {
    if (!ID_NUMBER_PATTERN.test(f.idNumber)) throw new QuoteInputError('--id-number', 'must be 17 digits and a check character (0-9 or X)');
    return { kind: 'live', idNumber: f.idNumber };
  }
  return { kind: 'none' };
}

/** The year-to-date amounts a quote applies for the claim's year and treatment (a lookup for --id-number). */
export async function yearToDate(cfg: Config, src: AccumulationSource, claim: MedicalClaimEvent): Promise<YearToDateSource> {
  if (src.kind === 'flags') return { ytd: src.ytd, source: 'given by --ytd-deductible-fen/--ytd-fund-fen' };
  let state: PersonMedicalState | undefined;
  let source = 'no accumulations given';
  if (src.kind === 'file') {
    state = src.state;
    source = `person state ${src.file}`;
  } else if (src.kind === 'live') {
    state = await livePersonState(cfg, src.idNumber);
    source = state ? 'JetStream (settler state)' : 'JetStream (no claims of this person yet)';
  }
  const acc = accumulationsOf(state, shanghaiYear(claim.deviceTime), claim.treatment);
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
export function formatClaimQuote(
  data: SettlerData,
  claim: MedicalClaimEvent,
  y: YearToDateSource,
  q: ClaimSplit & { trace: TraceStep[] },
  projectList?: { version: string; source: string },
): string {
  const inst = data.venues.info(claim.institutionId);
  const lines = [
    `claim ${claim.claimId}: ${claim.insuredRegion}-insured, ${claim.treatment.toLowerCase()} at ${inst ? `${inst.name} (${claim.institutionId})` : claim.institutionId}, ${claim.institutionLevel}, treated in ${claim.treatmentRegion}`,
    ...(projectList ? [`project list ${projectList.version}: listed for MEDICAL (${projectList.source})`] : []),
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
// The commands (options and help: quote-commands.ts)

function settlerData(dir: string): SettlerData {
  try {
    return loadSettlerData(dir);
  } catch (err) {
    throw new Error(`cannot load the tariff data from ${dir}: ${(err as Error).message} (set --tariff-dir or TAPFLOW_TARIFF_DIR)`);
  }
}

/** `tapflow fares quote`. */
export function faresQuote(flags: FareQuoteFlags & { tariffDir?: string; json?: boolean }): void {
  const cfg = loadConfig(process.env, { TAPFLOW_TARIFF_DIR: flags.tariffDir });
  const data = settlerData(cfg.TAPFLOW_TARIFF_DIR);
  const input = fareQuoteInput(data, flags, Date.now());
  const q = quoteFare(data, input);
  console.log(flags.json ? JSON.stringify(q, null, 2) : formatFareQuote(data, input, q));
}

/** The answer to a claim whose institution the project list refuses: no split is computed. */
function formatRefusedClaim(claimId: string, institutionId: string, refusal: { reason: ProjectRejection; detail: string }, pl: { version: string; source: string }): string {
  return [
    `claim ${claimId} at ${institutionId}`,
    `project list ${pl.version} (${pl.source})`,
    `status REJECTED: ${refusal.reason}: ${refusal.detail}`,
    '  no split: only institutions on the application project list settle claims directly (as only listed venues accept taps)',
  ].join('\n');
}

/**
 * `tapflow medical quote`: the institution against the project list, then the split. Ends with
 * exit status 2 when the claim is refused by the list or rejected by the policy.
 */
export async function medicalQuote(file: string, flags: MedicalQuoteFlags & { tariffDir?: string; json?: boolean }): Promise<void> {
  const cfg = loadConfig(process.env, { TAPFLOW_TARIFF_DIR: flags.tariffDir });
  const data = settlerData(cfg.TAPFLOW_TARIFF_DIR);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new QuoteInputError('<claim.json>', `cannot read ${file}: ${(err as Error).message}`);
  }
  const now = Date.now();
  const c = readClaimFile(text, file);
  const accumulations = accumulationSource(flags);
  const pl = await quoteProjectList(cfg);
  const projectList = { version: pl.list.version, source: pl.source };
  const listing = claimListing(pl.list, c.institutionId, claimDeviceTime(c, file, now));
  if (!listing.ok) {
    const claimId = c.claimId ?? 'quote';
    const refused = { claimId, status: 'REJECTED', reason: `${listing.reason}: ${listing.detail}`, reasonCode: listing.reason, institutionId: c.institutionId, projectList };
    console.log(flags.json ? JSON.stringify(refused, null, 2) : formatRefusedClaim(claimId, c.institutionId, listing, projectList));
    throw new ExitStatus(2);
  }
  const claim = claimEvent(data, c, file, now);
  const y = await yearToDate(cfg, accumulations, claim);
  const q = quoteClaim(data, claim, y.ytd);
  console.log(flags.json ? JSON.stringify({ ...q, yearToDate: { ...y.ytd, source: y.source }, projectList }, null, 2) : formatClaimQuote(data, claim, y, q, projectList));
  if (q.status === 'REJECTED') throw new ExitStatus(2);
}
