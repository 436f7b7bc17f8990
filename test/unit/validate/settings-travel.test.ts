import { describe, expect, it } from 'vitest';
import {
  DataFormatError,
  DEFAULT_VALIDATOR_SETTINGS,
  greatCircleKm,
  isImpossibleTravel,
  minimumTravelMs,
  parseDuration,
  parseInstant,
  resolveValidatorSettings,
} from '../../../src/domain/validate/index.js';

describe('settings', () => {
  it('defaults: 30 s QR skew, 60 s QR validity, 350 km/h', () => {
    const s = resolveValidatorSettings();
    expect(s).toEqual(DEFAULT_VALIDATOR_SETTINGS);
    expect(s.qrSkewMs).toBe(30_000);
    expect(s.qrMaxValidityMs).toBe(60_000);
    expect(s.maxSpeedKmh).toBe(350);
  });

  it('reads durations as text and replaces the passback table', () => {
    const s = resolveValidatorSettings({ qrSkewMs: '10s', passbackMs: { RAIL: '15m' }, memory: { taps: 4 } });
    expect(s.qrSkewMs).toBe(10_000);
    expect(s.passbackMs).toEqual({ RAIL: 900_000 });
    expect(s.memory.taps).toBe(4);
    expect(s.memory.decided).toBe(DEFAULT_VALIDATOR_SETTINGS.memory.decided);
  });

  it.each([
    [{ qrSkew: 1 }, 'validator.qrSkew'],
    [{ qrSkewMs: 'soon' }, 'validator.qrSkewMs'],
    [{ maxSpeedKmh: 0 }, 'validator.maxSpeedKmh'],
    [{ passbackMs: { TRAM: 1 } }, 'validator.passbackMs.TRAM'],
    [{ qrLevel1Scenes: ['SHOP'] }, 'validator.qrLevel1Scenes[0]'],
    [{ memory: { taps: 0 } }, 'validator.memory.taps'],
    [{ memory: { tapz: 1 } }, 'validator.memory.tapz'],
  ])('names the bad field %j', (input, field) => {
    try {
      resolveValidatorSettings(input);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DataFormatError);
      expect((err as DataFormatError).field).toBe(field);
    }
  });
});

describe('durations and instants', () => {
  it('parses durations', () => {
    expect(parseDuration('90s', 'f')).toBe(90_000);
    expect(parseDuration('1.5h', 'f')).toBe(5_400_000);
    expect(parseDuration('1d', 'f')).toBe(86_400_000);
    expect(parseDuration(250, 'f')).toBe(250);
    expect(() => parseDuration('-5m', 'f')).toThrow(DataFormatError);
  });

  it('parses instants with zone, dates as China midnight, and refuses zone-less date-times and impossible dates', () => {
    expect(parseInstant('2026-03-02T09:00:00+08:00', 'f')).toBe(Date.UTC(2026, 2, 2, 1));
    expect(parseInstant('2026-03-02', 'f')).toBe(Date.UTC(2026, 2, 1, 16));
    expect(() => parseInstant('2026-03-02T09:00:00', 'f')).toThrow(DataFormatError);
    expect(() => parseInstant('2026-02-30', 'f')).toThrow(DataFormatError);
  });
});

describe('travel', () => {
  it('great-circle distance: one degree of latitude is about 111.2 km', () => {
    expect(greatCircleKm({ lat: 39, lon: 116 }, { lat: 40, lon: 116 })).toBeCloseTo(111.2, 1);
    expect(greatCircleKm({ lat: 39.9, lon: 116.4 }, { lat: 39.9, lon: 116.4 })).toBe(0);
  });

  it('exactly the speed bound is plausible: 350 km in 1 h', () => {
    expect(isImpossibleTravel(350, 3_600_000, 350, 1)).toBe(false);
    expect(isImpossibleTravel(350, 3_599_999, 350, 1)).toBe(true);
    expect(minimumTravelMs(350, 350)).toBe(3_600_000);
  });

  it('distances within the tolerance are always plausible, even at the same instant', () => {
    expect(isImpossibleTravel(0.9, 0, 350, 1)).toBe(false);
    expect(isImpossibleTravel(1.1, 0, 350, 1)).toBe(true);
  });

  it('minimumTravelMs is the first whole ms the check accepts', () => {
    for (const km of [0.5, 9.63, 263.35, 1000 / 3]) {
      const ms = minimumTravelMs(km, 350);
      expect(isImpossibleTravel(km, ms, 350, 0)).toBe(false);
      expect(isImpossibleTravel(km, ms - 1, 350, 0)).toBe(true);
    }
  });
});
