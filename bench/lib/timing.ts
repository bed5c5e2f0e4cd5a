/**
 * Time on the monotonic clock, in nanoseconds. `process.hrtime` reads CLOCK_MONOTONIC, which is
 * shared by every process on the machine, so a child's timestamp compares with the parent's.
 */
export const nowNs = (): bigint => process.hrtime.bigint();

export const secondsBetween = (startNs: bigint, endNs: bigint): number => Number(endNs - startNs) / 1e9;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
