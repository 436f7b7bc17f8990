/**
 * The terminal registry (src/ingest/terminals.ts): the YAML file registry (hashed secrets,
 * disabled terminals, the venues each serves, format errors) and the demo registry (secrets
 * derived from the fleet key, the venues of the region its id names).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { demoRegistry, demoTerminalSecret, fileRegistry, TERMINAL_ID_PATTERN } from '../../../src/ingest/terminals.js';

const dir = mkdtempSync(join(tmpdir(), 'tapflow-terminals-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function registryFile(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const good = registryFile(
  'terminals.yaml',
  `terminals:
  - id: BJ-GATE-0001
    region: BJ
    venues: [bj-subway:西直门, bj-subway:国贸]
    operator: bj-subway
    secret_sha256: ${sha('gate-secret')}
  - id: TJ-CLINIC-7
    region: TJ
    venues:
      - hospital:TJ:tmu-general-hospital
    secret_sha256: ${sha('clinic-secret').toUpperCase()}
  - id: HE-BUS-3
    region: HE
    venues: [sjz-bus:*]
    secret_sha256: ${sha('bus-secret')}
    disabled: true
`,
);

describe('terminals - file registry', () => {
  const reg = fileRegistry(good);

  it('authenticates a terminal with its secret and gives region, operator and venues', () => {
    expect(reg.authenticate('BJ-GATE-0001', 'gate-secret')).toEqual({
      ok: true,
      terminal: { id: 'BJ-GATE-0001', region: 'BJ', operatorId: 'bj-subway', venues: { kind: 'listed', ids: new Set(['bj-subway:西直门', 'bj-subway:国贸']), prefixes: [], text: 'bj-subway:西直门, bj-subway:国贸' } },
    });
    // Hex case of the stored hash does not matter.
    const r = reg.authenticate('TJ-CLINIC-7', 'clinic-secret');
    expect(r.ok && r.terminal.region).toBe('TJ');
    expect(r.ok && r.terminal.operatorId).toBeUndefined();
  });

  it('refuses a missing credential, a wrong secret and an unknown terminal with UNAUTHENTICATED', () => {
    for (const [id, secret] of [
      [undefined, 'gate-secret'],
      ['BJ-GATE-0001', undefined],
      ['BJ-GATE-0001', ''],
      ['BJ-GATE-0001', 'gate-secret '],
      ['BJ-GATE-0001', 'clinic-secret'], // another terminal's secret
      ['BJ-GATE-0002', 'gate-secret'],
    ] as const) {
      const r = reg.authenticate(id, secret);
      expect(r.ok ? 'ok' : r.code, `${id}/${secret}`).toBe('UNAUTHENTICATED');
    }
  });

  it('refuses a disabled terminal with PERMISSION_DENIED, only after its secret is right', () => {
    const r = reg.authenticate('HE-BUS-3', 'bus-secret');
    expect(r.ok ? 'ok' : r.code).toBe('PERMISSION_DENIED');
    expect(r.ok ? '' : r.message).toContain('disabled');
    // A wrong secret must not reveal that the terminal exists and is disabled.
    const wrong = reg.authenticate('HE-BUS-3', 'nope');
    expect(wrong.ok ? 'ok' : wrong.code).toBe('UNAUTHENTICATED');
  });

  it('names the file and the problem when the file is malformed', () => {
    const cases: [string, string, RegExp][] = [
      ['bad-region.yaml', `terminals:\n  - { id: X-1, region: SH, venues: [x], secret_sha256: ${sha('x')} }\n`, /region/],
      ['bad-hash.yaml', 'terminals:\n  - { id: BJ-1, region: BJ, venues: [x], secret_sha256: abc }\n', /secret_sha256/],
      ['bad-id.yaml', `terminals:\n  - { id: "BJ 1", region: BJ, venues: [x], secret_sha256: ${sha('x')} }\n`, /id/],
      ['no-list.yaml', 'terminal: []\n', /terminals/],
      // Terminals are bound to their venues: a terminal without them could send for any.
      ['no-venues.yaml', `terminals:\n  - { id: BJ-1, region: BJ, secret_sha256: ${sha('x')} }\n`, /venues/],
      ['empty-venues.yaml', `terminals:\n  - { id: BJ-1, region: BJ, venues: [], secret_sha256: ${sha('x')} }\n`, /terminals\[0\] \(BJ-1\)\.venues: at least one/],
      ['star-alone.yaml', `terminals:\n  - { id: BJ-1, region: BJ, venues: ["*"], secret_sha256: ${sha('x')} }\n`, /terminals\[0\] \(BJ-1\)\.venues\[0\]: .*got "\*"/],
      ['star-inside.yaml', `terminals:\n  - { id: BJ-1, region: BJ, venues: [bj-subway:x, "bj-*:x"], secret_sha256: ${sha('x')} }\n`, /venues\[1\]: .*got "bj-\*:x"/],
      ['twice.yaml', `terminals:\n  - { id: BJ-1, region: BJ, venues: [x], secret_sha256: ${sha('x')} }\n  - { id: BJ-1, region: BJ, venues: [y], secret_sha256: ${sha('y')} }\n`, /terminals\[1\]: BJ-1 is listed twice/],
    ];
    for (const [name, text, problem] of cases) {
      const p = registryFile(name, text);
      expect(() => fileRegistry(p), name).toThrow(`terminal registry ${p}`);
      expect(() => fileRegistry(p), name).toThrow(problem);
    }
    expect(() => fileRegistry(join(dir, 'missing.yaml'))).toThrow(/terminal registry .*missing\.yaml/);
  });
});

describe('terminals - demo registry', () => {
  const fleetKey = Buffer.alloc(32, 7);
  const reg = demoRegistry(fleetKey);

  it('accepts <REGION>-… ids with the secret derived from the fleet key', () => {
    for (const [id, region] of [['BJ-RAIL-0001', 'BJ'], ['TJ-BUS-9', 'TJ'], ['HE-CLINIC-x', 'HE']] as const) {
      const r = reg.authenticate(id, demoTerminalSecret(fleetKey, id));
      expect(r).toEqual({ ok: true, terminal: { id, region, venues: { kind: 'region' } } });
    }
  });

  it('refuses another fleet key, another terminal secret and ids outside the scheme', () => {
    const id = 'BJ-RAIL-0001';
    const cases: [string | undefined, string | undefined][] = [
      [id, demoTerminalSecret(Buffer.alloc(32, 8), id)],
      [id, demoTerminalSecret(fleetKey, 'BJ-RAIL-0002')],
      ['SH-RAIL-1', demoTerminalSecret(fleetKey, 'SH-RAIL-1')],
      ['BJRAIL-1', demoTerminalSecret(fleetKey, 'BJRAIL-1')],
      ['BJ-RAIL 1', demoTerminalSecret(fleetKey, 'BJ-RAIL 1')],
      [id, undefined],
      [undefined, 'x'],
    ];
    for (const [i, s] of cases) {
      const r = reg.authenticate(i, s);
      expect(r.ok ? 'ok' : r.code, `${i}`).toBe('UNAUTHENTICATED');
    }
  });

  it('derives distinct, stable secrets', () => {
    expect(demoTerminalSecret(fleetKey, 'BJ-A-1')).toBe(demoTerminalSecret(Buffer.alloc(32, 7), 'BJ-A-1'));
    expect(demoTerminalSecret(fleetKey, 'BJ-A-1')).not.toBe(demoTerminalSecret(fleetKey, 'BJ-A-2'));
    expect(demoTerminalSecret(fleetKey, 'BJ-A-1')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('terminal ids: 1-64 of [A-Za-z0-9._-]', () => {
    expect(TERMINAL_ID_PATTERN.test('a'.repeat(64))).toBe(true);
    expect(TERMINAL_ID_PATTERN.test('a'.repeat(65))).toBe(false);
    expect(TERMINAL_ID_PATTERN.test('BJ-GATE_0.1')).toBe(true);
    expect(TERMINAL_ID_PATTERN.test('BJ/GATE')).toBe(false);
  });
});

describe('terminals - identify (the id a verified client certificate names)', () => {
  it('file registry: a listed terminal with or without a secret; unknown UNAUTHENTICATED, disabled PERMISSION_DENIED', () => {
    const file = registryFile('mtls.yaml', `terminals:\n  - { id: BJ-GATE-0009, region: BJ, venues: [bj-subway:西直门] }\n  - { id: BJ-GATE-0010, region: BJ, venues: [bj-subway:西直门], disabled: true }\n`);
    const reg = fileRegistry(file);
    const r = reg.identify('BJ-GATE-0009');
    expect(r.ok && r.terminal.id).toBe('BJ-GATE-0009');
    // No secret registered: the static-secret path refuses it whatever is sent.
    expect(reg.authenticate('BJ-GATE-0009', 'anything').ok).toBe(false);
    expect(reg.identify('BJ-GATE-0010')).toEqual({ ok: false, code: 'PERMISSION_DENIED', message: 'terminal BJ-GATE-0010 is disabled' });
    const u = reg.identify('BJ-GATE-9999');
    expect(!u.ok && [u.code, u.message]).toEqual(['UNAUTHENTICATED', `terminal BJ-GATE-9999 (named by the client certificate) is not in the terminal registry ${file}`]);
    expect(fileRegistry(good).identify('HE-BUS-3').ok).toBe(false);
  });

  it('demo registry: any <REGION>-<name> id, serving its region; other ids UNAUTHENTICATED', () => {
    const reg = demoRegistry(Buffer.alloc(32, 1));
    const r = reg.identify('TJ-BUS-12');
    expect(r.ok && [r.terminal.region, r.terminal.venues.kind]).toEqual(['TJ', 'region']);
    for (const id of ['SH-BUS-1', 'BJBUS-1', 'BJ-']) expect(reg.identify(id).ok, id).toBe(false);
  });
});
