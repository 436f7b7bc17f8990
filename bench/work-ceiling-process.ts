/**
 * The work ceiling's process (bench/lib/work-ceiling.ts): one JavaScript thread, its own
 * embedded engine. Run by the bench as
 * `node --import tsx bench/work-ceiling-process.ts <taps file> <options JSON>`; the taps file
 * holds, per tap, a 4-byte little-endian length, one byte `offline` (0/1) and the encoded Tap.
 * Prints the result as one JSON line on stdout.
 */
import { readFileSync } from 'node:fs';
import { measureWorkCeiling, type WorkCeilingOptions, type WorkTape } from './lib/work-ceiling.js';

/** Reads the taps file written by {@link writeWorkTaps} (bench/lib/ceilings.ts). */
export function readWorkTaps(buf: Buffer): WorkTape['taps'] {
  const taps: WorkTape['taps'] = [];
  for (let at = 0; at + 5 <= buf.length; ) {
    const n = buf.readUInt32LE(at);
    const offline = buf[at + 4] === 1;
    taps.push({ bytes: buf.subarray(at + 5, at + 5 + n), offline });
    at += 5 + n;
  }
  return taps;
}

async function main(): Promise<void> {
  const [file, optionsJson] = process.argv.slice(2);
  if (!file || !optionsJson) throw new Error('usage: work-ceiling-process.ts <taps file> <options JSON>');
  const o = JSON.parse(optionsJson) as WorkCeilingOptions & { hotlistedCards: string[] };
  const r = await measureWorkCeiling({ taps: readWorkTaps(readFileSync(file)), hotlistedCards: o.hotlistedCards }, o);
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`work ceiling: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
