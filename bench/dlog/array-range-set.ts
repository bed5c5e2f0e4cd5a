/** The sorted-array RangeSet as it was before it became a tree (commit b7190f5): kept only so bench/dlog/range-set.ts can print old and new side by side. */
/**
 * A set of seqs kept as sorted, disjoint, inclusive ranges: the packets above the cumulative ack
 * point that are already done (acked one by one, expired, dropped). Out-of-order acks come from a
 * bounded window, so the set stays small.
 */
export class ArrayRangeSet {
  private ranges: [number, number][] = [];

  constructor(ranges: [number, number][] = []) {
    for (const [a, b] of ranges) this.add(a, b);
  }

  get size(): number {
    return this.ranges.length;
  }

  /** The highest seq held, or 0 when empty. */
  get last(): number {
    return this.ranges.at(-1)?.[1] ?? 0;
  }

  /** How many seqs of [from, to] the set holds. */
  countIn(from: number, to: number): number {
    let n = 0;
    for (let i = this.find(from); i < this.ranges.length && this.ranges[i]![0] <= to; i++) {
      const [a, b] = this.ranges[i]!;
      n += Math.min(b, to) - Math.max(a, from) + 1;
    }
    return n;
  }

  has(seq: number): boolean {
    const i = this.find(seq);
    return i < this.ranges.length && this.ranges[i]![0] <= seq;
  }

  /** Adds [from, to]; returns how many seqs were not in the set before. */
  add(from: number, to = from): number {
    if (to < from) return 0;
    const i = this.find(from - 1);
    let lo = from;
    let hi = to;
    let covered = 0;
    let j = i;
    while (j < this.ranges.length && this.ranges[j]![0] <= to + 1) {
      const [a, b] = this.ranges[j]!;
      covered += Math.max(0, Math.min(b, to) - Math.max(a, from) + 1);
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
      j++;
    }
    this.ranges.splice(i, j - i, [lo, hi]);
    return to - from + 1 - covered;
  }

  /** Removes and returns the highest seq of a range that starts at `next`, if there is one. */
  takePrefix(next: number): number | null {
    const first = this.ranges[0];
    if (!first || first[0] > next) return null;
    this.ranges.shift();
    return first[1];
  }

  /** Drops everything at or below `seq`. */
  dropThrough(seq: number): void {
    while (this.ranges.length > 0 && this.ranges[0]![1] <= seq) this.ranges.shift();
    const first = this.ranges[0];
    if (first && first[0] <= seq) first[0] = seq + 1;
  }

  toArray(rangesMax = Infinity): [number, number][] {
    return this.ranges.slice(0, rangesMax).map(([a, b]) => [a, b]);
  }

  /** Index of the first range whose end is >= seq. */
  private find(seq: number): number {
    let lo = 0;
    let hi = this.ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ranges[mid]![1] < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
