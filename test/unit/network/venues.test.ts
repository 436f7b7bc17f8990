import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadNetworks, loadVenueDirectory, type VenueCatalog, type VenueInfo } from '../../../src/domain/network/index.js';
import { Regions } from '../../../src/domain/types.js';

const DATA_DIR = fileURLToPath(new URL('../../../data', import.meta.url));

// Rough bounding boxes of the three regions (Hebei surrounds Beijing and Tianjin).
const BBOX = {
  BJ: { lat: [39.4, 41.1], lon: [115.4, 117.6] },
  TJ: { lat: [38.5, 40.3], lon: [116.7, 118.1] },
  HE: { lat: [36.0, 42.7], lon: [113.4, 119.9] },
} as const;

let dir: VenueCatalog;
let all: VenueInfo[];
beforeAll(() => {
  dir = loadVenueDirectory(DATA_DIR);
  all = [...dir.all()] as VenueInfo[];
});

describe('venues - directory', () => {
  it('has every metro station as a RAIL venue <network>:<station>', () => {
    const nets = loadNetworks(DATA_DIR);
    for (const [id, net] of nets) {
      for (const s of net.stations.values()) {
        const v = dir.get(`${id}:${s.name}`);
        expect(v, `${id}:${s.name}`).toMatchObject({ scene: 'RAIL', network: id, station: s.name, region: net.region, operatorId: id });
      }
    }
    expect(dir.get('bj-subway:西直门')).toMatchObject({ region: 'BJ', lat: expect.any(Number) });
    expect(dir.get('sjz-metro:塔坛')?.lat).toBeUndefined();
  });

  it('has bus routes: Beijing distance-banded with routeKm, Tianjin and Hebei', () => {
    const stop = dir.info('bj-bus:1:7')!;
    expect(stop).toMatchObject({ scene: 'BUS', network: 'bj-bus', route: '1', stopIndex: 7, routeKm: 10.4, region: 'BJ' });
    expect(dir.busRoute('bj-bus', '1')?.lengthM).toBe(23000);
    expect(all.some((v) => v.network === 'tj-bus')).toBe(true);
    expect(all.some((v) => v.network === 'sjz-bus' && v.region === 'HE')).toBe(true);
  });

  it('has medical, culture and service samples in every region, with plausible coordinates', () => {
    for (const region of Regions) {
      for (const kind of ['clinic', 'hospital', 'pharmacy', 'museum', 'library', 'park', 'scenic', 'service'] as const) {
        expect(all.some((v) => v.region === region && v.kind === kind), `${region} ${kind}`).toBe(true);
      }
    }
    for (const v of all) {
      if (v.lat === undefined || v.lon === undefined) continue;
      const b = BBOX[v.region];
      expect(v.lat, v.id).toBeGreaterThan(b.lat[0]);
      expect(v.lat, v.id).toBeLessThan(b.lat[1]);
      expect(v.lon, v.id).toBeGreaterThan(b.lon[0]);
      expect(v.lon, v.id).toBeLessThan(b.lon[1]);
    }
  });

  it('gives medical venues an institution level and ASCII ids <kind>:<region>:<slug> to non-transit venues', () => {
    for (const v of all) {
      if (v.scene === 'MEDICAL') expect(v.institutionLevel, v.id).toMatch(/^(PRIMARY|SECONDARY|TERTIARY)$/);
      if (v.scene !== 'RAIL') expect(v.id, v.id).toMatch(/^[\x21-\x7e]+$/);
      if (v.scene !== 'RAIL' && v.scene !== 'BUS') expect(v.id).toBe(`${v.kind}:${v.region}:${v.id.split(':')[2]}`);
    }
    expect(dir.get('clinic:BJ:chaoyang-community-1')).toMatchObject({ scene: 'MEDICAL', institutionLevel: 'PRIMARY' });
    expect(dir.get('museum:BJ:capital-museum')).toMatchObject({ scene: 'CULTURE', region: 'BJ' });
  });

  it('names its sources in the version', () => {
    expect(dir.version).toMatch(/^networks-.+\+venues-bus-.+\+venues-medical-.+\+venues-culture-.+\+venues-service-.+$/);
  });
});
