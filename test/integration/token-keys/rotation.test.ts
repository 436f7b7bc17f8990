/**
 * Token key rotation through the real pipeline (gRPC ingest, nats-server, validator, settler,
 * sink, embedded ClickHouse): cards tap under key version 1 (an open journey, a chip counter, an
 * entry that makes the next one passback); the pipeline restarts with version 2 current and
 * version 1 previous; the cards' next taps are matched to their state (the journey closes with
 * the right fare, the replayed chip transaction is still refused, the passback is caught), their
 * state moves to the version-2 tokens (the version-1 counts drop), new rows carry k2 tokens, and
 * a card not seen during the overlap is still counted under version 1. A person's medical
 * accumulations follow too: a claim after the rotation sees the deductible a claim before it used.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPipeline, testPipelineSettings, type TestPipeline } from '../../support/pipeline.js';
import { readIssuerKeys, sendScript, TapScript, TapSender, type ScriptedTap, type TapFields } from '../../support/scenario.js';
import { trustFilePath } from '../../../src/validate/trust.js';
import { loadConfig, type Config } from '../../../src/config/config.js';
import { startApp, type RunningApp } from '../../../src/runtime/app.js';
import { ROLE_FACTORIES } from '../../../src/cli/roles.js';
import { createLogger } from '../../../src/observe/log.js';
import { tokenize } from '../../../src/domain/card/token.js';
import { keyVersionCounts } from '../../../src/cli/keys-commands.js';
import { runCli } from '../cli/run-cli.js';
import { ClaimStatus, TapStatus, TerminalIngestClient, type ClaimResult, type MedicalClaim } from '../../../src/gen/tapflow/v1/ingest.js';
import { terminalMetadata } from '../../support/scenario.js';
import { CLASS_A, CLASS_B, SELF_PAY, TJ_COUNTER, claim, getClaim, item, ok, settleClaim, signClaimsWith } from '../claims/grpc-claims.js';

const MIN = 60_000;
const K1 = randomBytes(32).toString('hex');
const K2 = randomBytes(32).toString('hex');
const CARD = { trip: '110000007101', fare: '110000007102', passback: '110000007103', unseen: '110000007104', claims: '110000007110' };
const PERSON = '11010519800101001X';
// The bills of claims.test.ts: B after A sees 100,000 fen of the 180,000 deductible used by A.
const billA = { items: [item('A1', CLASS_A, 100_000), item('S1', SELF_PAY, 20_000)], personalAccountBalanceFen: 50_000 };
const billB = { items: [item('A1', CLASS_A, 100_000), item('B1', CLASS_B, 50_000)], personalAccountBalanceFen: 30_000 };
const claimCard = { card: { $case: 'chip' as const, value: { cardNumber: CARD.claims, counter: 1, mac: Buffer.alloc(8) } }, idNumber: PERSON };
let splitA: ClaimResult;
let splitB: ClaimResult;

/** Settles a claim, waiting for its split when the answer was PENDING (the settler still starting). */
async function settled(client: TerminalIngestClient, md: grpc.Metadata, c: MedicalClaim): Promise<ClaimResult> {
  let r = ok(await settleClaim(client, md, c));
  const end = Date.now() + 30_000;
  while (r.status === ClaimStatus.PENDING && Date.now() < end) {
    await new Promise((res) => setTimeout(res, 200));
    r = ok(await getClaim(client, md, c.claimId));
  }
  return r;
}
const v1 = (card: string) => tokenize(Buffer.from(K1, 'hex'), 'card', card);
const v2 = (card: string) => `k2.${tokenize(Buffer.from(K2, 'hex'), 'card', card)}`;

let p: TestPipeline;
let second: RunningApp | undefined;
let cfg2: Config;
let s: TapScript;
let T: number;
const ev = {} as Record<'tripIn' | 'fareIn' | 'fareOut' | 'passIn' | 'unseen' | 'tripOut' | 'replay' | 'passAgain', ScriptedTap>;
let counts1: Awaited<ReturnType<typeof keyVersionCounts>>;

const q = <R = Record<string, unknown>>(sql: string) => second!.ctx.engine!.query<R>(sql);
const until = async (fn: () => Promise<boolean>, what: string, timeoutMs = 30_000) => {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
};

async function send(port: number, fleetKey: Uint8Array, taps: ScriptedTap[]) {
  const sender = new TapSender(`127.0.0.1:${port}`, fleetKey);
  try {
    return await sendScript(sender, taps.map((tap) => ({ kind: 'tap' as const, tap })));
  } finally {
    await sender.close();
  }
}

const rail = (card: string, terminal: string, venue: string, direction: TapFields['direction'], at: number): TapFields => ({ card, terminal, venue, scene: 'RAIL', direction, at });

beforeAll(async () => {
  p = await startTestPipeline({ TAPFLOW_TOKEN_KEY: K1 });
  s = new TapScript(readIssuerKeys(trustFilePath(p.cfg)));
  signClaimsWith(p.dataDir);
  splitA = await settled(p.client, p.metadata(TJ_COUNTER), claim('KEYS-A', { ...billA, ...claimCard }));
  T = Date.now() - 90 * MIN;
  // Version 1: an open journey; a whole journey (its fare is the reference); an entry; a card
  // that will not be seen again.
  ev.tripIn = s.chip(rail(CARD.trip, 'BJ-RAIL-KA', 'bj-subway:西直门', 'ENTRY', T));
  ev.fareIn = s.chip(rail(CARD.fare, 'BJ-RAIL-KA', 'bj-subway:西直门', 'ENTRY', T + MIN));
  ev.fareOut = s.chip(rail(CARD.fare, 'BJ-RAIL-KB', 'bj-subway:国贸', 'EXIT', T + 25 * MIN));
  ev.passIn = s.chip(rail(CARD.passback, 'BJ-RAIL-KC', 'bj-subway:王府井', 'ENTRY', T + 2 * MIN));
  ev.unseen = s.chip({ card: CARD.unseen, terminal: 'BJ-CULTURE-KA', venue: 'museum:BJ:capital-museum', scene: 'CULTURE', direction: 'SINGLE', at: T });
  const acks = await send(p.grpcPort, p.app.ctx.keys.fleetKey, [ev.tripIn, ev.fareIn, ev.fareOut, ev.passIn, ev.unseen]);
  for (const [id, a] of acks) expect(a[0]!.status, id).toBe(TapStatus.ACCEPTED_DURABLE);
  await p.until(async () => (await p.query<{ n: number }>('SELECT count() AS n FROM decisions'))[0]!.n >= 5, 30_000, '5 decisions');
  await p.until(async () => (await p.query<{ n: number }>("SELECT count() AS n FROM settlements WHERE kind = 'FARE'"))[0]!.n >= 1, 30_000, 'the reference fare');
  counts1 = await keyVersionCounts(p.cfg);

  // The rotation: version 2 current, version 1 accepted during the overlap.
  await p.app.shutdown('rotating the token key');
  cfg2 = loadConfig({}, { ...testPipelineSettings(p.nats.url, p.dataDir), TAPFLOW_LOG_LEVEL: 'warn', TAPFLOW_TOKEN_KEY: K2, TAPFLOW_TOKEN_KEY_VERSION: '2', TAPFLOW_TOKEN_KEYS_PREVIOUS: `1:${K1}` });
  second = await startApp(
    cfg2,
    (['ingest', 'validator', 'settler', 'sink'] as const).map((r) => ({ name: r, create: ROLE_FACTORIES[r] })),
    { installSignalHandlers: false, log: createLogger('warn', { test: 'rotated' }) },
  );
  const port = (second.roles.find((r) => r.name === 'ingest') as unknown as { port: number }).port;
  ev.tripOut = s.chip(rail(CARD.trip, 'BJ-RAIL-KB', 'bj-subway:国贸', 'EXIT', T + 30 * MIN));
  ev.replay = s.again(ev.fareOut);
  ev.passAgain = s.chip(rail(CARD.passback, 'BJ-RAIL-KC', 'bj-subway:王府井', 'ENTRY', T + 4 * MIN));
  const acks2 = await send(port, second.ctx.keys.fleetKey, [ev.tripOut, ev.replay, ev.passAgain]);
  for (const [id, a] of acks2) expect(a[0]!.status, id).toBe(TapStatus.ACCEPTED_DURABLE);
  await until(async () => (await q<{ n: number }>('SELECT count() AS n FROM decisions'))[0]!.n >= 8, '8 decisions');
  await until(async () => (await q<{ n: number }>(`SELECT count() AS n FROM settlements WHERE event_id = '${ev.tripOut.eventId}'`))[0]!.n >= 1, 'the fare of the journey begun under version 1');
  const client2 = new TerminalIngestClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    splitB = await settled(client2, terminalMetadata(second.ctx.keys.fleetKey, TJ_COUNTER), claim('KEYS-B', { ...billB, ...claimCard }));
  } finally {
    client2.close();
  }
}, 180_000);

afterAll(async () => {
  await second?.shutdown('test done');
  p?.client.close();
  await p?.nats.stop();
  if (p) await rm(p.dataDir, { recursive: true, force: true });
});

describe('token key rotation through the pipeline', () => {
  it('before the rotation every state entry is under version 1', () => {
    expect(counts1.current).toBe(1);
    // Validator: 4 tap cards and the claim's card; settler: 4 tap cards and the person.
    expect(counts1.versions[1]).toEqual({ validator: 5, settler: 5, hotlist: 0 });
    expect(counts1.versions[2]).toBeUndefined();
  });

  it('a journey begun under version 1 closes under version 2 with the fare of the same journey', async () => {
    const [ref] = await q<{ amount_fen: number }>(`SELECT toInt64(amount_fen) AS amount_fen FROM settlements WHERE event_id = '${ev.fareOut.eventId}' AND kind = 'FARE'`);
    const rows = await q<{ kind: string; amount_fen: number; entry_venue_id: string; card_token: string }>(`SELECT kind, toInt64(amount_fen) AS amount_fen, entry_venue_id, card_token FROM settlements WHERE event_id = '${ev.tripOut.eventId}'`);
    expect(ref!.amount_fen).toBeGreaterThan(0);
    expect(rows).toEqual([{ kind: 'FARE', amount_fen: ref!.amount_fen, entry_venue_id: 'bj-subway:西直门', card_token: v2(CARD.trip) }]);
  });

  it('the card state follows the card: a replayed chip transaction and a passback are still refused', async () => {
    const rows = await q<{ event_id: string; verdict: string; reason: string; card_token: string }>(
      `SELECT event_id, verdict, reason, card_token FROM decisions WHERE event_id IN ('${ev.replay.eventId}', '${ev.passAgain.eventId}', '${ev.tripOut.eventId}') ORDER BY event_id`,
    );
    const by = Object.fromEntries(rows.map((r) => [r.event_id, r]));
    expect(by[ev.replay.eventId]).toMatchObject({ verdict: 'REJECTED', reason: 'CHIP_COUNTER_REPLAY', card_token: v2(CARD.fare) });
    expect(by[ev.passAgain.eventId]).toMatchObject({ verdict: 'REJECTED', reason: 'PASSBACK', card_token: v2(CARD.passback) });
    expect(by[ev.tripOut.eventId]).toMatchObject({ verdict: 'ACCEPTED', card_token: v2(CARD.trip) });
  });

  it('rows stored before the rotation keep their version-1 tokens; new rows carry k2 tokens', async () => {
    const rows = await q<{ event_id: string; card_token: string }>('SELECT event_id, card_token FROM decisions');
    const of = (e: ScriptedTap) => rows.find((r) => r.event_id === e.eventId)!.card_token;
    expect(of(ev.tripIn)).toBe(v1(CARD.trip));
    expect(of(ev.unseen)).toBe(v1(CARD.unseen));
    for (const e of [ev.tripOut, ev.replay, ev.passAgain]) expect(of(e)).toMatch(/^k2\.[0-9a-f]{32}$/);
  });

  it("a card's history is joined across the rotation through the decisions' previous tokens", async () => {
    const history = (token: string) =>
      q<{ event_id: string }>(
        `WITH links AS (SELECT DISTINCT arrayJoin(previous_card_tokens) AS old_token, card_token AS new_token FROM decisions WHERE notEmpty(previous_card_tokens))
         SELECT event_id FROM decisions WHERE card_token = '${token}' OR card_token IN (SELECT old_token FROM links WHERE new_token = '${token}') ORDER BY device_time`,
      );
    expect((await history(v2(CARD.trip))).map((r) => r.event_id)).toEqual([ev.tripIn.eventId, ev.tripOut.eventId]);
    // (the replay has the device time of the tap it replays: compared as a set)
    expect((await history(v2(CARD.fare))).map((r) => r.event_id).sort()).toEqual([ev.fareIn.eventId, ev.fareOut.eventId, ev.replay.eventId].sort());
    const links = await q<{ card_token: string; previous_card_tokens: string[] }>(`SELECT card_token, previous_card_tokens FROM decisions WHERE event_id = '${ev.passAgain.eventId}'`);
    expect(links).toEqual([{ card_token: v2(CARD.passback), previous_card_tokens: [v1(CARD.passback)] }]);
    // Before the rotation nothing carries previous tokens; the unseen card has no link.
    expect((await q<{ n: number }>(`SELECT count() AS n FROM decisions WHERE notEmpty(previous_card_tokens) AND has(previous_card_tokens, '${v1(CARD.unseen)}')`))[0]!.n).toBe(0);
    expect((await q<{ n: number }>(`SELECT count() AS n FROM decisions WHERE event_id = '${ev.tripIn.eventId}' AND empty(previous_card_tokens)`))[0]!.n).toBe(1);
  });

  it('the state is re-keyed on first touch; a card not seen during the overlap stays under version 1', async () => {
    const c = await keyVersionCounts(cfg2);
    expect(c.current).toBe(2);
    expect(c.previous).toEqual([1]);
    // Validator: the three cards that tapped moved; the unseen one did not.
    // Settler: it sees accepted taps only — the two cards whose tap was refused (the replay, the
    // passback) stay under version 1 there, as does the unseen card; the journey's card moved.
    // The claim's card (validator) and the person (settler) moved with the claim after the rotation.
    expect(c.versions[1]).toEqual({ validator: 1, settler: 3, hotlist: 0 });
    expect(c.versions[2]).toEqual({ validator: 4, settler: 2, hotlist: 0 });
  });

  it("a person's medical accumulations follow: the claim after the rotation sees the deductible used before it", async () => {
    expect(ClaimStatus[splitA.status]).toBe('SETTLED');
    expect(splitA.deductibleAmt).toBe(100_000);
    expect(ClaimStatus[splitB.status]).toBe('SETTLED');
    // 80,000 of the deductible left (had the accumulations stayed behind, 145,000 and no fund share).
    expect({ deductible: splitB.deductibleAmt, hifp: splitB.hifpPay, cash: splitB.cashPayamt }).toEqual({ deductible: 80_000, hifp: 45_500, cash: 74_500 });
    // The claims rows are stored by the sink after SettleClaim has answered.
    await until(async () => (await q<{ n: number }>("SELECT count() AS n FROM claims WHERE claim_id IN ('KEYS-A', 'KEYS-B')"))[0]!.n >= 2, 'both claims stored');
    const rows = await q<{ claim_id: string; person_token: string }>("SELECT claim_id, person_token FROM claims WHERE claim_id IN ('KEYS-A', 'KEYS-B') ORDER BY claim_id");
    expect(rows.map((r) => [r.claim_id, r.person_token.startsWith('k2.')])).toEqual([
      ['KEYS-A', false],
      ['KEYS-B', true],
    ]);
  });

  it('tapflow token-keys status and tokens, as an operator runs them', async () => {
    const env = { ...testPipelineSettings(p.nats.url, p.dataDir), TAPFLOW_TOKEN_KEY: K2, TAPFLOW_TOKEN_KEY_VERSION: '2', TAPFLOW_TOKEN_KEYS_PREVIOUS: `1:${K1}` };
    const status = await runCli(['token-keys', 'status'], env);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(status.stdout.trim().split('\n')).toEqual([
      'version 2\tcurrent\tvalidator state 4\tsettler state 2\thotlist 0',
      'version 1\tprevious (accepted)\tvalidator state 1\tsettler state 3\thotlist 0',
    ]);
    const tokens = await runCli(['token-keys', 'tokens', CARD.unseen], env);
    expect(tokens.code).toBe(0);
    expect(tokens.stdout).toContain(`version 2\t${v2(CARD.unseen)}\tcurrent`);
    expect(tokens.stdout).toContain(`version 1\t${v1(CARD.unseen)}\tprevious`);
    expect(tokens.stdout).not.toContain(CARD.unseen);

    // Numbers on standard input (out of the shell history and the process list), several at once.
    const others = Object.values(CARD).filter((c) => c !== CARD.unseen);
    const piped = await runCli(['token-keys', 'tokens'], env, 60_000, `${CARD.unseen}\n\n  ${others[0]}  \n`);
    expect(piped.stderr).toBe('');
    expect(piped.code).toBe(0);
    expect(piped.stdout).toBe(`line 1\n${tokens.stdout}\nline 3\n${(await runCli(['token-keys', 'tokens', others[0]!], env)).stdout}`);
    const dash = await runCli(['token-keys', 'tokens', '-'], env, 60_000, `${CARD.unseen}\n`);
    expect([dash.code, dash.stdout]).toEqual([0, `line 1\n${tokens.stdout}`]);
    // A line that is no number is named by its line, not echoed (it may be a mistyped card number).
    const bad = await runCli(['token-keys', 'tokens'], env, 60_000, `${CARD.unseen}\n${CARD.unseen.slice(0, 6)}\n`);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^tapflow: standard input, line 2: Expected a card number/);
    expect(bad.stderr).not.toContain(CARD.unseen.slice(0, 6));
    const none = await runCli(['token-keys', 'tokens'], env, 60_000, '\n');
    expect([none.code, none.stderr]).toEqual([1, expect.stringMatching(/^tapflow: no number given: pass a card number/)]);
  });
});
