import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataFileError } from '../../../src/domain/network/index.js';
import { loadSettlerData } from '../../../src/domain/settle/index.js';
import { DATA_DIR } from './helpers.js';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** A copy of the shipped data with one file's text changed. */
function dataWith(rel: string, edit: (text: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tapflow-data-'));
  dirs.push(dir);
  cpSync(DATA_DIR, dir, { recursive: true });
  writeFileSync(join(dir, rel), edit(readFileSync(join(dir, rel), 'utf8')));
  return dir;
}

describe('settler data', () => {
  it('loads every versioned file and names them in the version', () => {
    const d = loadSettlerData(DATA_DIR);
    expect(d.version.split(';')).toEqual([d.tariffs.version, d.entries.version, d.medical.version, d.venues.version]);
    expect([...d.tariffs.networks.keys()].sort()).toEqual(['bj-bus', 'bj-subway', 'sjz-bus', 'sjz-metro', 'tj-bus', 'tj-metro']);
    // The Beijing bands come from the network's fare_rules.json (100 m allowance edges).
    expect(d.tariffs.networks.get('bj-subway')!.table!.bands.slice(0, 2)).toEqual([
      { upTo: 6099, fareFen: 300 },
      { upTo: 12099, fareFen: 400 },
    ]);
  });

  it('a malformed tariff stops loading with a message naming the file and the field', () => {
    const dir = dataWith('tariffs/tariffs.yaml', (t) => t.replace('timeLimitMin: 180                         # DESIGN', 'timeLimitMin: -3'));
    expect(() => loadSettlerData(dir)).toThrow(DataFileError);
    expect(() => loadSettlerData(dir)).toThrow(/tariffs\.yaml: networks\.tj-metro\.timeLimitMin/);
  });

  it('a venue network without a tariff is an error', () => {
    const dir = dataWith('venues/bus.yaml', (t) => t.replace('network: sjz-bus', 'network: bd-bus'));
    expect(() => loadSettlerData(dir)).toThrow(/no tariff for network bd-bus/);
  });

  it('a non-ASCII id for a non-transit venue is refused', () => {
    const dir = dataWith('venues/culture.yaml', (t) => t.replace('museum:BJ:capital-museum', 'museum:BJ:首都博物馆'));
    expect(() => loadSettlerData(dir)).toThrow(/culture\.yaml: venues\.1\.id/);
  });
});
