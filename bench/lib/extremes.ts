/**
 * The largest and smallest of many numbers.
 *
 * `Math.max(...xs)` passes every element as an argument: V8 puts them on the stack, and an
 * array of a few hundred thousand elements (one per tap of a batch run) throws "Maximum call
 * stack size exceeded". The bench takes extremes over per-tap and per-sample arrays of any
 * length, so it loops instead.
 */

/** The largest value, or `empty` when there is none (NaN values are skipped). */
export function maxOf(values: Iterable<number>, empty = Number.NEGATIVE_INFINITY): number {
  let m = Number.NEGATIVE_INFINITY;
  let any = false;
  for (const v of values) {
    if (Number.isNaN(v)) continue;
    if (!any || v > m) m = v;
    any = true;
  }
  return any ? m : empty;
}

/** The smallest value, or `empty` when there is none (NaN values are skipped). */
export function minOf(values: Iterable<number>, empty = Number.POSITIVE_INFINITY): number {
  let m = Number.POSITIVE_INFINITY;
  let any = false;
  for (const v of values) {
    if (Number.isNaN(v)) continue;
    if (!any || v < m) m = v;
    any = true;
  }
  return any ? m : empty;
}

/** `f` applied to each element, lazily (so that extremes of a mapped array need no copy). */
export function* mapped<T>(xs: Iterable<T>, f: (x: T) => number): Iterable<number> {
  for (const x of xs) yield f(x);
}
