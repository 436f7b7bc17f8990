/**
 * What ingest published: every tap of every TapBundle in the TAPS stream, decoded by the bus
 * codec (which refuses a value out of range). With ingest running alone the stream keeps them:
 * the topology's consumers are interested and nobody acknowledges.
 */
import type { Bus } from '../../src/bus/connection.js';
import { decodeBusTap, splitTapBundle } from '../../src/bus/codec.js';
import type { TapEvent } from '../../src/domain/types.js';

export interface PublishedTaps {
  /** Messages (TapBundles) in the stream. */
  bundles: number;
  taps: TapEvent[];
}

export async function publishedTaps(bus: Bus): Promise<PublishedTaps> {
  const bundles = (await bus.jsm.streams.info('TAPS')).state.messages;
  const taps: TapEvent[] = [];
  const consumer = await bus.js.consumers.get('TAPS');
  let read = 0;
  while (read < bundles) {
    const batch = await consumer.fetch({ max_messages: Math.min(1000, bundles - read), expires: 2000 });
    let got = 0;
    for await (const m of batch) {
      got++;
      for (const t of splitTapBundle(m.data)) taps.push(decodeBusTap(t).tap);
    }
    if (got === 0) throw new Error(`TAPS holds ${bundles} messages; only ${read} could be read`);
    read += got;
  }
  return { bundles, taps };
}
