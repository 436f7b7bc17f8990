/**
 * Great-circle distance and the speed bound of the impossible-travel rule.
 */

/** Mean Earth radius, km (IUGG). */
const EARTH_RADIUS_KM = 6371.0088;
const RAD = Math.PI / 180;

/** Great-circle (haversine) distance between two WGS84 points, km. */
export function greatCircleKm(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const dLat = (b.lat - a.lat) * RAD;
  const dLon = (b.lon - a.lon) * RAD;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

const MS_PER_HOUR = 3_600_000;

/**
 * True when covering `distanceKm` in `elapsedMs` needs more than `maxSpeedKmh` — compared as
 * distance × 3 600 000 > speed × elapsed, so exactly the bound is plausible and elapsed 0 with
 * any distance beyond the tolerance is not. Distances up to `toleranceKm` are always plausible.
 */
export function isImpossibleTravel(distanceKm: number, elapsedMs: number, maxSpeedKmh: number, toleranceKm: number): boolean {
  if (distanceKm <= toleranceKm) return false;
  return distanceKm * MS_PER_HOUR > maxSpeedKmh * Math.abs(elapsedMs);
}

/** The shortest time, in whole ms, in which `distanceKm` is plausible at `maxSpeedKmh`. */
export function minimumTravelMs(distanceKm: number, maxSpeedKmh: number): number {
  let ms = Math.ceil((distanceKm * MS_PER_HOUR) / maxSpeedKmh);
  // The division may round below the exact quotient; step up to the first whole ms the check accepts.
  while (distanceKm * MS_PER_HOUR > maxSpeedKmh * ms) ms++;
  return ms;
}
