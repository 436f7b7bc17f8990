/**
 * End to end: a real gRPC client streams taps through ingest, a real nats-server (JetStream),
 * the validator and settler roles, into the embedded ClickHouse engine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { startTestPipeline, type TestPipeline } from '../support/pipeline.js';
import { TapStatus, Direction, Scene, RiderCategory, type Tap, type TapAck } from '../../src/gen/tapflow/v1/ingest.js';
import { computeChipMac } from '../../src/domain/card/chip.js';
import { hmacSha256Mac, parseKeyFile } from '../../src/domain/card/keys.js';
import { tokenize } from '../../src/domain/card/token.js';
import { putHotlistEntry } from '../../src/validate/data-store.js';
import { trustFilePath } from '../../src/validate/trust.js';

let p: TestPipeline;
let master: Record<string, Uint8Array>;

beforeAll(async () => {
  p = await startTestPipeline();
  const keys = parseKeyFile(readFileSync(trustFilePath(p.cfg), 'utf8'));
  master = Object.fromEntries(Object.entries(keys.regions).map(([r, k]) => [r, k!.chipMasterKey!]));
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

/** A chip tap with a correct MAC. */
function chipTap(terminalId: string, seq: number, cardNumber: string, counter: number, venueId: string, scene: Scene, direction: Direction, deviceTime: number, amountFen = 0): Tap {
  const region = cardNumber.startsWith('11') ? 'BJ' : cardNumber.startsWith('12') ? 'TJ' : 'HE';
  const mac = computeChipMac(hmacSha256Mac, master[region]!, { cardNumber, counter, terminalId, deviceTime, amountFen, venueId });
  return { terminalId, seq, deviceTime, scene, venueId, direction, card: { $case: 'chip', value: { cardNumber, counter, mac: Buffer.from(mac) } }, amountFen, riderCategory: RiderCategory.ADULT };
}

/** Streams taps on one StreamTaps call and collects every ack. */
async function stream(terminalId: string, taps: Tap[]): Promise<TapAck[]> {
  const call: grpc.ClientDuplexStream<Tap, TapAck> = p.client.streamTaps(p.metadata(terminalId));
  const acks: TapAck[] = [];
  const done = new Promise<void>((resolve, reject) => {
    call.on('data', (a: TapAck) => acks.push(a));
    call.on('end', resolve);
    call.on('error', reject);
  });
  for (const t of taps) call.write(t);
  call.end();
  await done;
  return acks;
}

describe('pipeline - gRPC to ClickHouse', () => {
  it('acknowledges, decides, prices and stores every tap exactly once', async () => {
    const t0 = Date.now() - 60_000;
    const hot = '110000000099';
    await putHotlistEntry(p.app.ctx.buckets.hotlist, { cardToken: tokenize(p.app.ctx.keys.tokenKey, 'card', hot), reason: 'LOST', since: 0 });
    const gate = 'BJ-RAIL-0001';
    const taps: Tap[] = [
      chipTap(gate, 1, '110000000001', 1, 'bj-subway:西直门', Scene.RAIL, Direction.ENTRY, t0),
      chipTap(gate, 2, '110000000001', 2, 'bj-subway:国贸', Scene.RAIL, Direction.EXIT, t0 + 25 * 60_000),
      chipTap(gate, 1, '110000000001', 1, 'bj-subway:西直门', Scene.RAIL, Direction.ENTRY, t0), // same seq again
      chipTap(gate, 3, hot, 7, 'bj-subway:西直门', Scene.RAIL, Direction.ENTRY, t0 + 1000),
      chipTap(gate, 4, '110000000002', 1, 'museum:BJ:not-on-the-list', Scene.CULTURE, Direction.SINGLE, t0 + 2000),
      { ...chipTap(gate, 5, '110000000003', 1, 'bj-subway:西直门', Scene.RAIL, Direction.ENTRY, t0 + 3000), venueId: '' },
    ];
    const acks = await stream(gate, taps);
    const bySeqStatus = acks.map((a) => `${a.seq}:${TapStatus[a.status]}`).sort();
    expect(bySeqStatus).toEqual(['1:ACCEPTED_DURABLE', '1:DUPLICATE', '2:ACCEPTED_DURABLE', '3:ACCEPTED_DURABLE', '4:ACCEPTED_DURABLE', '5:INVALID'].sort());
    const invalid = acks.find((a) => a.status === TapStatus.INVALID)!;
    expect(invalid.reason).toContain('venue_id');
    expect(invalid.eventId).toBe(`${gate}:5`);

    // A Tianjin bus: flat fare, tap once.
    const bus = 'TJ-BUS-0001';
    const busAcks = await stream(bus, [chipTap(bus, 1, '120000000001', 1, tjBusStop(), Scene.BUS, Direction.SINGLE, t0)]);
    expect(busAcks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);

    await p.until(async () => (await p.query<{ n: number }>('SELECT count() AS n FROM decisions'))[0]!.n >= 5, 30_000, '5 decisions');
    await p.until(async () => (await p.query<{ n: number }>('SELECT count() AS n FROM settlements'))[0]!.n >= 2, 30_000, 'settlements');
    const decisions = await p.query<{ event_id: string; verdict: string; reason: string; card_token: string }>('SELECT event_id, verdict, reason, card_token FROM decisions ORDER BY event_id');
    expect(decisions.map((d) => [d.event_id, d.verdict, d.reason])).toEqual([
      [`${gate}:1`, 'ACCEPTED', 'OK'],
      [`${gate}:2`, 'ACCEPTED', 'OK'],
      [`${gate}:3`, 'REJECTED', 'HOTLIST_LOST'],
      [`${gate}:4`, 'REJECTED', 'VENUE_NOT_LISTED'],
      [`${bus}:1`, 'ACCEPTED', 'OK'],
    ]);
    // No raw card numbers anywhere in the store: tokens only.
    for (const d of decisions) expect(d.card_token).toMatch(/^[0-9a-f]{32}$/);

    const fares = await p.query<{ event_id: string; kind: string; amount_fen: number; network: string; distance_m: number }>(
      "SELECT event_id, kind, amount_fen, network, distance_m FROM settlements WHERE kind = 'FARE' ORDER BY event_id",
    );
    // 西直门 -> 国贸: shortest path 11,923 m (4号线, 6号线, 5号线, 1号线): the 6-12 km band, 4 yuan.
    // Tianjin bus: flat 2 yuan, less the card holder's discount in data/tariffs: 1.80 yuan.
    expect(fares.map((f) => [f.event_id, f.network, f.amount_fen, f.distance_m])).toEqual([
      [`${gate}:2`, 'bj-subway', 400, 11923],
      [`${bus}:1`, 'tj-bus', 180, 0],
    ]);
    const [bal] = await p.query<{ d: number; c: number }>('SELECT sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger');
    expect(bal!.d).toBe(bal!.c);
    // The cardholders paid 400 + 180 fen: at least that much was debited.
    expect(bal!.d).toBeGreaterThanOrEqual(580);
    // Exactly once: no event id twice in any table.
    const dup = await p.query<{ n: number }>('SELECT count() AS n FROM (SELECT event_id FROM decisions GROUP BY event_id HAVING count() > 1)');
    expect(dup[0]!.n).toBe(0);
    const dupS = await p.query<{ n: number }>('SELECT count() AS n FROM (SELECT settlement_id FROM settlements GROUP BY settlement_id HAVING count() > 1)');
    expect(dupS[0]!.n).toBe(0);
  });
});

describe('pipeline - purse taps', () => {
  it('flags a terminal whose purse debit differs from the tariff, and charges the tariff', async () => {
    const bus = 'TJ-BUS-0002';
    const t0 = Date.now() - 30_000;
    // The Tianjin flat fare is 180 fen for a card holder; this validator debited 300.
    const acks = await stream(bus, [chipTap(bus, 1, '120000000077', 1, tjBusStop(), Scene.BUS, Direction.SINGLE, t0, 300)]);
    expect(acks.map((a) => TapStatus[a.status])).toEqual(['ACCEPTED_DURABLE']);
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM risk_flags WHERE event_id = '${bus}:1'`))[0]!.n >= 1, 30_000, 'the purse flag');
    const flags = await p.query<{ rule_id: string; key_kind: string; key: string; detail: string }>(`SELECT rule_id, key_kind, key, detail FROM risk_flags WHERE event_id = '${bus}:1'`);
    expect(flags).toEqual([{ rule_id: 'builtin:PURSE_MISMATCH', key_kind: 'terminal', key: bus, detail: 'terminal debited 300 fen, the tariff says 180 fen' }]);
    await p.until(async () => (await p.query<{ n: number }>(`SELECT count() AS n FROM settlements WHERE event_id = '${bus}:1'`))[0]!.n >= 1, 30_000, 'the fare');
    const [fare] = await p.query<{ amount_fen: number }>(`SELECT amount_fen FROM settlements WHERE event_id = '${bus}:1'`);
    expect(fare!.amount_fen).toBe(180);
  });
});

function tjBusStop(): string {
  // The first stop of the first Tianjin bus route in the sample data.
  const text = readFileSync('data/venues/bus.yaml', 'utf8');
  const m = /network: tj-bus[\s\S]*?route: "?([A-Za-z0-9-]+)"?/.exec(text);
  if (!m) throw new Error('no tj-bus route in data/venues/bus.yaml');
  return `tj-bus:${m[1]}:0`;
}
