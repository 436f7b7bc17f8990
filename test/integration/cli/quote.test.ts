/**
 * `tapflow fares quote` and `tapflow medical quote` run as child processes: the amounts (fen)
 * and rule traces they print, their --json objects, and the errors that name the bad flag.
 * Expected amounts are worked out by hand from DESIGN.md and data/ (not copied from output).
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNats } from '../../support/nats.js';
import { ROOT, runCli, type CliResult } from './run-cli.js';

const fares = (...args: string[]) => runCli(['fares', 'quote', ...args]);
/** Nothing listens on the discard port: the quote checks data/projects/default.yaml, as on a laptop with no deployment. */
const NO_NATS = { NATS_URL: 'nats://127.0.0.1:9' };
const medical = (...args: string[]) => runCli(['medical', 'quote', ...args], NO_NATS);

/** A weekday late morning, outside the early-morning discount window. */
const T = '2026-03-10T10:00';

function ok(r: CliResult): string {
  expect(r.stderr, r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}
function json<T = Record<string, unknown>>(r: CliResult): T {
  return JSON.parse(ok(r)) as T;
}
function fails(r: CliResult, ...parts: string[]): void {
  expect(r.code, r.stdout).toBe(1);
  for (const p of parts) expect(r.stderr).toContain(p);
}
/** Runs the cases at once (each is a child process) and checks each fails naming its parts. */
async function allFail(cases: [Promise<CliResult>, ...string[]][]): Promise<void> {
  const results = await Promise.all(cases.map(([r]) => r));
  results.forEach((r, i) => fails(r, ...(cases[i]!.slice(1) as string[])));
}

interface FareJson {
  network: string;
  fareFen: number;
  baseFareFen: number;
  distanceM: number;
  stationCount?: number;
  estimated: boolean;
  monthToDateAfterFen?: number;
  path?: { from: string; to: string; legs: { line: string }[] };
  trace: { rule: string; version: string; detail: string }[];
}

describe('fares quote - amounts and trace', { timeout: 180_000 }, () => {
  it.concurrent('prints 西直门 → 国贸 at 4 yuan with the fare path and the band', async () => {
    const out = ok(await fares('--network', 'bj-subway', '--from', '西直门', '--to', '国贸', '--entry-time', T, '--exit-time', '2026-03-10T10:30'));
    // Shortest path 11,923 m (official segment distances): the 6.1–12.099 km band, 4 yuan.
    expect(out).toMatch(/^fare\s+400 fen \(¥4\.00\)$/m);
    expect(out).toMatch(/^distance\s+11\.923 km, 10 stations$/m);
    expect(out).toMatch(/^\s+path\s+西直门 → 国贸: 4号线 西直门–平安里/m);
    expect(out).toMatch(/^\s+band\s+11923 m in band 6100–12099: 400 fen\s+\[tariffs-2026\.1\]$/m);
  });

  it.concurrent('--json gives the whole quote object', async () => {
    const q = json<FareJson>(await fares('--network', 'bj-subway', '--from', 'Xizhimen', '--to', 'guomao', '--entry-time', T, '--json'));
    expect(q).toMatchObject({ network: 'bj-subway', fareFen: 400, baseFareFen: 400, distanceM: 11923, stationCount: 10, estimated: false, monthToDateAfterFen: 400 });
    expect(q.path).toMatchObject({ from: '西直门', to: '国贸' });
    expect(q.path!.legs.map((l) => l.line)).toEqual(['4号线', '6号线', '5号线', '1号线']);
    expect(q.trace.map((t) => t.rule)).toEqual(['path', 'band']);
  });

  it.concurrent('band edges: 6.0 km pays 3 yuan, 6.1 km pays 4 yuan', async () => {
    const [a, b] = await Promise.all([
      fares('--network', 'bj-subway', '--distance-km', '6.0', '--entry-time', T, '--json'),
      fares('--network', 'bj-subway', '--distance-km', '6.1', '--entry-time', T, '--json'),
    ]);
    expect([json<FareJson>(a).fareFen, json<FareJson>(b).fareFen]).toEqual([300, 400]);
  });

  it.concurrent('month-to-date spend picks the tier of the whole ride, never a split', async () => {
    // 99 yuan spent before the ride: the whole 4 yuan ride at full fare.
    const below = ok(await fares('--network', 'bj-subway', '--from', '西直门', '--to', '国贸', '--entry-time', T, '--month-to-date-fen', '9900'));
    expect(below).toMatch(/^fare\s+400 fen \(¥4\.00\)$/m);
    expect(below).toMatch(/^month spend 9900 → 10300 fen$/m);
    // 100 yuan spent: the whole ride at 80 %, 3.20 yuan.
    const at = ok(await fares('--network', 'bj-subway', '--from', '西直门', '--to', '国贸', '--entry-time', T, '--month-to-date-fen', '10000'));
    expect(at).toMatch(/^fare\s+320 fen \(¥3\.20\)$/m);
    expect(at).toMatch(/month-tier\s+month 2026-03 spent 10000 fen before this ride: tier from 10000 fen pays 80%, 400 → 320 fen/);
  });

  it.concurrent('Tianjin bus → metro transfer: 1 yuan off before the card discount', async () => {
    // 7 stations: 3 yuan; minus the 1 yuan transfer = 2 yuan; card holders pay 90 %: 1.80.
    const q = json<FareJson>(
      await fares('--network', 'tj-metro', '--stations', '7', '--entry-time', '2026-03-10T08:30', '--previous-leg-network', 'tj-bus', '--previous-leg-end', '2026-03-10T08:00', '--json'),
    );
    expect(q.fareFen).toBe(180);
    expect(q.trace.map((t) => t.rule)).toEqual(['band', 'transfer', 'category']);
    // Beyond 90 minutes: no transfer discount, 3 yuan × 90 %.
    const late = json<FareJson>(
      await fares('--network', 'tj-metro', '--stations', '7', '--entry-time', '2026-03-10T09:31', '--previous-leg-network', 'tj-bus', '--previous-leg-end', '2026-03-10T08:00', '--json'),
    );
    expect(late.fareFen).toBe(270);
  });

  it.concurrent('65+ rides a Beijing bus free but pays on the subway', async () => {
    const [bus, subway] = await Promise.all([
      fares('--network', 'bj-bus', '--from', 'bj-bus:1:0', '--to', 'bj-bus:1:5', '--category', 'senior', '--entry-time', T, '--json'),
      fares('--network', 'bj-subway', '--from', '西直门', '--to', '国贸', '--category', 'SENIOR', '--entry-time', T, '--json'),
    ]);
    // 1路 stop 0 → stop 5: 7.3 km, 2 yuan list price, SENIOR pays 0 %.
    expect(json<FareJson>(bus)).toMatchObject({ fareFen: 0, baseFareFen: 200, distanceM: 7300 });
    expect(json<FareJson>(subway).fareFen).toBe(400);
  });

  it.concurrent('a flat bus and an incomplete journey', async () => {
    const [flat, incomplete] = await Promise.all([
      fares('--network', 'tj-bus', '--entry-time', T),
      fares('--network', 'bj-subway', '--from', '西直门', '--entry-time', T, '--json'),
    ]);
    // Tianjin bus: flat 2 yuan, card holders 90 % (illustrative tariff): 1.80.
    const out = ok(flat);
    expect(out).toMatch(/^fare\s+180 fen \(¥1\.80\)$/m);
    expect(out).toMatch(/flat fare 200 fen/);
    // Entry without exit: the network's max fare, 10 yuan.
    const q = json<FareJson>(incomplete);
    expect(q.fareFen).toBe(1000);
    expect(q.trace[0]!.rule).toBe('incomplete');
  });
});

describe('fares quote - errors name the flag', { timeout: 180_000 }, () => {
  it.concurrent('unknown station: lists close names', async () => {
    await allFail([
      [fares('--network', 'bj-subway', '--from', '西直们', '--to', '国贸'), '--from: unknown station 西直们 on bj-subway', '西直门 (Xizhimen)'],
      [fares('--network', 'bj-subway', '--from', '西直门', '--to', 'Guomaoo'), '--to: unknown station Guomaoo', '国贸 (Guomao)'],
    ]);
  });

  it.concurrent('unknown network lists the known ones; a station of another network is refused', async () => {
    await allFail([
      [fares('--network', 'bj-metro', '--from', '西直门', '--to', '国贸'), '--network: unknown network bj-metro', 'bj-subway', 'tj-metro'],
      [fares('--network', 'bj-subway', '--from', 'tj-metro:刘园', '--to', '国贸'), '--from:', 'not of bj-subway'],
    ]);
  });

  it.concurrent('measure flags must fit the network', async () => {
    await allFail([
      [fares('--network', 'bj-subway', '--stations', '3'), '--stations: bj-subway fares by distance'],
      [fares('--network', 'tj-metro', '--distance-km', '3'), '--distance-km: tj-metro fares by station count'],
      [fares('--network', 'bj-subway', '--from', '西直门', '--to', '国贸', '--distance-km', '3'), '--distance-km: give --to or --distance-km'],
      [fares('--network', 'bj-subway', '--distance-km', 'six'), '--distance-km: must be a distance in km'],
      [fares('--network', 'tj-bus', '--to', 'x'), '--to: tj-bus is a tap-once network'],
    ]);
  });

  it.concurrent('times, category and amounts', async () => {
    await allFail([
      [fares('--network', 'bj-subway', '--distance-km', '3', '--entry-time', 'yesterday'), '--entry-time: yesterday is not a time'],
      [fares('--network', 'bj-subway', '--distance-km', '3', '--entry-time', T, '--exit-time', '2026-03-10T09:00'), '--exit-time: is before --entry-time'],
      [fares('--network', 'bj-subway', '--distance-km', '3', '--category', 'CHILD'), '--category: must be one of ADULT, STUDENT, SENIOR, DISABLED'],
      [fares('--network', 'bj-subway', '--distance-km', '3', '--month-to-date-fen', '12.5'), '--month-to-date-fen: must be a non-negative integer'],
      [fares('--network', 'tj-metro', '--stations', '3', '--previous-leg-network', 'tj-bus'), '--previous-leg-end: give both'],
    ]);
  });
});

describe('medical quote', { timeout: 180_000 }, () => {
  const sample = 'data/medical/examples/claim-sample.json';
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tapflow-quote-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const file = async (name: string, content: unknown) => {
    const p = join(dir, name);
    await writeFile(p, typeof content === 'string' ? content : JSON.stringify(content));
    return p;
  };

  // The sample: BJ-insured, outpatient, tertiary hospital in Tianjin, account balance 500 yuan.
  // Items 5,000 + 25,000 (class A) + 180,000 (class B) + 40,000 (self-pay) = 250,000 fen.
  // Class B first share 10 % = 18,000; in scope 250,000 − 40,000 − 18,000 = 192,000.
  // BJ outpatient deductible 180,000 (annual); tertiary ratio 70 %.
  it('splits the sample claim against an empty year', async () => {
    const out = ok(await medical(sample));
    const amount = (f: string) => Number(new RegExp(`^\\s+${f}\\s+(\\d+) fen`, 'm').exec(out)?.[1]);
    expect(out).toContain('BJ-insured, outpatient');
    expect(out).toContain('ILLUSTRATIVE');
    expect(out).toMatch(/^project list projects-2026\.11-1: listed for MEDICAL \(.*data\/projects\/default\.yaml \(no NATS server answers at nats:\/\/127\.0\.0\.1:9\)\)$/m);
    // Deductible takes 180,000 of the 192,000; fund pays 70 % of 12,000 = 8,400;
    // account pays its 50,000; cash 250,000 − 8,400 − 50,000 = 191,600.
    expect([amount('medfee_sumamt'), amount('inscp_scp_amt'), amount('deductible_amt'), amount('hifp_pay'), amount('acct_pay'), amount('cash_payamt')]).toEqual([
      250000, 192000, 180000, 8400, 50000, 191600,
    ]);
    expect(out).toMatch(/^\s+deductible\s+BJ outpatient TERTIARY deductible 180000 fen \(annual\), used 0 this year, applied 180000/m);
  });

  it('applies the year-to-date deductible and the annual cap (--json)', async () => {
    const q = json<Record<string, number | string>>(await medical(sample, '--ytd-deductible-fen', '180000', '--json'));
    // Deductible already borne: the fund pays 70 % of 192,000 = 134,400; cash 65,600.
    expect(q).toMatchObject({ status: 'SETTLED', medfee_sumamt: 250000, deductible_amt: 0, hifp_pay: 134400, acct_pay: 50000, cash_payamt: 65600, over_cap_amt: 0 });
    expect(q.yearToDate).toMatchObject({ deductibleFen: 180000 });
    // 19,900 yuan of the 20,000 yuan cap used: the fund pays 10,000, the rest is over the cap.
    const capped = json<{ hifp_pay: number; acct_pay: number; cash_payamt: number; medfee_sumamt: number }>(await medical(sample, '--ytd-deductible-fen', '180000', '--ytd-fund-fen', '1990000', '--json'));
    expect(capped).toMatchObject({ hifp_pay: 10000, over_cap_amt: 124400, acct_pay: 50000, cash_payamt: 190000 });
    expect(capped.hifp_pay + capped.acct_pay + capped.cash_payamt).toBe(capped.medfee_sumamt);
  });

  it('takes the accumulations of the claim year from a person state file', async () => {
    const state = {
      v: 1,
      seq: 2,
      claims: {},
      years: {
        '2025': { OUTPATIENT: { deductibleFen: 0, fundFen: 999999, medfeeFen: 0, claims: 9 } },
        '2026': { OUTPATIENT: { deductibleFen: 180000, fundFen: 0, medfeeFen: 200000, claims: 1 }, INPATIENT: { deductibleFen: 5, fundFen: 5, medfeeFen: 5, claims: 1 } },
      },
    };
    const q = json<Record<string, number>>(await medical(sample, '--person-state', await file('person.json', state), '--json'));
    expect(q).toMatchObject({ deductible_amt: 0, hifp_pay: 134400 });
  });

  it('names the bad field of a claim file', async () => {
    const base = JSON.parse(await readFile(join(ROOT, sample), 'utf8')) as Record<string, unknown>;
    const badClass = { ...base, items: [{ code: 'A', catalogueClass: 'CLASS_A', amountFen: 1 }, { code: 'B', catalogueClass: 'CLASS_C', amountFen: 1 }] };
    const files = {
      badClass: await file('bad-class.json', badClass),
      noItems: await file('no-items.json', { ...base, items: [] }),
      float: await file('float.json', { ...base, items: [{ code: 'A', catalogueClass: 'CLASS_A', amountFen: 12.5 }] }),
      typo: await file('typo.json', { ...base, insured_region: 'BJ' }),
      notJson: await file('not-json.json', '{ nope'),
    };
    await allFail([
      [medical(files.badClass), 'items[1].catalogueClass'],
      [medical(files.noItems), 'items'],
      [medical(files.float), 'items[0].amountFen'],
      [medical(files.typo), 'insured_region'],
      [medical(files.notJson), 'not JSON'],
      [medical(sample, '--ytd-fund-fen', '-1'), '--ytd-fund-fen: must be a non-negative integer'],
      [medical(sample, '--ytd-fund-fen', '1', '--person-state', 'x.json'), 'give one source of accumulations'],
      [medical(sample, '--id-number', '12345'), '--id-number: must be 17 digits'],
    ]);
  });

  it('documents the claim file format in --help', async () => {
    const out = ok(await runCli(['medical', 'quote', '--help']));
    for (const f of ['institutionId', 'insuredRegion', 'catalogueClass', 'amountFen', 'personalAccountBalanceFen', 'claim-sample.json', '--ytd-deductible-fen']) expect(out).toContain(f);
  });
});

describe('medical quote - the application project list', { timeout: 180_000 }, () => {
  const sample = join(ROOT, 'data/medical/examples/claim-sample.json');
  let dir: string;
  let base: Record<string, unknown>;
  /** A data folder like data/ whose project list has the three TJ hospitals with validity windows. */
  let tariffDir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tapflow-quote-list-'));
    base = JSON.parse(await readFile(sample, 'utf8')) as Record<string, unknown>;
    tariffDir = join(dir, 'data');
    await mkdir(join(tariffDir, 'projects'), { recursive: true });
    for (const sub of ['networks', 'tariffs', 'venues', 'medical', 'risk-rules']) await symlink(join(ROOT, 'data', sub), join(tariffDir, sub));
    await writeFile(
      join(tariffDir, 'projects', 'default.yaml'),
      [
        'version: windows-1',
        'items:',
        '  - { venue: "hospital:TJ:tmu-general-hospital", scene: MEDICAL, forms: [CHIP, QR], operator: tmu, region: TJ, validFrom: "2026-04-01" }',
        '  - { venue: "hospital:TJ:first-central-hospital", scene: MEDICAL, forms: [QR], operator: fch, region: TJ, validFrom: "2024-01-01", validTo: "2026-03-01" }',
        '  - { venue: "hospital:TJ:hexi-hospital", scene: MEDICAL, forms: [QR], operator: hexi, region: TJ, validFrom: "2024-01-01" }',
        '',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const claimFile = async (name: string, fields: Record<string, unknown>) => {
    const p = join(dir, name);
    await writeFile(p, JSON.stringify({ ...base, ...fields }));
    return p;
  };
  /** A refused claim: exit status 2, the list's reason code, no split. */
  const refused = (r: CliResult, code: string) => {
    expect(r.stderr, r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(2);
    expect(r.stdout).toMatch(new RegExp(`^status REJECTED: ${code}: `, 'm'));
    expect(r.stdout).not.toMatch(/hifp_pay/);
  };

  it('refuses an unknown institution with VENUE_NOT_LISTED, naming the list version and where it came from', async () => {
    const r = await medical(await claimFile('unknown.json', { institutionId: 'hospital:TJ:nowhere', institutionLevel: undefined }));
    refused(r, 'VENUE_NOT_LISTED');
    expect(r.stdout).toContain('hospital:TJ:nowhere is not listed');
    expect(r.stdout).toMatch(/^project list projects-2026\.11-1 \(.*data\/projects\/default\.yaml \(no NATS server answers at nats:\/\/127\.0\.0\.1:9\)\)$/m);
    const asJson = await runCli(['medical', 'quote', await claimFile('unknown-2.json', { institutionId: 'clinic:BJ:nowhere' }), '--json'], NO_NATS);
    expect(asJson.code).toBe(2);
    const j = JSON.parse(asJson.stdout) as { status: string; reasonCode: string; projectList: { version: string; source: string } };
    expect(j).toMatchObject({ status: 'REJECTED', reasonCode: 'VENUE_NOT_LISTED', projectList: { version: 'projects-2026.11-1' } });
  });

  it('refuses a listed venue that is not listed for MEDICAL with SCENE_NOT_LISTED', async () => {
    refused(await medical(await claimFile('museum.json', { institutionId: 'museum:BJ:palace-museum' })), 'SCENE_NOT_LISTED');
  });

  it('refuses by the validity of the item at the claim time: ITEM_NOT_YET_VALID, ITEM_EXPIRED; any card form', async () => {
    const at = (id: string, deviceTime: string) => claimFile(`${id.split(':').pop()}-${deviceTime}.json`, { institutionId: id, deviceTime, institutionLevel: undefined, treatmentRegion: undefined });
    const quote = async (id: string, t: string) => runCli(['medical', 'quote', await at(id, t), '--tariff-dir', tariffDir], NO_NATS);
    refused(await quote('hospital:TJ:tmu-general-hospital', '2026-03-31T23:59'), 'ITEM_NOT_YET_VALID');
    refused(await quote('hospital:TJ:first-central-hospital', '2026-03-01T00:00'), 'ITEM_EXPIRED');
    // Within the windows: a split. A QR-only institution settles too: a claim names no card form.
    expect(ok(await quote('hospital:TJ:tmu-general-hospital', '2026-04-01T00:00'))).toMatch(/^project list windows-1: listed for MEDICAL/m);
    expect(ok(await quote('hospital:TJ:first-central-hospital', '2026-02-28T23:59'))).toMatch(/^status SETTLED$/m);
    expect(ok(await quote('hospital:TJ:hexi-hospital', '2026-03-10T09:30'))).toMatch(/^status SETTLED$/m);
  });

  it("reads the running deployment's list from JetStream KV when NATS answers", async () => {
    const nats = await startTestNats();
    try {
      const env = { NATS_URL: nats.url, TAPFLOW_NATS_AUTOSTART: 'false', TAPFLOW_DATA_DIR: join(dir, 'state') };
      const list = join(dir, 'kv-list.yaml');
      await writeFile(list, 'version: kv-only-1\nitems:\n  - { venue: "hospital:BJ:pumch", scene: MEDICAL, forms: [CHIP], operator: pumch, region: BJ, validFrom: "2024-01-01" }\n');
      const applied = await runCli(['projects', 'apply', list], env);
      expect(applied.code, applied.stderr).toBe(0);
      // The sample's Tianjin hospital is on default.yaml but not on the list in force.
      const r = await runCli(['medical', 'quote', sample], env);
      refused(r, 'VENUE_NOT_LISTED');
      expect(r.stdout).toContain(`project list kv-only-1 (JetStream KV tapflow_projects at ${nats.url})`);
      const listed = await runCli(['medical', 'quote', await claimFile('pumch.json', { institutionId: 'hospital:BJ:pumch', treatmentRegion: 'BJ' })], env);
      expect(ok(listed)).toContain(`project list kv-only-1: listed for MEDICAL (JetStream KV tapflow_projects at ${nats.url})`);
    } finally {
      await nats.stop();
    }
  });
});
