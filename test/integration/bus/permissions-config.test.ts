/**
 * The authorization block tapflow generates is a config nats-server accepts (`nats-server -t`),
 * at one partition and at the most TAPFLOW_PARTITIONS allows, with literal passwords (the local
 * server tapflow starts) and with $VARIABLE references (`tapflow bus permissions`).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUS_USERS, busPermissions, natsAuthorizationBlock, passwordVariable } from '../../../src/bus/permissions.js';
import { MAX_PARTITIONS } from '../../../src/config/values.js';
import { ensureNatsServer, natsServerConfig } from '../../../src/runtime/nats-server.js';
import { TEST_NATS_BIN_ENV } from '../../support/global-setup.js';

const run = promisify(execFile);
let dir: string;
let bin: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tapflow-perms-conf-'));
  bin = process.env[TEST_NATS_BIN_ENV] || (await ensureNatsServer({ install: false, log: { info: () => {}, warn: () => {} } }));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('bus permissions - the generated nats-server config', () => {
  for (const partitions of [1, MAX_PARTITIONS]) {
    it(`nats-server accepts it for ${partitions} partition(s), literal and variable passwords`, async () => {
      const literal = natsServerConfig({ serverName: 't', host: '127.0.0.1', port: 4222, storeDir: dir, authorization: natsAuthorizationBlock(partitions, (u) => JSON.stringify(`pw-${u}"\\x`)) });
      await writeFile(join(dir, 'literal.conf'), literal);
      await run(bin, ['-t', '-c', join(dir, 'literal.conf')]);
      const vars = `jetstream { store_dir: ${JSON.stringify(dir)} }\n${natsAuthorizationBlock(partitions, (u) => `$${passwordVariable(u)}`)}`;
      await writeFile(join(dir, 'vars.conf'), vars);
      const env = { ...process.env, ...Object.fromEntries(BUS_USERS.map((u) => [passwordVariable(u), `secret-${u}`])) };
      await run(bin, ['-t', '-c', join(dir, 'vars.conf')], { env });
      // Without the variables the server refuses it, naming one.
      await expect(run(bin, ['-t', '-c', join(dir, 'vars.conf')], { env: { PATH: process.env.PATH } })).rejects.toThrow(/TAPFLOW_NATS_PASSWORD_/);
    });
  }

  it('gives each role the durable consumers of every partition, and only its own', () => {
    const p = busPermissions(3);
    const next = (user: keyof typeof p) => p[user].publish.filter((s) => s.startsWith('$JS.API.CONSUMER.MSG.NEXT.') && !s.includes('.KV_') && !s.includes('.STATE.')).sort();
    expect(next('validator')).toEqual(['$JS.API.CONSUMER.MSG.NEXT.CLAIMS.risk-windows-claims', '$JS.API.CONSUMER.MSG.NEXT.CLAIMS.validator-claims-p0', '$JS.API.CONSUMER.MSG.NEXT.CLAIMS.validator-claims-p1', '$JS.API.CONSUMER.MSG.NEXT.CLAIMS.validator-claims-p2', '$JS.API.CONSUMER.MSG.NEXT.DECISIONS.risk-windows', '$JS.API.CONSUMER.MSG.NEXT.TAPS.validator-p0', '$JS.API.CONSUMER.MSG.NEXT.TAPS.validator-p1', '$JS.API.CONSUMER.MSG.NEXT.TAPS.validator-p2']);
    expect(next('settler')).toEqual(['$JS.API.CONSUMER.MSG.NEXT.CLAIMS.settler-claims-p0', '$JS.API.CONSUMER.MSG.NEXT.CLAIMS.settler-claims-p1', '$JS.API.CONSUMER.MSG.NEXT.CLAIMS.settler-claims-p2', '$JS.API.CONSUMER.MSG.NEXT.DECISIONS.settler-p0', '$JS.API.CONSUMER.MSG.NEXT.DECISIONS.settler-p1', '$JS.API.CONSUMER.MSG.NEXT.DECISIONS.settler-p2']);
    expect(next('sink')).toEqual(['$JS.API.CONSUMER.MSG.NEXT.DECISIONS.sink-decisions', '$JS.API.CONSUMER.MSG.NEXT.RISK.sink-risk', '$JS.API.CONSUMER.MSG.NEXT.SETTLEMENTS.sink-settlements']);
    expect(next('ingest')).toEqual([]);
    expect(next('all')).toEqual([...next('validator'), ...next('settler'), ...next('sink')].sort());
  });
});
