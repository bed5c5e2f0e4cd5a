/** Order statistics over samples (latencies in ms, rates, RSS readings). */

/** Nearest-rank percentile of an ascending array: the smallest value with at least `p` of the samples at or below it. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1]!;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Distribution {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** Summary of `xs` (sorted in place when it is a typed array; copied otherwise). */
export function distribution(xs: Float64Array | number[]): Distribution {
  const s = xs instanceof Float64Array ? xs.sort() : Float64Array.from(xs).sort();
  let sum = 0;
  for (const x of s) sum += x;
  return {
    count: s.length, mean: s.length > 0 ? sum / s.length : NaN,
    p50: percentileSorted(s, 0.5), p90: percentileSorted(s, 0.9), p99: percentileSorted(s, 0.99), p999: percentileSorted(s, 0.999),
    max: s.length > 0 ? s[s.length - 1]! : NaN,
  };
}
