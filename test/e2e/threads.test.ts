/**
 * Validator and settler on worker threads (TAPFLOW_WORKERS): the main thread runs ingest and the
 * sink, two worker threads each run a validator and a settler replica and share the partitions
 * through the lease protocol. Every tap is decided, priced and stored exactly once, and the
 * process's /metrics include the threads' counters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as grpc from '@grpc/grpc-js';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { startTestPipeline, type TestPipeline } from '../support/pipeline.js';
import { TapStatus, Direction, Scene, RiderCategory, type Tap, type TapAck } from '../../src/gen/tapflow/v1/ingest.js';
import { computeChipMac } from '../../src/domain/card/chip.js';
import { hmacSha256Mac, parseKeyFile } from '../../src/domain/card/keys.js';
import { trustFilePath } from '../../src/validate/trust.js';

const THREADS = 2;
const CARDS = 40;
let p: TestPipeline;
let tjKey: Uint8Array;

beforeAll(async () => {
  p = await startTestPipeline({}, { threads: THREADS });
  tjKey = parseKeyFile(readFileSync(trustFilePath(p.cfg), 'utf8')).regions.TJ!.chipMasterKey!;
}, 120_000);

afterAll(async () => {
  await p?.stop();
});

function tjBusStop(): string {
  const m = /network: tj-bus[\s\S]*?route: "?([A-Za-z0-9-]+)"?/.exec(readFileSync('data/venues/bus.yaml', 'utf8'));
  if (!m) throw new Error('no tj-bus route in data/venues/bus.yaml');
  return `tj-bus:${m[1]}:0`;
}

/** A Tianjin bus tap (flat fare, 180 fen for a card holder) of card 1200000001NN. */
function busTap(terminalId: string, seq: number, deviceTime: number): Tap {
  const cardNumber = `1200000001${String(seq).padStart(2, '0')}`;
  const venueId = tjBusStop();
  const mac = computeChipMac(hmacSha256Mac, tjKey, { cardNumber, counter: 1, terminalId, deviceTime, amountFen: 0, venueId });
  return { terminalId, seq, deviceTime, scene: Scene.BUS, venueId, direction: Direction.SINGLE, card: { $case: 'chip', value: { cardNumber, counter: 1, mac: Buffer.from(mac) } }, amountFen: 0, riderCategory: RiderCategory.ADULT };
}

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

/** Sum of a counter's series in Prometheus text. */
function counterSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

describe('worker threads - validator and settler replicas in one process', () => {
  it('shares the partitions between the threads', async () => {
    const owners = async (role: string) => {
      const out = new Set<string>();
      for (let part = 0; part < p.cfg.TAPFLOW_PARTITIONS; part++) {
        const e = await p.app.ctx.buckets.leases.get(`part.${role}.${part}`);
        if (!e || e.operation !== 'PUT') return undefined;
        out.add(e.string());
      }
      return out;
    };
    for (const role of ['validator', 'settler']) {
      await p.until(async () => (await owners(role))?.size === THREADS, 30_000, `${role} partitions on ${THREADS} threads`);
    }
    expect(p.app.threads?.count).toBe(THREADS);
  });

  it('decides, prices and stores every tap exactly once', async () => {
    const terminal = 'TJ-BUS-0009';
    const t0 = Date.now() - 60_000;
    const taps = Array.from({ length: CARDS }, (_, i) => busTap(terminal, i + 1, t0 + i * 1000));
    const acks = await stream(terminal, taps);
    expect(acks.map((a) => TapStatus[a.status])).toEqual(Array(CARDS).fill('ACCEPTED_DURABLE'));

    await p.until(async () => (await p.query<{ n: number }>("SELECT count() AS n FROM settlements WHERE kind = 'FARE'"))[0]!.n >= CARDS, 30_000, `${CARDS} fares`);
    const [d] = await p.query<{ n: number; ids: number }>('SELECT count() AS n, uniqExact(event_id) AS ids FROM decisions');
    expect(d).toEqual({ n: CARDS, ids: CARDS });
    const [f] = await p.query<{ n: number; fen: number }>("SELECT count() AS n, sum(amount_fen) AS fen FROM settlements WHERE kind = 'FARE'");
    expect({ n: Number(f!.n), fen: Number(f!.fen) }).toEqual({ n: CARDS, fen: CARDS * 180 });
    const [bal] = await p.query<{ d: number; c: number }>('SELECT sum(debit_fen) AS d, sum(credit_fen) AS c FROM ledger');
    expect(Number(bal!.d)).toBe(Number(bal!.c));
    expect(Number(bal!.d)).toBeGreaterThanOrEqual(CARDS * 180);
  });

  it("serves the threads' metrics with the main thread's", async () => {
    const text = await (await fetch(`http://127.0.0.1:${p.app.metricsPort}/metrics`)).text();
    // Decisions are counted on the threads (validators), stored rows on the main thread (sink).
    expect(counterSum(text, 'tapflow_decisions_total')).toBe(CARDS);
    // One validator replica per thread; ingest on the main thread.
    expect(text).toMatch(new RegExp(`^tapflow_role_up\\{role="validator"\\} ${THREADS}$`, 'm'));
    expect(text).toMatch(/^tapflow_role_up\{role="ingest"\} 1$/m);
    expect(text).toMatch(/^tapflow_stored_rows_total\{table="decisions"\} 40$/m);
    const ready = await fetch(`http://127.0.0.1:${p.app.metricsPort}/readyz`);
    expect(ready.status).toBe(200);
  });

  it('runs the worker threads TAPFLOW_WORKER_NICE (5) below the main thread, which accepts taps', () => {
    if (process.platform !== 'linux') return;
    // Linux keeps a nice value per thread: field 19 of /proc/<pid>/task/<tid>/stat.
    const nices = readdirSync('/proc/self/task').map((tid) => {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    });
    const base = getPriority(0);
    expect(p.cfg.TAPFLOW_WORKER_NICE).toBe(5);
    expect(nices.filter((n) => n === Math.min(19, base + 5))).toHaveLength(THREADS);
    expect(nices.filter((n) => n === base).length).toBeGreaterThan(0);
  });
});
