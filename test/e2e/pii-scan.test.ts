/**
 * Personal information proven absent (issue 11 item 6): a demo-like fleet with known card and
 * ID numbers goes through the real pipeline — chip and QR taps streamed live, offline upload
 * batches, medical claims over a real gRPC client, bad events of every kind the demo makes,
 * taps and claims refused at ingest, and a dead letter — and then every number is searched for,
 * in every form a leak would take (test/support/pii-scan.ts), in:
 *
 * - every message of every JetStream stream (TAPS, CLAIMS, DECISIONS, SETTLEMENTS, RISK, STATE,
 *   DLQ) and every revision every KV bucket keeps, read raw by sequence — the data streams keep
 *   every message for the scan: a durable consumer of the test's holds interest in them;
 * - every message published on the NATS server during the run, as a subscriber to `>` saw it
 *   (core NATS claim results, KV writes since overwritten, deliveries to consumers);
 * - every value of every column of every row of every table of the ClickHouse database;
 * - every line the pipeline logged (at debug, more than production logs) and the byte arrays in
 *   them; the bodies of /metrics, /healthz, /readyz and the sink's endpoints;
 * - every file of the NATS store and of the pipeline's data directory, as bytes on disk.
 *
 * Sealed credentials travel between ingest and validators by design; they are ciphertext and
 * are not decrypted here. The scan proves it can find a leak twice: against samples holding a
 * number in each form, and by planting numbers of the fleet in each kind of place (a stream, a
 * KV bucket, a table, a log line, a metric) and finding each where it was planted.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { Writable } from 'node:stream';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, headers as natsHeaders, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Gauge } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observe/log.js';
import { TapGenerator } from '../../src/demo/generator.js';
import { loadVenueDirectory } from '../../src/domain/network/index.js';
import { ed25519Signer } from '../../src/domain/card/keys.js';
import { makeQrBody, signQr } from '../../src/domain/card/qr-sign.js';
import { seal } from '../../src/domain/card/seal.js';
import { tokenize } from '../../src/domain/card/token.js';
import { encodeCredentials, encodeTapBundle, splitTapBundle } from '../../src/bus/codec.js';
import { Buckets, Streams } from '../../src/bus/subjects.js';
import { putHotlistEntry } from '../../src/validate/data-store.js';
import { trustFilePath } from '../../src/validate/trust.js';
import { waitForPipelineIdle } from '../../src/runtime/pipeline-idle.js';
import { BusTap } from '../../src/gen/tapflow/v1/bus.js';
import { ClaimStatus, TapStatus, Treatment, type MedicalClaim, type TapAck } from '../../src/gen/tapflow/v1/ingest.js';
import { startTestPipeline, type TestPipeline } from '../support/pipeline.js';
import { readIssuerKeys, sendScript, TapScript, TapSender, type ScriptedTap, type ScriptStep } from '../support/scenario.js';
import {
  busPlaces,
  describeFinding,
  filePlaces,
  findingsReport,
  headersText,
  LeakScanner,
  logPlaces,
  storePlaces,
  type Finding,
  type KnownValue,
  type Place,
  type StreamCounts,
  type TableCounts,
} from '../support/pii-scan.js';
import { CLASS_A, CLASS_B, SELF_PAY, TJ_COUNTER, claim, item, settleClaim, signClaimsWith } from '../integration/claims/grpc-claims.js';

// --- numbers ---------------------------------------------------------------------------------

/** ISO 7064 MOD 11-2 check character of a resident ID number's first 17 digits. */
function idCheck(first17: string): string {
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = [...first17].reduce((s, d, i) => s + Number(d) * weights[i]!, 0);
  return '10X98765432'[sum % 11]!;
}

/** Resident ID numbers of Beijing, Tianjin and Hebei people; the first ends in the check character X. */
function idNumbers(n: number, random: () => number): string[] {
  const areas = ['110105', '120101', '130102', '110108', '120103', '130104'];
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const birth = `19${50 + Math.floor(random() * 50)}${String(1 + Math.floor(random() * 12)).padStart(2, '0')}${String(1 + Math.floor(random() * 28)).padStart(2, '0')}`;
    const first17 = `${areas[out.length % areas.length]}${birth}${String(Math.floor(random() * 1000)).padStart(3, '0')}`;
    const id = first17 + idCheck(first17);
    if (out.length === 0 && !id.endsWith('X')) continue;
    out.push(id);
  }
  return out;
}

/** A seeded stream of numbers in [0, 1) (mulberry32), so the numbers are the same every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A card number of a region with ten random digits. */
const cardNumber = (province: '11' | '12' | '13', random: () => number) => `${province}${String(Math.floor(random() * 1e10)).padStart(10, '0')}`;

/** Bytes from a list of decimal digits packed two to a byte, starting at a low nibble when `odd`. */
function bcdBytes(digits: string, odd: boolean): Buffer {
  const nibbles = [...(odd ? 'F' : ''), ...digits].map((d) => (d === 'F' ? 0xf : Number(d)));
  if (nibbles.length % 2 === 1) nibbles.push(0xf);
  return Buffer.from(nibbles.flatMap((n, i) => (i % 2 === 0 ? [(n << 4) | nibbles[i + 1]!] : [])));
}

// --- the scanner itself ------------------------------------------------------------------------

describe('pii scan - the scanner finds a number in every form a leak would take', () => {
  const card = '114123456789';
  const id = '11010519800101001X';
  const scanner = new LeakScanner([
    { kind: 'card number', value: card },
    { kind: 'ID number', value: id },
  ]);
  const junk = (n: number) => randomBytes(n);
  const ascii = Buffer.from(card, 'latin1');

  const samples: [string, Buffer | string, string][] = [
    ['ascii in JSON', `{"card":"${card}"}`, 'ascii'],
    ['ascii in a protobuf string field', Buffer.concat([Buffer.from([0x5a, 12]), ascii, junk(3)]), 'ascii'],
    ['UTF-16LE', Buffer.concat([junk(5), Buffer.from(`x${card}`, 'utf16le')]), 'utf-16le'],
    ['UTF-16BE', Buffer.concat([junk(5), Buffer.from(`x${card}`, 'utf16le').swap16()]), 'utf-16be'],
    ['hex', `data=${ascii.toString('hex')};`, 'hex'],
    ['HEX', `DATA=FF${ascii.toString('hex').toUpperCase()}00`, 'HEX'],
    ['a Buffer inspected', `payload ${inspect(Buffer.concat([Buffer.from('ab'), ascii]))}`, 'hex bytes'],
    ['a Buffer as JSON', JSON.stringify({ data: Buffer.concat([Buffer.from([1, 2]), ascii]) }), 'decimal bytes'],
    ['decimal bytes, spaced', `[1, 2, ${[...ascii].join(', ')}]`, 'decimal bytes, spaced'],
    ['an ID number in ascii, check character X', `person=${id}`, 'ascii'],
  ];
  for (const k of [0, 1, 2, 3, 4, 5]) {
    const data = Buffer.concat([junk(k), ascii, junk(4)]);
    samples.push([`base64 at offset ${k}`, `q=${data.toString('base64')}`, `base64@${k % 3}`]);
    samples.push([`base64url at offset ${k}`, `q=${data.toString('base64url')}`, `base64url@${k % 3}`]);
  }
  samples.push(['packed BCD at a high nibble', Buffer.concat([junk(3), bcdBytes(card, false), junk(3)]), 'bcd@0']);
  samples.push(['packed BCD at a low nibble', Buffer.concat([junk(3), bcdBytes(card, true), junk(3)]), 'bcd@1']);
  samples.push(['an ID number packed BCD (its 17 digits) at a low nibble', Buffer.concat([junk(2), bcdBytes(id.slice(0, 17), true)]), 'bcd@1']);

  it.each(samples)('%s', (_what, bytes, form) => {
    const found = scanner.scan({ place: 'sample', bytes });
    expect(found.length, `nothing found in ${String(bytes)}`).toBeGreaterThan(0);
    // base64 and base64url agree where the fragment has neither + nor /: one form, both names.
    expect(found.map((f) => f.form.split('/')).flat()).toContain(form);
  });

  it('names the place, the number, its form and where it starts: a leaky log line', () => {
    const line = JSON.stringify({ level: 30, msg: 'tap decided', detail: Buffer.from(`card ${card}`).toString('base64') });
    const found = [...logPlaces('log', `{"level":30}\n${line}\n`)].flatMap((p) => scanner.scan(p));
    expect(found.map(describeFinding)).toEqual([expect.stringMatching(new RegExp(`^log line 2: card number ${card} as base64(url)?@2\\S* at byte \\d+$`))]);
  });

  it('decodes byte arrays in a log line: a logged Uint8Array holding a protobuf with the number', () => {
    const message = Buffer.concat([Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63, 0x5a, 12]), ascii]);
    const line = JSON.stringify({ msg: 'decode failed', data: new Uint8Array(message) });
    const found = [...logPlaces('log', line)].flatMap((p) => scanner.scan(p));
    expect(found.map((f) => `${f.place} ${f.form}`)).toContain('log line 1 bytes at .data ascii');
  });

  it('does not mistake the tokens, sealed credentials or other numbers for the number', () => {
    const key = randomBytes(32);
    const near = [String(Number(card) + 1), `${card.slice(0, 6)}0${card.slice(7)}`, card.slice(0, 11), id.slice(0, 17)];
    const innocent: Place[] = [
      { place: 'tokens', bytes: `${tokenize(key, 'card', card)} ${tokenize(key, 'person', id)}` },
      { place: 'sealed credentials', bytes: seal(key, encodeCredentials({ kind: 'chip', cardNumber: card, counter: 7, mac: new Uint8Array(8) }), 'BJ-RAIL-0001:1') },
      { place: 'other numbers', bytes: near.join(' ') },
      { place: 'other numbers as base64', bytes: near.map((n) => Buffer.from(n).toString('base64')).join(' ') },
    ];
    expect(innocent.flatMap((p) => scanner.scan(p)).map(describeFinding)).toEqual([]);
  });
});

// --- the pipeline ------------------------------------------------------------------------------

/** Log lines as the pipeline wrote them, kept in memory. */
class LogCapture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

/** Every message published on the server while it listens (a subscriber to `>`). */
class WireTap {
  readonly messages: { subject: string; headers: string; data: Buffer }[] = [];
  private constructor(
    private readonly nc: NatsConnection,
    private readonly sub: Subscription,
  ) {}

  static async start(url: string): Promise<WireTap> {
    const nc = await connect({ servers: url, name: 'pii-scan-wiretap' });
    let tap: WireTap | undefined;
    const sub = nc.subscribe('>', {
      callback: (err, m) => {
        if (!err) tap!.messages.push({ subject: m.subject, headers: headersText(m.headers), data: Buffer.from(m.data) });
      },
    });
    tap = new WireTap(nc, sub);
    await nc.flush();
    return tap;
  }

  async stop(): Promise<void> {
    await this.nc.flush();
    this.sub.unsubscribe();
    await this.nc.close();
  }

  *places(): Generator<Place> {
    for (const [i, m] of this.messages.entries()) {
      const where = `wire message ${i + 1} on ${m.subject}`;
      yield { place: `${where} subject`, bytes: m.subject };
      yield { place: `${where} headers`, bytes: m.headers };
      yield { place: `${where} data`, bytes: m.data };
    }
  }
}

/** The streams whose messages are removed once acknowledged (interest retention). */
const INTEREST_STREAMS = (Object.keys(Streams) as (keyof typeof Streams)[]).filter((s) => s !== 'DLQ' && s !== 'STATE');
const SCAN_CONSUMER = 'pii-scan';

let p: TestPipeline;
const logs = new LogCapture();
let wire: WireTap;
const known: KnownValue[] = [];
const acks: TapAck[] = [];
const claimAnswers: Record<string, string> = {};

/** Bodies of every HTTP endpoint of the process. */
async function httpPlaces(): Promise<Place[]> {
  const paths = ['/metrics', '/healthz', '/readyz', ...p.app.ctx.endpoints.keys()];
  return Promise.all(paths.map(async (path) => ({ place: `http ${path}`, bytes: await (await fetch(`http://127.0.0.1:${p.app.metricsPort}${path}`)).text() })));
}

interface ScanResult {
  findings: Finding[];
  streams: StreamCounts;
  tables: TableCounts;
  counts: Record<string, number>;
}

/** Everything the pipeline wrote, searched for every known number. */
async function scanEverything(scanner: LeakScanner, tap: WireTap): Promise<ScanResult> {
  const streams: StreamCounts = new Map();
  const tables: TableCounts = new Map();
  const counts: Record<string, number> = {};
  const findings: Finding[] = [];
  const count = async (what: string, places: AsyncIterable<Place> | Iterable<Place>) => {
    const before = scanner.places;
    findings.push(...(await scanner.scanAll(places)));
    counts[what] = scanner.places - before;
  };
  await count('bus', busPlaces(p.app.ctx.bus.jsm, streams));
  await count('wire', tap.places());
  await count('store', storePlaces(p.app.ctx.engine!, tables));
  await count('log', logPlaces('log', logs.text));
  await count('http', await httpPlaces());
  await count('files', filePlaces([p.nats.storeDir, p.dataDir]));
  return { findings, streams, tables, counts };
}

beforeAll(async () => {
  // Debug logs more than production does (info); TAPFLOW_CHECKPOINT_INTERVAL_MS short so the
  // partitions' state reaches the KV buckets during the run.
  const overrides = { TAPFLOW_LOG_LEVEL: 'debug', TAPFLOW_CHECKPOINT_INTERVAL_MS: '300' } as const;
  const log = createLogger('debug', { test: 'pii-scan' }, logs);
  // The nats-server's own output lines too, at debug, as `tapflow start` logs its local server's.
  const server = log.child({ component: 'nats-server' });
  const nats = { log: { info: (m: string) => server.info(m), warn: (m: string) => server.warn(m), debug: (m: string) => server.debug(m) } };
  p = await startTestPipeline(overrides, { log, nats });
  signClaimsWith(p.dataDir);
  // Keep every message of the data streams for the scan: a consumer that never acknowledges.
  for (const s of INTEREST_STREAMS) await p.app.ctx.bus.jsm.consumers.add(Streams[s].name, { durable_name: SCAN_CONSUMER, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
  wire = await WireTap.start(p.nats.url);
  await p.until(async () => (await p.app.ctx.metrics.partitionsOwned.get()).values.filter((v) => v.value === p.cfg.TAPFLOW_PARTITIONS).length >= 2, 30_000, 'validator and settler partitions');
}, 120_000);

afterAll(async () => {
  await wire?.stop().catch(() => undefined);
  await p?.stop();
});

describe('pii scan - a demo-like fleet through the pipeline leaves no card or ID number behind', { timeout: 240_000 }, () => {
  const random = seeded(2026_11_06);
  let sender: TapSender;

  it('runs the fleet: live chip and QR taps, upload batches, claims, refusals and a dead letter', async () => {
    const keys = readIssuerKeys(trustFilePath(p.cfg));
    const gen = new TapGenerator({
      venues: loadVenueDirectory(p.cfg.TAPFLOW_TARIFF_DIR),
      keys,
      cards: 60,
      terminalsPerGroup: 2,
      qrShare: 0.35,
      seed: 2026_11_06,
      bad: { hotlisted: 0.03, unlistedVenue: 0.03, malformed: 0.03, qrReplay: 0.04, impossibleTravel: 0.03 },
    });
    for (const c of gen.cards) known.push({ kind: 'card number', value: c.number });
    const hot = gen.pickHotlisted(3);
    for (const c of hot) await putHotlistEntry(p.app.ctx.buckets.hotlist, { cardToken: tokenize(p.app.ctx.keys.tokenKey, 'card', c.number), reason: 'LOST', since: Date.now(), note: 'pii scan' });

    const s = new TapScript(keys);
    const steps: ScriptStep[] = [];
    const cardOf = (t: ScriptedTap['tap']): string =>
      t.card?.$case === 'chip' ? t.card.value.cardNumber : (JSON.parse(Buffer.from(t.card!.value.payload.split('.')[1]!, 'base64url').toString('utf8')) as { c: string }).c;
    const start = Date.now() - 25 * 60_000;
    let t = start;
    for (let i = 0; i < 3000 && steps.length < 320; i++) {
      t += 700;
      const e = gen.next(t);
      if (e.kind === 'tap') steps.push({ kind: 'tap', tap: { terminalId: e.terminalId, tap: e.tap, eventId: `${e.terminalId}:${e.tap.seq}`, cardNumber: cardOf(e.tap) } });
    }

    // Scripted edge cases on cards of their own: each raises a decision or a flag of its own kind.
    const own = (province: '11' | '12' | '13') => {
      const n = cardNumber(province, random);
      known.push({ kind: 'card number', value: n });
      return n;
    };
    const at = start + 60_000;
    const gate = 'BJ-RAIL-0777';
    const bj = { terminal: gate, scene: 'RAIL' as const, direction: 'ENTRY' as const };
    const replayed = s.chip({ ...bj, card: own('11'), venue: 'bj-subway:西直门', at });
    steps.push({ kind: 'tap', tap: replayed }, { kind: 'tap', tap: s.again(replayed) }, { kind: 'tap', tap: s.again(replayed, { sameSeq: true }) });
    // The same seq again with other content: SEQ_REUSED (a flag on the terminal).
    steps.push({ kind: 'tap', tap: { ...replayed, tap: { ...replayed.tap, venueId: 'bj-subway:国贸' } } });
    steps.push({ kind: 'tap', tap: s.chip({ ...bj, card: own('11'), venue: 'bj-subway:东单', at }, { badMac: true }) });
    steps.push({ kind: 'tap', tap: s.qr({ ...bj, card: own('11'), venue: 'bj-subway:西单', at }, { forged: true }) });
    steps.push({ kind: 'tap', tap: s.qr({ ...bj, card: own('12'), venue: 'bj-subway:西单', at: at + 1000 }, { issuer: 'HE' }) });
    steps.push({ kind: 'tap', tap: s.qr({ ...bj, card: own('11'), venue: 'bj-subway:西单', at: at + 2000 }, { level: 1 }) });
    const passback = own('11');
    steps.push({ kind: 'tap', tap: s.chip({ ...bj, card: passback, venue: 'bj-subway:国贸', at }) });
    steps.push({ kind: 'tap', tap: s.qr({ ...bj, card: passback, venue: 'bj-subway:国贸', at: at + 60_000 }) });
    // Refused at ingest (INVALID): a MAC of the wrong length, a QR code naming no card.
    const bad = s.chip({ ...bj, card: own('13'), venue: 'bj-subway:王府井', at });
    steps.push({ kind: 'tap', tap: { ...bad, tap: { ...bad.tap, card: { $case: 'chip', value: { cardNumber: bad.cardNumber, counter: 1, mac: Buffer.alloc(7) } } } } });
    // Offline uploads from a Beijing and a Tianjin bus, out of device-time order.
    const bus = 'BJ-BUS-0777';
    const [a, b] = [own('11'), own('13')];
    steps.push({
      kind: 'batch',
      terminalId: bus,
      taps: [
        s.chip({ card: a, terminal: bus, venue: 'bj-bus:1:3', scene: 'BUS', direction: 'EXIT', at: t - 600_000 }),
        s.qr({ card: b, terminal: bus, venue: 'bj-bus:1:1', scene: 'BUS', direction: 'ENTRY', at: t - 800_000 }),
        s.chip({ card: a, terminal: bus, venue: 'bj-bus:1:0', scene: 'BUS', direction: 'ENTRY', at: t - 900_000 }),
        s.chip({ card: b, terminal: bus, venue: 'bj-bus:1:2', scene: 'BUS', direction: 'EXIT', at: t - 700_000, rider: 'STUDENT' }),
      ],
    });

    sender = new TapSender(`127.0.0.1:${p.grpcPort}`, p.app.ctx.keys.fleetKey);
    const log = await sendScript(sender, steps, { burst: 40 });
    await sender.close();
    for (const list of log.values()) acks.push(...list);
    const statuses = new Set(acks.map((x) => TapStatus[x.status]));
    expect([...statuses].sort()).toEqual(['ACCEPTED_DURABLE', 'DUPLICATE', 'INVALID']);

    // Medical claims at a Tianjin hospital counter: six people, chip and QR cards.
    const people = idNumbers(6, random);
    for (const id of people) known.push({ kind: 'ID number', value: id });
    const deviceTime = Date.now() - 5 * 60_000;
    const md = p.metadata(TJ_COUNTER);
    const chip = (n: string, mac = Buffer.alloc(8)) => ({ $case: 'chip' as const, value: { cardNumber: n, counter: 0, mac } });
    const qrCard = (n: string) => {
      const body = makeQrBody({ cardNumber: n, issuedAt: deviceTime - 1000, level: 2 });
      return { $case: 'qr' as const, value: { payload: signQr(ed25519Signer, keys.regions.BJ!.qrPrivateKey!, body) } };
    };
    const bill = { items: [item('A1', CLASS_A, 80_000), item('B1', CLASS_B, 30_000), item('S1', SELF_PAY, 5_000)], personalAccountBalanceFen: 20_000 };
    const cardB = own('11');
    const claims: [string, MedicalClaim][] = [
      ['settled', claim('pii-A', { ...bill, idNumber: people[0]!, card: chip(own('11')), deviceTime })],
      ['settled', claim('pii-B', { ...bill, idNumber: people[1]!, card: chip(cardB), deviceTime })],
      ['reversal', claim('pii-B-rev', { items: [], reversesClaimId: 'pii-B', idNumber: people[1]!, card: chip(cardB), deviceTime })],
      ['QR card', claim('pii-Q', { ...bill, idNumber: people[2]!, card: qrCard(own('11')), deviceTime })],
      ['bad MAC', claim('pii-M', { ...bill, idNumber: people[3]!, card: chip(own('11'), Buffer.alloc(8, 7)), deviceTime })],
      ['hotlisted card', claim('pii-H', { ...bill, idNumber: people[4]!, card: chip(hot[0]!.number), deviceTime })],
      ['institution not listed', claim('pii-U', { ...bill, idNumber: people[5]!, card: chip(own('11')), institutionId: 'hospital:TJ:not-on-the-list', deviceTime })],
    ];
    for (const [what, c] of claims) {
      const r = await settleClaim(p.client, md, c);
      claimAnswers[what] = r.ok ? `${ClaimStatus[r.value.status]} ${r.value.reason}` : `error ${r.error.code}`;
    }
    // Refused at ingest (INVALID_ARGUMENT): a claim with a known ID number and no treatment.
    const refused = await settleClaim(p.client, md, claim('pii-X', { ...bill, idNumber: people[0]!, card: chip(own('11')), treatment: Treatment.TREATMENT_UNSPECIFIED, deviceTime }));
    claimAnswers.refused = refused.ok ? 'answered' : `error ${refused.error.code}`;
    expect(claimAnswers).toMatchObject({ settled: 'SETTLED OK', reversal: 'REVERSED OK', 'QR card': 'SETTLED OK', refused: 'error 3' });
    expect(claimAnswers['bad MAC']).toMatch(/^REJECTED CHIP_MAC_INVALID/);
    expect(claimAnswers['hotlisted card']).toMatch(/^REJECTED /);
    expect(claimAnswers['institution not listed']).toMatch(/^REJECTED VENUE_NOT_LISTED/);

    // A dead letter: a real tap bundle's first tap put back on its subject with a purse debit
    // out of range (as a corrupt or forged copy would be): the validator dead-letters it.
    const first = await p.app.ctx.bus.jsm.streams.getMessage(Streams.TAPS.name, { seq: 1 });
    const original = BusTap.decode(splitTapBundle(first!.data)[0]!);
    const h = natsHeaders();
    h.set('Tapflow-Origin', 'pii-scan');
    await p.app.ctx.bus.js.publish(first!.subject, encodeTapBundle([BusTap.encode({ ...original, amountFen: -5 }).finish()]), { headers: h, msgID: 'pii-scan-forged-1' });
  });

  it('waits until everything is decided, settled, stored and checkpointed', async () => {
    const idle = await waitForPipelineIdle(p.app.ctx.bus, p.cfg.TAPFLOW_PARTITIONS, { timeoutMs: 90_000 });
    expect(idle).toBe(true);
    const durable = new Set(acks.filter((a) => a.status === TapStatus.ACCEPTED_DURABLE).map((a) => a.eventId)).size;
    await p.until(async () => Number((await p.query<{ n: number }>('SELECT count() AS n FROM decisions'))[0]!.n) === durable, 30_000, `${durable} decisions`);
    // Claims decided by a validator: all but the one refused at ingest.
    await p.until(async () => Number((await p.query<{ n: number }>("SELECT count() AS n FROM claims WHERE claim_id LIKE 'pii-%'"))[0]!.n) === 7, 30_000, '7 claims');
    await p.until(async () => (await p.app.ctx.bus.jsm.streams.info(Streams.DLQ.name)).state.messages === 1, 30_000, 'the dead letter');
    // Two checkpoint intervals: each partition's state written to its KV bucket.
    await new Promise((r) => setTimeout(r, 1000));
  });

  let clean: ScanResult;
  let scanner: LeakScanner;

  it('finds none of the numbers anywhere: streams, KV, wire, tables, logs, HTTP, files', async () => {
    await wire.stop();
    scanner = new LeakScanner(known);
    clean = await scanEverything(scanner, wire);
    expect(findingsReport(clean.findings)).toEqual([]);

    // The scan read something everywhere: it cannot pass by looking at nothing.
    const read = (s: string) => clean.streams.get(s)?.messages ?? 0;
    for (const s of Object.values(Streams)) expect(read(s.name), `stream ${s.name}`).toBeGreaterThan(0);
    for (const bucket of [Buckets.HOTLIST, Buckets.PROJECTS, Buckets.RISK_RULES, Buckets.VALIDATOR_STATE, Buckets.SETTLER_STATE, Buckets.CLAIMS]) expect(read(`KV_${bucket}`), `KV ${bucket}`).toBeGreaterThan(0);
    for (const bucket of Object.values(Buckets)) expect(clean.streams.has(`KV_${bucket}`), `KV ${bucket}`).toBe(true);
    for (const table of ['decisions', 'settlements', 'ledger', 'risk_flags', 'claims']) expect(clean.tables.get(table)?.rows ?? 0, `table ${table}`).toBeGreaterThan(0);
    for (const what of ['bus', 'wire', 'store', 'log', 'http', 'files']) expect(clean.counts[what], what).toBeGreaterThan(0);
    expect(wire.messages.some((m) => m.subject.startsWith('tapflow.claimresult.'))).toBe(true);
    expect(logs.text).toContain('"component":"nats-server"');
    expect(logs.text).toContain('"role":"ingest"');

    const streamMsgs = [...clean.streams].filter(([n]) => !n.startsWith('KV_')).reduce((n, [, c]) => n + c.messages, 0);
    const kvRevisions = [...clean.streams].filter(([n]) => n.startsWith('KV_')).reduce((n, [, c]) => n + c.messages, 0);
    const rows = [...clean.tables.values()].reduce((n, c) => n + c.rows, 0);
    const values = [...clean.tables.values()].reduce((n, c) => n + c.rows * c.columns, 0);
    const ids = known.filter((k) => k.kind === 'ID number').length;
    console.log(
      `pii scan: ${known.length - ids} card numbers and ${ids} ID numbers in ${scanner.forms.length} forms; ` +
        `${streamMsgs} stream messages, ${kvRevisions} KV revisions, ${wire.messages.length} wire messages, ` +
        `${rows} rows (${values} values) in ${clean.tables.size} tables, ${logs.text.split('\n').length - 1} log lines, ` +
        `${clean.counts.http} HTTP bodies, ${clean.counts.files} files; ${scanner.places} places, ${(scanner.bytes / 1024 ** 2).toFixed(1)} MiB: nothing found`,
    );
  });

  it('finds numbers planted in a stream, a KV bucket, a table, a log line and a metric, where they were planted', async () => {
    const [a, b, c, d] = known.filter((k) => k.kind === 'card number');
    const [x, y] = known.filter((k) => k.kind === 'ID number');
    const tap = await WireTap.start(p.nats.url);
    const { jsm, js } = p.app.ctx.bus;
    await jsm.streams.add({ name: 'PII_CANARY', subjects: ['piicanary.>'] });
    const h = natsHeaders();
    h.set('Canary', Buffer.from(x!.value).toString('hex'));
    await js.publish('piicanary.data', Buffer.concat([randomBytes(1), Buffer.from(a!.value)]).toString('base64'), { headers: h });
    const kv = await new Kvm(js).create('pii_canary');
    await kv.put('k', Buffer.concat([randomBytes(3), bcdBytes(b!.value, true), randomBytes(3)]));
    const engine = p.app.ctx.engine!;
    await engine.exec('CREATE TABLE pii_canary (note String) ENGINE = MergeTree ORDER BY tuple()');
    await engine.exec(`INSERT INTO pii_canary SELECT unhex('${Buffer.from(c!.value, 'utf16le').toString('hex')}')`);
    p.app.ctx.log.info({ payload: Buffer.from(`card=${d!.value}`) }, 'a careless log line');
    new Gauge({ name: 'tapflow_pii_canary', help: 'planted', labelNames: ['person'], registers: [p.app.ctx.metrics.registry] }).set({ person: y!.value }, 1);
    await tap.stop();

    const planted = await scanEverything(new LeakScanner(known), tap);
    const seen = (place: RegExp, k: KnownValue, form: string) =>
      planted.findings.some((f) => place.test(f.place) && f.value === k.value && f.form.split('/').some((n) => n === form || n.startsWith(`${form}@`)));
    const expected: [RegExp, KnownValue, string][] = [
      [/^stream PII_CANARY piicanary\.data seq 1 data$/, a!, 'base64'],
      [/^stream PII_CANARY piicanary\.data seq 1 headers$/, x!, 'hex'],
      [/^KV pii_canary key k \(stream seq 1\) data$/, b!, 'bcd@1'],
      [/^table pii_canary column note row 1$/, c!, 'utf-16le'],
      [/^log line \d+$/, d!, 'decimal bytes'],
      [/^log line \d+ bytes at \.payload\.data$/, d!, 'ascii'],
      [/^http \/metrics$/, y!, 'ascii'],
      [/^wire message \d+ on piicanary\.data data$/, a!, 'base64'],
      [/^wire message \d+ on piicanary\.data headers$/, x!, 'hex'],
      [/^wire message \d+ on \$KV\.pii_canary\.k data$/, b!, 'bcd@1'],
      [new RegExp(`^file ${p.nats.storeDir}/.*PII_CANARY/`), a!, 'base64'],
    ];
    expect(expected.filter(([place, k, form]) => !seen(place, k, form)).map(([place, k, form]) => `${place} ${k.value} ${form}`)).toEqual([]);
    // Nothing but what was planted, and only where it was planted (or copied by its engine).
    const plantedValues = new Set([a, b, c, d, x, y].map((k) => k!.value));
    const elsewhere = planted.findings.filter((f) => !plantedValues.has(f.value) || !/^(stream PII_CANARY|KV pii_canary|table pii_canary|log line|http \/metrics|wire message \d+ on (piicanary|\$KV\.pii_canary|\$JS\.API)|file )/.test(f.place));
    expect(findingsReport(elsewhere)).toEqual([]);
  });
});
