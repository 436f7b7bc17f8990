/**
 * A Tianjin card's tap on a Tianjin bus (flat fare 1.80 yuan), with a correct chip MAC, and a
 * StreamTaps call that sends it: the dead-letter tests' one tap.
 */
import { readFileSync } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { Direction, RiderCategory, Scene, type Tap, type TapAck } from '../../../src/gen/tapflow/v1/ingest.js';
import { computeChipMac } from '../../../src/domain/card/chip.js';
import { hmacSha256Mac, parseKeyFile } from '../../../src/domain/card/keys.js';
import { trustFilePath } from '../../../src/validate/trust.js';
import type { TestPipeline } from '../../support/pipeline.js';

/** The first stop of the first Tianjin bus route in the sample data: a flat fare, 1.80 yuan. */
export function tjBusStop(): string {
  const m = /network: tj-bus[\s\S]*?route: "?([A-Za-z0-9-]+)"?/.exec(readFileSync('data/venues/bus.yaml', 'utf8'));
  if (!m) throw new Error('no tj-bus route in data/venues/bus.yaml');
  return `tj-bus:${m[1]}:0`;
}

/** Tap `seq` of Tianjin card `cardNumber` (chip counter = seq) on bus terminal `terminalId` of pipeline `p`. */
export function tjBusTap(p: TestPipeline, terminalId: string, cardNumber: string, seq = 1): Tap {
  const tjMasterKey = parseKeyFile(readFileSync(trustFilePath(p.cfg), 'utf8')).regions.TJ!.chipMasterKey!;
  const deviceTime = Date.now() - 10_000;
  const venueId = tjBusStop();
  const mac = computeChipMac(hmacSha256Mac, tjMasterKey, { cardNumber, counter: seq, terminalId, deviceTime, amountFen: 0, venueId });
  return { terminalId, seq, deviceTime, scene: Scene.BUS, venueId, direction: Direction.SINGLE, card: { $case: 'chip', value: { cardNumber, counter: seq, mac: Buffer.from(mac) } }, amountFen: 0, riderCategory: RiderCategory.ADULT };
}

/** Sends one tap on a StreamTaps call of its own and returns the acks. */
export async function sendTap(p: TestPipeline, tap: Tap): Promise<TapAck[]> {
  const call: grpc.ClientDuplexStream<Tap, TapAck> = p.client.streamTaps(p.metadata(tap.terminalId));
  const acks: TapAck[] = [];
  const done = new Promise<void>((resolve, reject) => {
    call.on('data', (a: TapAck) => acks.push(a));
    call.on('end', resolve);
    call.on('error', reject);
  });
  call.write(tap);
  call.end();
  await done;
  return acks;
}
