/** Exponential back-off with "equal jitter": half the delay fixed, half random, so a fleet that lost its gateway together does not return together. */
export function backoffDelayMs(attempt: number, minMs: number, maxMs: number, rng: () => number): number {
  const capped = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(capped / 2 + (rng() * capped) / 2);
}
