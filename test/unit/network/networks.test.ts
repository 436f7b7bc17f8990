import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { haversineM, loadNetworks, type Network } from '../../../src/domain/network/index.js';
import { parseCsv } from '../../../src/domain/network/csv.js';

const DATA_DIR = fileURLToPath(new URL('../../../data', import.meta.url));
const AIRPORT_AND_TRAM = ['首都机场线', '大兴机场线', '西郊线'];

let nets: Map<string, Network>;
let bj: Network;
let tj: Network;
let sjz: Network;
beforeAll(() => {
  nets = loadNetworks(DATA_DIR);
  bj = nets.get('bj-subway')!;
  tj = nets.get('tj-metro')!;
  sjz = nets.get('sjz-metro')!;
});

describe('network - loading', () => {
  it('loads the three networks with the counts of SOURCES.md', () => {
    expect([...nets.keys()].sort()).toEqual(['bj-subway', 'sjz-metro', 'tj-metro']);
    expect([bj.stations.size, bj.lines.length]).toEqual([425, 28]);
    expect([tj.stations.size, tj.lines.length]).toEqual([239, 14]);
    expect([sjz.stations.size, sjz.lines.length]).toEqual([60, 3]);
    expect([bj.region, tj.region, sjz.region]).toEqual(['BJ', 'TJ', 'HE']);
  });

  it('uses the official Beijing distances, loops closing back to seq 1', () => {
    // 540 rows on 28 lines: 512 consecutive segments + 2 loop closures.
    expect(bj.segments).toHaveLength(514);
    expect(bj.segments.every((s) => !s.estimated)).toBe(true);
    const closing = bj.segments.find((s) => s.line === '2号线' && s.from === '积水潭' && s.to === '西直门');
    expect(closing?.distanceM).toBe(1899);
    expect(bj.segments.find((s) => s.line === '10号线' && s.from === '首经贸' && s.to === '丰台站')?.distanceM).toBe(1717);
  });

  it('estimates Tianjin and Shijiazhuang distances as haversine × 1.06 and labels them', () => {
    expect(tj.segments.every((s) => s.estimated)).toBe(true);
    expect(sjz.segments.every((s) => s.estimated)).toBe(true);
    expect(tj.estimateFactor).toBe(1.06);
    const seg = sjz.segments.find((s) => s.from === '西王' && s.to === '时光街')!;
    const a = sjz.stations.get('西王')!;
    const b = sjz.stations.get('时光街')!;
    expect(seg.distanceM).toBe(Math.round(haversineM(a.lat!, a.lon!, b.lat!, b.lon!) * 1.06));
    expect(seg.distanceM).toBeGreaterThan(1400);
    expect(seg.distanceM).toBeLessThan(1600);
  });

  it('interpolates the stations without coordinates and keeps them without coordinates', () => {
    const rj = tj.segments.filter((s) => s.from === '瑞景新苑' || s.to === '瑞景新苑');
    expect(rj).toHaveLength(2);
    expect(rj.every((s) => s.interpolated && s.estimated)).toBe(true);
    // The midpoint splits the straight line 刘园–佳园里 in two equal halves.
    expect(rj[0]!.distanceM).toBe(rj[1]!.distanceM);
    expect(tj.stations.get('瑞景新苑')!.lat).toBeUndefined();
    expect(sjz.segments.filter((s) => s.interpolated).map((s) => `${s.from}-${s.to}`)).toEqual(['石家庄站-塔坛', '塔坛-仓丰路留村']);
  });
});

describe('network - fare paths', () => {
  it('西单 → 国贸 is 7165 m on line 1 (sum of the official segments)', () => {
    const p = bj.shortestPath('西单', '国贸', { penalizedLines: AIRPORT_AND_TRAM })!;
    expect(p.distanceM).toBe(1217 + 925 + 852 + 774 + 1230 + 1377 + 790);
    expect(p.legs.map((l) => l.line)).toEqual(['1号线']);
    expect(p.stationCount).toBe(7);
    expect(p.transfers).toBe(0);
  });

  it('uses the loop closure: 西直门 → 积水潭 is one 1899 m segment', () => {
    const p = bj.shortestPath('西直门', '积水潭')!;
    expect([p.distanceM, p.stationCount]).toEqual([1899, 1]);
  });

  it('is symmetric and transfers inside stations of the same name', () => {
    const ab = bj.shortestPath('苹果园', '天通苑北')!;
    const ba = bj.shortestPath('天通苑北', '苹果园')!;
    expect(ab.distanceM).toBe(ba.distanceM);
    expect(ab.transfers).toBeGreaterThan(0);
    // No path is longer than the sum of its legs or uses a leg twice.
    expect(ab.legs.reduce((s, l) => s + l.distanceM, 0)).toBe(ab.distanceM);
  });

  it('uses Beijing virtual transfers (复兴门 ↔ 太平桥 out of station)', () => {
    const p = bj.shortestPath('复兴门', '牛街')!;
    expect(p.legs).toEqual([expect.objectContaining({ line: '19号线', from: '太平桥', to: '牛街' })]);
    expect(p.distanceM).toBe(2140);
  });

  it('avoids separately gated lines unless unavoidable', () => {
    const avoid = bj.shortestPath('东直门', '三元桥', { penalizedLines: AIRPORT_AND_TRAM })!;
    expect(avoid.legs.some((l) => l.line === '首都机场线')).toBe(false);
    const must = bj.shortestPath('3号航站楼', '西单', { penalizedLines: AIRPORT_AND_TRAM })!;
    expect(must.legs[0]).toMatchObject({ line: '首都机场线', from: '3号航站楼', to: '三元桥' });
  });

  it('the station metric minimises stations ridden (Tianjin 刘园 → 天津站: 12)', () => {
    const p = tj.shortestPath('刘园', '天津站', { metric: 'stations' })!;
    expect(p.stationCount).toBe(12);
    expect(p.estimated).toBe(true);
    const byDistance = tj.shortestPath('刘园', '天津站', { metric: 'distance' })!;
    expect(byDistance.distanceM).toBeLessThanOrEqual(p.distanceM);
  });

  it('answers undefined for unknown or disconnected stations (Tianjin Z4 is not linked yet)', () => {
    expect(bj.shortestPath('西单', 'Nowhere')).toBeUndefined();
    expect(tj.shortestPath('刘园', '寨上')).toBeUndefined();
  });

  it('a station to itself is 0 m, 0 stations', () => {
    expect(bj.shortestPath('西单', '西单')).toMatchObject({ distanceM: 0, stationCount: 0, transfers: 0 });
  });

  it('every Beijing station reaches every other', () => {
    const names = [...bj.stations.keys()];
    for (const b of names) expect(bj.shortestPath('西直门', b), b).toBeDefined();
  });
});

describe('network - csv', () => {
  it('reads quoted fields, doubled quotes and CRLF', () => {
    expect(parseCsv('a,b\r\n"x, y","say ""hi"""\r\n1,\n')).toEqual([
      { a: 'x, y', b: 'say "hi"' },
      { a: '1', b: '' },
    ]);
  });
});
