/**
 * Counts in fixed time buckets over a bounded window (a ring: `bucketsMax` numbers, whatever the
 * traffic): packets per second over the last minute, dispatches per 10 s over the last hour.
 * Times come from the caller (no clock inside).
 */
export class CountRing {
  private readonly counts: number[];
  /** which bucket (time / bucketMs) each slot holds now */
  private readonly ids: number[];

  constructor(readonly bucketMs: number, readonly bucketsMax: number) {
    this.counts = new Array<number>(bucketsMax).fill(0);
    this.ids = new Array<number>(bucketsMax).fill(-1);
  }

  add(nowMs: number, n = 1): void {
    const id = Math.floor(nowMs / this.bucketMs);
    const i = id % this.bucketsMax;
    if (this.ids[i] !== id) {
      this.ids[i] = id;
      this.counts[i] = 0;
    }
    this.counts[i]! += n;
  }

  /** The count of bucket `id`, 0 if the ring no longer (or never) held it. */
  private at(id: number): number {
    const i = id % this.bucketsMax;
    return this.ids[i] === id ? this.counts[i]! : 0;
  }

  /** The sum over the window that ends with the bucket holding `nowMs`. */
  sum(nowMs: number): number {
    let total = 0;
    for (const [, n] of this.series(nowMs)) total += n;
    return total;
  }

  /** Per second over the window ending at `nowMs`. */
  perSecond(nowMs: number): number {
    return this.sum(nowMs) / ((this.bucketMs * this.bucketsMax) / 1000);
  }

  /** `[bucket start ms, count]` for every bucket of the window, oldest first (empty ones as 0). */
  series(nowMs: number): [number, number][] {
    const last = Math.floor(nowMs / this.bucketMs);
    const out: [number, number][] = [];
    for (let id = last - this.bucketsMax + 1; id <= last; id++) out.push([id * this.bucketMs, this.at(id)]);
    return out;
  }
}
