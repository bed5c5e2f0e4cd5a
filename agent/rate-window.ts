import type { Clock } from '../common/clock.js';

/**
 * The rate of a growing counter over the last `windowMs`, from samples of it kept in a small
 * ring: one per `bucketMs` (the first taken in each bucket), so memory is windowMs / bucketMs + 2
 * numbers whatever the rate. Sampling is the caller's (a timer every bucketMs, and each read):
 * a counter the store already keeps needs no hook on every packet.
 */
export class RateWindow {
  private readonly atMs: number[] = [];
  private readonly values: number[] = [];
  private readonly samplesMax: number;

  constructor(private readonly clock: Clock, private readonly opts: { windowMs: number; bucketMs: number }) {
    this.samplesMax = Math.ceil(opts.windowMs / opts.bucketMs) + 2;
  }

  /** Takes `value` (the counter now) as a sample, unless one was taken in this bucket already. */
  sample(value: number): void {
    const nowMs = this.clock.now();
    const last = this.atMs[this.atMs.length - 1];
    if (last !== undefined && Math.floor(last / this.opts.bucketMs) === Math.floor(nowMs / this.opts.bucketMs)) return;
    this.atMs.push(nowMs);
    this.values.push(value);
    if (this.atMs.length > this.samplesMax) {
      this.atMs.shift();
      this.values.shift();
    }
  }

  /**
   * Per second, from the oldest sample within the window (or the oldest there is, for a counter
   * watched for less than the window; or the newest before it, when none is within) to `value`
   * now; 0 before a whole second was watched. Also says over how many seconds.
   */
  perSecond(value: number): { perSecond: number; overS: number } {
    this.sample(value);
    const nowMs = this.clock.now();
    let i = 0;
    while (i < this.atMs.length - 1 && this.atMs[i]! < nowMs - this.opts.windowMs) i++;
    // Nothing sampled within the window but now (no reads, no timer): the last sample before it is all there is.
    if (i > 0 && this.atMs[i] === nowMs) i--;
    const elapsedMs = nowMs - this.atMs[i]!;
    if (elapsedMs < 1000) return { perSecond: 0, overS: elapsedMs / 1000 };
    return { perSecond: (value - this.values[i]!) / (elapsedMs / 1000), overS: elapsedMs / 1000 };
  }
}
